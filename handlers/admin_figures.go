package handlers

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/realtime"
	"github.com/presencehq/presence/views"
)

// figureEvery is how often the admin figures are sampled and pushed.
const figureEvery = 2 * time.Second

// figureHistory is how many samples the chart shows (two minutes).
const figureHistory = 60

// figureSampler reads the server's figures every figureEvery on the
// clock, keeps the last figureHistory samples and, while an administrator
// watches, pushes the rendered figures and chart on the admin stream (one
// render per sample, whoever watches).
type figureSampler struct {
	clock   presence.Clock
	store   Store
	engine  *presence.Engine
	hub     *realtime.Hub
	widgets *realtime.Broker
	stream  *realtime.Broker

	mu      sync.Mutex
	samples []views.AdminSample
	prev    struct {
		at          time.Time
		events, txs int64
		write       time.Duration
	}
	timer  presence.Timer
	closed bool
}

func newFigureSampler(clock presence.Clock, s Store, e *presence.Engine, hub *realtime.Hub, widgets, stream *realtime.Broker) *figureSampler {
	f := &figureSampler{clock: clock, store: s, engine: e, hub: hub, widgets: widgets, stream: stream}
	f.mu.Lock()
	f.prev.at = clock.Now()
	f.prev.events = hub.EventsPublished()
	st := s.Stats()
	f.prev.txs, f.prev.write = st.WriteTxs, st.WriteTime
	f.timer = clock.AfterFunc(figureEvery, f.tick)
	f.mu.Unlock()
	return f
}

// read takes one sample; caller holds f.mu.
func (f *figureSampler) read() views.AdminSample {
	now := f.clock.Now()
	users, _ := f.engine.Counts()
	s := views.AdminSample{At: now, Users: users, Conns: f.hub.Len(), Streams: f.widgets.Subscribers()}
	events := f.hub.EventsPublished()
	st := f.store.Stats()
	if dt := now.Sub(f.prev.at).Seconds(); dt > 0 {
		s.EventsPerSec = float64(events-f.prev.events) / dt
	}
	if n := st.WriteTxs - f.prev.txs; n > 0 {
		s.WriteLatency = (st.WriteTime - f.prev.write) / time.Duration(n)
	} else if len(f.samples) > 0 {
		s.WriteLatency = f.samples[len(f.samples)-1].WriteLatency // no writes: keep the last figure
	}
	if rss, ok := residentBytes(); ok {
		s.RSS = rss
	}
	f.prev.at, f.prev.events, f.prev.txs, f.prev.write = now, events, st.WriteTxs, st.WriteTime
	return s
}

func (f *figureSampler) tick() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.samples = append(f.samples, f.read())
	if len(f.samples) > figureHistory {
		f.samples = append(f.samples[:0:0], f.samples[len(f.samples)-figureHistory:]...)
	}
	samples := f.samples
	f.timer = f.clock.AfterFunc(figureEvery, f.tick)
	f.mu.Unlock()
	if f.stream.Subscribers() == 0 {
		return
	}
	var buf bytes.Buffer
	if err := views.AdminFigures(samples).Render(context.Background(), &buf); err == nil {
		f.stream.PublishLatest("figures", buf.Bytes())
	}
}

// Samples returns the recent samples, oldest first, ending with one taken
// now when none has been taken yet.
func (f *figureSampler) Samples() []views.AdminSample {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.samples) == 0 {
		return []views.AdminSample{f.read()}
	}
	return f.samples
}

// close stops sampling.
func (f *figureSampler) close() {
	f.mu.Lock()
	f.closed = true
	if f.timer != nil {
		f.timer.Stop()
	}
	f.mu.Unlock()
}
