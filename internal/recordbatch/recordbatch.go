// Package recordbatch reads, checks and builds Kafka v2 record batches (magic 2).
//
// Wire format of the batch header (all big-endian), from KIP-98:
//
//	 0  baseOffset           int64
//	 8  batchLength          int32   bytes after this field
//	12  partitionLeaderEpoch int32
//	16  magic                int8    must be 2
//	17  crc                  uint32  CRC32C (Castagnoli) of bytes [21:]
//	21  attributes           int16   bits 0-2 compression, 3 timestamp type,
//	                                 4 transactional, 5 control
//	23  lastOffsetDelta      int32
//	27  firstTimestamp       int64
//	35  maxTimestamp         int64
//	43  producerId           int64
//	51  producerEpoch        int16
//	53  baseSequence         int32
//	57  recordCount          int32
//	61  records...
//
// baseOffset and partitionLeaderEpoch sit before the CRC'd range, so a broker
// assigns offsets in place and keeps the client's bytes otherwise unchanged.
package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// HeaderSize is the size of a v2 batch header.
const HeaderSize = 61

// lengthFieldEnd is where the bytes counted by batchLength begin.
const lengthFieldEnd = 12

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned for malformed input. ErrCorrupt maps to Kafka's
// CORRUPT_MESSAGE; ErrInvalid to INVALID_RECORD.
var (
	ErrTruncated = errors.New("recordbatch: truncated batch")
	ErrCorrupt   = errors.New("recordbatch: CRC mismatch")
	ErrMagic     = errors.New("recordbatch: unsupported magic (only v2 batches)")
	ErrInvalid   = errors.New("recordbatch: invalid batch")
)

// Compression codecs, from the low three attribute bits.
const (
	CompressionNone   = 0
	CompressionGzip   = 1
	CompressionSnappy = 2
	CompressionLZ4    = 3
	CompressionZstd   = 4
)

// Header is the decoded fixed part of a batch.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size is the number of bytes the whole batch occupies.
func (h Header) Size() int { return lengthFieldEnd + int(h.BatchLength) }

// LastOffset is the offset of the batch's last record.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression is the codec of the records section.
func (h Header) Compression() int { return int(h.Attributes & 0x7) }

// LogAppendTime reports whether the timestamps are the broker's.
func (h Header) LogAppendTime() bool { return h.Attributes&0x8 != 0 }

// Transactional reports whether the batch is part of a transaction.
func (h Header) Transactional() bool { return h.Attributes&0x10 != 0 }

// Control reports whether the batch is a control batch (transaction markers).
func (h Header) Control() bool { return h.Attributes&0x20 != 0 }

// Idempotent reports whether the batch carries a producer id.
func (h Header) Idempotent() bool { return h.ProducerID >= 0 }

// LastSequence is the sequence number of the batch's last record, wrapping at
// math.MaxInt32 as Kafka does.
func (h Header) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return -1
	}
	return int32((int64(h.BaseSequence) + int64(h.LastOffsetDelta)) % (1 << 31))
}

// ParseHeader decodes the header at the start of b without checking the CRC.
// It fails if b is shorter than the header or than the length it declares.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTruncated
	}
	h := Header{
		BaseOffset:           int64(binary.BigEndian.Uint64(b[0:])),
		BatchLength:          int32(binary.BigEndian.Uint32(b[8:])),
		PartitionLeaderEpoch: int32(binary.BigEndian.Uint32(b[12:])),
		Magic:                int8(b[16]),
		CRC:                  binary.BigEndian.Uint32(b[17:]),
		Attributes:           int16(binary.BigEndian.Uint16(b[21:])),
		LastOffsetDelta:      int32(binary.BigEndian.Uint32(b[23:])),
		FirstTimestamp:       int64(binary.BigEndian.Uint64(b[27:])),
		MaxTimestamp:         int64(binary.BigEndian.Uint64(b[35:])),
		ProducerID:           int64(binary.BigEndian.Uint64(b[43:])),
		ProducerEpoch:        int16(binary.BigEndian.Uint16(b[51:])),
		BaseSequence:         int32(binary.BigEndian.Uint32(b[53:])),
		RecordCount:          int32(binary.BigEndian.Uint32(b[57:])),
	}
	if h.Magic != 2 {
		return h, ErrMagic
	}
	if h.BatchLength < HeaderSize-lengthFieldEnd {
		return h, fmt.Errorf("%w: batch length %d below header size", ErrInvalid, h.BatchLength)
	}
	if len(b) < h.Size() {
		return h, ErrTruncated
	}
	return h, nil
}

// Checksum computes the CRC32C the header should carry.
func Checksum(batch []byte) uint32 {
	return crc32.Checksum(batch[21:], castagnoli)
}

// Validate parses the header of the single batch b, which must be exactly one
// batch long, and checks its CRC and the consistency of its counts.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() != len(b) {
		return h, fmt.Errorf("%w: declared %d bytes, have %d", ErrInvalid, h.Size(), len(b))
	}
	if Checksum(b) != h.CRC {
		return h, ErrCorrupt
	}
	if h.RecordCount < 0 || h.LastOffsetDelta < 0 {
		return h, fmt.Errorf("%w: negative record count or offset delta", ErrInvalid)
	}
	if !h.Control() && h.RecordCount == 0 {
		return h, fmt.Errorf("%w: empty batch", ErrInvalid)
	}
	if h.RecordCount > 0 && int64(h.LastOffsetDelta) != int64(h.RecordCount)-1 && h.Compression() == CompressionNone {
		// Uncompressed batches from a producer have dense deltas; compacted
		// batches only come from brokers, which we do not accept on produce.
		return h, fmt.Errorf("%w: last offset delta %d with %d records", ErrInvalid, h.LastOffsetDelta, h.RecordCount)
	}
	return h, nil
}

// Checked is a single batch that Validate accepted: its header parses, its
// size is exact and its CRC32C matches. Only Check makes one, so code taking
// a Checked knows the bytes were checksummed and need not do it again. The
// promise lasts as long as nobody changes the bytes under the CRC (base
// offset and leader epoch, outside it, may be rewritten).
type Checked struct{ b []byte }

// Check validates b as Validate does and returns it as a Checked batch.
func Check(b []byte) (Checked, Header, error) {
	h, err := Validate(b)
	if err != nil {
		return Checked{}, h, err
	}
	return Checked{b: b}, h, nil
}

// Bytes returns the batch.
func (c Checked) Bytes() []byte { return c.b }

// Split cuts b, a concatenation of batches, into single batches. A trailing
// partial batch is an error; so is a batch that fails ParseHeader.
func Split(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		h, err := ParseHeader(b)
		if err != nil {
			return nil, err
		}
		out = append(out, b[:h.Size()])
		b = b[h.Size():]
	}
	return out, nil
}

// SetBaseOffset rewrites the base offset in place; the CRC does not cover it.
func SetBaseOffset(b []byte, offset int64) {
	binary.BigEndian.PutUint64(b[0:], uint64(offset))
}

// SetLeaderEpoch rewrites the partition leader epoch in place; the CRC does not
// cover it.
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[12:], uint32(epoch))
}
