//go:build !linux

package realtime

import "errors"

// poller is not there outside Linux: every socket has a reader goroutine
// of its own (wsClient.readLoop).
type poller struct{}

var errNoPoller = errors.New("realtime: no poller on this system")

func sharedPoller() (*poller, error) { return nil, errNoPoller }

func (*poller) add(*wsClient) error   { return errNoPoller }
func (*poller) rearm(*wsClient) error { return errNoPoller }
func (*poller) remove(*wsClient)      {}
