package realtime

import (
	"context"
	"errors"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/presencehq/presence/presence"
	"github.com/presencehq/presence/store"
)

// revocationsDB is a real database with one user, and a second handle on
// its file (the CLI).
func revocationsDB(t *testing.T) (server, cli *store.DB, userID int64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "presence.db")
	server, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	server.BcryptCost = bcrypt.MinCost
	if _, err := server.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	cli, err = store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	u, err := server.CreateUser(context.Background(), "alice", "password1")
	if err != nil {
		t.Fatal(err)
	}
	return server, cli, u.ID
}

// token issues an API token and returns it with its id.
func token(t *testing.T, db *store.DB, userID int64) (string, int64) {
	t.Helper()
	tok, err := db.CreateToken(context.Background(), userID, store.TokenAPI, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, id, err := db.ResolveToken(context.Background(), store.TokenAPI, tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, id
}

func isDone(ctx context.Context) bool { return ctx.Err() != nil }

func TestRevocations(t *testing.T) {
	bg := context.Background()

	t.Run("PollFindsOtherProcess", func(t *testing.T) {
		db, cli, uid := revocationsDB(t)
		clock := presence.NewFakeClock(time.Unix(1e9, 0))
		r := NewRevocations(db, clock, 0, nil)
		r.Start()
		defer r.Close()
		tokA, idA := token(t, db, uid)
		_, idB := token(t, db, uid)
		a1, a2, b := r.Watch(idA, r.Now()), r.Watch(idA, r.Now()), r.Watch(idB, r.Now())
		// A connection's own context, as the broker derives it.
		conn, cancel := context.WithCancel(a1)
		defer cancel()
		if err := cli.RevokeToken(bg, tokA); err != nil {
			t.Fatal(err)
		}
		clock.Advance(DefaultRevocationPoll - time.Millisecond)
		if isDone(a1) {
			t.Fatal("ended before the poll")
		}
		clock.Advance(time.Millisecond) // the poll runs inside Advance
		if !isDone(a1) || !isDone(a2) || !isDone(conn) || !errors.Is(context.Cause(conn), ErrRevoked) {
			t.Fatalf("after the poll: token contexts done %v %v, connection %v (cause %v)", isDone(a1), isDone(a2), isDone(conn), context.Cause(conn))
		}
		if isDone(b) {
			t.Fatal("another token's context ended")
		}
		clock.Advance(10 * DefaultRevocationPoll) // the revocation read again in the overlap: harmless
		if isDone(b) {
			t.Fatal("another token's context ended")
		}
	})

	t.Run("RevokedBetweenLookupAndWatch", func(t *testing.T) {
		// A handshake reads the token (valid), then the revocation is
		// applied, then the handshake calls Watch: the context must be
		// born done, or the connection would stay open for good.
		db, _, uid := revocationsDB(t)
		clock := presence.NewFakeClock(time.Unix(1e9, 0))
		r := NewRevocations(db, clock, 0, nil)
		defer r.Close()
		_, id := token(t, db, uid)
		authAt := r.Now()
		clock.Advance(time.Second)
		r.Revoke(id)
		if ctx := r.Watch(id, authAt); !isDone(ctx) || !errors.Is(context.Cause(ctx), ErrRevoked) {
			t.Fatal("watch after revocation: context not done")
		}
		// The registry remembers a minute of revocations; an
		// authentication older than that is refused rather than trusted.
		_, other := token(t, db, uid)
		old := r.Now()
		clock.Advance(revokedMemory + time.Second)
		if !isDone(r.Watch(other, old)) {
			t.Fatal("an authentication older than the registry's memory was trusted")
		}
		if isDone(r.Watch(other, r.Now())) {
			t.Fatal("a fresh authentication of a live token was refused")
		}
	})

	t.Run("EntriesFreedWhenConnectionsEnd", func(t *testing.T) {
		db, _, uid := revocationsDB(t)
		r := NewRevocations(db, presence.NewFakeClock(time.Unix(1e9, 0)), 0, nil)
		defer r.Close()
		_, kept := token(t, db, uid)
		held := r.Watch(kept, r.Now())
		for i := range 1000 {
			// A connection: derives its context, ends, cancels it.
			ctx, cancel := context.WithCancel(r.Watch(int64(1_000_000+i), r.Now()))
			stop := context.AfterFunc(ctx, func() {})
			stop()
			cancel()
		}
		deadline := time.Now().Add(10 * time.Second)
		for r.Stats().Watched > 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%d entries left after every connection ended, want 1", r.Stats().Watched)
			}
			runtime.GC()
			time.Sleep(time.Millisecond)
		}
		// The token still in use kept its entry: revoking it still works.
		r.Revoke(kept)
		if !isDone(held) {
			t.Fatal("the entry of a live connection was dropped")
		}
		runtime.KeepAlive(held)
	})
}
