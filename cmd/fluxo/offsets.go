package main

// Offset specifications shared by `consume --offset` and `group seek --to`,
// and their resolution to concrete offsets per partition.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

type offsetKind int

const (
	offsetStart   offsetKind = iota // the log start
	offsetEnd                       // the log end (the next offset written)
	offsetExact                     // offset n, clamped to the log
	offsetFromEnd                   // n before the log end, clamped to the start
	offsetTime                      // the first record at or after n milliseconds
)

type offsetSpec struct {
	kind offsetKind
	n    int64
}

const offsetSpecHelp = "start, end, N (an offset), -N (N before the end), or timestamp:MS (first record at or after a Unix time in ms; also timestamp:2006-01-02T15:04:05Z)"

func parseOffsetSpec(s string) (offsetSpec, error) {
	switch strings.ToLower(s) {
	case "start", "earliest", "beginning", "oldest":
		return offsetSpec{kind: offsetStart}, nil
	case "end", "latest", "newest":
		return offsetSpec{kind: offsetEnd}, nil
	}
	if rest, ok := strings.CutPrefix(s, "timestamp:"); ok {
		if ms, err := strconv.ParseInt(rest, 10, 64); err == nil && ms >= 0 {
			return offsetSpec{kind: offsetTime, n: ms}, nil
		}
		if t, err := time.Parse(time.RFC3339Nano, rest); err == nil {
			return offsetSpec{kind: offsetTime, n: t.UnixMilli()}, nil
		}
		return offsetSpec{}, fmt.Errorf("%q: want timestamp:MILLISECONDS or timestamp:RFC3339-TIME", s)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return offsetSpec{}, fmt.Errorf("%q: want %s", s, offsetSpecHelp)
	}
	if strings.HasPrefix(s, "-") {
		return offsetSpec{kind: offsetFromEnd, n: -n}, nil
	}
	return offsetSpec{kind: offsetExact, n: n}, nil
}

// kgoOffset is the spec as a franz-go reset offset.
func (o offsetSpec) kgoOffset() kgo.Offset {
	switch o.kind {
	case offsetEnd:
		return kgo.NewOffset().AtEnd()
	case offsetExact:
		return kgo.NewOffset().At(o.n)
	case offsetFromEnd:
		return kgo.NewOffset().AtEnd().Relative(-o.n)
	case offsetTime:
		return kgo.NewOffset().AfterMilli(o.n)
	default:
		return kgo.NewOffset().AtStart()
	}
}

type topicPartition struct {
	topic     string
	partition int32
}

// partitionBounds are a partition's log start and end offsets.
type partitionBounds struct{ start, end int64 }

// listBounds lists the log start and end offsets of every partition of
// topics.
func listBounds(ctx context.Context, adm *kadm.Client, topics ...string) (map[topicPartition]partitionBounds, error) {
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, err
	}
	out := map[topicPartition]partitionBounds{}
	var firstErr error
	ends.Each(func(e kadm.ListedOffset) {
		tp := topicPartition{e.Topic, e.Partition}
		if e.Err != nil {
			if firstErr == nil {
				firstErr = topicErr(e.Topic, e.Err, "")
			}
			return
		}
		b := partitionBounds{start: 0, end: e.Offset}
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok && s.Err == nil {
			b.start = s.Offset
		}
		out[tp] = b
	})
	return out, firstErr
}

// resolve turns the spec into an offset for every partition in bounds.
func (o offsetSpec) resolve(ctx context.Context, adm *kadm.Client, bounds map[topicPartition]partitionBounds) (map[topicPartition]int64, error) {
	out := make(map[topicPartition]int64, len(bounds))
	var byTime kadm.ListedOffsets
	if o.kind == offsetTime {
		topics := map[string]bool{}
		var names []string
		for tp := range bounds {
			if !topics[tp.topic] {
				topics[tp.topic] = true
				names = append(names, tp.topic)
			}
		}
		var err error
		if byTime, err = adm.ListOffsetsAfterMilli(ctx, o.n, names...); err != nil {
			return nil, err
		}
	}
	for tp, b := range bounds {
		var off int64
		switch o.kind {
		case offsetStart:
			off = b.start
		case offsetEnd:
			off = b.end
		case offsetExact:
			off = o.n
		case offsetFromEnd:
			off = b.end - o.n
		case offsetTime:
			off = b.end
			if l, ok := byTime.Lookup(tp.topic, tp.partition); ok && l.Err == nil && l.Offset >= 0 {
				off = l.Offset
			}
		}
		out[tp] = min(max(off, b.start), b.end)
	}
	return out, nil
}
