package history

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

var errTimeout = errors.New("timeout")

func newLogical() *History {
	var c int64
	return New(WithClock(func() int64 { c++; return c }))
}

func sendOk(h *History, proc int, part int32, value string, off int64) OpID {
	id := h.Invoke(proc, Op{Kind: Send, Topic: "t", Partition: part, Value: value})
	h.Ok(id, Result{Offset: off})
	return id
}

func poll(h *History, proc int, part int32, epoch int64, recs ...Record) {
	id := h.Invoke(proc, Op{Kind: Poll, Topic: "t", Partition: part, Epoch: epoch})
	h.Ok(id, Result{Records: recs})
}

func commitOk(h *History, proc int, off int64) {
	id := h.Invoke(proc, Op{Kind: Commit, Group: "g", Topic: "t", Offset: off})
	h.Ok(id, Result{})
}

func fetchOk(h *History, proc int, off int64) {
	id := h.Invoke(proc, Op{Kind: FetchCommit, Group: "g", Topic: "t"})
	h.Ok(id, Result{Offset: off})
}

func assign(h *History, proc int, gen int32, parts ...int32) {
	var tps []TopicPartition
	for _, p := range parts {
		tps = append(tps, TopicPartition{"t", p})
	}
	id := h.Invoke(proc, Op{Kind: Assign, Group: "g", Generation: gen, Partitions: tps})
	h.Ok(id, Result{})
}

func recs(vs ...string) []Record {
	out := make([]Record, len(vs))
	for i, v := range vs {
		out[i] = Record{int64(i), v}
	}
	return out
}

// cleanHistory exercises every kind of operation and outcome, and is correct.
func cleanHistory() *History {
	h := newLogical()
	assign(h, 10, 1, 0)
	assign(h, 11, 1, 1)
	sendOk(h, 1, 0, "a", 0)
	// An info send that landed, and one that did not.
	id := h.Invoke(1, Op{Kind: Send, Topic: "t", Partition: 0, Value: "b"})
	h.Info(id, errTimeout)
	id = h.Invoke(2, Op{Kind: Send, Topic: "t", Partition: 0, Value: "lostack-notlanded"})
	h.Info(id, errTimeout)
	// A failed send that did not land.
	id = h.Invoke(2, Op{Kind: Send, Topic: "t", Partition: 0, Value: "failed"})
	h.Fail(id, errors.New("NOT_ENOUGH_REPLICAS"))
	// Two concurrent sends may be ordered either way.
	c1 := h.Invoke(1, Op{Kind: Send, Topic: "t", Partition: 0, Value: "c"})
	d1 := h.Invoke(2, Op{Kind: Send, Topic: "t", Partition: 0, Value: "d"})
	h.Ok(d1, Result{Offset: 2})
	h.Ok(c1, Result{Offset: 3})
	sendOk(h, 1, 1, "x", 0)
	// A send still pending at the end.
	h.Invoke(3, Op{Kind: Send, Topic: "t", Partition: 1, Value: "pending"})

	poll(h, 10, 0, 1, Record{0, "a"}, Record{1, "b"})
	poll(h, 10, 0, 1, Record{2, "d"})
	poll(h, 10, 0, 1)
	poll(h, 10, 0, 1, Record{3, "c"})
	// A new epoch may restart from a committed offset.
	commitOk(h, 10, 2)
	fetchOk(h, 10, 2)
	poll(h, 10, 0, 2, Record{2, "d"}, Record{3, "c"})
	poll(h, 11, 1, 1, Record{0, "x"})
	// An info commit that may have landed; later reads may see it or not.
	id = h.Invoke(10, Op{Kind: Commit, Group: "g", Topic: "t", Offset: 4})
	h.Info(id, errTimeout)
	fetchOk(h, 11, 2)
	fetchOk(h, 11, 4)
	fetchOk(h, 11, 4)
	// A failed commit never took effect.
	id = h.Invoke(10, Op{Kind: Commit, Group: "g", Topic: "t", Offset: 99})
	h.Fail(id, errors.New("ILLEGAL_GENERATION"))
	fetchOk(h, 11, 4)
	assign(h, 10, 2, 0, 1)
	assign(h, 11, 3, 0, 1)

	h.Drain("t", 0, []Record{{0, "a"}, {1, "b"}, {2, "d"}, {3, "c"}})
	h.Drain("t", 1, []Record{{0, "x"}})
	return h
}

func TestCleanHistory(t *testing.T) {
	rep := Check(cleanHistory())
	if rep.Failures() != 0 {
		t.Fatalf("clean history reported failures:\n%s", rep)
	}
	s := rep.String()
	for _, f := range Families {
		if !strings.Contains(s, string(f)) {
			t.Errorf("report table lacks %s:\n%s", f, s)
		}
	}
}

// expectOnly checks that rep counts want failures of family f and none of
// any other family.
func expectOnly(t *testing.T, rep Report, f Family, want int) {
	t.Helper()
	for _, g := range Families {
		n := rep.Counts[g]
		switch {
		case g == f && n != want:
			t.Errorf("%s: got %d, want %d", g, n, want)
		case g != f && n != 0:
			t.Errorf("%s: got %d, want 0", g, n)
		}
	}
	if want > 0 && (len(rep.Findings[f]) == 0 || len(rep.Findings[f][0].Ops) == 0) {
		t.Errorf("%s: no offending operations kept", f)
	}
	if t.Failed() {
		t.Logf("report:\n%s", rep)
	}
}

func TestLost(t *testing.T) {
	t.Run("missing", func(t *testing.T) {
		h := newLogical()
		sendOk(h, 1, 0, "a", 0)
		sendOk(h, 1, 0, "b", 1)
		h.Drain("t", 0, recs("a"))
		expectOnly(t, Check(h), Lost, 1)
	})
	t.Run("other offset", func(t *testing.T) {
		// "b" is there, but not at its acknowledged offset; "a" moved
		// from offset 1 to 0 without any other observation of offset 1.
		h := newLogical()
		sendOk(h, 1, 0, "b", 1)
		h.Drain("t", 0, []Record{{0, "b"}})
		rep := Check(h)
		if rep.Counts[Lost] != 1 {
			t.Fatalf("lost: got %d, want 1\n%s", rep.Counts[Lost], rep)
		}
	})
	t.Run("partition never drained", func(t *testing.T) {
		h := newLogical()
		sendOk(h, 1, 3, "a", 0)
		expectOnly(t, Check(h), Lost, 1)
	})
}

func TestInconsistentOffsets(t *testing.T) {
	t.Run("poll vs drain", func(t *testing.T) {
		h := newLogical()
		poll(h, 1, 0, 1, Record{0, "a"})
		h.Drain("t", 0, recs("z"))
		rep := Check(h)
		if rep.Counts[InconsistentOffsets] != 1 {
			t.Fatalf("got %d\n%s", rep.Counts[InconsistentOffsets], rep)
		}
	})
	t.Run("two acks for one offset", func(t *testing.T) {
		h := newLogical()
		sendOk(h, 1, 0, "a", 0)
		sendOk(h, 2, 0, "b", 0)
		h.Drain("t", 0, recs("a"))
		rep := Check(h)
		if rep.Counts[InconsistentOffsets] != 1 || rep.Counts[Lost] != 1 {
			t.Fatalf("got %v\n%s", rep.Counts, rep)
		}
	})
	t.Run("across epochs", func(t *testing.T) {
		h := newLogical()
		poll(h, 1, 0, 1, Record{0, "a"})
		poll(h, 1, 0, 2, Record{0, "b"})
		h.Drain("t", 0, recs("a"))
		rep := Check(h)
		if rep.Counts[InconsistentOffsets] != 1 {
			t.Fatalf("got %v\n%s", rep.Counts, rep)
		}
	})
}

func TestDuplicate(t *testing.T) {
	h := newLogical()
	// A retried send of "a" after a lost ack appended it twice.
	id := h.Invoke(1, Op{Kind: Send, Topic: "t", Partition: 0, Value: "a"})
	h.Info(id, errTimeout)
	sendOk(h, 1, 0, "b", 1)
	h.Drain("t", 0, []Record{{0, "a"}, {1, "b"}, {2, "a"}})
	expectOnly(t, Check(h), Duplicate, 1)
}

func TestAbortedRead(t *testing.T) {
	t.Run("poll", func(t *testing.T) {
		h := newLogical()
		id := h.Invoke(1, Op{Kind: Send, Topic: "t", Partition: 0, Value: "a"})
		h.Fail(id, errors.New("NOT_ENOUGH_REPLICAS"))
		poll(h, 2, 0, 1, Record{0, "a"})
		h.Drain("t", 0, nil)
		rep := Check(h)
		if rep.Counts[AbortedRead] != 1 {
			t.Fatalf("got %v\n%s", rep.Counts, rep)
		}
	})
	t.Run("drain", func(t *testing.T) {
		h := newLogical()
		id := h.Invoke(1, Op{Kind: Send, Topic: "t", Partition: 0, Value: "a"})
		h.Fail(id, errors.New("NOT_ENOUGH_REPLICAS"))
		h.Drain("t", 0, recs("a"))
		expectOnly(t, Check(h), AbortedRead, 1)
	})
	t.Run("info is not fail", func(t *testing.T) {
		h := newLogical()
		id := h.Invoke(1, Op{Kind: Send, Topic: "t", Partition: 0, Value: "a"})
		h.Info(id, errTimeout)
		poll(h, 2, 0, 1, Record{0, "a"})
		h.Drain("t", 0, recs("a"))
		expectOnly(t, Check(h), AbortedRead, 0)
	})
}

func TestNonmonotonicSend(t *testing.T) {
	h := newLogical()
	sendOk(h, 1, 0, "a", 1)
	sendOk(h, 2, 0, "b", 0) // invoked after "a" completed, yet earlier
	sendOk(h, 3, 1, "x", 0) // other partition: unrelated
	h.Drain("t", 0, []Record{{0, "b"}, {1, "a"}})
	h.Drain("t", 1, recs("x"))
	expectOnly(t, Check(h), NonmonotonicSend, 1)

	// Concurrent sends may land in either order.
	h = newLogical()
	a := h.Invoke(1, Op{Kind: Send, Topic: "t", Value: "a"})
	b := h.Invoke(2, Op{Kind: Send, Topic: "t", Value: "b"})
	h.Ok(a, Result{Offset: 1})
	h.Ok(b, Result{Offset: 0})
	h.Drain("t", 0, []Record{{0, "b"}, {1, "a"}})
	expectOnly(t, Check(h), NonmonotonicSend, 0)
}

func TestPollSkip(t *testing.T) {
	h := newLogical()
	poll(h, 1, 0, 1, Record{0, "a"})
	poll(h, 1, 0, 1, Record{2, "c"}) // skips 1
	// Gaps absent from the drain (compaction, control records) are fine.
	poll(h, 1, 0, 1, Record{5, "d"})
	h.Drain("t", 0, []Record{{0, "a"}, {1, "b"}, {2, "c"}, {5, "d"}})
	expectOnly(t, Check(h), PollSkip, 1)
}

func TestNonmonotonicPoll(t *testing.T) {
	t.Run("repeat", func(t *testing.T) {
		h := newLogical()
		poll(h, 1, 0, 1, Record{0, "a"}, Record{1, "b"})
		poll(h, 1, 0, 1, Record{1, "b"})
		h.Drain("t", 0, recs("a", "b"))
		expectOnly(t, Check(h), NonmonotonicPoll, 1)
	})
	t.Run("backwards within one poll", func(t *testing.T) {
		h := newLogical()
		poll(h, 1, 0, 1, Record{1, "b"}, Record{0, "a"})
		h.Drain("t", 0, recs("a", "b"))
		expectOnly(t, Check(h), NonmonotonicPoll, 1)
	})
	t.Run("new epoch may rewind", func(t *testing.T) {
		h := newLogical()
		poll(h, 1, 0, 1, Record{0, "a"}, Record{1, "b"})
		poll(h, 1, 0, 2, Record{0, "a"})
		poll(h, 2, 0, 1, Record{0, "a"}) // another process
		h.Drain("t", 0, recs("a", "b"))
		expectOnly(t, Check(h), NonmonotonicPoll, 0)
	})
}

func TestDoubleAssignment(t *testing.T) {
	h := newLogical()
	assign(h, 1, 5, 0, 1)
	assign(h, 2, 5, 1)
	assign(h, 3, 6, 0) // other generation: fine
	expectOnly(t, Check(h), DoubleAssignment, 1)
}

func TestStaleGenerationCommit(t *testing.T) {
	h := newLogical()
	assign(h, 1, 5, 0)
	assign(h, 2, 6, 0)
	// Process 1 commits with generation 5 after generation 6 was handed
	// out, and the commit is accepted.
	id := h.Invoke(1, Op{Kind: Commit, Group: "g", Topic: "t", Offset: 3, Generation: 5})
	h.Ok(id, Result{})
	// Commits of the current generation, standalone commits, and stale
	// commits that were rejected are fine.
	id = h.Invoke(2, Op{Kind: Commit, Group: "g", Topic: "t", Offset: 4, Generation: 6})
	h.Ok(id, Result{})
	id = h.Invoke(3, Op{Kind: Commit, Group: "g", Topic: "t", Offset: 5, Generation: -1})
	h.Ok(id, Result{})
	id = h.Invoke(1, Op{Kind: Commit, Group: "g", Topic: "t", Offset: 6, Generation: 5})
	h.Fail(id, errors.New("ILLEGAL_GENERATION"))
	// A commit concurrent with the rebalance may still be accepted.
	c := h.Invoke(1, Op{Kind: Commit, Group: "g", Topic: "t", Offset: 7, Generation: 6})
	assign(h, 2, 7, 0)
	h.Ok(c, Result{})
	expectOnly(t, Check(h), DoubleAssignment, 1)
}

func TestLostCommit(t *testing.T) {
	t.Run("acknowledged commit not read back", func(t *testing.T) {
		h := newLogical()
		commitOk(h, 1, 5)
		fetchOk(h, 2, NoOffset)
		expectOnly(t, Check(h), LostCommit, 1)
	})
	t.Run("older value after newer", func(t *testing.T) {
		h := newLogical()
		commitOk(h, 1, 5)
		commitOk(h, 1, 7)
		fetchOk(h, 2, 7)
		fetchOk(h, 2, 5)
		expectOnly(t, Check(h), LostCommit, 1)
	})
	t.Run("failed commit read", func(t *testing.T) {
		h := newLogical()
		commitOk(h, 1, 5)
		id := h.Invoke(1, Op{Kind: Commit, Group: "g", Topic: "t", Offset: 9})
		h.Fail(id, errors.New("ILLEGAL_GENERATION"))
		fetchOk(h, 2, 9)
		expectOnly(t, Check(h), LostCommit, 1)
	})
	t.Run("concurrent commit either way", func(t *testing.T) {
		h := newLogical()
		c := h.Invoke(1, Op{Kind: Commit, Group: "g", Topic: "t", Offset: 5})
		fetchOk(h, 2, NoOffset)
		fetchOk(h, 2, 5)
		h.Ok(c, Result{})
		fetchOk(h, 2, 5)
		expectOnly(t, Check(h), LostCommit, 0)
	})
}

func TestFindingsBounded(t *testing.T) {
	h := newLogical()
	for i := 0; i < 3*MaxFindings; i++ {
		sendOk(h, 1, 0, string(rune('a'+i)), int64(i))
	}
	h.Drain("t", 0, nil)
	rep := Check(h)
	if rep.Counts[Lost] != 3*MaxFindings || len(rep.Findings[Lost]) != MaxFindings {
		t.Fatalf("count %d, findings %d", rep.Counts[Lost], len(rep.Findings[Lost]))
	}
	if !strings.Contains(rep.String(), "and 20 more") {
		t.Errorf("report does not say how many were left out:\n%s", rep)
	}
}

func TestConcurrentRecording(t *testing.T) {
	h := New()
	var wg sync.WaitGroup
	for p := 0; p < 8; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				id := h.Invoke(p, Op{Kind: Send, Topic: "t", Partition: int32(p), Value: string(rune(p*1000 + i))})
				h.Ok(id, Result{Offset: int64(i)})
			}
		}(p)
	}
	wg.Wait()
	ops := h.Ops()
	if len(ops) != 800 {
		t.Fatalf("got %d ops", len(ops))
	}
	for _, o := range ops {
		if o.Type != Ok || o.Completed < o.Invoked {
			t.Fatalf("bad op %s", o)
		}
	}
	rep := Check(h)
	if rep.Counts[Lost] != 800 {
		t.Fatalf("lost: got %d, want 800 (nothing drained)", rep.Counts[Lost])
	}
}

func TestCompletingTwicePanics(t *testing.T) {
	h := newLogical()
	id := h.Invoke(1, Op{Kind: Send, Topic: "t"})
	h.Ok(id, Result{})
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	h.Fail(id, nil)
}
