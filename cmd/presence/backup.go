package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/presencehq/presence/avatar"
	"github.com/presencehq/presence/store"
)

// runBackup writes a consistent copy of the database to FILE, also while a
// server is running on the data directory.
func runBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	var data, dbURL string
	addDataFlag(fs, &data)
	addDatabaseURLFlag(fs, &dbURL)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if dbURL != "" {
		return fmt.Errorf("backup: %w", store.ErrBackupPostgres)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: presence backup [--data DIR] FILE")
	}
	dst := fs.Arg(0)
	src := filepath.Join(data, "presence.db")
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("backup: no database at %s: %w", src, err)
	}
	db, err := store.Open(src)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Backup(ctx, dst); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s\n", src, dst)
	return backupAvatars(ctx, dst, filepath.Join(data, "avatars"), stdout)
}

// backupAvatars reports the uploaded avatars the backup at dst holds,
// and copies beside it (into dst.avatars/) those it does not: a database
// not yet started by a version that keeps avatars in it (migration 0013)
// still has them as files in dir. An avatar file replaced between the
// database copy and this (and deleted as unused) is reported and left
// out.
func backupAvatars(ctx context.Context, dst, dir string, stdout io.Writer) error {
	db, err := store.Open(dst)
	if err != nil {
		return err
	}
	defer db.Close()
	used, err := db.UploadedAvatars(ctx)
	if err != nil {
		return fmt.Errorf("backup: avatars: %w", err)
	}
	out := dst + ".avatars"
	stored, copied, missing := 0, 0, 0
	for _, u := range used {
		name := strings.TrimPrefix(u, store.UploadedAvatarPrefix)
		if !avatar.ValidName(name) {
			continue
		}
		if _, err := db.AvatarPNG(ctx, name); err == nil {
			stored++
			continue
		}
		if copied == 0 {
			if err := os.MkdirAll(out, 0o700); err != nil {
				return fmt.Errorf("backup: avatars: %w", err)
			}
		}
		err := copyFile(filepath.Join(dir, name), filepath.Join(out, name))
		if errors.Is(err, fs.ErrNotExist) {
			missing++
			continue
		}
		if err != nil {
			return fmt.Errorf("backup: avatars: %w", err)
		}
		copied++
	}
	if stored+copied > 0 {
		fmt.Fprintf(stdout, "backed up %d avatars\n", stored+copied)
	}
	if copied > 0 {
		fmt.Fprintf(stdout, "%d of them are files kept by an earlier version, copied to %s\n", copied, out)
	}
	if missing > 0 {
		fmt.Fprintf(stdout, "%d avatars changed during the backup and are not in it (those users show their initial after a restore)\n", missing)
	}
	return nil
}

// restoreAvatars copies the avatar files beside a backup (FILE.avatars/,
// made by earlier versions, or for a database they had not yet moved
// into itself) into dir, where the server moves them into the database at
// its next start; files already there are the same bytes (named by hash)
// and are kept.
func restoreAvatars(src, dir string, stdout io.Writer) error {
	entries, err := os.ReadDir(src + ".avatars")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: avatars: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("restore: avatars: %w", err)
	}
	n := 0
	for _, e := range entries {
		if !avatar.ValidName(e.Name()) {
			continue
		}
		err := copyFile(filepath.Join(src+".avatars", e.Name()), filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("restore: avatars: %w", err)
		}
		os.Chmod(filepath.Join(dir, e.Name()), 0o644)
		n++
	}
	fmt.Fprintf(stdout, "restored %d avatars into %s\n", n, dir)
	return nil
}

// runRestore replaces the data directory's database with FILE, a backup.
// It refuses while a server holds the data directory, checks the backup
// (integrity, a schema this version can run) before touching anything, and
// keeps the database it replaces beside it.
func runRestore(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := newFlagSet("restore", stderr)
	var data, dbURL string
	addDataFlag(flags, &data)
	addDatabaseURLFlag(flags, &dbURL)
	if err := parseFlags(flags, args, getenv); err != nil {
		return err
	}
	if dbURL != "" {
		return fmt.Errorf("restore: %w", store.ErrBackupPostgres)
	}
	if flags.NArg() != 1 {
		return fmt.Errorf("usage: presence restore [--data DIR] FILE")
	}
	src := flags.Arg(0)
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return fmt.Errorf("restore: create data dir: %w", err)
	}
	unlock, err := lockDataDir(data)
	if err != nil {
		return fmt.Errorf("restore: %w; stop the server first", err)
	}
	defer unlock()

	// Work on a copy in the data directory, so the rename at the end is
	// atomic and the backup file itself is never modified.
	dst := filepath.Join(data, "presence.db")
	tmp := dst + ".restoring"
	removeDB(tmp)
	if err := copyFile(src, tmp); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := checkRestored(ctx, tmp); err != nil {
		removeDB(tmp)
		return fmt.Errorf("restore: %s: %w", src, err)
	}
	if _, err := os.Stat(dst); err == nil {
		old := fmt.Sprintf("%s.before-restore-%s", dst, time.Now().UTC().Format("20060102T150405Z"))
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(dst+suffix, old+suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("restore: keep the current database: %w", err)
			}
		}
		fmt.Fprintf(stdout, "kept the previous database as %s\n", old)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored %s into %s\n", src, dst)
	return restoreAvatars(src, filepath.Join(data, "avatars"), stdout)
}

// checkRestored opens the copy, checks its integrity and brings its schema
// up to this version (refusing a newer one), then closes it cleanly so no
// WAL file is left beside it.
func checkRestored(ctx context.Context, path string) error {
	db, err := store.Open(path)
	if err != nil {
		return err
	}
	if err := db.IntegrityCheck(ctx); err != nil {
		db.Close()
		return err
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return err
	}
	if err := db.Close(); err != nil {
		return err
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		return fmt.Errorf("database did not close cleanly (a -wal file remains)")
	}
	return nil
}

func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(path + suffix)
	}
}

// copyFile copies src to dst and syncs it to disk.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
