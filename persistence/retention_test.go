package persistence

import "testing"

func TestRetentionStart(t *testing.T) {
	segs := []SegmentInfo{
		{BaseOffset: 0, NextOffset: 100, Bytes: 1000, MaxTimestamp: 1000},
		{BaseOffset: 100, NextOffset: 200, Bytes: 1000, MaxTimestamp: 2000},
		{BaseOffset: 200, NextOffset: 250, Bytes: 500, MaxTimestamp: 3000, Active: true},
	}
	empty := []SegmentInfo{{BaseOffset: 250, NextOffset: 250, MaxTimestamp: -1, Active: true}}
	cases := []struct {
		name                  string
		segs                  []SegmentInfo
		start, now, ms, bytes int64
		want                  int64
	}{
		{"disabled", segs, 0, 10000, -1, -1, 0},
		{"nothing expired", segs, 0, 1500, 1000, -1, 0},
		{"first expired", segs, 0, 2500, 1000, -1, 100},
		{"boundary not older", segs, 0, 2000, 1000, -1, 0},
		{"two expired", segs, 0, 3500, 1000, -1, 200},
		{"all expired incl. active", segs, 0, 5000, 1000, -1, 250},
		{"size keeps newest", segs, 0, 0, -1, 1500, 100},
		{"size keeps active only", segs, 0, 0, -1, 0, 200},
		{"size fits", segs, 0, 0, -1, 2500, 0},
		{"start already past", segs, 150, 2500, 1000, -1, 150},
		{"either rule", segs, 0, 2500, 1000, 600, 200},
		{"empty active", empty, 250, 1 << 40, 0, 0, 250},
	}
	for _, c := range cases {
		if got := RetentionStart(c.segs, c.start, c.now, c.ms, c.bytes); got != c.want {
			t.Errorf("%s: got %d want %d", c.name, got, c.want)
		}
	}
}
