package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presencehq/presence/avatar"
	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/ratelimit"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/store"
)

// avatarDecoders bounds the uploads decoded at once: each may hold up to
// avatar.MaxPixels of decoded pixels (~96 MiB).
const avatarDecoders = 2

// Upload attempts one user may make: a burst of avatarUploadBurst, then
// avatarUploadsPerHour. Decoding costs CPU; nobody needs more.
const (
	avatarUploadBurst    = 10
	avatarUploadsPerHour = 60
)

// avatars keeps uploaded avatars: files under the data dir named by their
// hash, referenced by users' profile_image_url ("/avatars/<hash>.png").
// One mutex orders "write the file, point the user at it" against "point
// the user elsewhere, delete the file if nobody uses it", so a file is
// never deleted under a user who has just chosen the same picture.
type avatars struct {
	files *avatar.Files // nil: uploads are off
	store Store
	feed  *realtime.Feed
	log   *slog.Logger
	slots chan struct{}
	// uploads limits upload attempts per user id.
	uploads *ratelimit.Limiter
	mu      sync.Mutex
}

// newAvatars opens the avatar directory (dir "" turns uploads off) and
// deletes the files no user references: left by a crash between writing
// a file and saving the user, or by a restored backup.
func newAvatars(dir string, s Store, feed *realtime.Feed, clock presence.Clock, log *slog.Logger) (*avatars, error) {
	a := &avatars{store: s, feed: feed, log: log, slots: make(chan struct{}, avatarDecoders),
		uploads: ratelimit.New(ratelimit.PerHour(avatarUploadsPerHour), avatarUploadBurst, clock)}
	if dir == "" {
		return a, nil
	}
	files, err := avatar.NewFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("handlers: %w", err)
	}
	a.files = files
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	used, err := s.UploadedAvatars(ctx)
	if err != nil {
		log.Warn("avatars: cannot list the avatars in use; not sweeping", "err", err)
		return a, nil
	}
	keep := make(map[string]bool, len(used))
	for _, u := range used {
		keep[strings.TrimPrefix(u, store.UploadedAvatarPrefix)] = true
	}
	if n, err := files.Sweep(keep); err != nil {
		log.Warn("avatars: sweep", "err", err)
	} else if n > 0 {
		log.Info("avatars: deleted files no user references", "count", n)
	}
	return a, nil
}

// enabled reports whether uploads are on.
func (a *avatars) enabled() bool { return a.files != nil }

// process decodes and re-encodes an upload, at most avatarDecoders at once.
func (a *avatars) process(ctx context.Context, data []byte) ([]byte, error) {
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-a.slots }()
	return avatar.Process(data)
}

// set makes png (a Process result, or nil to remove) the avatar of user
// id, deletes the file it replaces when nobody else uses it, and tells
// the widget feed. It returns store.ErrNotFound for a host user.
func (a *avatars) set(ctx context.Context, id int64, png []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	url := ""
	if png != nil {
		name, err := a.files.Save(png)
		if err != nil {
			return err
		}
		url = store.UploadedAvatarPrefix + name
	}
	old, err := a.store.SetUploadedAvatar(ctx, id, url)
	if err != nil {
		return err
	}
	a.feed.Invalidate() // widgets showing this user get the new tile
	if old == url || !strings.HasPrefix(old, store.UploadedAvatarPrefix) {
		return nil
	}
	inUse, err := a.store.AvatarInUse(ctx, old)
	if err != nil {
		a.log.Warn("avatars: cannot tell whether an old avatar is in use; keeping it", "file", old, "err", err)
		return nil
	}
	if !inUse {
		if err := a.files.Remove(strings.TrimPrefix(old, store.UploadedAvatarPrefix)); err != nil {
			a.log.Warn("avatars: delete unused file", "err", err)
		}
	}
	return nil
}

// absoluteAvatar turns an uploaded avatar's path into a URL on origin
// (the server's public origin); a host's absolute URL is left as it is.
func absoluteAvatar(origin, url string) string {
	if strings.HasPrefix(url, store.UploadedAvatarPrefix) {
		return origin + url
	}
	return url
}

// handleAvatarFile serves GET /avatars/<sha256>.png. The name is the
// content's hash, so the file can be cached for a year without
// revalidation (immutable); it is always a PNG this server encoded.
func handleAvatarFile(a *avatars) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("name")
		if !a.enabled() || !avatar.ValidName(name) {
			return httpError(http.StatusNotFound, "no such avatar")
		}
		f, err := os.Open(a.files.Path(name))
		if errors.Is(err, os.ErrNotExist) {
			return httpError(http.StatusNotFound, "no such avatar")
		}
		if err != nil {
			return fmt.Errorf("avatars: open: %w", err)
		}
		defer f.Close()
		h := c.Response().Header()
		h.Set(echo.HeaderContentType, "image/png")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("ETag", `"`+strings.TrimSuffix(name, ".png")+`"`)
		// Widgets embedded on other sites show these images.
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		http.ServeContent(c.Response(), c.Request(), name, time.Time{}, f)
		return nil
	}
}

// readAvatarUpload reads the "avatar" file of a multipart form, refusing
// (413) a body or file over the limit before reading it all, and
// (400) a form without the file.
func readAvatarUpload(c echo.Context) ([]byte, error) {
	r := c.Request()
	const overhead = 64 << 10 // multipart headers and boundaries
	if r.ContentLength > avatar.MaxBytes+overhead {
		return nil, httpError(http.StatusRequestEntityTooLarge, avatar.ErrTooLarge.Error())
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, avatar.MaxBytes+overhead)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, httpError(http.StatusBadRequest, "send the image as multipart/form-data in the field \"avatar\"")
	}
	for {
		part, err := mr.NextPart()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, httpError(http.StatusRequestEntityTooLarge, avatar.ErrTooLarge.Error())
		}
		if err != nil {
			return nil, httpError(http.StatusBadRequest, "the form has no file in the field \"avatar\"")
		}
		if part.FormName() != "avatar" {
			part.Close()
			continue
		}
		var buf bytes.Buffer
		_, err = buf.ReadFrom(io.LimitReader(part, avatar.MaxBytes+1))
		part.Close()
		if errors.As(err, &tooBig) || buf.Len() > avatar.MaxBytes {
			return nil, httpError(http.StatusRequestEntityTooLarge, avatar.ErrTooLarge.Error())
		}
		if err != nil {
			return nil, httpError(http.StatusBadRequest, "the upload was cut short")
		}
		if buf.Len() == 0 {
			return nil, httpError(http.StatusBadRequest, "choose an image to upload")
		}
		return buf.Bytes(), nil
	}
}
