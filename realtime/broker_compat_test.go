package realtime

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// startBroker serves b's stream at the test server's root; ?owner= names
// the stream's owner. (Kept apart from the tests so that the same tests
// could be run against the broker this one replaced.)
func startBroker(t *testing.T, cfg BrokerConfig) (*Broker, *httptest.Server) {
	t.Helper()
	b := NewBroker(cfg)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := b.Serve(context.Background(), w, r, r.URL.Query().Get("owner")); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		b.Shutdown(context.Background())
	})
	return b, srv
}

// publishState publishes an event that is also the whole new state, as
// the widget feed's full list is.
func publishState(b *Broker, event string, data []byte) {
	b.SetSnapshot(event, data)
	b.Publish(event, data)
}
