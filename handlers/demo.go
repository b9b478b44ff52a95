package handlers

import (
	"bytes"
	"crypto/rand"
	"hash/fnv"
	"image"
	"image/color"
	"image/png"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
)

// demoKey marks a request to a demo server (pageFor shows the banner).
const demoKey = "presence.demo"

// markDemo is middleware of a demo server: every page gets the banner.
func markDemo(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Set(demoKey, true)
		return next(c)
	}
}

// DemoAvatarURL is where a demo server serves demo person n's avatar.
func DemoAvatarURL(n int) string { return "/demo/avatars/" + strconv.Itoa(n) + ".png" }

// demoAvatarMax bounds the avatar numbers served.
const demoAvatarMax = 1000

var demoAvatars sync.Map // n → []byte (PNG)

// handleDemoAvatar serves GET /demo/avatars/{n}.png: a generated 64×64
// PNG, the same for the same n, distinct between people (a colour pair
// and a symmetric 5×5 pattern, as identicons have).
func handleDemoAvatar() echo.HandlerFunc {
	return func(c echo.Context) error {
		name, ok := strings.CutSuffix(c.Param("file"), ".png")
		n, err := strconv.Atoi(name)
		if !ok || err != nil || n < 0 || n >= demoAvatarMax {
			return httpError(http.StatusNotFound, "no such avatar")
		}
		b, ok := demoAvatars.Load(n)
		if !ok {
			b, _ = demoAvatars.LoadOrStore(n, demoAvatar(n))
		}
		c.Response().Header().Set("Cache-Control", "public, max-age=86400")
		return c.Blob(http.StatusOK, "image/png", b.([]byte))
	}
}

// demoAvatar draws avatar n.
func demoAvatar(n int) []byte {
	h := fnv.New64a()
	h.Write([]byte("presence-demo-" + strconv.Itoa(n)))
	bits := h.Sum64()
	// A hue from n itself, spread by the golden angle, so neighbours differ.
	hue := float64(n) * 137.508
	fg := hsl(hue, 0.65, 0.45)
	bg := hsl(hue+180, 0.35, 0.92)
	const size, cell = 64, 12 // 5 cells of 12 px, 2 px margin each side
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			img.Set(x, y, bg)
		}
	}
	for row := 0; row < 5; row++ {
		for col := 0; col < 3; col++ {
			if bits&(1<<(row*3+col)) == 0 {
				continue
			}
			for _, cc := range []int{col, 4 - col} { // mirrored
				for y := 2 + row*cell; y < 2+(row+1)*cell; y++ {
					for x := 2 + cc*cell; x < 2+(cc+1)*cell; x++ {
						img.Set(x, y, fg)
					}
				}
			}
		}
	}
	var buf bytes.Buffer
	png.Encode(&buf, img) // cannot fail writing to a buffer
	return buf.Bytes()
}

// hsl converts a hue (degrees), saturation and lightness to a colour.
func hsl(h, s, l float64) color.NRGBA {
	for h >= 360 {
		h -= 360
	}
	c := (1 - abs(2*l-1)) * s
	hp := h / 60
	x := c * (1 - abs(mod2(hp)-1))
	var r, g, b float64
	switch {
	case hp < 1:
		r, g = c, x
	case hp < 2:
		r, g = x, c
	case hp < 3:
		g, b = c, x
	case hp < 4:
		g, b = x, c
	case hp < 5:
		r, b = x, c
	default:
		r, b = c, x
	}
	m := l - c/2
	return color.NRGBA{uint8((r + m) * 255), uint8((g + m) * 255), uint8((b + m) * 255), 255}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

func mod2(v float64) float64 {
	for v >= 2 {
		v -= 2
	}
	return v
}

// handleDemoSignIn serves POST /demo/sign-in: one click signs the visitor
// in as a demo person picked at random, and sends them home, where the
// widget shows the others coming and going.
func handleDemoSignIn(s Store, auth *authenticator, people []string) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(people) == 0 {
			return httpError(http.StatusNotFound, "this server has no demo people")
		}
		i, _ := rand.Int(rand.Reader, big.NewInt(int64(len(people))))
		u, err := s.UserByName(c.Request().Context(), people[i.Int64()])
		if err != nil {
			return err
		}
		if err := auth.signIn(c, u); err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/")
	}
}
