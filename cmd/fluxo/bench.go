package main

// fluxo bench produce|consume|e2e: measure a broker with internal/loadgen.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fluxo-broker/fluxo/internal/loadgen"
)

const benchDoc = `
Measure a broker (Fluxo or any Kafka) with one of three workloads:

  produce  write --records records of --record-bytes random bytes with
           --producers clients, as fast as they go (or at --rate), and wait
           for every acknowledgement. Latency: from the produce call to the
           acknowledgement (with --acks 0, to the send).
  consume  read --records records from the start of --topic's partitions:
           a catch-up read of what an earlier 'bench produce' wrote. No
           latency.
  e2e      produce at a fixed --rate (required: at full speed the latency
           would measure queues) while a consumer follows the topic.
           Latency: from the produce call to the consumer receiving it.

produce and e2e create --topic with --partitions and --replication-factor
unless it exists; it is left behind ('fluxo topic delete fluxo-bench'
removes it). Progress goes to stderr about once a second, the report to
stdout. A run fails if no record goes through for --timeout. Flags that do
not apply to a workload are refused: consume takes none of the producer's,
e2e has one producer.

--format json prints one JSON object on one line:
  workload        produce, consume or e2e
  records         records produced or read
  record_bytes    value size in bytes (consume: the mean of those read)
  bytes           value bytes in all
  elapsed_ns      duration of the run, nanoseconds
  latency         count, p50_ns, p99_ns, p999_ns, max_ns: nanoseconds over
                  count records (count 0 for consume)
  records_per_sec, mb_per_sec  throughput (MB: 10^6 bytes of values)
  topic, partitions
  acks, compression, producers, rate (records/s; absent: no limit)
                  the producer's settings (absent for consume)

Examples:
  fluxo bench produce --records 1000000 --partitions 8 --producers 4
  fluxo bench consume --records 1000000
  fluxo bench e2e --rate 10000 --records 100000 --format json`

var benchWorkloads = map[string]func(context.Context, loadgen.Config) (loadgen.Result, error){
	"produce": loadgen.Produce,
	"consume": loadgen.Consume,
	"e2e":     loadgen.E2E,
}

// Bounds of the bench flags. Produce and e2e keep every latency sample
// (8 bytes a record), hence the bound on their records.
const (
	maxBenchRecords     = 100_000_000
	maxBenchRecordBytes = 1 << 20
	maxBenchProducers   = 1024
)

type benchFlags struct {
	topic       string
	records     int64
	recordBytes int
	partitions  int
	replication int
	producers   int
	acks        string
	rate        float64
	compression string
	format      string
	noProgress  bool
}

// benchReport is the report: the Result with the throughput and the
// settings that produced it.
type benchReport struct {
	loadgen.Result
	RecordsPerSec float64 `json:"records_per_sec"`
	MBPerSec      float64 `json:"mb_per_sec"`
	Topic         string  `json:"topic"`
	Partitions    int     `json:"partitions"`
	Acks          string  `json:"acks,omitempty"`
	Compression   string  `json:"compression,omitempty"`
	Producers     int     `json:"producers,omitempty"`
	Rate          float64 `json:"rate,omitempty"`
}

func (c *cli) bench(args []string) error {
	fs, cf := c.flagSet("bench", "produce|consume|e2e [flags]", benchDoc)
	var f benchFlags
	fs.StringVar(&f.topic, "topic", "fluxo-bench", "topic to write or read")
	fs.Int64Var(&f.records, "records", 100_000, "records to produce or read")
	fs.IntVar(&f.recordBytes, "record-bytes", 1024, "record value size in bytes (e2e: at least 8)")
	fs.IntVar(&f.partitions, "partitions", 4, "partitions of the topic, if it is created")
	fs.IntVar(&f.replication, "replication-factor", -1, "replication factor of the topic, if it is created (-1: the broker default)")
	fs.IntVar(&f.producers, "producers", 1, "producer clients sharing the records (produce)")
	fs.StringVar(&f.acks, "acks", "all", "acknowledgement: all (-1), 1 (leader only) or 0 (none)")
	fs.Float64Var(&f.rate, "rate", 0, "total records/s to produce at (0: as fast as possible; e2e requires one)")
	fs.StringVar(&f.compression, "compression", "none", "batch compression: none, snappy, lz4, zstd or gzip")
	fs.StringVar(&f.format, "format", "text", "report: text or json")
	fs.BoolVar(&f.noProgress, "no-progress", false, "print no progress on stderr")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usagef(fs, "bench: name the workload: produce, consume or e2e")
	}
	workload := pos[0]
	run, ok := benchWorkloads[workload]
	if !ok {
		return usagef(fs, "bench: unknown workload %q: want produce, consume or e2e", workload)
	}
	if len(pos) > 1 {
		return usagef(fs, "bench %s: unexpected argument %q", workload, pos[1])
	}
	cfg, err := f.config(fs, workload)
	if err != nil {
		return err
	}
	seeds, err := cf.seeds(fs)
	if err != nil {
		return err
	}
	cfg.Brokers = seeds

	ctx, stop := signalContext()
	defer stop()
	rep := benchReport{Topic: f.topic}
	if workload != "consume" {
		rep.Acks, rep.Compression, rep.Producers, rep.Rate = acksName(cfg.Acks), cfg.Compression, cfg.Producers, cfg.Rate
	}
	if rep.Partitions, err = c.benchTopic(ctx, fs, cf, workload, &f); err != nil {
		return err
	}

	// The run fails when no record goes through for --timeout (longer at
	// a rate slower than a record in a second).
	stall := cf.timeout
	if cfg.Rate > 0 {
		stall += time.Duration(2 / cfg.Rate * float64(time.Second))
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	prog := &benchProgress{w: c.err, tty: isTerminal(c.err), show: !f.noProgress, stall: stall, cancel: cancel}
	cfg.Progress = prog.report
	res, err := run(rctx, cfg)
	prog.finish()
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		if cause := context.Cause(rctx); cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		msg := strings.TrimPrefix(err.Error(), "loadgen: ")
		if !strings.HasPrefix(msg, workload+":") {
			msg = workload + ": " + msg
		}
		return errors.New("bench " + msg)
	}
	rep.Result = res
	rep.RecordsPerSec, rep.MBPerSec = res.RecordsPerSec(), res.MBPerSec()
	if f.format == "json" {
		b, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.out, "%s\n", b)
		return err
	}
	return c.benchText(rep)
}

// config validates the flags into a workload's configuration.
func (f *benchFlags) config(fs *flag.FlagSet, workload string) (loadgen.Config, error) {
	// Flags that have no effect on the workload are refused rather than
	// silently ignored.
	notFor := map[string][]string{
		"consume": {"record-bytes", "partitions", "replication-factor", "producers", "acks", "rate", "compression"},
		"e2e":     {"producers"},
	}
	for _, name := range notFor[workload] {
		if isSet(fs, name) {
			why := "it reads, as fast as it can, what an earlier produce wrote"
			if workload == "e2e" {
				why = "one producer paces the records"
			}
			return loadgen.Config{}, usagef(fs, "--%s does not apply to bench %s: %s", name, workload, why)
		}
	}

	cfg := loadgen.Config{Topic: f.topic, Records: f.records, RecordBytes: f.recordBytes,
		Partitions: int32(f.partitions), Replication: int16(max(f.replication, 0)),
		Producers: f.producers, Rate: f.rate, Compression: strings.ToLower(f.compression)}
	minBytes := 1
	if workload == "e2e" {
		minBytes = 8
	}
	switch {
	case f.topic == "":
		return cfg, usagef(fs, "--topic is empty: name the topic to use")
	case f.records <= 0:
		return cfg, usagef(fs, "--records %d: want 1 or more", f.records)
	case f.records > maxBenchRecords && workload != "consume":
		return cfg, usagef(fs, "--records %d: at most %d (every latency sample is kept, 8 bytes a record)", f.records, maxBenchRecords)
	case workload != "consume" && (f.recordBytes < minBytes || f.recordBytes > maxBenchRecordBytes):
		if workload == "e2e" && f.recordBytes >= 0 && f.recordBytes < 8 {
			return cfg, usagef(fs, "--record-bytes %d: e2e needs at least 8 (the send time travels in the value)", f.recordBytes)
		}
		return cfg, usagef(fs, "--record-bytes %d: want %d to %d", f.recordBytes, minBytes, maxBenchRecordBytes)
	case f.partitions < 1 || f.partitions > math.MaxInt32:
		return cfg, usagef(fs, "--partitions %d: want 1 or more", f.partitions)
	case f.replication == 0 || f.replication < -1 || f.replication > math.MaxInt16:
		return cfg, usagef(fs, "--replication-factor %d: want 1 or more (or -1 for the broker default)", f.replication)
	case f.producers < 1 || f.producers > maxBenchProducers:
		return cfg, usagef(fs, "--producers %d: want 1 to %d", f.producers, maxBenchProducers)
	case f.rate < 0 || math.IsNaN(f.rate) || math.IsInf(f.rate, 0):
		return cfg, usagef(fs, "--rate %v: want records per second, or 0 for as fast as possible", f.rate)
	case workload == "e2e" && f.rate == 0:
		return cfg, usagef(fs, "bench e2e needs --rate (records/s): at full speed the latency measures the client's and broker's queues, not the broker; pick a rate below what 'bench produce' reaches, e.g. --rate 10000")
	}
	switch f.acks {
	case "all", "-1":
		cfg.Acks = -1
	case "1", "leader":
		cfg.Acks = 1
	case "0", "none":
		cfg.Acks = loadgen.AcksNone
	default:
		return cfg, usagef(fs, "--acks %q: want all (or -1), 1 or 0", f.acks)
	}
	switch cfg.Compression {
	case "none", "snappy", "lz4", "zstd", "gzip":
	default:
		return cfg, usagef(fs, "--compression %q: want none, snappy, lz4, zstd or gzip", f.compression)
	}
	if err := checkOutput(fs, f.format); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func acksName(acks int) string {
	switch acks {
	case 1:
		return "1"
	case loadgen.AcksNone, 0:
		return "0"
	}
	return "all"
}

// benchTopic checks the broker answers and readies the topic: produce and
// e2e create it unless it exists and wait for its partitions' leaders;
// consume checks it holds enough records. It returns the partition count.
func (c *cli) benchTopic(ctx context.Context, fs *flag.FlagSet, cf *connFlags, workload string, f *benchFlags) (int, error) {
	// The client caches metadata (for 5s by default): a topic just created
	// would stay unknown, or leaderless, for that long.
	cl, err := cf.client(ctx, fs, kgo.MetadataMinAge(50*time.Millisecond))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(cf.timeout.Milliseconds()))
	tctx, cancel := context.WithTimeout(ctx, cf.timeout)
	defer cancel()
	topics, err := adm.ListTopics(tctx, f.topic)
	if err != nil {
		return 0, explain(err, cf.timeout)
	}
	t, exists := topics[f.topic]
	if exists && t.Err != nil && !errors.Is(t.Err, kerr.UnknownTopicOrPartition) {
		return 0, topicErr(f.topic, t.Err, "")
	}
	exists = exists && t.Err == nil

	if workload == "consume" {
		if !exists {
			return 0, fmt.Errorf("unknown topic %q: write records to it first, e.g. 'fluxo bench produce --topic %s --records %d'", f.topic, f.topic, f.records)
		}
		n, err := topicRecords(tctx, adm, f.topic)
		if err != nil {
			return 0, explain(err, cf.timeout)
		}
		if n < f.records {
			return 0, fmt.Errorf("topic %q holds %s, fewer than --records %d: produce more first ('fluxo bench produce --topic %s --records %d') or read fewer", f.topic, plural(int(n), "record"), f.records, f.topic, f.records-n)
		}
		return len(t.Partitions), nil
	}

	if exists {
		if f.partitions != len(t.Partitions) && isSet(fs, "partitions") {
			fmt.Fprintf(c.err, "bench: topic %s exists with %s; --partitions applies only to a new topic\n", f.topic, plural(len(t.Partitions), "partition"))
		}
		if isSet(fs, "replication-factor") && f.replication != t.Partitions.NumReplicas() {
			fmt.Fprintf(c.err, "bench: topic %s exists with replication factor %d; --replication-factor applies only to a new topic\n", f.topic, t.Partitions.NumReplicas())
		}
	} else {
		r, err := adm.CreateTopic(tctx, int32(f.partitions), int16(f.replication), nil, f.topic)
		if err == nil {
			err = r.Err
		}
		var ke *kerr.Error
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
		case errors.As(err, &ke):
			return 0, fmt.Errorf("cannot create topic %q: %w", f.topic, kafkaErr(err, r.ErrMessage))
		case err != nil:
			return 0, explain(err, cf.timeout)
		default:
			fmt.Fprintf(c.err, "bench: created topic %s with %s, replication factor %d\n", f.topic, plural(int(r.NumPartitions), "partition"), r.ReplicationFactor)
		}
	}
	// A new topic's partitions may not have leaders yet: wait, so the
	// run measures the broker rather than the topic's creation.
	for {
		topics, err := adm.ListTopics(tctx, f.topic)
		if err != nil {
			return 0, explain(err, cf.timeout)
		}
		if t, ok := topics[f.topic]; ok && t.Err == nil && len(t.Partitions) > 0 && hasLeaders(t.Partitions) {
			return len(t.Partitions), nil
		}
		select {
		case <-tctx.Done():
			if ctx.Err() != nil {
				return 0, errors.New("interrupted")
			}
			return 0, fmt.Errorf("topic %q: its partitions have no leader after %s", f.topic, cf.timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func hasLeaders(ps kadm.PartitionDetails) bool {
	for _, p := range ps {
		if p.Err != nil || p.Leader < 0 {
			return false
		}
	}
	return true
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// topicRecords counts the records between each partition's start and end
// offsets.
func topicRecords(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, topicErr(topic, err, "")
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, topicErr(topic, err, "")
	}
	var n int64
	ends.Each(func(e kadm.ListedOffset) {
		if s, ok := starts.Lookup(e.Topic, e.Partition); ok {
			n += e.Offset - s.Offset
		}
	})
	return n, nil
}

// benchProgress writes the progress lines and fails a run that stalls. Its
// report is called by one goroutine at a time.
type benchProgress struct {
	w      io.Writer
	tty    bool // overwrite one line in place
	show   bool
	shown  bool
	stall  time.Duration
	cancel context.CancelCauseFunc

	lastDone   int64
	lastChange time.Duration
}

func (p *benchProgress) report(pr loadgen.Progress) {
	if pr.Done != p.lastDone {
		p.lastDone, p.lastChange = pr.Done, pr.Elapsed
	} else if pr.Done < pr.Total && pr.Elapsed-p.lastChange > p.stall {
		p.cancel(fmt.Errorf("bench %s: stalled: no record went through in %s (%d of %d done): is the broker still up? (raise --timeout?)",
			pr.Workload, p.stall.Round(time.Second), pr.Done, pr.Total))
	}
	if !p.show {
		return
	}
	secs := max(pr.Elapsed.Seconds(), 1e-3)
	pct := int64(0)
	if pr.Total > 0 {
		pct = 100 * pr.Done / pr.Total
	}
	line := fmt.Sprintf("%s: %d/%d records (%d%%), %.0f records/s, %.1f MB/s, %.1fs",
		pr.Workload, pr.Done, pr.Total, pct, float64(pr.Done)/secs, float64(pr.Bytes)/1e6/secs, pr.Elapsed.Seconds())
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.shown = true
}

// finish ends the line a terminal's progress was drawn on.
func (p *benchProgress) finish() {
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}

func (c *cli) benchText(r benchReport) error {
	tw := c.table()
	switch r.Workload {
	case "consume":
		row(tw, "workload", "consume (a catch-up read from the start of each partition)")
	default:
		rate := "no rate limit"
		if r.Rate > 0 {
			rate = fmt.Sprintf("at %.0f records/s", r.Rate)
		}
		row(tw, "workload", fmt.Sprintf("%s (acks %s, compression %s, %s, %s)", r.Workload, r.Acks, r.Compression, plural(r.Producers, "producer"), rate))
	}
	row(tw, "topic", fmt.Sprintf("%s (%s)", r.Topic, plural(r.Partitions, "partition")))
	row(tw, "records", fmt.Sprintf("%d of %d B (%.1f MB)", r.Records, r.RecordBytes, float64(r.Bytes)/1e6))
	row(tw, "elapsed", r.Elapsed.Round(time.Millisecond))
	row(tw, "records/s", fmt.Sprintf("%.0f", r.RecordsPerSec))
	row(tw, "MB/s", fmt.Sprintf("%.1f", r.MBPerSec))
	if r.Latency.Count > 0 {
		what := "produce call to acknowledgement"
		switch {
		case r.Workload == "e2e":
			what = "produce call to consumer (end to end)"
		case r.Acks == "0":
			what = "produce call to send (acks 0: no acknowledgement)"
		}
		ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
		row(tw, "latency", what)
		row(tw, "latency p50", ms(r.Latency.P50))
		row(tw, "latency p99", ms(r.Latency.P99))
		row(tw, "latency p99.9", ms(r.Latency.P999))
		row(tw, "latency max", ms(r.Latency.Max))
	}
	return tw.Flush()
}
