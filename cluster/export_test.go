package cluster

// Crash stops the node as kill -9 would: its goroutines end and it leaves
// its edges and its heartbeat entry behind. Close is a no-op afterwards.
func (n *Node) Crash() {
	n.once.Do(n.stop)
}
