package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Idle is the resident memory of a Fluxo node holding idle partitions.
type Idle struct {
	Topics     int           `json:"topics"`
	Partitions int           `json:"partitions"` // in all
	EmptyRSS   int64         `json:"empty_rss_bytes"`
	RSS        int64         `json:"rss_bytes"`  // VmRSS once settled
	HWM        int64         `json:"hwm_bytes"`  // VmHWM: the peak, creation included
	Create     time.Duration `json:"create_ns"`  // creating every topic until every partition had a leader
	Settle     time.Duration `json:"settle_ns"`  // from the last creation to the figure
	Settled    bool          `json:"settled"`    // false: -settle ran out first
	OpenFiles  int           `json:"open_files"` // entries of /proc/PID/fd once settled
	Samples    int           `json:"samples"`    // settled: this many samples, 1 s apart, within 1%
}

// idle starts a child `fluxo serve`, creates -idle-topics topics of
// -idle-partitions partitions, closes every client and reads VmRSS from
// /proc/PID/status once it settles (under 1% of change over the last 5
// samples, one a second; 3 when -settle is under 10 s) or -settle runs out.
func (h *harness) idle(ctx context.Context) {
	const target = "fluxo"
	total := h.o.idleTopics * h.o.idlePerTopic
	h.logf("== %s %s: a child fluxo serve holding %d idle partitions (%d topics x %d)", target, wIdle, total, h.o.idleTopics, h.o.idlePerTopic)
	dir := filepath.Join(h.dir, "idle")
	defer os.RemoveAll(dir)
	res, err := h.measureIdle(ctx, dir)
	if err != nil {
		h.fail(target, wIdle, err)
		return
	}
	h.rep.Idle = res
}

func (h *harness) measureIdle(ctx context.Context, dir string) (*Idle, error) {
	ports, err := h.ports.take(1)
	if err != nil {
		return nil, err
	}
	addr := loopback(ports[0])
	c, err := h.startServe(ctx, "fluxo idle node", filepath.Join(h.dir, "idle.log"), "--data-dir", filepath.Join(dir, "data"),
		"--listen", addr, "--remote-listen", "", "--metrics-listen", "", "--log-format", "text")
	if err != nil {
		return nil, err
	}
	defer c.stop(time.Minute)
	h.logf("  started pid %d, Kafka %s", c.pid(), addr)
	if err := waitListening(ctx, c, addr); err != nil {
		return nil, err
	}
	res := &Idle{Topics: h.o.idleTopics, Partitions: h.o.idleTopics * h.o.idlePerTopic}
	if res.EmptyRSS, _, err = settledRSS(ctx, c, 3*time.Second, 3); err != nil {
		return nil, err
	}
	h.logf("  empty node: VmRSS %s", sizeString(res.EmptyRSS))

	start := time.Now()
	if err := createIdleTopics(ctx, addr, h.o.idleTopics, int32(h.o.idlePerTopic), h.logf); err != nil {
		return nil, err
	}
	res.Create = time.Since(start)
	h.logf("  created %d partitions in %v; waiting for VmRSS to settle (at most %v)", res.Partitions, res.Create.Round(time.Millisecond), h.o.settleMax)
	start = time.Now()
	samples := 5
	if h.o.settleMax < 10*time.Second {
		samples = 3 // smoke runs
	}
	res.Samples = samples
	if res.RSS, res.Settled, err = settledRSS(ctx, c, h.o.settleMax, samples); err != nil {
		return nil, err
	}
	res.Settle = time.Since(start)
	if _, res.HWM, err = vmRSS(c.pid()); err != nil {
		return nil, err
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.pid())); err == nil {
		res.OpenFiles = len(fds)
	}
	h.logf("  fluxo idle: %d partitions, VmRSS %s (peak %s), %d open files, settled=%v after %v", res.Partitions, sizeString(res.RSS),
		sizeString(res.HWM), res.OpenFiles, res.Settled, res.Settle.Round(time.Second))
	return res, nil
}

// createIdleTopics creates topics idle-0.. in requests of 10 topics and
// waits until every partition has a leader.
func createIdleTopics(ctx context.Context, addr string, topics int, partitions int32, logf func(string, ...any)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequestTimeoutOverhead(time.Minute))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(120_000)
	var names []string
	for i := range topics {
		names = append(names, fmt.Sprintf("idle-%d", i))
	}
	for i := 0; i < len(names); i += 10 {
		batch := names[i:min(i+10, len(names))]
		res, err := adm.CreateTopics(ctx, partitions, 1, nil, batch...)
		if err != nil {
			return fmt.Errorf("create topics: %w", err)
		}
		if err := res.Error(); err != nil {
			return fmt.Errorf("create topics: %w", err)
		}
		if i > 0 && i%50 == 0 {
			logf("    %d of %d topics created", i, len(names))
		}
	}
	for _, n := range names {
		if err := prepareTopic(ctx, addr, n, partitions, 0); err != nil {
			return err
		}
	}
	return nil
}

// settledRSS samples VmRSS once a second until the last n samples are
// within 1% of each other (settled) or limit passes; it returns the last
// sample.
func settledRSS(ctx context.Context, c *child, limit time.Duration, n int) (int64, bool, error) {
	deadline := time.Now().Add(limit)
	var window []int64
	for {
		if err := c.running(); err != nil {
			return 0, false, err
		}
		rss, _, err := vmRSS(c.pid())
		if err != nil {
			return 0, false, err
		}
		window = append(window, rss)
		if len(window) > n {
			window = window[1:]
		}
		if len(window) == n {
			lo, hi := window[0], window[0]
			for _, v := range window {
				lo, hi = min(lo, v), max(hi, v)
			}
			if float64(hi-lo) <= 0.01*float64(hi) {
				return rss, true, nil
			}
		}
		if time.Now().After(deadline) {
			return rss, false, nil
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
