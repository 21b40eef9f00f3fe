package recordbatch

import (
	"fmt"
	"io"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// MaxDecompressedBytes caps what Records will inflate one batch to, so a
// decompression bomb cannot exhaust memory.
const MaxDecompressedBytes = 256 << 20

// Records decodes the records of the single batch b, decompressing if needed.
// Offsets and timestamps are absolute.
func Records(b []byte) ([]Record, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	body := b[HeaderSize:h.Size()]
	if c := h.Compression(); c != CompressionNone {
		if body, err = decompress(c, body); err != nil {
			return nil, err
		}
	}
	if h.RecordCount < 0 || int64(h.RecordCount) > int64(len(body)) {
		return nil, fmt.Errorf("%w: record count %d", ErrInvalid, h.RecordCount)
	}
	// The header's count is a claim: grow with what actually decodes.
	out := make([]Record, 0, min(h.RecordCount, 1024))
	for i := int32(0); i < h.RecordCount; i++ {
		var kr kmsg.Record
		n, err := readRecord(&kr, body)
		if err != nil {
			return nil, err
		}
		body = body[n:]
		r := Record{
			Offset:    h.BaseOffset + int64(kr.OffsetDelta),
			Timestamp: h.FirstTimestamp + kr.TimestampDelta64,
			Key:       kr.Key,
			Value:     kr.Value,
		}
		if h.LogAppendTime() {
			r.Timestamp = h.MaxTimestamp
		}
		for _, hd := range kr.Headers {
			r.Headers = append(r.Headers, RecordHeader{Key: hd.Key, Value: hd.Value})
		}
		out = append(out, r)
	}
	return out, nil
}

// readRecord decodes one length-prefixed record and returns the bytes used.
func readRecord(kr *kmsg.Record, b []byte) (int, error) {
	length, n := varint(b)
	if n <= 0 || length < 0 || int64(n)+length > int64(len(b)) {
		return 0, fmt.Errorf("%w: bad record length", ErrInvalid)
	}
	total := n + int(length)
	if err := kr.ReadFrom(b[:total]); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return total, nil
}

func decompress(codec int, body []byte) ([]byte, error) {
	r, closeFn, err := newDecompressor(codec, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	defer closeFn()
	out, err := io.ReadAll(io.LimitReader(r, MaxDecompressedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrInvalid, err)
	}
	if len(out) > MaxDecompressedBytes {
		return nil, fmt.Errorf("%w: decompresses past %d bytes", ErrInvalid, MaxDecompressedBytes)
	}
	return out, nil
}
