// Package presence is the domain core of the presence server: it turns live
// connections into per-user online/offline state.
//
// A user is online while at least one of their connections is alive. When the
// last connection ends the user stays online for a grace period, so a page
// reload or a short network blip does not make them flicker for everyone else.
// A connection that stops proving it is alive is dropped once its heartbeat
// deadline passes. Every real user-level transition is published on a Bus and
// handed to a Recorder, which persists it in batches.
//
// The package uses only the standard library and knows nothing of HTTP or SQL.
// Time comes from an injected Clock so tests run without sleeping.
package presence
