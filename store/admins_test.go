package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/presencehq/presence/store"
)

func TestFirstAccountIsAdmin(t *testing.T) {
	db := MustOpenDB(t)
	if has, err := db.HasUsers(ctx); err != nil || has {
		t.Fatalf("HasUsers on an empty database = %v, %v", has, err)
	}
	first := MustCreateUser(t, db, "first")
	second := MustCreateUser(t, db, "second")
	if !first.IsAdmin || second.IsAdmin {
		t.Fatalf("IsAdmin: first %v, second %v; want true, false", first.IsAdmin, second.IsAdmin)
	}
	if has, err := db.HasUsers(ctx); err != nil || !has {
		t.Fatalf("HasUsers = %v, %v", has, err)
	}
	// Every way of reading a user carries the flag.
	byName, _ := db.UserByName(ctx, "FIRST")
	byID, _ := db.UserByID(ctx, first.ID)
	auth, _ := db.Authenticate(ctx, "first", "correct horse")
	many, _ := db.UsersByIDs(ctx, []int64{first.ID, second.ID})
	tok, err := db.CreateToken(ctx, first.ID, store.TokenSession, 0)
	if err != nil {
		t.Fatal(err)
	}
	byTok, _ := db.UserByToken(ctx, store.TokenSession, tok)
	for what, u := range map[string]store.User{"UserByName": byName, "UserByID": byID, "Authenticate": auth, "UsersByIDs": many[first.ID], "UserByToken": byTok} {
		if !u.IsAdmin || u.ID != first.ID {
			t.Errorf("%s = %+v; want the admin", what, u)
		}
	}
	if many[second.ID].IsAdmin {
		t.Error("UsersByIDs: second is admin")
	}
	// A name already taken does not consume the first-admin decision.
	if _, err := db.CreateUser(ctx, "First", "correct horse"); !errors.Is(err, store.ErrUsernameTaken) {
		t.Fatalf("duplicate: %v", err)
	}
}

func TestCreateAdminAndSetAdmin(t *testing.T) {
	db := MustOpenDB(t)
	MustCreateUser(t, db, "first")
	ops, err := db.CreateAdmin(ctx, "ops", "correct horse")
	if err != nil || !ops.IsAdmin {
		t.Fatalf("CreateAdmin = %+v, %v", ops, err)
	}
	bob := MustCreateUser(t, db, "bob")
	if err := db.SetAdmin(ctx, bob.ID, true); err != nil {
		t.Fatal(err)
	}
	if u, _ := db.UserByID(ctx, bob.ID); !u.IsAdmin {
		t.Fatal("promoted bob is not admin")
	}
	if err := db.SetAdmin(ctx, bob.ID, false); err != nil {
		t.Fatal(err)
	}
	if u, _ := db.UserByID(ctx, bob.ID); u.IsAdmin {
		t.Fatal("demoted bob is still admin")
	}
	if err := db.SetAdmin(ctx, 9999, true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("SetAdmin(unknown) = %v, want ErrNotFound", err)
	}
}

// TestFirstAdminRace registers many first accounts at once, through two
// handles on the same file (a server and a `presence user add`, say):
// exactly one may become the administrator.
func TestFirstAdminRace(t *testing.T) {
	for round := range 5 {
		open := NewOpener(t)
		var dbs []*store.DB
		for range 2 {
			db := open()
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			dbs = append(dbs, db)
		}
		const n = 16
		var (
			wg     sync.WaitGroup
			start  = make(chan struct{})
			admins = make(chan string, n)
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				u, err := dbs[i%2].CreateUser(ctx, fmt.Sprintf("user%d", i), "correct horse")
				if err != nil {
					t.Error(err)
					return
				}
				if u.IsAdmin {
					admins <- u.Username
				}
			}()
		}
		close(start)
		wg.Wait()
		close(admins)
		var got []string
		for name := range admins {
			got = append(got, name)
		}
		if len(got) != 1 {
			t.Fatalf("round %d: admins %v; want exactly one", round, got)
		}
	}
}
