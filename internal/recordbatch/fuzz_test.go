package recordbatch

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"testing"
)

// FuzzValidateBatch feeds arbitrary bytes to Validate, ParseHeader, Split and
// Records: none may panic, and what they return must be consistent and
// bounded by the input (Records allocates per record only what the batch can
// hold, decompressing at most MaxDecompressedBytes).
func FuzzValidateBatch(f *testing.F) {
	recs := []Record{
		{Timestamp: 1700000000000, Key: []byte("k"), Value: []byte("v"), Headers: []RecordHeader{{Key: "h", Value: []byte("x")}}},
		{Timestamp: 1700000000005, Value: bytes.Repeat([]byte("ab"), 40)},
		{Timestamp: 1700000000001},
	}
	for _, p := range []Producer{NoProducer, {ID: 7, Epoch: 1, Sequence: 42}} {
		for n := 1; n <= len(recs); n++ {
			b, err := Build(recs[:n], p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
			f.Add(b[:len(b)-1])
			f.Add(append(append([]byte(nil), b...), b...))
			f.Add(gzipped(b))
		}
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, verr := Validate(b)
		if verr == nil {
			if h.Size() != len(b) || h.RecordCount < 1 && !h.Control() {
				t.Fatalf("Validate accepted an inconsistent batch: %+v (len %d)", h, len(b))
			}
		}
		if parts, err := Split(b); err == nil {
			total := 0
			for _, p := range parts {
				total += len(p)
			}
			if total != len(b) {
				t.Fatalf("Split covered %d of %d bytes", total, len(b))
			}
		}
		rs, err := Records(b)
		if err != nil {
			return
		}
		hh, _ := ParseHeader(b)
		if int32(len(rs)) != hh.RecordCount {
			t.Fatalf("Records returned %d records, header says %d", len(rs), hh.RecordCount)
		}
		if hh.Compression() == CompressionNone && len(rs) > len(b) {
			t.Fatalf("%d records from %d bytes", len(rs), len(b))
		}
		if verr == nil && hh.Compression() == CompressionNone {
			// A valid uncompressed batch rebuilt from its records keeps
			// every key, value and header.
			rb, err := Build(rs, Producer{ID: hh.ProducerID, Epoch: hh.ProducerEpoch, Sequence: hh.BaseSequence})
			if err != nil {
				t.Fatal(err)
			}
			again, err := Records(rb)
			if err != nil || len(again) != len(rs) {
				t.Fatalf("rebuilt batch: %v, %d records", err, len(again))
			}
			for i := range rs {
				if !bytes.Equal(again[i].Key, rs[i].Key) || !bytes.Equal(again[i].Value, rs[i].Value) || len(again[i].Headers) != len(rs[i].Headers) {
					t.Fatalf("record %d changed on rebuild: %+v vs %+v", i, again[i], rs[i])
				}
			}
		}
	})
}

// gzipped re-encodes batch b with its records section gzip-compressed.
func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b[HeaderSize:])
	w.Close()
	out := append(append([]byte(nil), b[:HeaderSize]...), buf.Bytes()...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-lengthFieldEnd))
	binary.BigEndian.PutUint16(out[21:], CompressionGzip)
	binary.BigEndian.PutUint32(out[17:], Checksum(out))
	return out
}
