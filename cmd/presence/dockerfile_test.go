package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfile keeps the Dockerfile honest where no Docker engine runs:
// its build command, run as written, makes a static binary that reports
// the version, and its HEALTHCHECK and ENTRYPOINT name commands that exist.
func TestDockerfile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary")
	}
	raw, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := strings.ReplaceAll(string(raw), "\\\n", " ")
	build := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 go build [^&\n]*?) -o /out/presence (\./cmd/presence)`).FindStringSubmatch(df)
	if build == nil {
		t.Fatal("no `RUN CGO_ENABLED=0 go build … -o /out/presence ./cmd/presence` in the Dockerfile")
	}
	out := filepath.Join(t.TempDir(), "presence")
	cmd := exec.Command("sh", "-c", build[1]+" -o "+out+" "+build[2])
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "VERSION=v9.9.9-test")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build[1], err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("the binary is dynamically linked (it has an interpreter): distroless/static cannot run it")
		}
	}
	if v, err := exec.Command(out, "version").Output(); err != nil || strings.TrimSpace(string(v)) != "presence v9.9.9-test" {
		t.Fatalf("version: %q %v", v, err)
	}
	for _, want := range []string{
		`HEALTHCHECK .* CMD \["/presence", "healthcheck"\]`,
		`ENTRYPOINT \["/presence"\]`,
		`CMD \["serve"\]`,
		`USER 65532:65532`,
		`VOLUME \["/data"\]`,
		`PRESENCE_DATA=/data`,
	} {
		if !regexp.MustCompile(want).MatchString(df) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
}
