package main

// fluxo produce: one record per line of stdin or a file.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/term"
)

const produceDoc = `
Produce one record per line of stdin (or of --file) to TOPIC. A trailing
"\r" is dropped; empty lines are skipped. With --key-sep each line is split
at the first SEP into key and value; a line without SEP is a value with no
key. Records without --partition go to a partition by key hash (records
without a key are spread).

When --file is given and stderr is a terminal, a progress bar with the rate
is drawn on stderr. A summary line goes to stderr at the end.

Examples:
  printf 'k1:hello\nk2:world\n' | fluxo produce orders --key-sep :
  fluxo produce orders --file events.txt -H source=import --compression zstd`

type produceFlags struct {
	file        string
	keySep      string
	headers     multiFlag
	partition   int
	compression string
	acks        string
	noProgress  bool
}

func (c *cli) produce(args []string) error {
	fs, cf := c.flagSet("produce", "TOPIC [flags]", produceDoc)
	var f produceFlags
	fs.StringVar(&f.file, "file", "", "read lines from this file instead of stdin")
	fs.StringVar(&f.keySep, "key-sep", "", "split each line at the first `SEP` into key and value")
	fs.Var(&f.headers, "H", "header `key=value` added to every record (repeatable)")
	fs.Var(&f.headers, "header", "same as -H")
	fs.IntVar(&f.partition, "partition", -1, "produce every record to this partition (-1: by key hash)")
	fs.StringVar(&f.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	fs.StringVar(&f.acks, "acks", "all", "acknowledgement: all, 1 (leader only) or 0 (none; errors go unseen)")
	fs.BoolVar(&f.noProgress, "no-progress", false, "never draw the progress bar")
	pos, err := c.parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef(fs, "produce: want exactly one TOPIC, got %d arguments", len(pos))
	}
	topic := pos[0]
	opts := []kgo.Opt{kgo.DefaultProduceTopic(topic), kgo.RecordDeliveryTimeout(cf.timeout), kgo.ProducerLinger(5 * time.Millisecond)}
	switch strings.ToLower(f.compression) {
	case "none", "":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		return usagef(fs, "--compression %q: want none, gzip, snappy, lz4 or zstd", f.compression)
	}
	switch f.acks {
	case "all", "-1":
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case "1", "leader":
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case "0", "none":
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	default:
		return usagef(fs, "--acks %q: want all, 1 or 0", f.acks)
	}
	if f.partition < -1 {
		return usagef(fs, "--partition %d: want a partition number (or -1 for key hashing)", f.partition)
	}
	if f.partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	var headers []kgo.RecordHeader
	for _, h := range f.headers {
		k, v, ok := keyValue(h)
		if !ok {
			return usagef(fs, "-H %q: want key=value", h)
		}
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}

	in := c.in
	var size int64 = -1
	if f.file != "" {
		file, err := os.Open(f.file)
		if err != nil {
			return fmt.Errorf("--file: %w", err)
		}
		defer file.Close()
		if st, err := file.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
		in = file
	}

	ctx, stop := signalContext()
	defer stop()
	cl, err := cf.client(ctx, fs, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := checkTopic(ctx, cl, topic, f.partition); err != nil {
		return explain(err, cf.timeout)
	}

	counter := &countingReader{r: in}
	var bar *progressBar
	p := &producer{cl: cl}
	if f.file != "" && !f.noProgress && isTerminal(c.err) {
		bar = startProgress(c.err, counter, size, &p.acked)
	}
	start := time.Now()
	readErr := readLines(counter, func(line []byte) bool {
		r := &kgo.Record{Headers: headers}
		if f.partition >= 0 {
			r.Partition = int32(f.partition)
		}
		if k, v, ok := splitKey(line, f.keySep); ok {
			r.Key = bytes.Clone(k)
			r.Value = bytes.Clone(v)
		} else {
			r.Value = bytes.Clone(line)
		}
		return p.produce(ctx, r)
	})
	flushErr := cl.Flush(ctx)
	if bar != nil {
		bar.stop()
	}
	elapsed := time.Since(start)
	n := p.acked.Load()
	fmt.Fprintf(c.err, "produced %s (%s) to %s in %s\n", plural(int(n), "record"), byteSize(p.bytes.Load()), topic, elapsed.Round(time.Millisecond))
	if err := p.firstErr(); err != nil {
		switch {
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			return unknownTopic(topic)
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			return explain(err, cf.timeout)
		}
		return fmt.Errorf("produce to %s: %w", topic, kafkaErr(err, ""))
	}
	if readErr != nil {
		return fmt.Errorf("reading input: %w", readErr)
	}
	if flushErr != nil {
		return explain(flushErr, cf.timeout)
	}
	return nil
}

// checkTopic fails with a clear message if topic (or its partition, when
// partition >= 0) does not exist.
func checkTopic(ctx context.Context, cl *kgo.Client, topic string, partition int) error {
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return err
	}
	t, ok := topics[topic]
	if !ok || t.Err != nil {
		return topicErr(topic, t.Err, "")
	}
	if partition >= len(t.Partitions) {
		return fmt.Errorf("topic %q has %d partitions (0 to %d); there is no partition %d", topic, len(t.Partitions), len(t.Partitions)-1, partition)
	}
	return nil
}

func splitKey(line []byte, sep string) (key, value []byte, ok bool) {
	if sep == "" {
		return nil, nil, false
	}
	return bytes.Cut(line, []byte(sep))
}

// readLines calls fn with each non-empty line (without "\n" or "\r\n")
// until the input ends or fn returns false.
func readLines(r io.Reader, fn func([]byte) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long line: gather the rest of it.
			full := bytes.Clone(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				full = append(full, line...)
			}
			line = full
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > 0 && !fn(line) {
			return nil
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// producer produces asynchronously and keeps the first error.
type producer struct {
	cl    *kgo.Client
	acked atomic.Int64
	bytes atomic.Int64
	mu    sync.Mutex
	err   error
}

func (p *producer) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// produce sends r and reports whether to go on.
func (p *producer) produce(ctx context.Context, r *kgo.Record) bool {
	if p.firstErr() != nil || ctx.Err() != nil {
		return false
	}
	p.cl.Produce(ctx, r, func(r *kgo.Record, err error) {
		if err != nil {
			p.mu.Lock()
			if p.err == nil {
				p.err = err
			}
			p.mu.Unlock()
			return
		}
		p.acked.Add(1)
		p.bytes.Add(int64(len(r.Key) + len(r.Value)))
	})
	return true
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressBar redraws a one-line bar on a terminal every 200ms.
type progressBar struct {
	w     io.Writer
	read  *countingReader
	size  int64
	acked *atomic.Int64
	start time.Time
	done  chan struct{}
	wg    sync.WaitGroup
}

func startProgress(w io.Writer, read *countingReader, size int64, acked *atomic.Int64) *progressBar {
	b := &progressBar{w: w, read: read, size: size, acked: acked, start: time.Now(), done: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.done:
				fmt.Fprint(b.w, "\r\033[K")
				return
			case <-t.C:
				b.draw()
			}
		}
	}()
	return b
}

func (b *progressBar) draw() {
	n := b.read.n.Load()
	secs := time.Since(b.start).Seconds()
	rate := float64(n) / max(secs, 0.001)
	const width = 30
	bar := strings.Repeat("?", width)
	pct := ""
	if b.size > 0 {
		filled := int(float64(width) * float64(n) / float64(b.size))
		filled = min(filled, width)
		bar = strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
		pct = fmt.Sprintf(" %3.0f%%", 100*float64(n)/float64(b.size))
	}
	recs := float64(b.acked.Load()) / max(secs, 0.001)
	fmt.Fprintf(b.w, "\r\033[K[%s]%s %s/%s  %s/s  %.0f records/s", bar, pct, byteSize(n), byteSize(b.size), byteSize(int64(rate)), recs)
}

func (b *progressBar) stop() {
	close(b.done)
	b.wg.Wait()
}

// byteSize formats n bytes for people.
func byteSize(n int64) string {
	if n < 0 {
		return "?"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
