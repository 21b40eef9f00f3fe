package recordbatch

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
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
	out := make([]Record, 0, h.RecordCount)
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
	length, n := uvarint(b)
	if n <= 0 || length < 0 || int64(n)+length > int64(len(b)) {
		return 0, fmt.Errorf("%w: bad record length", ErrInvalid)
	}
	total := n + int(length)
	if err := kr.ReadFrom(b[:total]); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return total, nil
}

// uvarint reads a zig-zag varint as Kafka encodes record fields.
func uvarint(b []byte) (int64, int) {
	var u uint64
	for i := 0; i < len(b) && i < 10; i++ {
		u |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return int64(u>>1) ^ -int64(u&1), i + 1
		}
	}
	return 0, 0
}

func decompress(codec int, body []byte) ([]byte, error) {
	var r io.Reader
	switch codec {
	case CompressionGzip:
		gz, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrInvalid, err)
		}
		r = gz
	case CompressionSnappy:
		return snappyDecode(body)
	case CompressionLZ4:
		r = lz4.NewReader(bytes.NewReader(body))
	case CompressionZstd:
		zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderMaxMemory(MaxDecompressedBytes))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrInvalid, err)
		}
		defer zr.Close()
		r = zr
	default:
		return nil, fmt.Errorf("%w: unknown compression %d", ErrInvalid, codec)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxDecompressedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: decompress: %v", ErrInvalid, err)
	}
	if len(out) > MaxDecompressedBytes {
		return nil, fmt.Errorf("%w: decompresses past %d bytes", ErrInvalid, MaxDecompressedBytes)
	}
	return out, nil
}

// xerialMagic starts the framed snappy format the Java client writes.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

func snappyDecode(body []byte) ([]byte, error) {
	if bytes.HasPrefix(body, xerialMagic) && len(body) >= 16 {
		body = body[16:]
		var out []byte
		for len(body) > 0 {
			if len(body) < 4 {
				return nil, fmt.Errorf("%w: snappy: truncated xerial chunk", ErrInvalid)
			}
			n := int(uint32(body[0])<<24 | uint32(body[1])<<16 | uint32(body[2])<<8 | uint32(body[3]))
			body = body[4:]
			if n < 0 || n > len(body) {
				return nil, fmt.Errorf("%w: snappy: bad xerial chunk", ErrInvalid)
			}
			chunk, err := snappyBlock(body[:n])
			if err != nil {
				return nil, err
			}
			out = append(out, chunk...)
			if len(out) > MaxDecompressedBytes {
				return nil, fmt.Errorf("%w: decompresses past %d bytes", ErrInvalid, MaxDecompressedBytes)
			}
			body = body[n:]
		}
		return out, nil
	}
	return snappyBlock(body)
}

func snappyBlock(b []byte) ([]byte, error) {
	n, err := s2.DecodedLen(b)
	if err != nil || n > MaxDecompressedBytes {
		return nil, fmt.Errorf("%w: snappy: bad length", ErrInvalid)
	}
	out, err := s2.Decode(nil, b)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %v", ErrInvalid, err)
	}
	return out, nil
}
