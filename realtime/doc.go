// Package realtime is the server's real-time machinery, apart from the
// HTTP routes that lead to it:
//
//   - Hub holds every presence WebSocket: its own frame parser and writer,
//     on Linux no goroutine for a socket that is not sending (one epoll
//     set reports readable sockets), writes on demand, status events
//     encoded once for all sockets.
//   - Broker serves the widget's Server-Sent Events streams.
//   - Feed turns presence changes into widget fragments, rendered once per
//     change whatever the number of viewers, and publishes them to a Broker.
//   - ConnCap bounds the long-lived connections of both kinds.
//   - Revocations ends the connections of a session or token once it is
//     revoked, here or by another process writing the database.
//
// It depends on presence (the domain core), views (the fragments) and
// store's user and revocation-cursor types; it knows nothing of routes or
// authentication, which package handlers does before it hands a connection
// over (with the context that ends it when its credentials are revoked).
package realtime
