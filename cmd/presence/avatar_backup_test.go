package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"image/color"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// onlineAvatar returns the profile_image_url the API shows for the only
// other online user.
func onlineAvatar(tb testing.TB, base, tok string) string {
	tb.Helper()
	req, _ := http.NewRequest("GET", base+"/api/users/online/", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	var users []struct {
		ProfileImageURL string `json:"profile_image_url"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&users); err != nil || len(users) != 1 {
		tb.Fatalf("online: %v %v", users, err)
	}
	return users[0].ProfileImageURL
}

func getBytes(tb testing.TB, url string) (int, []byte) {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestBackupRestore_Avatars: `presence backup` copies the avatars the
// database uses beside it, and `presence restore` puts them back, so a
// restored server on a fresh data dir serves the same pictures.
func TestBackupRestore_Avatars(t *testing.T) {
	dataA := dataDir(t)
	base, stop := inProcess(t, fastArgs(dataA))
	tokA := mustToken(t, base, "alice")
	tokB := mustToken(t, base, "bob")
	mustUploadAvatar(t, base, "alice", portrait(color.RGBA{14, 165, 233, 255}, color.RGBA{30, 58, 138, 255}, color.RGBA{254, 215, 170, 255}))
	mustDial(t, base, tokA)
	url := onlineAvatar(t, base, tokB)
	code, want := getBytes(t, url)
	if code != 200 || !strings.HasPrefix(url, base+"/avatars/") {
		t.Fatalf("avatar %s: %d", url, code)
	}
	name := strings.TrimPrefix(url, base+"/avatars/")
	if _, err := os.Stat(filepath.Join(dataA, "avatars")); err == nil {
		t.Fatal("avatars kept under <data>/avatars, not in the database")
	}

	backup := filepath.Join(t.TempDir(), "presence-backup.db")
	out, err := runCmd(t, "", nil, "backup", "--data", dataA, backup)
	if err != nil || !strings.Contains(out, "backed up 1 avatars") {
		t.Fatalf("backup: %q %v", out, err)
	}
	if _, err := os.Stat(backup + ".avatars"); err == nil {
		t.Fatal("avatar files beside a backup whose database holds them")
	}
	stop()

	dataB := dataDir(t)
	if out, err := runCmd(t, "", nil, "restore", "--data", dataB, backup); err != nil {
		t.Fatalf("restore: %q %v", out, err)
	}
	baseB, _ := inProcess(t, fastArgs(dataB))
	mustDial(t, baseB, tokA)
	urlB := onlineAvatar(t, baseB, tokB)
	if code, got := getBytes(t, urlB); code != 200 || !bytes.Equal(got, want) || !strings.HasSuffix(urlB, "/avatars/"+name) {
		t.Fatalf("restored server: %s %d", urlB, code)
	}
}

// asBeforeMigration13 moves the avatar name out of the SQLite database at
// path into a file in dir, as versions before migration 0013 kept it,
// and returns its bytes.
func asBeforeMigration13(tb testing.TB, path, dir, name string) []byte {
	tb.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	var png []byte
	if err := db.QueryRow("SELECT png FROM avatars WHERE name = ?", name).Scan(&png); err != nil {
		tb.Fatal(err)
	}
	if _, err := db.Exec("DELETE FROM avatars"); err != nil {
		tb.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		tb.Fatal(err)
	}
	return png
}

// TestUpgrade_AvatarFilesMoveIntoDatabase: avatars an earlier version kept
// as files in <data>/avatars, or beside a backup, are served after the
// upgrade: the server moves the ones in use into the database at start
// and deletes the files (and the ones nobody uses).
func TestUpgrade_AvatarFilesMoveIntoDatabase(t *testing.T) {
	data := dataDir(t)
	base, stop := inProcess(t, fastArgs(data))
	tokA, tokB := mustToken(t, base, "alice"), mustToken(t, base, "bob")
	mustUploadAvatar(t, base, "alice", portrait(color.RGBA{14, 165, 233, 255}, color.RGBA{30, 58, 138, 255}, color.RGBA{254, 215, 170, 255}))
	mustDial(t, base, tokA)
	name := strings.TrimPrefix(onlineAvatar(t, base, tokB), base+"/avatars/")
	stop()

	t.Run("DataDir", func(t *testing.T) {
		dir := filepath.Join(data, "avatars")
		want := asBeforeMigration13(t, filepath.Join(data, "presence.db"), dir, name)
		os.WriteFile(filepath.Join(dir, strings.Repeat("0", 64)+".png"), []byte("nobody's"), 0o644)
		os.WriteFile(filepath.Join(dir, ".upload-1.tmp"), []byte("half"), 0o600)
		base, stop := inProcess(t, fastArgs(data))
		defer stop()
		if code, got := getBytes(t, base+"/avatars/"+name); code != 200 || !bytes.Equal(got, want) {
			t.Fatalf("after the upgrade: %d, %d bytes", code, len(got))
		}
		if _, err := os.Stat(dir); err == nil {
			t.Fatal("<data>/avatars left after its avatars moved into the database")
		}
	})

	t.Run("OldBackup", func(t *testing.T) {
		backup := filepath.Join(t.TempDir(), "old.db")
		if out, err := runCmd(t, "", nil, "backup", "--data", data, backup); err != nil {
			t.Fatalf("backup: %q %v", out, err)
		}
		want := asBeforeMigration13(t, backup, backup+".avatars", name)
		dataB := dataDir(t)
		if out, err := runCmd(t, "", nil, "restore", "--data", dataB, backup); err != nil || !strings.Contains(out, "restored 1 avatars") {
			t.Fatalf("restore: %q %v", out, err)
		}
		base, _ := inProcess(t, fastArgs(dataB))
		if code, got := getBytes(t, base+"/avatars/"+name); code != 200 || !bytes.Equal(got, want) {
			t.Fatalf("restored from an old backup: %d, %d bytes", code, len(got))
		}
	})
}
