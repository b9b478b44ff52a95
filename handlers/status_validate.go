package handlers

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/rivo/uniseg"

	"github.com/presencehq/presence/presence"
)

// maxStatusExpiry is the furthest in the future a custom status may be set
// to clear.
const maxStatusExpiry = 366 * 24 * time.Hour

// statusChange is a validated change of a user's presence settings: nil
// fields are left as they are.
type statusChange struct {
	mode        *presence.Mode
	text, emoji *string
	visibility  *presence.Visibility
	// expiresSet says expires was given (zero: never).
	expiresSet bool
	expires    time.Time
}

// apply returns s changed by ch. A new text or emoji without an expiry
// never expires.
func (ch statusChange) apply(s presence.Settings) presence.Settings {
	if ch.mode != nil {
		s.Mode = *ch.mode
	}
	if ch.visibility != nil {
		s.Visibility = *ch.visibility
	}
	if ch.text != nil || ch.emoji != nil {
		s.Expires = time.Time{}
	}
	if ch.text != nil {
		s.Text = *ch.text
	}
	if ch.emoji != nil {
		s.Emoji = *ch.emoji
	}
	if ch.expiresSet {
		s.Expires = ch.expires
	}
	return s
}

func parseMode(v string) (presence.Mode, error) {
	m := presence.Mode(v)
	if !m.Valid() {
		return "", fmt.Errorf("mode must be one of online, away, dnd, invisible (got %q)", v)
	}
	return m, nil
}

func parseVisibility(v string) (presence.Visibility, error) {
	vis := presence.Visibility(v)
	if !vis.Valid() {
		return "", fmt.Errorf("visibility must be one of everyone, friends, nobody (got %q)", v)
	}
	return vis, nil
}

// cleanStatusText trims a status text and checks it: at most
// presence.MaxStatusText characters, no control characters.
func cleanStatusText(v string) (string, error) {
	v = strings.TrimSpace(v)
	if n := len([]rune(v)); n > presence.MaxStatusText {
		return "", fmt.Errorf("text must be at most %d characters (got %d)", presence.MaxStatusText, n)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return "", fmt.Errorf("text must be one line without control characters")
		}
	}
	return v, nil
}

// cleanEmoji trims an emoji and checks that it is exactly one emoji: one
// grapheme cluster (so a family, a flag, a skin tone or a keycap counts
// as one) made of emoji characters. Empty clears it.
func cleanEmoji(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	const bad = "emoji must be exactly one emoji"
	if len(v) > 64 {
		return "", fmt.Errorf("%s (got %d bytes)", bad, len(v))
	}
	if n := uniseg.GraphemeClusterCount(v); n != 1 {
		return "", fmt.Errorf("%s (got %d characters)", bad, n)
	}
	if !isEmojiCluster([]rune(v)) {
		return "", fmt.Errorf("%s (got %q)", bad, v)
	}
	return v, nil
}

// isEmojiCluster reports whether one grapheme cluster is an emoji: a
// pictographic character with its modifiers and joined pictographs, a
// flag (two regional indicators) or a keycap (0-9, # or * with U+20E3).
func isEmojiCluster(rs []rune) bool {
	switch {
	case len(rs) == 2 && isRegional(rs[0]) && isRegional(rs[1]):
		return true
	case strings.ContainsRune("0123456789#*", rs[0]):
		return len(rs) >= 2 && rs[len(rs)-1] == 0x20E3 && (len(rs) == 2 || len(rs) == 3 && rs[1] == 0xFE0F)
	case !isPictographic(rs[0]):
		return false
	}
	for _, r := range rs[1:] {
		switch {
		case r == 0x200D, r == 0xFE0F, r == 0xFE0E, r == 0x20E3: // joiner, presentation, keycap
		case r >= 0x1F3FB && r <= 0x1F3FF: // skin tones
		case r >= 0xE0020 && r <= 0xE007F: // tag sequences (subdivision flags)
		case isPictographic(r):
		default:
			return false
		}
	}
	return true
}

func isRegional(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }

// pictographic are the ranges of Unicode's Extended_Pictographic property
// (emoji-data.txt, Unicode 15.1), merged where unassigned code points lie
// between them.
var pictographic = [][2]rune{
	{0x00A9, 0x00A9}, {0x00AE, 0x00AE}, {0x203C, 0x203C}, {0x2049, 0x2049}, {0x2122, 0x2122},
	{0x2139, 0x2139}, {0x2194, 0x2199}, {0x21A9, 0x21AA}, {0x231A, 0x231B}, {0x2328, 0x2328},
	{0x2388, 0x2388}, {0x23CF, 0x23CF}, {0x23E9, 0x23F3}, {0x23F8, 0x23FA}, {0x24C2, 0x24C2},
	{0x25AA, 0x25AB}, {0x25B6, 0x25B6}, {0x25C0, 0x25C0}, {0x25FB, 0x25FE}, {0x2600, 0x2605},
	{0x2607, 0x2612}, {0x2614, 0x2685}, {0x2690, 0x2705}, {0x2708, 0x2712}, {0x2714, 0x2714},
	{0x2716, 0x2716}, {0x271D, 0x271D}, {0x2721, 0x2721}, {0x2728, 0x2728}, {0x2733, 0x2734},
	{0x2744, 0x2744}, {0x2747, 0x2747}, {0x274C, 0x274C}, {0x274E, 0x274E}, {0x2753, 0x2755},
	{0x2757, 0x2757}, {0x2763, 0x2767}, {0x2795, 0x2797}, {0x27A1, 0x27A1}, {0x27B0, 0x27B0},
	{0x27BF, 0x27BF}, {0x2934, 0x2935}, {0x2B05, 0x2B07}, {0x2B1B, 0x2B1C}, {0x2B50, 0x2B50},
	{0x2B55, 0x2B55}, {0x3030, 0x3030}, {0x303D, 0x303D}, {0x3297, 0x3297}, {0x3299, 0x3299},
	{0x1F000, 0x1F0FF}, {0x1F10D, 0x1F10F}, {0x1F12F, 0x1F12F}, {0x1F16C, 0x1F171}, {0x1F17E, 0x1F17F},
	{0x1F18E, 0x1F18E}, {0x1F191, 0x1F19A}, {0x1F1AD, 0x1F1E5}, {0x1F201, 0x1F20F}, {0x1F21A, 0x1F21A},
	{0x1F22F, 0x1F22F}, {0x1F232, 0x1F23A}, {0x1F23C, 0x1F23F}, {0x1F249, 0x1F3FA}, {0x1F400, 0x1F53D},
	{0x1F546, 0x1F64F}, {0x1F680, 0x1F6FF}, {0x1F774, 0x1F77F}, {0x1F7D5, 0x1F7FF}, {0x1F80C, 0x1F80F},
	{0x1F848, 0x1F84F}, {0x1F85A, 0x1F85F}, {0x1F888, 0x1F88F}, {0x1F8AE, 0x1F8FF}, {0x1F90C, 0x1F93A},
	{0x1F93C, 0x1F945}, {0x1F947, 0x1FAFF}, {0x1FC00, 0x1FFFD},
}

func isPictographic(r rune) bool {
	for _, rg := range pictographic {
		if r < rg[0] {
			return false
		}
		if r <= rg[1] {
			return true
		}
	}
	return false
}
