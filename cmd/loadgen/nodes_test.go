package main

import (
	"fmt"
	"reflect"
	"testing"
)

// TestSpreadTabs: 21,000 tabs over 3 nodes at 4,000 per worker are 2
// workers of 3,500 per node, each tab on node j mod 3.
func TestSpreadTabs(t *testing.T) {
	tokens := make([]string, 21000)
	for i := range tokens {
		tokens[i] = fmt.Sprint(i)
	}
	parts, nodeOf := spreadTabs(tokens, 3, 4000)
	if want := []int{0, 0, 1, 1, 2, 2}; !reflect.DeepEqual(nodeOf, want) {
		t.Fatalf("workers' nodes = %v, want %v", nodeOf, want)
	}
	seen := map[string]bool{}
	for i, p := range parts {
		if len(p) != 3500 {
			t.Errorf("worker %d has %d tabs, want 3500", i, len(p))
		}
		for _, tok := range p {
			var j int
			fmt.Sscan(tok, &j)
			if j%3 != nodeOf[i] || seen[tok] {
				t.Fatalf("tab %s on worker %d (node %d), seen before: %v", tok, i, nodeOf[i], seen[tok])
			}
			seen[tok] = true
		}
	}
	if len(seen) != len(tokens) {
		t.Fatalf("%d tabs placed, want %d", len(seen), len(tokens))
	}
	// Fewer tabs than nodes: no empty worker.
	if parts, _ := spreadTabs(tokens[:2], 3, 4000); len(parts) != 2 {
		t.Fatalf("2 tabs on 3 nodes: %d workers, want 2", len(parts))
	}
}

// TestCallsSince: per-command differences between two INFO readings.
func TestCallsSince(t *testing.T) {
	got := callsSince(map[string]int64{"evalsha": 10, "publish": 3, "zadd": 5},
		map[string]int64{"evalsha": 16, "publish": 3, "zadd": 11, "get": 1})
	want := map[string]int64{"evalsha": 6, "zadd": 6, "get": 1}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("callsSince = %v, want %v", got, want)
	}
}
