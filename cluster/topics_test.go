package cluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func topic(name string, partitions int32) *fluxopb.TopicMetadata {
	return &fluxopb.TopicMetadata{
		Name:              name,
		Id:                []byte("0123456789abcdef"),
		Partitions:        partitions,
		ReplicationFactor: 1,
		CreatedUnixMs:     1700000000000,
		Config: &fluxopb.TopicConfig{
			RetentionMs:   proto.Int64(-1),
			CleanupPolicy: proto.String("delete"),
		},
	}
}

func TestTopicCRUD(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := testCtx(t)

	list, err := s.ListTopics(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("ListTopics on empty bucket = %v, %v", list, err)
	}
	if _, _, err := s.GetTopic(ctx, "orders"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("GetTopic missing: %v", err)
	}

	long := strings.Repeat("x.-_Z9", 41) + "abc" // 249 chars, dots included
	names := []string{"orders", "a..b", "_internal", long, "Payments-2024.v1"}
	for _, n := range names {
		if err := s.CreateTopic(ctx, topic(n, 3)); err != nil {
			t.Fatalf("CreateTopic(%q): %v", n, err)
		}
	}
	if err := s.CreateTopic(ctx, topic("orders", 9)); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("second CreateTopic: %v, want ErrTopicExists", err)
	} else if !strings.Contains(err.Error(), "create topic") {
		t.Errorf("error %q lacks the operation name", err)
	}
	for _, bad := range []string{"", ".", "..", "has space", "ü", strings.Repeat("a", 250), "a/b"} {
		if err := s.CreateTopic(ctx, topic(bad, 1)); !errors.Is(err, ErrInvalidTopicName) {
			t.Errorf("CreateTopic(%q): %v, want ErrInvalidTopicName", bad, err)
		}
	}

	got, rev, err := s.GetTopic(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, topic("orders", 3)) || rev == 0 {
		t.Fatalf("GetTopic = %v rev %d", got, rev)
	}

	list, err = s.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, tm := range list {
		listed = append(listed, tm.GetName())
	}
	want := []string{"Payments-2024.v1", "_internal", "a..b", "orders", long}
	if fmt.Sprint(listed) != fmt.Sprint(want) {
		t.Fatalf("ListTopics names = %q, want %q", listed, want)
	}

	upd, err := s.UpdateTopic(ctx, "orders", func(tm *fluxopb.TopicMetadata) error {
		tm.Partitions = 6
		tm.Config.RetentionMs = proto.Int64(3600000)
		return nil
	})
	if err != nil || upd.GetPartitions() != 6 {
		t.Fatalf("UpdateTopic = %v, %v", upd, err)
	}
	got, rev2, err := s.GetTopic(ctx, "orders")
	if err != nil || got.GetPartitions() != 6 || got.GetConfig().GetRetentionMs() != 3600000 || rev2 <= rev {
		t.Fatalf("after update GetTopic = %v rev %d (was %d), %v", got, rev2, rev, err)
	}
	errBoom := errors.New("boom")
	if _, err := s.UpdateTopic(ctx, "orders", func(*fluxopb.TopicMetadata) error { return errBoom }); !errors.Is(err, errBoom) {
		t.Errorf("UpdateTopic fn error: %v", err)
	}
	if _, err := s.UpdateTopic(ctx, "orders", func(tm *fluxopb.TopicMetadata) error { tm.Name = "x"; return nil }); err == nil {
		t.Error("UpdateTopic allowed a rename")
	}
	if _, err := s.UpdateTopic(ctx, "nope", func(*fluxopb.TopicMetadata) error { return nil }); !errors.Is(err, ErrTopicNotFound) {
		t.Errorf("UpdateTopic missing: %v", err)
	}

	if err := s.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "orders"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("second DeleteTopic: %v, want ErrTopicNotFound", err)
	}
	if _, _, err := s.GetTopic(ctx, "orders"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("GetTopic after delete: %v", err)
	}
	if list, _ := s.ListTopics(ctx); len(list) != 4 {
		t.Fatalf("ListTopics after delete has %d topics, want 4", len(list))
	}
	// A deleted name can be created again (CAS on the delete marker).
	if err := s.CreateTopic(ctx, topic("orders", 1)); err != nil {
		t.Fatalf("re-create after delete: %v", err)
	}
	if got, _, err := s.GetTopic(ctx, "orders"); err != nil || got.GetPartitions() != 1 {
		t.Fatalf("GetTopic after re-create = %v, %v", got, err)
	}
}

func TestUpdateTopicConcurrentNoLostUpdate(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := testCtx(t)
	if err := s.CreateTopic(ctx, topic("counter", 0)); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 10
	var wg sync.WaitGroup
	var calls sync.Map
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for range each {
				_, err := s.UpdateTopic(ctx, "counter", func(tm *fluxopb.TopicMetadata) error {
					n, _ := calls.LoadOrStore(w, new(int))
					*n.(*int)++
					tm.Partitions++
					return nil
				})
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("UpdateTopic: %v", err)
		}
	}
	got, _, err := s.GetTopic(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetPartitions() != writers*each {
		t.Fatalf("partitions = %d after %d increments: updates lost", got.GetPartitions(), writers*each)
	}
	total := 0
	calls.Range(func(_, v any) bool { total += *v.(*int); return true })
	t.Logf("%d increments took %d fn calls (%d CAS retries)", writers*each, total, total-writers*each)
}

func TestUpdateTopicTwoConcurrentBothApplied(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := testCtx(t)
	if err := s.CreateTopic(ctx, topic("t", 1)); err != nil {
		t.Fatal(err)
	}
	// Both writers read the same revision before either writes, so one CAS
	// must fail and be retried.
	var read sync.WaitGroup
	read.Add(2)
	var wg sync.WaitGroup
	var firstCalls [2]int
	for i := range 2 {
		wg.Go(func() {
			_, err := s.UpdateTopic(ctx, "t", func(tm *fluxopb.TopicMetadata) error {
				firstCalls[i]++
				if firstCalls[i] == 1 {
					read.Done()
					read.Wait()
				}
				if i == 0 {
					tm.ReplicationFactor = 3
				} else {
					tm.Config.MaxMessageBytes = proto.Int32(1 << 20)
				}
				return nil
			})
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got, _, err := s.GetTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetReplicationFactor() != 3 || got.GetConfig().GetMaxMessageBytes() != 1<<20 {
		t.Fatalf("topic = %v: an update was lost", got)
	}
	if firstCalls[0]+firstCalls[1] < 3 {
		t.Fatalf("fn calls %v: expected a CAS conflict and a retry", firstCalls)
	}
}

func TestCASRejectsStaleRevision(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := testCtx(t)
	if err := s.CreateTopic(ctx, topic("t", 1)); err != nil {
		t.Fatal(err)
	}
	_, rev, err := s.GetTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateTopic(ctx, "t", func(tm *fluxopb.TopicMetadata) error { tm.Partitions = 2; return nil }); err != nil {
		t.Fatal(err)
	}
	b, _ := proto.Marshal(topic("t", 99))
	if _, err := s.update(ctx, topicKey("t"), b, rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("update at stale revision: %v, want ErrConflict", err)
	}
	if err := s.delete(ctx, topicKey("t"), rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("delete at stale revision: %v, want ErrConflict", err)
	}
	if got, _, _ := s.GetTopic(ctx, "t"); got.GetPartitions() != 2 {
		t.Fatalf("stale write applied: %v", got)
	}
}

func TestCreateTopicConcurrentExactlyOneWins(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := testCtx(t)
	for round, name := range []string{"fresh", "recreated"} {
		if round == 1 { // also over a delete marker
			if err := s.CreateTopic(ctx, topic(name, 1)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteTopic(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		const n = 8
		results := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				results[i] = s.CreateTopic(ctx, topic(name, int32(i+1)))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range results {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("%s: creators %d and %d both won", name, winner, i)
				}
				winner = i
			case !errors.Is(err, ErrTopicExists):
				t.Fatalf("%s: creator %d: %v", name, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no creator won", name)
		}
		got, _, err := s.GetTopic(ctx, name)
		if err != nil || got.GetPartitions() != int32(winner+1) {
			t.Fatalf("%s: stored %v (%v), winner %d", name, got, err, winner)
		}
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	s, err := Open(ctx, Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"keep", "gone", "changed"} {
		if err := s.CreateTopic(ctx, topic(n, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateTopic(ctx, "changed", func(tm *fluxopb.TopicMetadata) error { tm.Partitions = 12; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	s2 := openStore(t, dir)
	t.Logf("re-Open took %s", time.Since(start))
	list, err := s2.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || !proto.Equal(list[0], func() *fluxopb.TopicMetadata { tm := topic("changed", 12); return tm }()) ||
		!proto.Equal(list[1], topic("keep", 1)) {
		t.Fatalf("after restart ListTopics = %v", list)
	}
	if _, _, err := s2.GetTopic(ctx, "gone"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("deleted topic after restart: %v", err)
	}
	if err := s2.CreateTopic(ctx, topic("keep", 5)); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("create existing after restart: %v", err)
	}
}

func TestWatchTopicsDeliversHints(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := testCtx(t)
	if err := s.CreateTopic(ctx, topic("before", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, topic("deleted-before", 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic(ctx, "deleted-before"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	events, err := s.WatchTopics(wctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() TopicEvent {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("watch channel closed early")
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no watch event within 5s")
		}
		return TopicEvent{}
	}
	if ev := next(); ev.Op != TopicPut || ev.Name != "before" {
		t.Fatalf("initial event = %+v, want put before", ev)
	}
	if err := s.CreateTopic(ctx, topic("a.b", 1)); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Op != TopicPut || ev.Name != "a.b" || ev.Revision == 0 {
		t.Fatalf("event = %+v, want put a.b", ev)
	}
	if err := s.DeleteTopic(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Op != TopicDelete || ev.Name != "before" {
		t.Fatalf("event = %+v, want delete before", ev)
	}
	cancel()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("watch channel not closed after cancel")
		}
	}
}

// kvKeyRE is the NATS KV key rule (nats.go jetstream validKeyRe), plus its
// "no leading or trailing dot" check.
var kvKeyRE = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

func validKVKey(k string) bool {
	return kvKeyRE.MatchString(k) && !strings.HasPrefix(k, ".") && !strings.HasSuffix(k, ".") && !strings.Contains(k, "..")
}

const topicChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

func TestTopicKeyRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		runes := rapid.SliceOfN(rapid.SampledFrom([]rune(topicChars)), 1, MaxTopicNameLen).Draw(t, "name")
		name := string(runes)
		key := topicKey(name)
		if !validKVKey(key) {
			t.Fatalf("key %q for %q is not a valid KV key", key, name)
		}
		if strings.Count(key, ".") != 1 {
			t.Fatalf("key %q has more than the prefix token", key)
		}
		back, err := topicNameFromKey(key)
		if err != nil || back != name {
			t.Fatalf("round trip %q -> %q -> %q, %v", name, key, back, err)
		}
		if name != "." && name != ".." {
			if err := ValidateTopicName(name); err != nil {
				t.Fatalf("legal name %q rejected: %v", name, err)
			}
		}
	})
}
