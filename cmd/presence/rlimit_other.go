//go:build !unix

package main

// defaultMaxConns is no cap where the file limit cannot be read.
func defaultMaxConns() int { return 0 }
