package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// BenchmarkSavePresence writes batches of status changes, one transaction
// per batch, to a real SQLite file. changes/s is the persistence rate.
func BenchmarkSavePresence(b *testing.B) {
	for _, batch := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db := MustOpenDB(b)
			users := 10000
			for i := range users {
				MustCreateUser(b, db, fmt.Sprintf("user%05d", i))
			}
			recs := make([]presence.Record, batch)
			now := time.Now()
			b.ResetTimer()
			for n := 0; b.Loop(); n++ {
				for i := range recs {
					recs[i] = presence.Record{UserID: int64((n*batch+i)%users + 1), HasStatus: true, Online: i%2 == 0, LastSeen: now, LastActivity: now}
				}
				if err := db.SavePresence(ctx, recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "changes/s")
		})
	}
}

// BenchmarkUpdateBucket takes a token from a shared rate-limit bucket: one
// write transaction, what a login costs in addition (twice: the account,
// and the account from this address).
func BenchmarkUpdateBucket(b *testing.B) {
	db := MustOpenDB(b)
	now := time.Now()
	for n := 0; b.Loop(); n++ {
		err := db.UpdateBucket(ctx, fmt.Sprint("login:user", n%1000), func(tokens float64, at time.Time, found bool) (float64, time.Time) {
			return max(tokens-1, 0), now
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimWebhooks claims the due deliveries of one URL when there
// are none (what every dispatch, and every poll, does most of the time)
// and when there is one.
func BenchmarkClaimWebhooks(b *testing.B) {
	db := MustOpenDB(b)
	now := time.UnixMilli(1_700_000_000_000)
	b.Run("none", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.ClaimWebhooks(ctx, now, "U", 8, "n", now.Add(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one", func(b *testing.B) {
		for n := 0; b.Loop(); n++ {
			ev := fmt.Sprint("e", n)
			if err := db.EnqueueWebhooks(ctx, []store.WebhookDelivery{{EventID: ev, URL: "U", UserKey: ev, Type: "user.online", Payload: []byte("{}"), CreatedAt: now, NextAttemptAt: now}}); err != nil {
				b.Fatal(err)
			}
			if got, err := db.ClaimWebhooks(ctx, now, "U", 8, "n", now.Add(time.Minute)); err != nil || len(got) != 1 {
				b.Fatal(got, err)
			}
		}
	})
}
