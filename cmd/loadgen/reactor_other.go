//go:build !linux

package main

import (
	"sync/atomic"
	"syscall"
	"time"
)

// startReading gives s a reader goroutine of its own (the reactor is
// Linux's).
func startReading(s source, _ *atomic.Uint64) error {
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := s.netConn().Read(buf)
			if err == nil {
				err = s.ingest(buf[:n], time.Now().UnixNano(), 0)
			}
			if err != nil {
				s.end()
				return
			}
		}
	}()
	return nil
}

func stopReading(*atomic.Uint64, syscall.RawConn) {}
