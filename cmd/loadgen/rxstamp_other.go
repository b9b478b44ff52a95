//go:build !linux

package main

import "net"

func withRxStamps(c net.Conn) net.Conn { return c }

func rxStamp(net.Conn) int64 { return 0 }
