// Package static holds the browser assets served under /static/: the built
// CSS, vendored htmx and its SSE extension, and the keep-alive script. They
// are embedded so `go build` yields one self-contained binary.
package static

import "embed"

// FS holds every asset.
//
//go:embed *.css *.js
var FS embed.FS
