package avatar

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// halves is a w×h picture, red on its left half and blue on its right.
func halves(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.RGBA{220, 20, 20, 255}
			if x >= w/2 {
				c = color.RGBA{20, 20, 220, 255}
			}
			m.SetRGBA(x, y, c)
		}
	}
	return m
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withEXIF inserts an APP1 segment after a JPEG's SOI: a little-endian
// TIFF header whose first IFD holds Orientation = o and a camera make.
func withEXIF(jpg []byte, o uint16) []byte {
	var tiff bytes.Buffer
	tiff.WriteString("II*\x00")
	binary.Write(&tiff, binary.LittleEndian, uint32(8))
	binary.Write(&tiff, binary.LittleEndian, uint16(2))                       // entries
	binary.Write(&tiff, binary.LittleEndian, []uint16{0x010f, 2})             // Make, ASCII
	binary.Write(&tiff, binary.LittleEndian, uint32(4))                       // count
	tiff.WriteString("ACM\x00")                                               // inline value
	binary.Write(&tiff, binary.LittleEndian, []uint16{0x0112, 3, 1, 0, o, 0}) // Orientation, SHORT, count 1
	binary.Write(&tiff, binary.LittleEndian, uint32(0))                       // no next IFD
	seg := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	app1 := append([]byte{0xff, 0xe1, byte((len(seg) + 2) >> 8), byte(len(seg) + 2)}, seg...)
	return append(append([]byte{0xff, 0xd8}, app1...), jpg[2:]...)
}

// chunks lists the chunk types of a PNG.
func chunks(t *testing.T, p []byte) []string {
	t.Helper()
	if !bytes.HasPrefix(p, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("not a PNG")
	}
	var out []string
	for i := 8; i+8 <= len(p); {
		n := int(binary.BigEndian.Uint32(p[i:]))
		out = append(out, string(p[i+4:i+8]))
		i += 12 + n
	}
	return out
}

// mustAvatar checks that out is a Size×Size PNG carrying pixels and
// nothing else (no text, EXIF or other metadata chunks) and decodes it.
func mustAvatar(t *testing.T, out []byte) image.Image {
	t.Helper()
	for _, c := range chunks(t, out) {
		switch c {
		case "IHDR", "PLTE", "tRNS", "IDAT", "IEND":
		default:
			t.Errorf("output has a %s chunk: metadata survived", c)
		}
	}
	m, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if b := m.Bounds(); b.Dx() != Size || b.Dy() != Size {
		t.Fatalf("output is %v, want %d×%d", b, Size, Size)
	}
	return m
}

func isRed(c color.Color) bool  { r, _, b, _ := c.RGBA(); return r > 0xa000 && b < 0x6000 }
func isBlue(c color.Color) bool { r, _, b, _ := c.RGBA(); return b > 0xa000 && r < 0x6000 }

func TestProcess_JPEGWithEXIF(t *testing.T) {
	var j bytes.Buffer
	if err := jpeg.Encode(&j, halves(300, 200), &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	in := withEXIF(j.Bytes(), 6) // the camera was held turned: show it a quarter turn clockwise
	if jpegOrientation(in) != 6 {
		t.Fatal("test input has no readable orientation")
	}
	out, err := Process(in)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("Exif")) || bytes.Contains(out, []byte("ACM")) {
		t.Fatal("EXIF bytes survived")
	}
	m := mustAvatar(t, out)
	// Cropped to the centred 200×200 (left half red, right blue), then
	// turned clockwise: red on top, blue at the bottom.
	if top, bottom := m.At(Size/2, 10), m.At(Size/2, Size-10); !isRed(top) || !isBlue(bottom) {
		t.Fatalf("orientation not applied: top %v, bottom %v", top, bottom)
	}
}

func TestProcess_CropsCentreSquare(t *testing.T) {
	// 400×100: red on [0,200), blue on [200,400); the centred square is
	// [150,250): its left half red, right half blue.
	m := mustAvatar(t, mustProcess(t, encodePNG(t, halves(400, 100))))
	if !isRed(m.At(10, Size/2)) || !isBlue(m.At(Size-10, Size/2)) {
		t.Fatalf("not the centred square: left %v right %v", m.At(10, Size/2), m.At(Size-10, Size/2))
	}
}

func mustProcess(t *testing.T, in []byte) []byte {
	t.Helper()
	out, err := Process(in)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestProcess_GIF(t *testing.T) {
	pal := color.Palette{color.RGBA{220, 20, 20, 255}, color.RGBA{20, 20, 220, 255}}
	frame := image.NewPaletted(image.Rect(0, 0, 64, 64), pal)
	for i := range frame.Pix {
		frame.Pix[i] = 1
	}
	var g bytes.Buffer
	// Two frames: only the first becomes the avatar.
	second := image.NewPaletted(image.Rect(0, 0, 64, 64), pal)
	if err := gif.EncodeAll(&g, &gif.GIF{Image: []*image.Paletted{frame, second}, Delay: []int{10, 10}}); err != nil {
		t.Fatal(err)
	}
	m := mustAvatar(t, mustProcess(t, g.Bytes()))
	if !isBlue(m.At(64, 64)) {
		t.Fatalf("GIF first frame not used: %v", m.At(64, 64))
	}
}

func TestProcess_WebP(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "blue-purple-pink.lossy.webp"))
	if err != nil {
		t.Fatal(err)
	}
	mustAvatar(t, mustProcess(t, in))
}

func TestProcess_Refuses(t *testing.T) {
	// 1×60000: a few hundred bytes that DecodeConfig shows to be absurd.
	var tall bytes.Buffer
	if err := png.Encode(&tall, image.NewGray(image.Rect(0, 0, 1, 60000))); err != nil {
		t.Fatal(err)
	}
	// A header claiming 8000×8000 (64 Mpx) is refused before decoding.
	bomb := encodePNG(t, image.NewGray(image.Rect(0, 0, 8, 8)))
	binary.BigEndian.PutUint32(bomb[16:], 8000)
	binary.BigEndian.PutUint32(bomb[20:], 8000)
	binary.BigEndian.PutUint32(bomb[29:], crc32.ChecksumIEEE(bomb[12:29])) // IHDR's CRC
	big := append(encodePNG(t, halves(8, 8)), make([]byte, MaxBytes)...)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="10" height="10"/></svg>`), ErrUnsupported},
		{"html", []byte("<html><script>alert(1)</script></html>"), ErrUnsupported},
		{"empty", nil, ErrUnsupported},
		{"1x60000", tall.Bytes(), ErrDimensions},
		{"64 megapixel header", bomb, ErrDimensions},
		{"over 2 MiB", big, ErrTooLarge},
		{"truncated png", encodePNG(t, halves(64, 64))[:60], ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Process(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Process = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNameOf(t *testing.T) {
	a := mustProcess(t, encodePNG(t, halves(50, 50)))
	name := NameOf(a)
	if !ValidName(name) || name == NameOf(mustProcess(t, encodePNG(t, halves(60, 30)))) {
		t.Fatalf("name %q", name)
	}
	for _, bad := range []string{"../x.png", strings.ToUpper(name), name + ".png", "x.png"} {
		if ValidName(bad) {
			t.Errorf("ValidName(%q)", bad)
		}
	}
}

// FuzzProcess: whatever the bytes, Process returns a 128 px PNG or one of
// its errors, and never panics.
func FuzzProcess(f *testing.F) {
	var j bytes.Buffer
	jpeg.Encode(&j, halves(20, 10), nil)
	f.Add(withEXIF(j.Bytes(), 6))
	f.Add(encodePNG(f, halves(9, 7)))
	var g bytes.Buffer
	gif.Encode(&g, image.NewPaletted(image.Rect(0, 0, 5, 5), color.Palette{color.Black, color.White}), nil)
	f.Add(g.Bytes())
	if w, err := os.ReadFile(filepath.Join("testdata", "blue-purple-pink.lossy.webp")); err == nil {
		f.Add(w)
	}
	f.Add([]byte("<svg/>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Process(in)
		if err != nil {
			for _, e := range []error{ErrTooLarge, ErrUnsupported, ErrDimensions, ErrCorrupt} {
				if errors.Is(err, e) {
					return
				}
			}
			t.Fatalf("unexpected error %v", err)
		}
		m, err := png.Decode(bytes.NewReader(out))
		if err != nil || m.Bounds().Dx() != Size || m.Bounds().Dy() != Size {
			t.Fatalf("output: %v %v", err, m)
		}
	})
}
