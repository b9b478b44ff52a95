package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/presencehq/presence/presence"
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
