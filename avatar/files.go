package avatar

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Files keeps avatars in a directory, each named by the SHA-256 of its
// bytes ("<hex>.png"): a name never changes its content, so it can be
// cached forever, and users who upload the same picture share one file.
type Files struct {
	dir string
}

// NewFiles returns the avatar store in dir, creating dir (0700) if needed.
func NewFiles(dir string) (*Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("avatar: create %s: %w", dir, err)
	}
	return &Files{dir: dir}, nil
}

// Dir returns the directory the avatars are in.
func (f *Files) Dir() string { return f.dir }

var nameRE = regexp.MustCompile(`^[0-9a-f]{64}\.png$`)

// ValidName reports whether name is one Files could have made.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// NameOf returns the file name of an avatar's bytes.
func NameOf(png []byte) string {
	sum := sha256.Sum256(png)
	return hex.EncodeToString(sum[:]) + ".png"
}

// Save stores png, a Process result, and returns its name. The file is
// written to a temporary name, synced and renamed, so a reader (or a
// crash) never sees half of it. Saving bytes that are already stored
// does nothing.
func (f *Files) Save(png []byte) (string, error) {
	name := NameOf(png)
	path := filepath.Join(f.dir, name)
	if _, err := os.Stat(path); err == nil {
		return name, nil
	}
	tmp, err := os.CreateTemp(f.dir, ".upload-*.tmp")
	if err != nil {
		return "", fmt.Errorf("avatar: save: %w", err)
	}
	_, err = tmp.Write(png)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("avatar: save: %w", err)
	}
	if d, err := os.Open(f.dir); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return name, nil
}

// Path returns the file of a valid name.
func (f *Files) Path(name string) string { return filepath.Join(f.dir, name) }

// Remove deletes the avatar name; a missing file is not an error.
func (f *Files) Remove(name string) error {
	if !ValidName(name) {
		return fmt.Errorf("avatar: remove: invalid name %q", name)
	}
	if err := os.Remove(filepath.Join(f.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("avatar: remove: %w", err)
	}
	return nil
}

// Sweep deletes every avatar not in keep and every temporary file left by
// an interrupted Save, and returns how many files it deleted. Files that
// are neither are left alone.
func (f *Files) Sweep(keep map[string]bool) (int, error) {
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return 0, fmt.Errorf("avatar: sweep: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		name := e.Name()
		stale := (ValidName(name) && !keep[name]) || (strings.HasPrefix(name, ".upload-") && strings.HasSuffix(name, ".tmp"))
		if !stale || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(f.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("avatar: sweep: %w", err)
	}
	return n, nil
}
