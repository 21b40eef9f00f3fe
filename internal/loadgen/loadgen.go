// Package loadgen drives a Kafka-compatible broker with franz-go clients and
// measures it: produce throughput and acknowledgement latency, catch-up
// consume throughput, and end-to-end latency (produce to consume) at a fixed
// rate. It is what `fluxo bench` and the comparison harness (bench/compare)
// run, so every broker is measured by the same code.
package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Config is one workload. Zero fields take the defaults in the comments.
type Config struct {
	Brokers     []string // seed brokers (required)
	Topic       string   // default "fluxo-bench"
	Records     int64    // records to produce or consume (default 100,000)
	RecordBytes int      // value size (default 1024; e2e needs at least 8)
	// Partitions: the topic is created with this many partitions when it
	// does not exist (default 4). An existing topic is used as it is.
	Partitions  int32
	Replication int16 // replication factor of a created topic (default: the broker's)
	Producers   int   // producer clients sharing the records (default 1)
	// Acks: -1 (all in-sync replicas, the default), 1 (leader) or 0 (none;
	// acknowledgement latency is then only the client's send).
	Acks int
	// Rate caps the total produce rate in records/s (0: as fast as
	// possible). e2e needs a rate: latency at saturation measures queues.
	Rate float64
	// Compression of produced batches: "none" (default: values are random
	// and would not shrink), "snappy", "lz4", "zstd", "gzip".
	Compression string
	// Progress, if set, is called about once a second while the workload
	// runs, and once at the end.
	Progress func(Progress)
}

// Progress is a workload's state while it runs.
type Progress struct {
	Workload string
	Done     int64 // records acknowledged (produce) or read (consume, e2e)
	Total    int64
	Bytes    int64 // record value bytes of the Done records
	Elapsed  time.Duration
}

// Result is what a workload measured.
type Result struct {
	Workload    string        `json:"workload"`
	Records     int64         `json:"records"`
	RecordBytes int           `json:"record_bytes"`
	Bytes       int64         `json:"bytes"` // record value bytes
	Elapsed     time.Duration `json:"elapsed_ns"`
	// Latency: produce to acknowledgement (produce), produce to consume
	// (e2e); empty for consume.
	Latency Percentiles `json:"latency"`
}

// RecordsPerSec is the throughput in records per second.
func (r Result) RecordsPerSec() float64 { return float64(r.Records) / r.Elapsed.Seconds() }

// MBPerSec is the throughput in megabytes (10^6 bytes) of record values per
// second.
func (r Result) MBPerSec() float64 { return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds() }

// String is a one-line report.
func (r Result) String() string {
	s := fmt.Sprintf("%s: %d records of %d B in %v: %.0f records/s, %.1f MB/s",
		r.Workload, r.Records, r.RecordBytes, r.Elapsed.Round(time.Millisecond), r.RecordsPerSec(), r.MBPerSec())
	if r.Latency.Count > 0 {
		s += "; latency " + r.Latency.String()
	}
	return s
}

// Percentiles summarise latencies.
type Percentiles struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

func (p Percentiles) String() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	return fmt.Sprintf("p50 %s, p99 %s, p99.9 %s, max %s", ms(p.P50), ms(p.P99), ms(p.P999), ms(p.Max))
}

// latencies collects samples from several goroutines (every sample is kept:
// 8 bytes a record, exact percentiles).
type latencies struct {
	mu sync.Mutex
	ns []int64
}

// newLatencies makes room for n samples, up to a million at first: a
// larger run grows the slice as it goes rather than asking for all its
// memory before it starts.
func newLatencies(n int64) *latencies {
	return &latencies{ns: make([]int64, 0, min(n, 1<<20))}
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.ns = append(l.ns, int64(d))
	l.mu.Unlock()
}

func (l *latencies) percentiles() Percentiles {
	l.mu.Lock()
	defer l.mu.Unlock()
	return percentilesOf(l.ns)
}

// PercentilesOf summarises latency samples in nanoseconds (sorting ns in
// place), for drivers of other protocols that report in the same Result
// (the comparison harness's JetStream client).
func PercentilesOf(ns []int64) Percentiles { return percentilesOf(ns) }

// percentilesOf sorts ns in place and returns its percentiles (nearest
// rank).
func percentilesOf(ns []int64) Percentiles {
	if len(ns) == 0 {
		return Percentiles{}
	}
	slices.Sort(ns)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(ns))+0.999999) - 1
		return time.Duration(ns[min(max(i, 0), len(ns)-1)])
	}
	return Percentiles{Count: int64(len(ns)), P50: at(0.50), P99: at(0.99), P999: at(0.999), Max: time.Duration(ns[len(ns)-1])}
}

func (c *Config) defaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("loadgen: no brokers")
	}
	if c.Topic == "" {
		c.Topic = "fluxo-bench"
	}
	if c.Records == 0 {
		c.Records = 100_000
	}
	if c.RecordBytes == 0 {
		c.RecordBytes = 1024
	}
	if c.Partitions == 0 {
		c.Partitions = 4
	}
	if c.Producers == 0 {
		c.Producers = 1
	}
	if c.Acks == 0 {
		// 0 is the zero value; acks=0 is asked for with AcksNone.
		c.Acks = -1
	}
	if c.Acks == AcksNone {
		c.Acks = 0
	}
	if c.Compression == "" {
		c.Compression = "none"
	}
	switch {
	case c.Records < 0:
		return fmt.Errorf("loadgen: records %d < 0", c.Records)
	case c.RecordBytes < 0 || c.RecordBytes > maxRecordBytes:
		return fmt.Errorf("loadgen: record bytes %d outside [0, %d]", c.RecordBytes, maxRecordBytes)
	case c.Partitions < 0:
		return fmt.Errorf("loadgen: partitions %d < 0", c.Partitions)
	case c.Producers < 0 || c.Producers > 1024:
		return fmt.Errorf("loadgen: producers %d outside [1, 1024]", c.Producers)
	case c.Acks != -1 && c.Acks != 0 && c.Acks != 1:
		return fmt.Errorf("loadgen: acks %d is not -1, 0 or 1", c.Acks)
	case c.Rate < 0:
		return fmt.Errorf("loadgen: rate %v < 0", c.Rate)
	}
	_, err := compression(c.Compression)
	return err
}

// AcksNone is Config.Acks for acks=0 (the zero value means the default, -1).
const AcksNone = -100

// maxRecordBytes bounds a record value (the broker's default
// max.message.bytes is about 1 MiB).
const maxRecordBytes = 1 << 20

// Values hands out incompressible record values: each record gets its own
// slice of a random pool, so compression cannot turn the run into a
// compression benchmark. Drivers of other protocols (bench/compare's
// JetStream) use it too, so every broker gets the same bytes.
type Values struct {
	pool []byte
	size int
}

const valuePool = 16 << 20

// NewValues makes the pool for values of size bytes (the same pool on
// every call: the seed is fixed).
func NewValues(size int) *Values {
	rng := rand.New(rand.NewPCG(1, 2))
	pool := make([]byte, valuePool+size)
	for i := 0; i+8 <= len(pool); i += 8 {
		binary.LittleEndian.PutUint64(pool[i:], rng.Uint64())
	}
	return &Values{pool: pool, size: size}
}

// At is the value of record i (shared: not to be written).
func (v *Values) At(i int64) []byte {
	off := int((i * int64(v.size)) % valuePool)
	return v.pool[off : off+v.size]
}

// pacer spreads sends at rate records/s: wait blocks until record i is due.
type pacer struct {
	start time.Time
	rate  float64
}

func (p pacer) wait(i int64) {
	if p.rate <= 0 {
		return
	}
	due := p.start.Add(time.Duration(float64(i) / p.rate * 1e9))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
}
