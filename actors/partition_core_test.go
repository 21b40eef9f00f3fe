package actors

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/persistence"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

func testBatch(t *testing.T, n int, p recordbatch.Producer) []byte {
	t.Helper()
	recs := make([]recordbatch.Record, n)
	for i := range recs {
		recs[i] = recordbatch.Record{Timestamp: 1000 + int64(i), Value: []byte{byte(i)}}
	}
	b, err := recordbatch.Build(recs, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// produceAndApply runs a produce through the core as the shell would, without
// a disk: the append "succeeds" and the state advances.
func produceAndApply(c *partitionCore, b []byte) produceDecision {
	d := c.decideProduce(&fluxopb.ProduceRequest{Records: b})
	if d.append != nil {
		c.applyAppended(d.append)
	}
	return d
}

func TestCoreAssignsDenseOffsets(t *testing.T) {
	c := newPartitionCore(persistence.NewCheckpoint(), 1<<20)
	for i, n := range []int{3, 1, 5} {
		d := produceAndApply(c, testBatch(t, n, recordbatch.NoProducer))
		if d.append == nil || d.reply.ErrorCode != 0 {
			t.Fatalf("batch %d: %+v", i, d.reply)
		}
	}
	if c.logEnd() != 9 {
		t.Fatalf("log end %d, want 9", c.logEnd())
	}
	if c.hw != 0 {
		t.Fatalf("hw moved before any sync: %d", c.hw)
	}
}

func TestCoreHoldsRepliesUntilSynced(t *testing.T) {
	c := newPartitionCore(persistence.NewCheckpoint(), 1<<20)
	d1 := produceAndApply(c, testBatch(t, 2, recordbatch.NoProducer)) // 0-1
	c.enqueue(d1.waitOffset, d1.reply, "a")
	d2 := produceAndApply(c, testBatch(t, 2, recordbatch.NoProducer)) // 2-3
	c.enqueue(d2.waitOffset, d2.reply, "b")
	if got := c.synced(2); len(got) != 1 || got[0].token != "a" {
		t.Fatalf("sync to 2 released %v", got)
	}
	if got := c.synced(2); len(got) != 0 {
		t.Fatalf("repeat sync released %v", got)
	}
	if got := c.synced(100); len(got) != 1 || got[0].token != "b" || c.hw != 4 {
		t.Fatalf("sync past end released %v, hw %d (want bounded to 4)", got, c.hw)
	}
}

func TestCoreRejectsBadBatches(t *testing.T) {
	good := testBatch(t, 2, recordbatch.NoProducer)
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 1
	two := append(append([]byte(nil), good...), good...)
	cases := []struct {
		name string
		b    []byte
		max  int32
		want *kerr.Error
	}{
		{"crc", corrupt, 1 << 20, kerr.CorruptMessage},
		{"truncated", good[:len(good)-2], 1 << 20, kerr.CorruptMessage},
		{"two batches", two, 1 << 20, kerr.InvalidRecord},
		{"too large", good, int32(len(good) - 1), kerr.MessageTooLarge},
		{"garbage", []byte{1, 2, 3}, 1 << 20, kerr.CorruptMessage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newPartitionCore(persistence.NewCheckpoint(), tc.max)
			d := c.decideProduce(&fluxopb.ProduceRequest{Records: tc.b})
			if d.append != nil || d.reply.ErrorCode != int32(tc.want.Code) {
				t.Fatalf("got code %d append %v, want %s", d.reply.ErrorCode, d.append != nil, tc.want.Message)
			}
			if c.logEnd() != 0 {
				t.Fatal("rejected batch moved the log end")
			}
		})
	}
}

func TestCoreIdempotentProducer(t *testing.T) {
	c := newPartitionCore(persistence.NewCheckpoint(), 1<<20)
	p := func(epoch int16, seq int32) recordbatch.Producer {
		return recordbatch.Producer{ID: 42, Epoch: epoch, Sequence: seq}
	}

	first := produceAndApply(c, testBatch(t, 3, p(0, 0))) // seqs 0-2, offsets 0-2
	if first.append == nil {
		t.Fatal("first batch not appended")
	}
	produceAndApply(c, testBatch(t, 2, p(0, 3))) // seqs 3-4, offsets 3-4

	// A retry of the first batch is answered with its original offset and
	// appends nothing.
	dup := produceAndApply(c, testBatch(t, 3, p(0, 0)))
	if dup.append != nil || dup.reply.ErrorCode != 0 || dup.reply.BaseOffset != 0 || !dup.wait || dup.waitOffset != 2 {
		t.Fatalf("duplicate: %+v wait %v@%d", dup.reply, dup.wait, dup.waitOffset)
	}
	gap := produceAndApply(c, testBatch(t, 1, p(0, 9)))
	if gap.reply.ErrorCode != int32(kerr.OutOfOrderSequenceNumber.Code) {
		t.Fatalf("gap: %+v", gap.reply)
	}
	newEpochBadSeq := produceAndApply(c, testBatch(t, 1, p(1, 5)))
	if newEpochBadSeq.reply.ErrorCode != int32(kerr.OutOfOrderSequenceNumber.Code) {
		t.Fatalf("new epoch not at 0: %+v", newEpochBadSeq.reply)
	}
	bumped := produceAndApply(c, testBatch(t, 1, p(1, 0)))
	if bumped.append == nil {
		t.Fatalf("new epoch at 0 refused: %+v", bumped.reply)
	}
	old := produceAndApply(c, testBatch(t, 1, p(0, 5)))
	if old.reply.ErrorCode != int32(kerr.InvalidProducerEpoch.Code) {
		t.Fatalf("old epoch: %+v", old.reply)
	}
	if c.logEnd() != 6 {
		t.Fatalf("log end %d, want 6 (3+2+1)", c.logEnd())
	}
}

func TestCoreOldDuplicateBeyondWindow(t *testing.T) {
	c := newPartitionCore(persistence.NewCheckpoint(), 1<<20)
	for seq := int32(0); seq < 7; seq++ {
		produceAndApply(c, testBatch(t, 1, recordbatch.Producer{ID: 1, Epoch: 0, Sequence: seq}))
	}
	// Sequence 0 fell out of the five remembered batches.
	d := produceAndApply(c, testBatch(t, 1, recordbatch.Producer{ID: 1, Epoch: 0, Sequence: 0}))
	if d.append != nil || d.reply.ErrorCode != int32(kerr.DuplicateSequenceNumber.Code) {
		t.Fatalf("old duplicate: %+v", d.reply)
	}
}

func TestSeqBeforeWraps(t *testing.T) {
	const max = int32(1<<31 - 1)
	cases := []struct {
		a, b int32
		want bool
	}{{1, 2, true}, {2, 1, false}, {max, 0, true}, {0, max, false}, {5, 5, false}}
	for _, tc := range cases {
		if got := seqBefore(tc.a, tc.b); got != tc.want {
			t.Errorf("seqBefore(%d,%d)=%v", tc.a, tc.b, got)
		}
	}
}
