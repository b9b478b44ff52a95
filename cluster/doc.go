// Package cluster shares presence between several presence nodes through
// Redis (docs/SCALING.md).
//
// Each node's presence.Engine keeps only its own connections, grace timers
// and heartbeat deadlines. Redis holds edges, never heartbeats: per user,
// which nodes hold them and how they look there (a hash), per node, its
// users (a set). When an engine's view of a user changes (first connection
// here, last one gone after the grace period, a mode or status change), a
// Lua script updates both atomically, derives the user's aggregate across
// nodes and, only when that aggregate changes, bumps the user's sequence
// number and publishes it. Pings never reach Redis.
//
// Every node subscribes to those publications and keeps a replica of who
// is online everywhere (the engine's presence.Directory), turning each
// aggregate into the same events a single engine would publish, on the bus
// its widgets and sockets already read. An aggregate carries the whole
// state, so a missed one is healed by the next; a node whose subscription
// was cut reads everything again.
//
// Nodes refresh their entry in a sorted set every two seconds. A node
// silent for ten seconds is dead: one survivor (a SET NX lock) removes its
// edges, and its users go offline unless another node holds them. A node
// that loses Redis keeps serving its own connections, says so on /healthz,
// and re-asserts its edges when Redis is back.
package cluster
