package recordbatch

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"testing"
)

// FuzzCheckRecords: the produce path's content check never panics, and
// whatever it lets through with a valid header and CRC decodes for a
// consumer (Records) with the record count the header claims.
func FuzzCheckRecords(f *testing.F) {
	recs := []Record{
		{Timestamp: 1, Key: []byte("k"), Value: []byte("v"), Headers: []RecordHeader{{Key: "h", Value: []byte("x")}}},
		{Timestamp: 2, Value: []byte("value")},
		{Timestamp: 3},
	}
	for n := 1; n <= len(recs); n++ {
		b, err := Build(recs[:n], NoProducer)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[HeaderSize:], int32(n), false)
		var gz bytes.Buffer
		w := gzip.NewWriter(&gz)
		w.Write(b[HeaderSize:])
		w.Close()
		f.Add(gz.Bytes(), int32(n), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, count int32, compressed bool) {
		if count < 1 || count > 1000 {
			return
		}
		b, _ := Build(recs[:1], NoProducer)
		b = append(b[:HeaderSize:HeaderSize], body...)
		binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
		if compressed {
			binary.BigEndian.PutUint16(b[21:], CompressionGzip)
		}
		binary.BigEndian.PutUint32(b[23:], uint32(count-1))
		binary.BigEndian.PutUint32(b[57:], uint32(count))
		binary.BigEndian.PutUint32(b[17:], Checksum(b))
		idx, err := CheckRecords(b)
		if err != nil {
			if idx >= count {
				t.Fatalf("record index %d of %d records", idx, count)
			}
			return
		}
		if _, verr := Validate(b); verr != nil {
			return
		}
		rs, rerr := Records(b)
		if rerr != nil || int32(len(rs)) != count {
			t.Fatalf("accepted a batch consumers cannot decode: %v (%d records, want %d)", rerr, len(rs), count)
		}
	})
}
