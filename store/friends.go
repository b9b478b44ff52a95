package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors of the friends model. Callers test them with errors.Is.
var (
	// ErrSelfFriend refuses a friend request to oneself.
	ErrSelfFriend = errors.New("you cannot send a friend request to yourself")
	// ErrAlreadyFriends refuses a request between two friends.
	ErrAlreadyFriends = errors.New("you are already friends")
	// ErrRequestPending refuses a second request to the same person.
	ErrRequestPending = errors.New("a friend request to this user is already pending")
	// ErrTooManyRequests refuses a request from someone who already has
	// MaxPendingRequests unanswered ones out.
	ErrTooManyRequests = errors.New("too many friend requests waiting for an answer")
)

// MaxPendingRequests is how many unanswered requests one user may have
// out at once, so nobody can ask every user of the server.
const MaxPendingRequests = 200

// FriendRequest is a pending request from one user to another. Other is
// the user on the far side from whoever asked (the sender for an incoming
// request, the recipient for an outgoing one).
type FriendRequest struct {
	ID        int64
	FromID    int64
	ToID      int64
	CreatedAt time.Time
	Other     User
}

// Friend is one of a user's friends, with when they became friends.
type Friend struct {
	User
	Since time.Time
}

// RequestResult says what RequestFriend did.
type RequestResult struct {
	// Request is the new pending request (zero when Accepted).
	Request FriendRequest
	// Accepted: the other user had already asked, so their request was
	// accepted and the two are friends now.
	Accepted bool
}

// RequestFriend records a friend request from one user to another. A
// request to oneself is ErrSelfFriend, to a friend ErrAlreadyFriends, a
// second one to the same person ErrRequestPending, one beyond
// MaxPendingRequests unanswered ErrTooManyRequests, and an unknown user
// ErrNotFound. When the other user has already asked this one, their
// request is accepted instead (both asked: they are friends).
func (db *DB) RequestFriend(ctx context.Context, from, to int64) (RequestResult, error) {
	if from == to {
		return RequestResult{}, ErrSelfFriend
	}
	var res RequestResult
	now := db.Now().UTC().Truncate(time.Millisecond)
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)", to).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM friendships WHERE user_id = ? AND friend_id = ?)", from, to).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return ErrAlreadyFriends
		}
		var reverse int64
		err := tx.QueryRowContext(ctx, "DELETE FROM friend_requests WHERE from_id = ? AND to_id = ? RETURNING id", to, from).Scan(&reverse)
		switch {
		case err == nil:
			res.Accepted = true
			return befriend(ctx, tx, from, to, now)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		var pending int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM friend_requests WHERE from_id = ?", from).Scan(&pending); err != nil {
			return err
		}
		if pending >= MaxPendingRequests {
			return ErrTooManyRequests
		}
		err = tx.QueryRowContext(ctx, `INSERT INTO friend_requests (from_id, to_id, created_at) VALUES (?, ?, ?)
			ON CONFLICT (from_id, to_id) DO NOTHING RETURNING id`, from, to, toMS(now)).Scan(&res.Request.ID)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrRequestPending
		}
		res.Request.FromID, res.Request.ToID, res.Request.CreatedAt = from, to, now
		return err
	})
	if err != nil {
		if isFriendErr(err) {
			return RequestResult{}, err
		}
		return RequestResult{}, fmt.Errorf("store: request friend: %w", err)
	}
	return res, nil
}

func isFriendErr(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrSelfFriend) || errors.Is(err, ErrAlreadyFriends) ||
		errors.Is(err, ErrRequestPending) || errors.Is(err, ErrTooManyRequests)
}

// befriend writes the friendship both ways and drops any request between
// the two, inside tx.
func befriend(ctx context.Context, tx *sql.Tx, a, b int64, now time.Time) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO friendships (user_id, friend_id, created_at) VALUES (?, ?, ?), (?, ?, ?)
		ON CONFLICT DO NOTHING`, a, b, toMS(now), b, a, toMS(now)); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "DELETE FROM friend_requests WHERE (from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?)", a, b, b, a)
	return err
}

// AcceptFriendRequest accepts request id addressed to userID and returns
// it: the two users are friends from now on. A request that does not
// exist or is not addressed to userID is ErrNotFound.
func (db *DB) AcceptFriendRequest(ctx context.Context, userID, id int64) (FriendRequest, error) {
	var r FriendRequest
	now := db.Now().UTC().Truncate(time.Millisecond)
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var created sql.NullInt64
		err := tx.QueryRowContext(ctx, "DELETE FROM friend_requests WHERE id = ? AND to_id = ? RETURNING from_id, to_id, created_at",
			id, userID).Scan(&r.FromID, &r.ToID, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		r.ID, r.CreatedAt = id, fromMS(created)
		return befriend(ctx, tx, r.FromID, r.ToID, now)
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return FriendRequest{}, fmt.Errorf("store: accept friend request: %w", err)
	}
	return r, err
}

// DeclineFriendRequest deletes request id when userID is its recipient
// (declining) or its sender (withdrawing it), and returns it; otherwise
// ErrNotFound. The sender may ask again later.
func (db *DB) DeclineFriendRequest(ctx context.Context, userID, id int64) (FriendRequest, error) {
	var r FriendRequest
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		var created sql.NullInt64
		err := tx.QueryRowContext(ctx, "DELETE FROM friend_requests WHERE id = ? AND (to_id = ? OR from_id = ?) RETURNING from_id, to_id, created_at",
			id, userID, userID).Scan(&r.FromID, &r.ToID, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		r.ID, r.CreatedAt = id, fromMS(created)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return FriendRequest{}, fmt.Errorf("store: decline friend request: %w", err)
	}
	return r, err
}

// RemoveFriend ends the friendship of two users, for both of them. It is
// ErrNotFound when they are not friends.
func (db *DB) RemoveFriend(ctx context.Context, userID, friendID int64) error {
	return db.execOne(ctx, "remove friend", "DELETE FROM friendships WHERE (user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)",
		userID, friendID, friendID, userID)
}

// AreFriends reports whether users a and b are friends. It is one lookup
// of the friendships primary key (no table scan), cheap enough to run for
// every viewer a "friends only" visibility rule is checked for.
func (db *DB) AreFriends(ctx context.Context, a, b int64) (bool, error) {
	if a == b {
		return false, nil
	}
	var ok bool
	if err := db.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM friendships WHERE user_id = ? AND friend_id = ?)", a, b).Scan(&ok); err != nil {
		return false, fmt.Errorf("store: are friends: %w", classify(err))
	}
	return ok, nil
}

// FriendIDs returns the ids of userID's friends in ascending order (a
// range scan of the friendships primary key). A user without friends, or
// an unknown one, has none.
func (db *DB) FriendIDs(ctx context.Context, userID int64) ([]int64, error) {
	return queryColumn[int64](ctx, db, "friend ids", "SELECT friend_id FROM friendships WHERE user_id = ? ORDER BY friend_id", userID)
}

// Friends returns userID's friends with their profiles and persisted
// presence, ordered by username.
func (db *DB) Friends(ctx context.Context, userID int64) ([]Friend, error) {
	rows, err := db.r.QueryContext(ctx, userColumns+`, since FROM (SELECT u.*, f.created_at AS since
		FROM friendships f JOIN users u ON u.id = f.friend_id WHERE f.user_id = ?) AS friends
		ORDER BY lower(username), id`, userID)
	if err != nil {
		return nil, fmt.Errorf("store: friends: %w", classify(err))
	}
	defer rows.Close()
	var out []Friend
	for rows.Next() {
		var since sql.NullInt64
		u, err := db.scanUser(rows, &since)
		if err != nil {
			return nil, fmt.Errorf("store: friends: %w", err)
		}
		out = append(out, Friend{User: u, Since: fromMS(since)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: friends: %w", err)
	}
	return out, nil
}

// FriendRequests returns the requests pending for userID: those sent to
// them (incoming) and those they sent (outgoing), oldest first, each with
// the other user's profile.
func (db *DB) FriendRequests(ctx context.Context, userID int64) (incoming, outgoing []FriendRequest, err error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, from_id, to_id, created_at FROM friend_requests
		WHERE to_id = ? OR from_id = ? ORDER BY created_at, id`, userID, userID)
	if err != nil {
		return nil, nil, fmt.Errorf("store: friend requests: %w", classify(err))
	}
	var all []FriendRequest
	var others []int64
	for rows.Next() {
		var r FriendRequest
		var created sql.NullInt64
		if err := rows.Scan(&r.ID, &r.FromID, &r.ToID, &created); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("store: friend requests: %w", err)
		}
		r.CreatedAt = fromMS(created)
		all = append(all, r)
		others = append(others, r.other(userID))
	}
	if err := rows.Close(); err != nil {
		return nil, nil, fmt.Errorf("store: friend requests: %w", err)
	}
	users, err := db.UsersByIDs(ctx, others)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range all {
		r.Other = users[r.other(userID)]
		if r.ToID == userID {
			incoming = append(incoming, r)
		} else {
			outgoing = append(outgoing, r)
		}
	}
	return incoming, outgoing, nil
}

func (r FriendRequest) other(userID int64) int64 {
	if r.FromID == userID {
		return r.ToID
	}
	return r.FromID
}

// FriendState is how two users stand: friends, a request one way or the
// other, or nothing.
type FriendState struct {
	Friends bool
	// Outgoing / Incoming is the id of a pending request from the first
	// user to the second / from the second to the first (0: none).
	Outgoing, Incoming int64
}

// FriendStateOf returns how userID stands with other, for a profile's
// friend button.
func (db *DB) FriendStateOf(ctx context.Context, userID, other int64) (FriendState, error) {
	var st FriendState
	var err error
	if st.Friends, err = db.AreFriends(ctx, userID, other); err != nil || st.Friends {
		return st, err
	}
	rows, err := db.r.QueryContext(ctx, `SELECT id, from_id FROM friend_requests
		WHERE (from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?)`, userID, other, other, userID)
	if err != nil {
		return st, fmt.Errorf("store: friend state: %w", classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id, from int64
		if err := rows.Scan(&id, &from); err != nil {
			return st, fmt.Errorf("store: friend state: %w", err)
		}
		if from == userID {
			st.Outgoing = id
		} else {
			st.Incoming = id
		}
	}
	return st, rows.Err()
}

// SetFriends makes friendIDs exactly userID's friends among the users
// keep reports true for (the host's users, for the server API): those
// missing are added (both ways, dropping any pending request between the
// two), those not listed are removed (both ways). Friends keep says no to
// are left alone. It returns who was added and removed, ascending. The
// ids must be of existing users (the caller resolves or creates them).
func (db *DB) SetFriends(ctx context.Context, userID int64, friendIDs []int64, keep func(User) bool) (added, removed []int64, err error) {
	want := map[int64]bool{}
	for _, id := range friendIDs {
		if id == userID {
			return nil, nil, ErrSelfFriend
		}
		want[id] = true
	}
	current, err := db.Friends(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	have := map[int64]bool{}
	for _, f := range current {
		have[f.ID] = true
		if !want[f.ID] && keep(f.User) {
			removed = append(removed, f.ID)
		}
	}
	for id := range want {
		if !have[id] {
			added = append(added, id)
		}
	}
	slices.Sort(added)
	slices.Sort(removed)
	now := db.Now().UTC().Truncate(time.Millisecond)
	err = db.writeTx(ctx, func(tx *sql.Tx) error {
		for _, id := range added {
			if err := befriend(ctx, tx, userID, id, now); err != nil {
				return err
			}
		}
		for _, id := range removed {
			if _, err := tx.ExecContext(ctx, "DELETE FROM friendships WHERE (user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)",
				userID, id, id, userID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: set friends: %w", err)
	}
	return added, removed, nil
}

// FriendNotify reports whether userID asked for a notice when a friend
// comes online.
func (db *DB) FriendNotify(ctx context.Context, userID int64) (bool, error) {
	var on bool
	if err := db.r.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM friend_notify WHERE user_id = ?)", userID).Scan(&on); err != nil {
		return false, fmt.Errorf("store: friend notify: %w", classify(err))
	}
	return on, nil
}

// SetFriendNotify turns userID's "a friend came online" notices on or off.
func (db *DB) SetFriendNotify(ctx context.Context, userID int64, on bool) error {
	err := db.writeTx(ctx, func(tx *sql.Tx) error {
		q := "DELETE FROM friend_notify WHERE user_id = ?"
		if on {
			q = "INSERT INTO friend_notify (user_id) VALUES (?) ON CONFLICT DO NOTHING"
		}
		_, err := tx.ExecContext(ctx, q, userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set friend notify: %w", err)
	}
	return nil
}

// FriendNotifyUsers returns every user who asked for friend notices, for
// a cache loaded at start.
func (db *DB) FriendNotifyUsers(ctx context.Context) ([]int64, error) {
	return queryColumn[int64](ctx, db, "friend notify users", "SELECT user_id FROM friend_notify")
}
