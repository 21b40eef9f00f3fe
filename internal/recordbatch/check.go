package recordbatch

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// errRecords is a batch whose CRC holds but whose records do not decode.
var errRecords = errors.New("invalid records")

// CheckRecords checks what the CRC cannot: that the records inside the single
// batch b decode, are as many as the header says, and carry offset deltas 0,
// 1, 2, .... It returns nil for anything the partition core reports more
// precisely (a header that does not parse, several batches, a CRC mismatch:
// the CRC is only computed here on failure, so a good batch is checksummed
// once, by the core). On failure it returns the index of the bad record, or
// -1 when no single record is to blame.
func CheckRecords(b []byte) (int32, error) {
	h, err := ParseHeader(b)
	if err != nil || h.Size() != len(b) || h.Control() || h.RecordCount < 0 {
		return -1, nil
	}
	var idx int32
	if h.Compression() == CompressionNone {
		idx, err = walkRecords(b[HeaderSize:], h.RecordCount)
	} else {
		idx, err = decodeRecords(b, h)
	}
	if err == nil && h.RecordCount > 0 && int64(h.LastOffsetDelta) != int64(h.RecordCount)-1 {
		idx, err = -1, fmt.Errorf("%w: last offset delta %d with %d records", errRecords, h.LastOffsetDelta, h.RecordCount)
	}
	if err != nil && Checksum(b) != h.CRC {
		return -1, nil // corrupt, not invalid: the core answers CORRUPT_MESSAGE
	}
	return idx, err
}

// inMemoryCheckBytes is the largest decompressed batch checked in memory
// (a pooled buffer, walked without reading byte by byte); larger ones are
// checked by streaming, so a decompression bomb costs at most this much.
const inMemoryCheckBytes = 8 << 20

var checkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1<<20); return &b }}

// decodeRecords checks a compressed batch. It decompresses into a pooled
// buffer and walks the records in memory; past inMemoryCheckBytes it goes on
// by streaming through a small buffer, so memory stays bounded whatever the
// record count or compression ratio claims (at most
// MaxDecompressedBytes are inflated in all).
func decodeRecords(b []byte, h Header) (int32, error) {
	body := b[HeaderSize:]
	bp := checkBufs.Get().(*[]byte)
	defer checkBufs.Put(bp)
	if h.Compression() == CompressionSnappy && !bytes.HasPrefix(body, xerialMagic) {
		if n, err := s2.DecodedLen(body); err == nil && n <= inMemoryCheckBytes {
			out, err := s2.Decode((*bp)[:cap(*bp)], body)
			if err != nil {
				return -1, fmt.Errorf("%w: snappy: %v", errRecords, err)
			}
			*bp = out[:0]
			return walkRecords(out, h.RecordCount)
		}
	}
	r, closeFn, err := newDecompressor(h.Compression(), body)
	if err != nil {
		return -1, fmt.Errorf("%w: %v", errRecords, err)
	}
	defer closeFn()
	// Read up to inMemoryCheckBytes+1 into the pooled buffer.
	buf := (*bp)[:0]
	for len(buf) <= inMemoryCheckBytes {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), inMemoryCheckBytes+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			*bp = buf[:0]
			return walkRecords(buf, h.RecordCount)
		}
		if err != nil {
			*bp = buf[:0]
			return -1, fmt.Errorf("%w: decompress: %v", errRecords, err)
		}
	}
	*bp = buf[:0]
	return streamRecords(io.MultiReader(bytes.NewReader(buf), r), h.RecordCount)
}

// streamRecords walks count records on a decompressed stream.
func streamRecords(r io.Reader, count int32) (int32, error) {
	sr := &streamReader{r: bufio.NewReaderSize(io.LimitReader(r, MaxDecompressedBytes+1), 32<<10)}
	for i := int32(0); i < count; i++ {
		if err := sr.record(int64(i)); err != nil {
			if sr.n > MaxDecompressedBytes {
				return -1, fmt.Errorf("%w: decompresses past %d bytes", errRecords, MaxDecompressedBytes)
			}
			return i, fmt.Errorf("%w: record %d: %v", errRecords, i, err)
		}
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		if err != nil {
			return -1, fmt.Errorf("%w: decompress: %v", errRecords, err)
		}
		return -1, fmt.Errorf("%w: data after the last of %d records", errRecords, count)
	}
	return -1, nil
}

// streamReader walks records on a decompressed stream, counting bytes.
type streamReader struct {
	r *bufio.Reader
	n int64 // bytes consumed
}

func (s *streamReader) ReadByte() (byte, error) {
	c, err := s.r.ReadByte()
	if err == nil {
		s.n++
	}
	return c, err
}

// record checks one record: its length, then the fields inside it, never
// reading past that length.
func (s *streamReader) record(index int64) error {
	length, err := binary.ReadVarint(s)
	if err != nil || length < 1 || length > MaxDecompressedBytes {
		return errors.New("bad length")
	}
	end := s.n + length
	left := func() int64 { return end - s.n }
	varint := func(what string) (int64, error) {
		v, err := binary.ReadVarint(s)
		if err != nil || s.n > end {
			return 0, errors.New("bad " + what)
		}
		return v, nil
	}
	skip := func(what string, nullable bool) error {
		l, err := varint(what + " length")
		if err != nil {
			return err
		}
		if l == -1 && nullable {
			return nil
		}
		if l < 0 || l > left() {
			return errors.New("bad " + what + " length")
		}
		d, err := s.r.Discard(int(l))
		s.n += int64(d)
		if err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		return nil
	}
	if _, err := s.ReadByte(); err != nil { // attributes
		return errors.New("truncated")
	}
	if _, err := varint("timestamp delta"); err != nil {
		return err
	}
	delta, err := varint("offset delta")
	if err != nil {
		return err
	}
	if delta != index {
		return fmt.Errorf("offset delta %d, want %d", delta, index)
	}
	if err := skip("key", true); err != nil {
		return err
	}
	if err := skip("value", true); err != nil {
		return err
	}
	headers, err := varint("header count")
	if err != nil {
		return err
	}
	if headers < 0 || headers > left() {
		return errors.New("bad header count")
	}
	for i := int64(0); i < headers; i++ {
		if err := skip("header key", false); err != nil {
			return err
		}
		if err := skip("header value", true); err != nil {
			return err
		}
	}
	if left() != 0 {
		return fmt.Errorf("length %d does not match its fields", length)
	}
	return nil
}

// xerialMagic starts the framed snappy format the Java client writes.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// snappyReader decodes a snappy block, or the Java client's xerial framing
// of blocks, one block at a time, within MaxDecompressedBytes in total.
type snappyReader struct {
	body   []byte
	framed bool
	done   bool // unframed: the one block was decoded
	buf    []byte
	cur    []byte
	total  int
}

func newSnappyReader(body []byte) *snappyReader {
	if bytes.HasPrefix(body, xerialMagic) && len(body) >= 16 {
		return &snappyReader{body: body[16:], framed: true}
	}
	return &snappyReader{body: body}
}

func (x *snappyReader) Read(p []byte) (int, error) {
	for len(x.cur) == 0 {
		var block []byte
		switch {
		case !x.framed && x.done, x.framed && len(x.body) == 0:
			return 0, io.EOF
		case !x.framed:
			block, x.done = x.body, true
		default:
			if len(x.body) < 4 {
				return 0, errors.New("snappy: truncated xerial chunk")
			}
			n := binary.BigEndian.Uint32(x.body)
			x.body = x.body[4:]
			if uint64(n) > uint64(len(x.body)) {
				return 0, errors.New("snappy: bad xerial chunk")
			}
			block, x.body = x.body[:n], x.body[n:]
		}
		n, err := s2.DecodedLen(block)
		if err != nil || n > MaxDecompressedBytes-x.total {
			return 0, errors.New("snappy: bad decoded length")
		}
		if x.buf, err = s2.Decode(x.buf[:cap(x.buf)], block); err != nil {
			return 0, fmt.Errorf("snappy: %v", err)
		}
		x.total += len(x.buf)
		x.cur = x.buf
	}
	n := copy(p, x.cur)
	x.cur = x.cur[n:]
	return n, nil
}

// walkRecords checks count uncompressed records without allocating: each is
// a varint length and that many bytes holding attributes, timestamp delta,
// offset delta (which must be the record's index), key, value and headers,
// and together they fill body exactly.
func walkRecords(body []byte, count int32) (int32, error) {
	if int64(count) > int64(len(body)) {
		return -1, fmt.Errorf("%w: %d records in %d bytes", errRecords, count, len(body))
	}
	for i := int32(0); i < count; i++ {
		length, n := varint(body)
		if n <= 0 || length < 1 || length > int64(len(body)-n) {
			return i, fmt.Errorf("%w: record %d: bad length", errRecords, i)
		}
		rec := body[n : n+int(length)]
		body = body[n+int(length):]
		if err := walkRecord(rec[1:], int64(i)); err != nil { // rec[0]: attributes
			return i, fmt.Errorf("%w: record %d: %v", errRecords, i, err)
		}
	}
	if len(body) != 0 {
		return -1, fmt.Errorf("%w: %d bytes after the last record", errRecords, len(body))
	}
	return -1, nil
}

// walkRecord checks the fields of one record after its attributes.
func walkRecord(r []byte, index int64) error {
	_, n := varint(r)
	if n <= 0 {
		return errors.New("bad timestamp delta")
	}
	r = r[n:]
	delta, n := varint(r)
	if n <= 0 {
		return errors.New("bad offset delta")
	}
	if delta != index {
		return fmt.Errorf("offset delta %d, want %d", delta, index)
	}
	r = r[n:]
	var ok bool
	if r, ok = skipBytes(r, true); !ok {
		return errors.New("bad key")
	}
	if r, ok = skipBytes(r, true); !ok {
		return errors.New("bad value")
	}
	headers, n := varint(r)
	if n <= 0 || headers < 0 || headers > int64(len(r)) {
		return errors.New("bad header count")
	}
	r = r[n:]
	for h := int64(0); h < headers; h++ {
		if r, ok = skipBytes(r, false); !ok {
			return errors.New("bad header key")
		}
		if r, ok = skipBytes(r, true); !ok {
			return errors.New("bad header value")
		}
	}
	if len(r) != 0 {
		return fmt.Errorf("%d bytes after the headers", len(r))
	}
	return nil
}

// skipBytes skips a varint-length-prefixed field (-1: null, if allowed).
func skipBytes(r []byte, nullable bool) ([]byte, bool) {
	l, n := varint(r)
	switch {
	case n <= 0:
		return nil, false
	case l == -1 && nullable:
		return r[n:], true
	case l < 0 || l > int64(len(r)-n):
		return nil, false
	}
	return r[n+int(l):], true
}

// varint reads a zig-zag varint (Kafka's record fields); n <= 0 if malformed.
func varint(b []byte) (int64, int) {
	var u uint64
	for i := 0; i < len(b) && i < 10; i++ {
		u |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return int64(u>>1) ^ -int64(u&1), i + 1
		}
	}
	return 0, 0
}

// newDecompressor returns a reader of the decompressed records section for
// codec, and a function to release it. Errors name the codec.
func newDecompressor(codec int, body []byte) (io.Reader, func(), error) {
	switch codec {
	case CompressionGzip:
		gz, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %v", err)
		}
		return gz, func() {}, nil
	case CompressionSnappy:
		return newSnappyReader(body), func() {}, nil
	case CompressionLZ4:
		return lz4.NewReader(bytes.NewReader(body)), func() {}, nil
	case CompressionZstd:
		zr, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(MaxDecompressedBytes))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %v", err)
		}
		return zr, zr.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown compression %d", codec)
}
