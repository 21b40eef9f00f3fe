// Package history records the operations of Kafka clients against a broker,
// Jepsen style, and checks the recorded history for the failures listed in
// docs/testing.md (in this repository): lost, inconsistent-offsets, duplicate, aborted-read,
// nonmonotonic-send, poll-skip, nonmonotonic-poll, double-assignment and
// lost-commit.
//
// It is pure data and checks, with no dependency on the broker, so that
// users' tests and chaos runs can both use it.
//
// Every operation is recorded as an invocation and then one completion: Ok
// (it took effect, with its result), Fail (it definitely did not take
// effect: only for errors that guarantee nothing was appended, such as
// NOT_ENOUGH_REPLICAS) or Info (unknown outcome: timeouts, disconnects,
// NOT_ENOUGH_REPLICAS_AFTER_APPEND). After healing every fault, a fresh
// consumer drains every partition and the drain is recorded with Drain.
//
//	h := history.New()
//
//	// In each client goroutine:
//	id := h.Invoke(proc, history.Op{Kind: history.Send, Topic: "t", Partition: 0, Value: "v17"})
//	off, err := produce(...)
//	switch {
//	case err == nil:
//		h.Ok(id, history.Result{Offset: off})
//	case definitelyNotAppended(err):
//		h.Fail(id, err)
//	default:
//		h.Info(id, err)
//	}
//
//	id = h.Invoke(proc, history.Op{Kind: history.Poll, Topic: "t", Partition: 0, Epoch: generation})
//	h.Ok(id, history.Result{Records: []history.Record{{Offset: 4, Value: "v3"}}})
//
//	// After healing:
//	h.Drain("t", 0, readEverything("t", 0))
//	if rep := history.Check(h); rep.Failures() > 0 {
//		t.Fatalf("history check failed:\n%s", rep)
//	}
//
// Families, in short: lost (an ok send not in the drain at its acknowledged
// offset); inconsistent-offsets (one offset seen with two values across
// acknowledgements, polls and the drain); duplicate (one value at two
// offsets); aborted-read (a value of a failed send read by a poll or the
// drain); nonmonotonic-send (send A returned before send B began on one
// partition, yet off(A) >= off(B)); poll-skip and nonmonotonic-poll (within
// one process, partition and assignment Epoch, successive polled offsets
// skip a drained offset, or go backwards or repeat); double-assignment (two
// processes own one partition in one group generation, or an ok commit
// carries a generation older than one already assigned before it began);
// lost-commit (commits and fetch-commits per group and partition are not
// linearizable as a register, checked with porcupine).
//
// Values must be unique within one history (e.g. a counter per test): the
// duplicate and aborted-read checks identify records by value.
package history
