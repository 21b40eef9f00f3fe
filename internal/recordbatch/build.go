package recordbatch

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record is one record of a batch, as a producer sends it or a consumer reads
// it back.
type Record struct {
	Offset    int64
	Timestamp int64 // milliseconds since the epoch
	Key       []byte
	Value     []byte
	Headers   []RecordHeader
}

// RecordHeader is one key/value header of a record.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Producer carries the idempotence fields of a batch; the zero value of
// NoProducer marks a non-idempotent batch.
type Producer struct {
	ID       int64
	Epoch    int16
	Sequence int32
}

// NoProducer is the producer of a non-idempotent batch.
var NoProducer = Producer{ID: -1, Epoch: -1, Sequence: -1}

// Build encodes records as one uncompressed v2 batch with base offset 0. The
// records' timestamps become deltas from the first record's.
func Build(records []Record, p Producer) ([]byte, error) {
	if len(records) == 0 {
		return nil, fmt.Errorf("%w: no records", ErrInvalid)
	}
	first := records[0].Timestamp
	maxTS := first
	var body []byte
	for i, r := range records {
		if r.Timestamp > maxTS {
			maxTS = r.Timestamp
		}
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp - first,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		// Length counts the bytes after its own varint; with Length 0 that
		// varint is one byte.
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		body = kr.AppendTo(body)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		Attributes:           0,
		LastOffsetDelta:      int32(len(records) - 1),
		FirstTimestamp:       first,
		MaxTimestamp:         maxTS,
		ProducerID:           p.ID,
		ProducerEpoch:        p.Epoch,
		FirstSequence:        p.Sequence,
		NumRecords:           int32(len(records)),
		Records:              body,
	}
	out := rb.AppendTo(nil)
	// kmsg writes Records as raw bytes; fix length and CRC afterwards.
	putInt32(out[8:], int32(len(out)-lengthFieldEnd))
	putUint32(out[17:], Checksum(out))
	return out, nil
}

func putInt32(b []byte, v int32) { putUint32(b, uint32(v)) }

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
