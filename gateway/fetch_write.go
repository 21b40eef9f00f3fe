package gateway

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch answers are almost all record bytes, already in memory as read from
// the segments. Encoding them with kmsg would copy every byte once more into
// the answer buffer; instead the answer is encoded with a small marker in
// place of each partition's records, and written as a vector (writev) of the
// encoded pieces and the record slices themselves. The markers are found
// again by content: 8 random bytes fixed at start-up plus the partition's
// index, which nothing else in an answer (names, errors, offsets) contains.
// Any surprise (a marker not found where expected) falls back to the plain
// encoding, so this path can only be faster, never different.

// vectoredMin is the record bytes below which the plain encoding is cheaper
// than a vectored write.
const vectoredMin = 64 << 10

var markerMagic = func() [8]byte {
	var m [8]byte
	rand.Read(m[:])
	return m
}()

func marker(i int) []byte {
	m := make([]byte, 16)
	copy(m, markerMagic[:])
	binary.BigEndian.PutUint64(m[8:], uint64(i))
	return m
}

// writeFetchVectored writes f as the answer to corr without copying its
// record bytes, reporting false (having written nothing) when it does not
// apply and the caller should encode the answer plainly.
func (c *conn) writeFetchVectored(corr int32, f *kmsg.FetchResponse) (bool, error) {
	pieces, buf, ok := encodeFetchVectored(c.wbuf[:0], corr, f)
	c.wbuf = buf
	if !ok {
		return false, nil
	}
	// Answers already buffered go first, in order.
	c.nc.SetWriteDeadline(time.Now().Add(c.server.cfg.WriteTimeout))
	if err := c.w.Flush(); err != nil {
		return true, err
	}
	nb := net.Buffers(pieces)
	_, err := nb.WriteTo(c.nc)
	return true, err
}

// encodeFetchVectored frames f (size, correlation id, header tags) into buf
// with markers for the records and returns the pieces to write in order, buf
// (to reuse), and whether the vectored form applies.
func encodeFetchVectored(buf []byte, corr int32, f *kmsg.FetchResponse) ([][]byte, []byte, bool) {
	var recs []*[]byte
	total := 0
	for i := range f.Topics {
		for j := range f.Topics[i].Partitions {
			p := &f.Topics[i].Partitions[j]
			if len(p.RecordBatches) > 0 {
				recs = append(recs, &p.RecordBatches)
				total += len(p.RecordBatches)
			}
		}
	}
	if total < vectoredMin {
		return nil, buf, false
	}
	saved := make([][]byte, len(recs))
	for i, r := range recs {
		saved[i], *r = *r, marker(i)
	}
	buf = append(buf, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(buf[4:], uint32(corr))
	if f.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = f.AppendTo(buf)
	for i, r := range recs {
		*r = saved[i]
	}
	pieces, ok := splice(buf, saved, f.IsFlexible())
	if !ok {
		return nil, buf, false
	}
	size := -4
	for _, p := range pieces {
		size += len(p)
	}
	binary.BigEndian.PutUint32(buf[0:], uint32(size))
	return pieces, buf, true
}

// splice cuts the encoded answer at each marker and puts the records there,
// with their true length prefix in place of the marker's (an int32, or a
// compact uvarint of length+1 in flexible versions).
func splice(buf []byte, recs [][]byte, flexible bool) ([][]byte, bool) {
	pieces := make([][]byte, 0, 3*len(recs)+1)
	prefixes := make([]byte, 0, 5*len(recs)) // never grows: slices stay valid
	last := 0
	for i, r := range recs {
		m := bytes.Index(buf[last:], marker(i))
		if m < 0 {
			return nil, false
		}
		m += last
		var start int
		p0 := len(prefixes)
		if flexible {
			if m < 1 || buf[m-1] != 17 { // uvarint(16+1)
				return nil, false
			}
			start = m - 1
			prefixes = binary.AppendUvarint(prefixes, uint64(len(r))+1)
		} else {
			if m < 4 || binary.BigEndian.Uint32(buf[m-4:]) != 16 {
				return nil, false
			}
			start = m - 4
			prefixes = binary.BigEndian.AppendUint32(prefixes, uint32(len(r)))
		}
		if start < last {
			return nil, false
		}
		pieces = append(pieces, buf[last:start], prefixes[p0:], r)
		last = m + 16
	}
	if bytes.Contains(buf[last:], markerMagic[:]) {
		return nil, false
	}
	return append(pieces, buf[last:]), true
}
