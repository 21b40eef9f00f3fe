package loadgen_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/internal/loadgen"
	"github.com/fluxo-broker/fluxo/testkit"
)

// The three workloads against a real broker: every record is counted,
// latencies are measured for each, and progress is reported.
func TestWorkloadsAgainstABroker(t *testing.T) {
	b := testkit.StartBroker(t, fluxo.WithKafkaListen("127.0.0.1:0", ""))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var progress []loadgen.Progress
	cfg := loadgen.Config{Brokers: []string{b.KafkaAddr()}, Topic: "lg", Records: 3000, RecordBytes: 100, Partitions: 3, Producers: 2,
		Progress: func(p loadgen.Progress) { progress = append(progress, p) }}

	res, err := loadgen.Produce(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 3000 || res.Bytes != 300_000 || res.Latency.Count != 3000 || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 {
		t.Fatalf("produce: %+v", res)
	}
	if n := len(progress); n == 0 || progress[n-1].Done != 3000 || progress[n-1].Bytes != 300_000 || progress[n-1].Workload != "produce" {
		t.Fatalf("progress %+v: the last report must count every acknowledged record", progress)
	}
	t.Log(res)

	res, err = loadgen.Consume(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 3000 || res.Bytes != 300_000 || res.Latency.Count != 0 {
		t.Fatalf("consume: %+v", res)
	}
	if p := progress[len(progress)-1]; p.Workload != "consume" || p.Done != 3000 || p.Bytes != 300_000 {
		t.Fatalf("consume's last progress %+v: want every record and byte read", p)
	}
	t.Log(res)

	// Fewer records than the topic holds: exactly that many are counted
	// (a fetch runs past them), and the record size is what was read.
	sub := cfg
	sub.Records, sub.RecordBytes, sub.Progress = 1000, 7, nil
	res, err = loadgen.Consume(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 1000 || res.Bytes != 100_000 || res.RecordBytes != 100 {
		t.Fatalf("consume 1000 of 3000: %+v", res)
	}

	cfg.Records, cfg.Rate = 500, 1000
	res, err = loadgen.E2E(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 500 || res.Latency.Count != 500 || res.Latency.P50 <= 0 {
		t.Fatalf("e2e: %+v", res)
	}
	// 500 records at 1000/s take at least half a second.
	if res.Elapsed < 450*time.Millisecond {
		t.Fatalf("e2e at 1000 records/s took %v for 500 records: the rate is not applied", res.Elapsed)
	}
	t.Log(res)
}

func TestConfigErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		cfg  loadgen.Config
		want string
	}{
		{loadgen.Config{}, "no brokers"},
		{loadgen.Config{Brokers: []string{"x"}, Acks: 2}, "acks 2"},
		{loadgen.Config{Brokers: []string{"x"}, RecordBytes: 2 << 20}, "record bytes"},
		{loadgen.Config{Brokers: []string{"x"}, Rate: -1}, "rate"},
		{loadgen.Config{Brokers: []string{"x"}, Compression: "brotli"}, "unknown compression"},
	} {
		_, err := loadgen.Produce(ctx, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := loadgen.E2E(ctx, loadgen.Config{Brokers: []string{"x"}}); err == nil || !strings.Contains(err.Error(), "needs a rate") {
		t.Errorf("e2e without a rate: %v", err)
	}
}

// PercentilesOf uses the nearest rank: with 1..1000 ms, p50 is the 500th
// sample, p99 the 990th, p99.9 the 999th.
func TestPercentilesOf(t *testing.T) {
	ns := make([]int64, 0, 1000)
	for i := 1000; i >= 1; i-- { // unsorted on purpose
		ns = append(ns, int64(i)*int64(time.Millisecond))
	}
	p := loadgen.PercentilesOf(ns)
	want := loadgen.Percentiles{Count: 1000, P50: 500 * time.Millisecond, P99: 990 * time.Millisecond,
		P999: 999 * time.Millisecond, Max: 1000 * time.Millisecond}
	if p != want {
		t.Fatalf("got %+v, want %+v", p, want)
	}
	if p := loadgen.PercentilesOf(nil); p != (loadgen.Percentiles{}) {
		t.Fatalf("no samples: %+v", p)
	}
}
