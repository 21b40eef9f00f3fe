package main

// fluxo consume: print records, from partitions or as a group member.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const consumeDoc = `
Print the records of TOPIC, one per line (by default the value), and keep
following new records until interrupted (Ctrl-C). -n N exits after N
records; --no-follow (-e) exits once the partitions' ends, as they were at
start, are reached.

Without --group every partition (or those given with --partition) is read
from --offset. With --group the command joins the consumer group, reads
the partitions the group assigns it, starts each from the group's committed
offset (--offset applies only where there is none) and commits the offsets
of the records it printed, so 'fluxo group describe' shows them.

--offset: start (default), end, N (an offset), -N (N before the end),
timestamp:MS (the first record at or after a Unix time in milliseconds, or
timestamp:2006-01-02T15:04:05Z).

--format is a template where
  %v value     %k key      %h headers (k1=v1,k2=v2)
  %t topic     %p partition  %o offset
  %T timestamp (Unix ms)   %d timestamp (RFC 3339, UTC)
  %% a percent sign; \n \t \\ a newline, tab, backslash
and every record ends with a newline. --format json prints one JSON object
per record: topic, partition, offset, timestamp (ms), key, value, headers.

Examples:
  fluxo consume orders -n 10 --format '%p/%o %k=%v'
  fluxo consume orders --group billing --offset end`

type consumeFlags struct {
	group      string
	offset     string
	partitions string
	n          int
	noFollow   bool
	format     string
}

func (c *cli) consume(args []string) error {
	fs, cf := c.flagSet("consume", "TOPIC... [flags]", consumeDoc)
	var f consumeFlags
	fs.StringVar(&f.group, "group", "", "consume as a member of this consumer group and commit offsets")
	fs.StringVar(&f.group, "g", "", "same as --group")
	fs.StringVar(&f.offset, "offset", "start", "where to start: start, end, N, -N or timestamp:MS")
	fs.StringVar(&f.offset, "o", "start", "same as --offset")
	fs.StringVar(&f.partitions, "partition", "", "comma-separated partitions to read (default all; not with --group)")
	fs.StringVar(&f.partitions, "p", "", "same as --partition")
	fs.IntVar(&f.n, "n", 0, "exit after this many records (0: no limit)")
	fs.BoolVar(&f.noFollow, "no-follow", false, "exit at the end of the partitions instead of waiting for more")
	fs.BoolVar(&f.noFollow, "e", false, "same as --no-follow")
	fs.StringVar(&f.format, "format", "%v", "record template (see above) or json")
	fs.StringVar(&f.format, "f", "%v", "same as --format")
	topics, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		return usagef(fs, "consume: name the topic to read")
	}
	spec, err := parseOffsetSpec(f.offset)
	if err != nil {
		return usagef(fs, "--offset %v", err)
	}
	if f.n < 0 {
		return usagef(fs, "-n %d: want a record count, or 0 for no limit", f.n)
	}
	var only []int32
	if f.partitions != "" {
		if f.group != "" {
			return usagef(fs, "--partition and --group do not mix: a group assigns partitions to its members")
		}
		for _, s := range strings.Split(f.partitions, ",") {
			p, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
			if err != nil || p < 0 {
				return usagef(fs, "--partition %q: want comma-separated partition numbers", f.partitions)
			}
			only = append(only, int32(p))
		}
	}
	rf, err := parseRecordFormat(f.format)
	if err != nil {
		return usagef(fs, "--format: %v", err)
	}

	ctx, stop := signalContext()
	defer stop()
	adm, closeAdmin, err := cf.admin(ctx, fs)
	if err != nil {
		return err
	}
	defer closeAdmin()
	actx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	tr, opts, err := c.consumePlan(actx, adm, topics, only, spec, f)
	if err != nil {
		return explain(err, cf.timeout)
	}
	opts = append(opts, kgo.FetchMaxWait(time.Second))
	cons, err := cf.client(ctx, fs, opts...)
	if err != nil {
		return err
	}
	defer cons.Close()

	w := bufio.NewWriter(c.out)
	defer w.Flush()
	count := 0
	var fatal error
	for fatal == nil && ctx.Err() == nil {
		if f.n > 0 && count >= f.n {
			break
		}
		if f.noFollow && tr.done() {
			break
		}
		pctx := ctx
		var pcancel context.CancelFunc = func() {}
		if f.noFollow {
			pctx, pcancel = context.WithTimeout(ctx, 300*time.Millisecond)
		}
		limit := 0
		if f.n > 0 {
			limit = f.n - count
		}
		fetches := cons.PollRecords(pctx, limit)
		pcancel()
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			if fatal == nil {
				fatal = fmt.Errorf("reading %s partition %d: %w", t, p, kafkaErr(err, ""))
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if f.n > 0 && count >= f.n {
				return
			}
			rf.write(w, r)
			count++
			tr.consumed(r)
			if f.group != "" {
				cons.MarkCommitRecords(r)
			}
		})
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if f.group != "" {
		// Commit what was printed; Close then leaves the group.
		cctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
		defer cancel()
		if err := cons.CommitMarkedOffsets(cctx); err != nil && fatal == nil {
			fatal = fmt.Errorf("committing offsets for group %s: %w", f.group, explain(err, cf.timeout))
		}
	}
	return fatal
}

// consumePlan checks the topics and partitions, decides where each
// partition starts and returns the consumer options and the tracker that
// tells when --no-follow is done.
func (c *cli) consumePlan(ctx context.Context, adm *kadm.Client, topics []string, only []int32, spec offsetSpec, f consumeFlags) (*tracker, []kgo.Opt, error) {
	details, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return nil, nil, err
	}
	for _, t := range topics {
		d, ok := details[t]
		if !ok || d.Err != nil {
			return nil, nil, topicErr(t, d.Err, "")
		}
		for _, p := range only {
			if int(p) >= len(d.Partitions) {
				return nil, nil, fmt.Errorf("topic %q has %d partitions (0 to %d); there is no partition %d", t, len(d.Partitions), len(d.Partitions)-1, p)
			}
		}
	}
	bounds, err := listBounds(ctx, adm, topics...)
	if err != nil {
		return nil, nil, err
	}
	if len(only) > 0 {
		keep := map[int32]bool{}
		for _, p := range only {
			keep[p] = true
		}
		for tp := range bounds {
			if !keep[tp.partition] {
				delete(bounds, tp)
			}
		}
	}
	starts, err := spec.resolve(ctx, adm, bounds)
	if err != nil {
		return nil, nil, err
	}
	tr := &tracker{pos: map[topicPartition]int64{}, end: map[topicPartition]int64{}}
	for tp, b := range bounds {
		tr.end[tp] = b.end
		tr.pos[tp] = starts[tp]
	}
	if f.group == "" {
		parts := map[string]map[int32]kgo.Offset{}
		for tp, off := range starts {
			if parts[tp.topic] == nil {
				parts[tp.topic] = map[int32]kgo.Offset{}
			}
			parts[tp.topic][tp.partition] = kgo.NewOffset().At(off)
		}
		return tr, []kgo.Opt{kgo.ConsumePartitions(parts)}, nil
	}

	// A group member starts where the group committed.
	committed, err := adm.FetchOffsets(ctx, f.group)
	if err != nil {
		return nil, nil, fmt.Errorf("group %s: %w", f.group, kafkaErr(err, ""))
	}
	committed.Each(func(o kadm.OffsetResponse) {
		tp := topicPartition{o.Topic, o.Partition}
		if _, ok := tr.pos[tp]; ok && o.Err == nil && o.At >= 0 {
			tr.pos[tp] = o.At
		}
	})
	tr.assigned = map[topicPartition]bool{}
	track := func(add bool) func(context.Context, *kgo.Client, map[string][]int32) {
		return func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			tr.mu.Lock()
			defer tr.mu.Unlock()
			for t, ps := range m {
				for _, p := range ps {
					if add {
						tr.assigned[topicPartition{t, p}] = true
					} else {
						delete(tr.assigned, topicPartition{t, p})
					}
				}
			}
		}
	}
	return tr, []kgo.Opt{
		kgo.ConsumerGroup(f.group),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(spec.kgoOffset()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.OnPartitionsAssigned(track(true)),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
			_ = cl.CommitMarkedOffsets(ctx)
			track(false)(ctx, cl, m)
		}),
		kgo.OnPartitionsLost(track(false)),
	}, nil
}

// tracker follows each partition's position against its end at start, for
// --no-follow. In group mode only the assigned partitions count.
type tracker struct {
	mu       sync.Mutex
	pos, end map[topicPartition]int64
	assigned map[topicPartition]bool // nil: every partition is read
}

func (t *tracker) consumed(r *kgo.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pos[topicPartition{r.Topic, r.Partition}] = r.Offset + 1
}

func (t *tracker) done() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.assigned == nil {
		for tp, end := range t.end {
			if t.pos[tp] < end {
				return false
			}
		}
		return true
	}
	if len(t.assigned) == 0 {
		return false // not yet joined
	}
	for tp := range t.assigned {
		if end, ok := t.end[tp]; ok && t.pos[tp] < end {
			return false
		}
	}
	return true
}

// recordFormat prints records by a template or as JSON lines.
type recordFormat struct {
	json  bool
	parts []formatPart
}

type formatPart struct {
	lit  string
	verb byte // 0 for a literal
}

func parseRecordFormat(s string) (*recordFormat, error) {
	if s == "json" {
		return &recordFormat{json: true}, nil
	}
	rf := &recordFormat{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			rf.parts = append(rf.parts, formatPart{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if (ch != '%' && ch != '\\') || i+1 == len(s) {
			if ch == '%' {
				return nil, fmt.Errorf("%q ends with a lone %%", s)
			}
			lit.WriteByte(ch)
			continue
		}
		i++
		next := s[i]
		if ch == '\\' {
			switch next {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			case 'r':
				lit.WriteByte('\r')
			case '\\':
				lit.WriteByte('\\')
			default:
				lit.WriteByte('\\')
				lit.WriteByte(next)
			}
			continue
		}
		switch next {
		case '%':
			lit.WriteByte('%')
		case 'v', 'k', 'h', 't', 'p', 'o', 'T', 'd':
			flush()
			rf.parts = append(rf.parts, formatPart{verb: next})
		default:
			return nil, fmt.Errorf("unknown verb %%%c in %q (fluxo consume -h lists them)", next, s)
		}
	}
	flush()
	return rf, nil
}

// jsonRecord is a record in --format json.
type jsonRecord struct {
	Topic     string            `json:"topic"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp int64             `json:"timestamp"`
	Key       *string           `json:"key"`
	Value     *string           `json:"value"`
	Headers   map[string]string `json:"headers"`
}

func (rf *recordFormat) write(w io.Writer, r *kgo.Record) {
	if rf.json {
		jr := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Headers: map[string]string{}}
		if r.Key != nil {
			k := string(r.Key)
			jr.Key = &k
		}
		if r.Value != nil {
			v := string(r.Value)
			jr.Value = &v
		}
		for _, h := range r.Headers {
			jr.Headers[h.Key] = string(h.Value)
		}
		b, _ := json.Marshal(jr)
		w.Write(append(b, '\n'))
		return
	}
	for _, p := range rf.parts {
		switch p.verb {
		case 0:
			io.WriteString(w, p.lit)
		case 'v':
			w.Write(r.Value)
		case 'k':
			w.Write(r.Key)
		case 'h':
			hs := make([]string, len(r.Headers))
			for i, h := range r.Headers {
				hs[i] = h.Key + "=" + string(h.Value)
			}
			io.WriteString(w, strings.Join(hs, ","))
		case 't':
			io.WriteString(w, r.Topic)
		case 'p':
			io.WriteString(w, strconv.FormatInt(int64(r.Partition), 10))
		case 'o':
			io.WriteString(w, strconv.FormatInt(r.Offset, 10))
		case 'T':
			io.WriteString(w, strconv.FormatInt(r.Timestamp.UnixMilli(), 10))
		case 'd':
			io.WriteString(w, r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		}
	}
	io.WriteString(w, "\n")
}

// sortedTPs returns the keys in topic, partition order.
func sortedTPs[V any](m map[topicPartition]V) []topicPartition {
	out := make([]topicPartition, 0, len(m))
	for tp := range m {
		out = append(out, tp)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].topic != out[j].topic {
			return out[i].topic < out[j].topic
		}
		return out[i].partition < out[j].partition
	})
	return out
}
