package views

import "github.com/a-h/templ"

// tileAttrs gives a widget tile its tooltip (data-tip) when the user is
// away, busy or has a custom status. A plain online user's tile carries
// none (the CSS tooltip then reads data-username), so the list pushed to
// every viewer costs no more bytes than before modes existed.
func tileAttrs(u WidgetUser) templ.Attributes {
	if plain(u) {
		return templ.Attributes{}
	}
	return templ.Attributes{"data-tip": WidgetTip(u)}
}

// dotAttrs colours a tile's dot by mode (data-mode), for away and dnd.
func dotAttrs(u WidgetUser) templ.Attributes {
	if u.Mode == "" || u.Mode == "online" {
		return templ.Attributes{}
	}
	return templ.Attributes{"data-mode": u.Mode}
}

func plain(u WidgetUser) bool {
	return (u.Mode == "" || u.Mode == "online") && u.StatusText == "" && u.StatusEmoji == ""
}

// StatusMenu is what the header's status menu shows of the signed-in user:
// their chosen mode, custom status and visibility.
type StatusMenu struct {
	Mode        string // online, away, dnd, invisible
	StatusText  string
	StatusEmoji string
	Visibility  string // everyone, friends, nobody
	// Expires describes when the status clears ("in 25 minutes"), empty
	// for never.
	Expires string
}

// ModeLabel is a mode in words.
func ModeLabel(mode string) string {
	switch mode {
	case "away":
		return "Away"
	case "dnd":
		return "Do not disturb"
	case "invisible":
		return "Invisible"
	case "offline":
		return "Offline"
	}
	return "Online"
}

// modeDotClass colours a presence dot by mode.
func modeDotClass(mode string) string {
	switch mode {
	case "away":
		return "bg-amber-400"
	case "dnd":
		return "bg-red-500"
	case "invisible", "offline":
		return "bg-slate-400"
	}
	return "bg-green-500"
}

// StatusLine is a custom status as one line: the emoji, then the text.
func StatusLine(emoji, text string) string {
	switch {
	case emoji == "":
		return text
	case text == "":
		return emoji
	}
	return emoji + " " + text
}

// WidgetTip is a widget tile's tooltip: the name, the mode and the custom
// status ("alice · away · 📅 in a meeting").
func WidgetTip(u WidgetUser) string {
	tip := u.Username + " · "
	switch u.Mode {
	case "", "online":
		tip += "online now"
	default:
		tip += lower(ModeLabel(u.Mode))
	}
	if s := StatusLine(u.StatusEmoji, u.StatusText); s != "" {
		tip += " · " + s
	}
	return tip
}

func lower(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'A' && b[0] <= 'Z' {
		b[0] += 'a' - 'A'
	}
	return string(b)
}
