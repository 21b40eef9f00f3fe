package recordbatch

import (
	"bytes"
	"errors"
	"testing"
)

func TestBuildValidateRecordsRoundTrip(t *testing.T) {
	in := []Record{
		{Timestamp: 1000, Key: []byte("k1"), Value: []byte("v1")},
		{Timestamp: 1005, Value: bytes.Repeat([]byte("x"), 300), Headers: []RecordHeader{{Key: "h", Value: []byte("hv")}}},
		{Timestamp: 999, Key: []byte("k3")},
	}
	b, err := Build(in, Producer{ID: 7, Epoch: 1, Sequence: 40})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Validate(b)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if h.RecordCount != 3 || h.LastOffsetDelta != 2 || h.MaxTimestamp != 1005 || h.ProducerID != 7 || h.BaseSequence != 40 || h.LastSequence() != 42 {
		t.Fatalf("header %+v", h)
	}
	SetBaseOffset(b, 100)
	SetLeaderEpoch(b, 3)
	if _, err := Validate(b); err != nil {
		t.Fatalf("offset rewrite broke the CRC: %v", err)
	}
	out, err := Records(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 {
		t.Fatalf("got %d records", len(out))
	}
	for i, r := range out {
		if r.Offset != 100+int64(i) || r.Timestamp != in[i].Timestamp || !bytes.Equal(r.Key, in[i].Key) || !bytes.Equal(r.Value, in[i].Value) {
			t.Fatalf("record %d = %+v, want %+v", i, r, in[i])
		}
	}
	if len(out[1].Headers) != 1 || out[1].Headers[0].Key != "h" || string(out[1].Headers[0].Value) != "hv" {
		t.Fatalf("headers %+v", out[1].Headers)
	}
}

func TestValidateRejects(t *testing.T) {
	b, _ := Build([]Record{{Value: []byte("v")}}, NoProducer)
	bad := append([]byte(nil), b...)
	bad[len(bad)-1] ^= 0xff
	if _, err := Validate(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped byte: %v", err)
	}
	if _, err := Validate(b[:len(b)-1]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
	magic := append([]byte(nil), b...)
	magic[16] = 1
	if _, err := Validate(magic); !errors.Is(err, ErrMagic) {
		t.Fatalf("magic: %v", err)
	}
	two := append(append([]byte(nil), b...), b...)
	parts, err := Split(two)
	if err != nil || len(parts) != 2 {
		t.Fatalf("split: %d %v", len(parts), err)
	}
	if _, err := Split(two[:len(two)-3]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("split partial: %v", err)
	}
}
