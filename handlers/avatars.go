package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// avatars keeps uploaded avatars in the database, named by their hash and
// referenced by users' profile_image_url ("/avatars/<hash>.png"), so that
// every node sharing the database serves them. Storing one and pointing
// the user at it, or pointing the user elsewhere and deleting the one
// nobody uses any more, is one transaction (store.SetAvatar): an avatar
// is never deleted under a user who has just chosen the same picture,
// whichever node each request reached.
type avatars struct {
	on    bool // uploads are on
	store Store
	feed  *realtime.Feed
	log   *slog.Logger
	slots chan struct{}
	// uploads limits upload attempts per user id, across nodes.
	uploads *ratelimit.Shared
}

// newAvatars turns uploads on unless dir is "", moves the avatars an
// earlier version kept as files in dir into the database, and deletes
// the stored avatars no user references (left by a restored backup).
func newAvatars(dir string, s Store, feed *realtime.Feed, clock presence.Clock, log *slog.Logger) (*avatars, error) {
	a := &avatars{store: s, feed: feed, log: log, slots: make(chan struct{}, avatarDecoders),
		uploads: ratelimit.NewShared("avatar-uploads", ratelimit.PerHour(avatarUploadsPerHour), avatarUploadBurst, clock, s, log)}
	if dir == "" {
		return a, nil
	}
	a.on = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := importAvatarFiles(ctx, dir, s, log); err != nil {
		log.Warn("avatars: cannot move the avatar files into the database; they stay where they are", "dir", dir, "err", err)
	}
	if n, err := s.SweepAvatars(ctx); err != nil {
		log.Warn("avatars: sweep", "err", err)
	} else if n > 0 {
		log.Info("avatars: deleted stored avatars no user references", "count", n)
	}
	return a, nil
}

// importAvatarFiles moves into the database the avatars kept as files in
// dir (before migration 0013) that users reference, then deletes the
// files: each once it is stored (its bytes checked against its name, the
// hash of its content), the ones nobody references, and temporary files
// of an interrupted upload, as the old sweep did. A file that cannot be
// read or does not match its name is left alone. The directory goes too
// once empty.
func importAvatarFiles(ctx context.Context, dir string, s Store, log *slog.Logger) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		os.Remove(dir)
		return nil
	}
	used, err := s.UploadedAvatars(ctx)
	if err != nil {
		return err
	}
	keep := make(map[string]bool, len(used))
	for _, u := range used {
		keep[strings.TrimPrefix(u, store.UploadedAvatarPrefix)] = true
	}
	imported, deleted := 0, 0
	var errs []error
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if !e.Type().IsRegular() {
			continue
		}
		temp := strings.HasPrefix(name, ".upload-") && strings.HasSuffix(name, ".tmp")
		switch {
		case temp || avatar.ValidName(name) && !keep[name]:
		case avatar.ValidName(name):
			png, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if avatar.NameOf(png) != name {
				log.Warn("avatars: a file's content does not match its name; left in place", "file", path)
				continue
			}
			if _, err := s.ImportAvatar(ctx, name, png); err != nil {
				errs = append(errs, err)
				continue
			}
			imported++
		default:
			continue
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		deleted++
	}
	if imported > 0 {
		log.Info("avatars: moved the uploaded avatars from files into the database", "count", imported, "dir", dir)
	}
	if deleted > imported {
		log.Info("avatars: deleted avatar files no user references", "count", deleted-imported)
	}
	os.Remove(dir) // only if empty
	return errors.Join(errs...)
}

// enabled reports whether uploads are on.
func (a *avatars) enabled() bool { return a.on }

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
// id, the one it replaces deleted when nobody else uses it, and tells the
// widget feed. It returns store.ErrNotFound for a host user.
func (a *avatars) set(ctx context.Context, id int64, png []byte) error {
	name := ""
	if png != nil {
		name = avatar.NameOf(png)
	}
	if _, err := a.store.SetAvatar(ctx, id, name, png); err != nil {
		return err
	}
	a.feed.Invalidate() // widgets showing this user get the new tile
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

// handleAvatarFile serves GET /avatars/<sha256>.png from the database.
// The name is the content's hash, so the image can be cached for a year
// without revalidation (immutable); it is always a PNG this server
// encoded.
func handleAvatarFile(a *avatars) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("name")
		if !a.enabled() || !avatar.ValidName(name) {
			return httpError(http.StatusNotFound, "no such avatar")
		}
		png, err := a.store.AvatarPNG(c.Request().Context(), name)
		if errors.Is(err, store.ErrNotFound) {
			return httpError(http.StatusNotFound, "no such avatar")
		}
		if err != nil {
			return fmt.Errorf("avatars: read: %w", err)
		}
		h := c.Response().Header()
		h.Set(echo.HeaderContentType, "image/png")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
		h.Set("ETag", `"`+strings.TrimSuffix(name, ".png")+`"`)
		// Widgets embedded on other sites show these images.
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		http.ServeContent(c.Response(), c.Request(), name, time.Time{}, bytes.NewReader(png))
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
