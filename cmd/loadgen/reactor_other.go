//go:build !linux

package main

import "time"

// startReading gives c a reader goroutine of its own (the reactor is
// Linux's).
func startReading(c *wsConn) error {
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.nc.Read(buf)
			if err == nil {
				err = c.feed(buf[:n], time.Now().UnixNano())
			}
			if err != nil {
				c.end()
				return
			}
		}
	}()
	return nil
}

func stopReading(*wsConn) {}
