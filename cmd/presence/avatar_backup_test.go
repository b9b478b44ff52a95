package main

import (
	"bytes"
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
	if _, err := os.Stat(filepath.Join(dataA, "avatars", name)); err != nil {
		t.Fatalf("avatar not under <data>/avatars: %v", err)
	}

	backup := filepath.Join(t.TempDir(), "presence-backup.db")
	out, err := runCmd(t, "", nil, "backup", "--data", dataA, backup)
	if err != nil || !strings.Contains(out, "backed up 1 avatars") {
		t.Fatalf("backup: %q %v", out, err)
	}
	if got, _ := os.ReadFile(filepath.Join(backup+".avatars", name)); !bytes.Equal(got, want) {
		t.Fatal("the backup's avatar differs from the served one")
	}
	stop()

	dataB := dataDir(t)
	if out, err := runCmd(t, "", nil, "restore", "--data", dataB, backup); err != nil || !strings.Contains(out, "restored 1 avatars") {
		t.Fatalf("restore: %q %v", out, err)
	}
	baseB, _ := inProcess(t, fastArgs(dataB))
	mustDial(t, baseB, tokA)
	urlB := onlineAvatar(t, baseB, tokB)
	if code, got := getBytes(t, urlB); code != 200 || !bytes.Equal(got, want) || !strings.HasSuffix(urlB, "/avatars/"+name) {
		t.Fatalf("restored server: %s %d", urlB, code)
	}
}
