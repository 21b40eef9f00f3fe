package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fluxo-broker/fluxo/internal/loadgen"
)

// benchJSON runs a bench with --format json and decodes its one line.
func benchJSON(t *testing.T, addr string, args ...string) benchReport {
	t.Helper()
	r := ok(t, addr, "", append([]string{"bench"}, append(args, "--format", "json", "--no-progress")...)...)
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "}\n") {
		t.Fatalf("bench %s --format json: want one JSON object on one line:\n%s", strings.Join(args, " "), r)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("bench %s --format json: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	if rep.Elapsed <= 0 || rep.RecordsPerSec <= 0 || rep.MBPerSec <= 0 {
		t.Fatalf("bench %s: no throughput in %+v", strings.Join(args, " "), rep)
	}
	return rep
}

// mustLatency checks the percentiles of n records are measured and ordered.
func mustLatency(t *testing.T, rep benchReport, n int64) {
	t.Helper()
	l := rep.Latency
	if l.Count != n || l.P50 <= 0 || l.P99 < l.P50 || l.P999 < l.P99 || l.Max < l.P999 {
		t.Fatalf("%s latency over %d records: %+v", rep.Workload, n, l)
	}
}

// mustNumberRow checks out has a row "name... N" with N a positive number.
func mustNumberRow(t *testing.T, out string, name ...string) {
	t.Helper()
	for _, f := range fields(out) {
		if len(f) == len(name)+1 && strings.Join(f[:len(name)], " ") == strings.Join(name, " ") {
			if v, err := strconv.ParseFloat(f[len(name)], 64); err == nil && v > 0 {
				return
			}
		}
	}
	t.Fatalf("no row %q with a positive number in:\n%s", strings.Join(name, " "), out)
}

func TestCLIBench(t *testing.T) {
	addr := cliBroker(t)

	// produce, text: the topic is created, progress goes to stderr one
	// line per report (not a terminal), the report to stdout.
	r := ok(t, addr, "", "bench", "produce", "--topic", "b", "--records", "2000", "--record-bytes", "100", "--partitions", "3", "--producers", "2")
	mustRow(t, r.stdout, "workload", "produce", "(acks", "all,", "compression", "none,", "2", "producers,", "no", "rate", "limit)")
	mustRow(t, r.stdout, "topic", "b", "(3", "partitions)")
	mustRow(t, r.stdout, "records", "2000", "of", "100", "B", "(0.2", "MB)")
	mustNumberRow(t, r.stdout, "records/s")
	mustNumberRow(t, r.stdout, "MB/s")
	mustRow(t, r.stdout, "latency", "produce", "call", "to", "acknowledgement")
	for _, p := range []string{"p50", "p99", "p99.9", "max"} {
		mustRow(t, r.stdout, "latency", p)
	}
	if !strings.Contains(r.stderr, "bench: created topic b with 3 partitions") ||
		!strings.Contains(r.stderr, "produce: 2000/2000 records (100%), ") || strings.Contains(r.stderr, "\r") {
		t.Fatalf("bench produce stderr: want the topic's creation and progress lines:\n%s", r)
	}

	// produce, JSON, into the existing topic with other producer settings.
	rep := benchJSON(t, addr, "produce", "--topic", "b", "--records", "2000", "--record-bytes", "100", "--acks", "1", "--compression", "lz4")
	if rep.Workload != "produce" || rep.Records != 2000 || rep.RecordBytes != 100 || rep.Bytes != 200_000 ||
		rep.Topic != "b" || rep.Partitions != 3 || rep.Acks != "1" || rep.Compression != "lz4" || rep.Producers != 1 || rep.Rate != 0 {
		t.Fatalf("bench produce --format json: %+v", rep)
	}
	mustLatency(t, rep, 2000)

	// consume: a catch-up read, no latency.
	r = ok(t, addr, "", "bench", "consume", "--topic", "b", "--records", "4000")
	mustRow(t, r.stdout, "workload", "consume")
	mustRow(t, r.stdout, "records", "4000", "of", "100", "B")
	mustNumberRow(t, r.stdout, "records/s")
	if strings.Contains(r.stdout, "latency") {
		t.Fatalf("bench consume reports a latency:\n%s", r.stdout)
	}
	rep = benchJSON(t, addr, "consume", "--topic", "b", "--records", "3000")
	if rep.Workload != "consume" || rep.Records != 3000 || rep.Bytes != 300_000 || rep.RecordBytes != 100 || rep.Latency.Count != 0 || rep.Acks != "" {
		t.Fatalf("bench consume --format json: %+v", rep)
	}
	fails(t, addr, 1, `topic "b" holds 4000 records, fewer than --records 5000`, "bench", "consume", "--topic", "b", "--records", "5000")
	fails(t, addr, 1, `unknown topic "ghost": write records to it first`, "bench", "consume", "--topic", "ghost")

	// e2e at a rate: 1000 records at 4000/s take at least a quarter second.
	rep = benchJSON(t, addr, "e2e", "--topic", "e", "--records", "1000", "--record-bytes", "64", "--rate", "4000", "--partitions", "2")
	if rep.Workload != "e2e" || rep.Records != 1000 || rep.Bytes != 64_000 || rep.Rate != 4000 || rep.Partitions != 2 {
		t.Fatalf("bench e2e --format json: %+v", rep)
	}
	if rep.Elapsed < 240*time.Millisecond {
		t.Fatalf("bench e2e: 1000 records at 4000/s in %v: the rate is not applied", rep.Elapsed)
	}
	mustLatency(t, rep, 1000)
	r = ok(t, addr, "", "bench", "e2e", "--topic", "e", "--records", "200", "--rate", "2000", "--no-progress")
	mustRow(t, r.stdout, "workload", "e2e", "(acks", "all,", "compression", "none,", "1", "producer,", "at", "2000", "records/s)")
	mustRow(t, r.stdout, "latency", "produce", "call", "to", "consumer")
	mustRow(t, r.stdout, "latency", "p99.9")
	if r.stderr != "" {
		t.Fatalf("bench --no-progress wrote to stderr:\n%s", r)
	}

	// The broker's refusals are shown as it gave them.
	fails(t, addr, 1, `cannot create topic "r3": INVALID_REPLICATION_FACTOR`, "bench", "produce", "--topic", "r3", "--replication-factor", "3")
}

func TestCLIBenchErrors(t *testing.T) {
	dead := freePort(t) // nothing listens there

	// Nothing at --brokers: exit 1 at once, saying so.
	for _, w := range []string{"produce", "consume"} {
		r := fails(t, dead, 1, "cannot reach broker "+dead, "bench", w, "--timeout", "3s")
		if !strings.Contains(r.stderr, "is fluxo serve running?") || r.elapsed > 3*time.Second {
			t.Fatalf("bench %s against no broker took %s:\n%s", w, r.elapsed, r)
		}
	}

	// Command-line mistakes: exit 2 with what is wrong, before connecting.
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"name the workload: produce, consume or e2e", nil},
		{`unknown workload "load": want produce, consume or e2e`, []string{"load"}},
		{`bench produce: unexpected argument "x"`, []string{"produce", "x"}},
		{"--records 0: want 1 or more", []string{"produce", "--records", "0"}},
		{"--records -5: want 1 or more", []string{"consume", "--records", "-5"}},
		{"--record-bytes 0: want 1 to 1048576", []string{"produce", "--record-bytes", "0"}},
		{"--record-bytes 2000000: want 1 to 1048576", []string{"produce", "--record-bytes", "2000000"}},
		{"--record-bytes 4: e2e needs at least 8", []string{"e2e", "--record-bytes", "4", "--rate", "100"}},
		{`--acks "2": want all (or -1), 1 or 0`, []string{"produce", "--acks", "2"}},
		{"--rate -1: want records per second", []string{"produce", "--rate", "-1"}},
		{"--rate NaN: want records per second", []string{"produce", "--rate", "NaN"}},
		{`--compression "brotli": want none, snappy, lz4, zstd or gzip`, []string{"produce", "--compression", "brotli"}},
		{`--format "yaml": want text or json`, []string{"produce", "--format", "yaml"}},
		{"bench e2e needs --rate (records/s): at full speed the latency measures", []string{"e2e"}},
		{"--partitions 0: want 1 or more", []string{"produce", "--partitions", "0"}},
		{"--replication-factor 0: want 1 or more", []string{"produce", "--replication-factor", "0"}},
		{"--producers 0: want 1 to 1024", []string{"produce", "--producers", "0"}},
		{"--rate does not apply to bench consume", []string{"consume", "--rate", "10"}},
		{"--producers does not apply to bench e2e", []string{"e2e", "--rate", "10", "--producers", "2"}},
		{"--timeout 0s: want a positive duration", []string{"produce", "--timeout", "0"}},
		{"flag provided but not defined: -bogus", []string{"produce", "--bogus"}},
	} {
		r := fails(t, dead, 2, tc.want, append([]string{"bench"}, tc.args...)...)
		if !strings.Contains(r.stderr, "fluxo bench -h") && !strings.Contains(r.stderr, "Usage: fluxo bench") {
			t.Fatalf("bench %v: no pointer to the help:\n%s", tc.args, r)
		}
	}
	r := ok(t, dead, "", "bench", "-h")
	if !strings.Contains(r.stdout, "Usage: fluxo bench produce|consume|e2e") || !strings.Contains(r.stdout, "p99_ns") {
		t.Fatalf("bench -h:\n%s", r)
	}
}

// A run in which no record goes through for the stall limit is cancelled
// with a message saying so; progress lines overwrite one line on a
// terminal.
func TestBenchProgress(t *testing.T) {
	var cause error
	var out bytes.Buffer
	p := &benchProgress{w: &out, show: true, stall: 2 * time.Second, cancel: func(err error) { cause = err }}
	at := func(done int64, secs float64) {
		p.report(loadgen.Progress{Workload: "produce", Done: done, Total: 1000, Bytes: done * 1000, Elapsed: time.Duration(secs * float64(time.Second))})
	}
	at(0, 1)
	at(400, 2)
	at(400, 3)
	at(400, 4)
	if cause != nil {
		t.Fatalf("cancelled after 2s without progress, at the limit: %v", cause)
	}
	at(400, 5)
	if cause == nil || !strings.Contains(cause.Error(), "bench produce: stalled: no record went through in 2s (400 of 1000 done)") {
		t.Fatalf("no progress for 3s with a 2s limit: %v", cause)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 5 || lines[1] != "produce: 400/1000 records (40%), 200 records/s, 0.2 MB/s, 2.0s" {
		t.Fatalf("progress lines: %q", lines)
	}

	// A finished run is not a stalled one.
	cause = nil
	p = &benchProgress{w: &out, stall: time.Second, cancel: func(err error) { cause = err }}
	p.report(loadgen.Progress{Done: 10, Total: 10, Elapsed: time.Second})
	p.report(loadgen.Progress{Done: 10, Total: 10, Elapsed: 5 * time.Second})
	if cause != nil {
		t.Fatalf("a finished run cancelled: %v", cause)
	}

	out.Reset()
	p = &benchProgress{w: &out, tty: true, show: true, stall: time.Minute, cancel: func(error) { t.Fatal("cancelled") }}
	at(100, 1)
	at(200, 2)
	p.finish()
	if want := "\r\033[Kproduce: 100/1000 records (10%), 100 records/s, 0.1 MB/s, 1.0s\r\033[Kproduce: 200/1000 records (20%), 100 records/s, 0.1 MB/s, 2.0s\n"; out.String() != want {
		t.Fatalf("terminal progress:\n got %q\nwant %q", out.String(), want)
	}
}
