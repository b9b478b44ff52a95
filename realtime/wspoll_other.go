//go:build !linux

package realtime

import "errors"

// poller is not there outside Linux: every socket has a reader goroutine
// of its own (wsClient.readLoop).
type poller struct{}

func sharedPoller() (*poller, error) { return nil, errors.New("realtime: no poller on this system") }

func (*poller) add(*wsClient) error   { return errors.New("realtime: no poller on this system") }
func (*poller) rearm(*wsClient) error { return errors.New("realtime: no poller on this system") }
func (*poller) remove(*wsClient)      {}
