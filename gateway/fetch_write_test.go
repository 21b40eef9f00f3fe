package gateway

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/internal/recordbatch"
)

// The vectored fetch answer must be byte for byte the plain encoding, in
// every version served, whatever the mix of partitions with and without
// records, errors and tagged fields.
func TestFetchVectoredMatchesPlainEncoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	vectored := 0
	for v := int16(4); v <= 16; v++ {
		for round := 0; round < 20; round++ {
			f := kmsg.NewPtrFetchResponse()
			f.SetVersion(v)
			f.SessionID = rng.Int32()
			withRecords := 0
			for ti := 0; ti < 1+rng.IntN(3); ti++ {
				tp := kmsg.NewFetchResponseTopic()
				tp.Topic = "topic-" + string(rune('a'+ti))
				tp.TopicID[0] = byte(ti + 1)
				for pi := 0; pi < 1+rng.IntN(4); pi++ {
					p := kmsg.NewFetchResponseTopicPartition()
					p.Partition = int32(pi)
					p.HighWatermark = rng.Int64N(1 << 40)
					p.RecordBatches = []byte{}
					if rng.IntN(4) > 0 {
						// Sizes around the uvarint length boundaries.
						n := []int{1, 126, 127, 128, 16383, 16384, 70000, 1 << 20}[rng.IntN(8)]
						p.RecordBatches = make([]byte, n)
						for k := range p.RecordBatches {
							p.RecordBatches[k] = byte(rng.Uint32())
						}
						withRecords++
					} else if rng.IntN(2) == 0 {
						p.ErrorCode = 1
					}
					if v >= 12 && rng.IntN(3) == 0 {
						p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = 3, 99
					}
					tp.Partitions = append(tp.Partitions, p)
				}
				f.Topics = append(f.Topics, tp)
			}
			plain := append([]byte{0, 0, 0, 0, 0, 0, 0, 42}, func() []byte {
				if f.IsFlexible() {
					return []byte{0}
				}
				return nil
			}()...)
			plain = f.AppendTo(plain)
			binary.BigEndian.PutUint32(plain, uint32(len(plain)-4))

			pieces, _, ok := encodeFetchVectored(nil, 42, f)
			total := 0
			for _, tp := range f.Topics {
				for _, p := range tp.Partitions {
					total += len(p.RecordBatches)
				}
			}
			if !ok {
				if total >= vectoredMin {
					t.Fatalf("v%d: vectored encoding refused an answer with %d record bytes", v, total)
				}
				continue
			}
			vectored++
			if got := bytes.Join(pieces, nil); !bytes.Equal(got, plain) {
				t.Fatalf("v%d round %d: vectored answer differs from the plain encoding (%d vs %d bytes)", v, round, len(got), len(plain))
			}
			// The records were restored for the pool release.
			for _, tp := range f.Topics {
				for _, p := range tp.Partitions {
					if bytes.HasPrefix(p.RecordBatches, markerMagic[:]) {
						t.Fatalf("v%d: a marker was left in the answer", v)
					}
				}
			}
		}
	}
	if vectored < 100 {
		t.Fatalf("only %d of 260 answers took the vectored path", vectored)
	}
}

// trimBatches must cut exactly as a sequential read given the same limit:
// whole batches only, the first kept over the limit only with minOne.
func TestTrimBatches(t *testing.T) {
	var all []byte
	var sizes []int
	for i := 0; i < 3; i++ {
		b, err := recordbatch.Build([]recordbatch.Record{{Offset: int64(i), Value: make([]byte, 1000)}}, recordbatch.NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
		sizes = append(sizes, len(b))
	}
	one, two := sizes[0], sizes[0]+sizes[1]
	for _, c := range []struct {
		limit  int
		minOne bool
		want   int
	}{
		{len(all), false, len(all)},
		{len(all) - 1, false, two},
		{two, true, two},
		{one + 1, false, one},
		{one - 1, true, one}, // KIP-74: the first batch even if over the limit
		{one - 1, false, 0},
		{0, false, 0},
	} {
		in := append([]byte(nil), all...)
		if got := trimBatches(in, c.limit, c.minOne); len(got) != c.want {
			t.Errorf("limit %d minOne %v: %d bytes, want %d", c.limit, c.minOne, len(got), c.want)
		}
	}
}
