// Command compare measures Fluxo beside other brokers on this machine, in one
// run, with the same workloads, and rewrites the comparison section of
// BENCHMARKS.md (between the bench:compare markers).
//
// Targets: Fluxo single node with and without fsync (in this process), Fluxo
// 3 brokers RF=3 (three `fluxo serve` child processes), franz-go's kfake in
// memory and with DataDir+SyncWrites, the null broker (the ceiling), and NATS
// JetStream (embedded nats-server, file storage) with its default sync and
// with sync always. Every Kafka target is driven by internal/loadgen;
// JetStream by its own client (nats.go jetstream). Fluxo alone is also
// measured for recovery time and idle-partition memory, and the machine's
// own limits (disk with fdatasync, loopback TCP) are measured in the same run.
//
//	go run ./bench/compare              # full run (task bench:compare)
//	go run ./bench/compare -quick       # smoke run, tiny sizes
//	go run ./bench/compare -only fluxo-fsync,kfake,produce,consume
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		stop()
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "compare: %v\n", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	quick       bool
	records     int64 // records per throughput workload
	slowRecords int64 // records per workload for slow targets (JetStream sync always)
	e2eDuration time.Duration
	e2eMax      int64 // at most this many e2e records
	// e2eFixedRate: records/s of the fixed-rate end-to-end run (for e2eDuration/2)
	e2eFixedRate float64

	recoveryBytes      int64
	recoveryPartitions int
	idleTopics         int
	idlePerTopic       int
	settleMax          time.Duration

	diskBytes   int64
	loopbackFor time.Duration

	jsWindow int // JetStream async publish: acks outstanding per publisher

	out, jsonOut string
	only         string
	dir          string
	keep         bool
	fluxoBin     string
	timeout      time.Duration // per workload
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.quick, "quick", false, "smoke run: tiny sizes (5,000 records, 64 MiB recovery, 500 idle partitions); figures not to quote")
	fs.Int64Var(&o.records, "records", 300_000, "records per throughput workload")
	fs.Int64Var(&o.slowRecords, "slow-records", 20_000, "records per workload for slow targets (JetStream with sync always); marked in the tables")
	fs.DurationVar(&o.e2eDuration, "e2e-duration", 10*time.Second, "length of each end-to-end latency run (records = rate x duration)")
	fs.Float64Var(&o.e2eFixedRate, "e2e-fixed-rate", 10_000, "records/s of the fixed-rate end-to-end run (the same load for every target, for half of -e2e-duration)")
	fs.Int64Var(&o.e2eMax, "e2e-max-records", 1_000_000, "at most this many records per end-to-end run")
	recovery := fs.String("recovery-bytes", "10GiB", "bytes held by the node whose restart is timed (e.g. 10GiB, 64MiB)")
	fs.IntVar(&o.recoveryPartitions, "recovery-partitions", 8, "partitions holding the recovery data")
	fs.IntVar(&o.idleTopics, "idle-topics", 100, "idle-memory run: topics")
	fs.IntVar(&o.idlePerTopic, "idle-partitions", 100, "idle-memory run: partitions per topic")
	fs.DurationVar(&o.settleMax, "settle", 60*time.Second, "idle-memory run: longest wait for the resident memory to settle")
	disk := fs.String("disk-bytes", "512MiB", "machine limit: bytes written with fdatasync per 1 MiB block")
	fs.DurationVar(&o.loopbackFor, "loopback-duration", 3*time.Second, "machine limit: how long the loopback TCP stream runs")
	fs.IntVar(&o.jsWindow, "js-window", 4096, "JetStream async publish: acknowledgements outstanding per publisher")
	fs.StringVar(&o.out, "out", "", "markdown file whose bench:compare section is rewritten (default: BENCHMARKS.md at the repository root; \"none\": no markdown)")
	fs.StringVar(&o.jsonOut, "json", "", "write every raw result to this JSON file")
	fs.StringVar(&o.only, "only", "", "comma-separated targets and/or workloads to run (default all); "+
		"targets: "+strings.Join(targetNames(), ", ")+" (or fluxo, kfake, jetstream); workloads: "+strings.Join(workloadNames, ", ")+
		" (consume and e2e bring produce along: they read what it wrote and run at half its rate)")
	fs.StringVar(&o.dir, "dir", "", "directory for the brokers' data and the disk test (default: a new temp dir, removed at the end)")
	fs.BoolVar(&o.keep, "keep", false, "keep the data directory")
	fs.StringVar(&o.fluxoBin, "fluxo-bin", "", "use this fluxo binary instead of building ./cmd/fluxo")
	fs.DurationVar(&o.timeout, "workload-timeout", 15*time.Minute, "longest time one workload may take")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	if o.recoveryBytes, err = parseBytes(*recovery); err != nil {
		return o, fmt.Errorf("-recovery-bytes: %w", err)
	}
	if o.diskBytes, err = parseBytes(*disk); err != nil {
		return o, fmt.Errorf("-disk-bytes: %w", err)
	}
	if o.quick { // tiny sizes, unless given explicitly
		quick := map[string]func(){
			"records":           func() { o.records = 5000 },
			"slow-records":      func() { o.slowRecords = 1000 },
			"e2e-duration":      func() { o.e2eDuration = time.Second },
			"recovery-bytes":    func() { o.recoveryBytes = 64 << 20 },
			"idle-topics":       func() { o.idleTopics = 5 },
			"settle":            func() { o.settleMax = 8 * time.Second },
			"disk-bytes":        func() { o.diskBytes = 32 << 20 },
			"loopback-duration": func() { o.loopbackFor = 500 * time.Millisecond },
			"workload-timeout":  func() { o.timeout = 2 * time.Minute },
		}
		for name, apply := range quick {
			if !set[name] {
				apply()
			}
		}
	}
	switch {
	case o.records <= 0 || o.slowRecords <= 0:
		return o, errors.New("-records and -slow-records must be positive")
	case o.e2eDuration <= 0:
		return o, errors.New("-e2e-duration must be positive")
	case o.recoveryPartitions <= 0 || o.idleTopics <= 0 || o.idlePerTopic <= 0:
		return o, errors.New("-recovery-partitions, -idle-topics and -idle-partitions must be positive")
	case o.jsWindow <= 0:
		return o, errors.New("-js-window must be positive")
	}
	return o, nil
}

// parseBytes reads 10GiB, 64MiB, 512KiB or a plain number of bytes.
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	var n float64
	if _, err := fmt.Sscanf(s, "%g", &n); err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive size (such as 10GiB or 64MiB)", s)
	}
	return int64(n * float64(mult)), nil
}

// run is the whole command; main only adds the signal handling.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	sel, err := parseOnly(o.only)
	if err != nil {
		return err
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fluxo-compare-*"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(dir)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return err
	}
	h := &harness{o: o, sel: sel, dir: dir, log: stderr, procs: &procs{live: map[*child]struct{}{}}}
	defer h.procs.stopAll(h.logf)
	start := time.Now()
	h.rep = &Report{Date: start.UTC(), Quick: o.quick, Only: o.only, Settings: h.settings(), Dir: dir}
	h.logf("compare: data under %s; %s", dir, h.settings().summary())

	h.runAll(ctx)
	h.rep.Elapsed = time.Since(start)
	h.rep.Goals = checkGoals(h.rep)
	if err := ctx.Err(); err != nil {
		h.writeJSON() // partial results are still worth keeping
		return fmt.Errorf("interrupted: %w (markdown left untouched)", err)
	}
	if err := h.writeJSON(); err != nil {
		return err
	}
	if o.out == "" {
		root, err := moduleRoot(ctx)
		if err != nil {
			return err
		}
		o.out = filepath.Join(root, "BENCHMARKS.md")
	}
	if o.out != "none" {
		if err := updateMarkdown(o.out, renderSection(h.rep)); err != nil {
			return err
		}
		h.logf("compare: wrote the bench:compare section of %s", o.out)
	}
	h.logf("compare: done in %v", h.rep.Elapsed.Round(time.Second))
	for _, g := range h.rep.Goals {
		h.logf("  goal %s: %s (%s)", g.Name, g.Status, g.Figures)
	}
	if n := len(h.rep.Failures); n > 0 {
		f := h.rep.Failures[0]
		return fmt.Errorf("%d measurements failed, first: %s %s: %s", n, f.Target, f.Workload, f.Err)
	}
	return nil
}

// harness holds one run's state.
type harness struct {
	o     options
	sel   selection
	dir   string
	log   io.Writer
	logMu sync.Mutex
	procs *procs
	rep   *Report
	ports portAllocator
	bin   string // the fluxo binary, built on first use
}

func (h *harness) logf(format string, args ...any) {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	fmt.Fprintf(h.log, format+"\n", args...)
}

// fail records a failed measurement and logs it.
func (h *harness) fail(target, workload string, err error) {
	h.rep.Failures = append(h.rep.Failures, Failure{Target: target, Workload: workload, Err: err.Error()})
	h.logf("  FAILED %s %s: %v", target, workload, err)
}

func (h *harness) writeJSON() error {
	if h.o.jsonOut == "" {
		return nil
	}
	if err := writeJSONFile(h.o.jsonOut, h.rep); err != nil {
		return err
	}
	h.logf("compare: raw results in %s", h.o.jsonOut)
	return nil
}

// runAll measures every selected target and workload, in turn.
func (h *harness) runAll(ctx context.Context) {
	if h.sel.workload(wMachine) {
		h.machine(ctx)
	}
	// Build the fluxo binary before any measurement, not during one.
	if h.sel.target("fluxo-rf3") && h.sel.anyKafkaWorkload() || h.sel.fluxoSelected() && (h.sel.workload(wRecovery) || h.sel.workload(wIdle)) {
		if _, err := h.fluxoBinary(ctx); err != nil {
			h.fail("fluxo", "build", err) // and each target that needs it fails too
		}
	}
	for _, t := range kafkaTargets {
		if ctx.Err() != nil {
			return
		}
		if h.sel.target(t.name) && h.sel.anyKafkaWorkload() {
			settle()
			h.runKafka(ctx, t)
		}
	}
	for _, t := range jsTargets {
		if ctx.Err() != nil {
			return
		}
		if h.sel.target(t.name) && h.sel.anyKafkaWorkload() {
			settle()
			h.runJetStream(ctx, t)
		}
	}
	if ctx.Err() == nil && h.sel.workload(wRecovery) && h.sel.fluxoSelected() {
		h.recovery(ctx)
	}
	if ctx.Err() == nil && h.sel.workload(wIdle) && h.sel.fluxoSelected() {
		h.idle(ctx)
	}
}

// settle collects the previous target's garbage and returns it to the OS,
// so every in-process target starts from the same heap.
func settle() {
	runtime.GC()
	debug.FreeOSMemory()
}
