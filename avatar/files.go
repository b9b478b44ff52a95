package avatar

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
)

// An avatar is named by the SHA-256 of its bytes ("<hex>.png"): a name
// never changes its content, so it can be cached forever, and users who
// upload the same picture share one. The database keeps them by name
// (store.SetAvatar); before, they were files of that name.

var nameRE = regexp.MustCompile(`^[0-9a-f]{64}\.png$`)

// ValidName reports whether name is one NameOf could have made.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// NameOf returns the name of an avatar's bytes.
func NameOf(png []byte) string {
	sum := sha256.Sum256(png)
	return hex.EncodeToString(sum[:]) + ".png"
}
