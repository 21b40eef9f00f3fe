package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/fluxo-broker/fluxo/internal/loadgen"
)

// Report is everything one run measured (the -json file).
type Report struct {
	Date     time.Time     `json:"date"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Quick    bool          `json:"quick"`
	Only     string        `json:"only,omitempty"` // -only, for a partial run
	Dir      string        `json:"dir"`
	Settings Settings      `json:"settings"`
	Machine  Machine       `json:"machine"`
	Limits   Limits        `json:"limits"`
	Runs     []Run         `json:"runs"`
	Recovery *Recovery     `json:"recovery,omitempty"`
	Idle     *Idle         `json:"idle,omitempty"`
	Goals    []Goal        `json:"goals"`
	Failures []Failure     `json:"failures,omitempty"`
}

// Failure is a measurement that did not complete.
type Failure struct {
	Target   string `json:"target"`
	Workload string `json:"workload"`
	Err      string `json:"error"`
}

// Settings are the sizes the run used.
type Settings struct {
	Records            int64         `json:"records"`
	SlowRecords        int64         `json:"slow_records"`
	E2EDuration        time.Duration `json:"e2e_duration_ns"`
	E2EFixedRate       float64       `json:"e2e_fixed_rate"`
	RecoveryBytes      int64         `json:"recovery_bytes"`
	RecoveryPartitions int           `json:"recovery_partitions"`
	IdleTopics         int           `json:"idle_topics"`
	IdlePerTopic       int           `json:"idle_partitions_per_topic"`
	JSWindow           int           `json:"js_window"`
}

func (h *harness) settings() Settings {
	return Settings{Records: h.o.records, SlowRecords: h.o.slowRecords, E2EDuration: h.o.e2eDuration, E2EFixedRate: h.o.e2eFixedRate,
		RecoveryBytes: h.o.recoveryBytes, RecoveryPartitions: h.o.recoveryPartitions,
		IdleTopics: h.o.idleTopics, IdlePerTopic: h.o.idlePerTopic, JSWindow: h.o.jsWindow}
}

// fullSettings are the defaults (a run without -quick or size flags).
var fullSettings = Settings{Records: 300_000, SlowRecords: 20_000, E2EDuration: 10 * time.Second, E2EFixedRate: 10_000,
	RecoveryBytes: 10 << 30, RecoveryPartitions: 8, IdleTopics: 100, IdlePerTopic: 100, JSWindow: 4096}

// fullRunTime is the estimated length of a full run on the project's
// machine (2 cores).
const fullRunTime = "about 4-5 minutes"

// diskNeeded is the free space a run asks for: the recovery data, a quarter
// more for the writes around the kill -9 and preallocated segments, and
// 1 GiB for the other targets.
func diskNeeded(recoveryBytes int64) int64 { return recoveryBytes + recoveryBytes/4 + 1<<30 }

func (s Settings) summary() string {
	return fmt.Sprintf("%s records per workload (%s for slow targets), e2e runs of %v, recovery of %s, %s idle partitions",
		thousands(s.Records), thousands(s.SlowRecords), s.E2EDuration, sizeString(s.RecoveryBytes), thousands(int64(s.IdleTopics*s.IdlePerTopic)))
}

// Run is one target's result for one workload.
type Run struct {
	Target     string          `json:"target"`
	Workload   string          `json:"workload"`
	Result     *loadgen.Result `json:"result"`
	Rate       float64         `json:"rate,omitempty"` // e2e: records/s asked for
	Partitions int32           `json:"partitions"`
	Producers  int             `json:"producers"`
	Note       string          `json:"note,omitempty"`
}

func (h *harness) record(r Run) { h.rep.Runs = append(h.rep.Runs, r) }

func (rep *Report) run(target, workload string) *Run {
	for i := range rep.Runs {
		if rep.Runs[i].Target == target && rep.Runs[i].Workload == workload {
			return &rep.Runs[i]
		}
	}
	return nil
}

// Goal is one line of the targets table.
type Goal struct {
	Name    string `json:"name"`
	Figures string `json:"figures"`
	Status  string `json:"status"` // met, missed, not measured
}

const (
	met         = "met"
	missed      = "missed"
	notMeasured = "not measured"
)

func status(ok bool) string {
	if ok {
		return met
	}
	return missed
}

// checkGoals evaluates the targets against the run.
func checkGoals(rep *Report) []Goal {
	var goals []Goal
	mbps := func(target, workload string) (float64, bool) {
		if r := rep.run(target, workload); r != nil && r.Result != nil {
			return r.Result.MBPerSec(), true
		}
		return 0, false
	}
	ratio := func(name, workload, peer, peerLabel string, want float64) {
		g := Goal{Name: name, Status: notMeasured}
		f, ok1 := mbps("fluxo-fsync", workload)
		p, ok2 := mbps(peer, workload)
		if ok1 && ok2 && p > 0 {
			g.Figures = fmt.Sprintf("Fluxo %.1f MB/s, %s %.1f MB/s: %.2f", f, peerLabel, p, f/p)
			g.Status = status(f/p >= want)
		} else {
			g.Figures = "fluxo-fsync or " + peer + " not measured"
		}
		goals = append(goals, g)
	}
	ratio("produce 1 KiB, durable single node ≥ 0.7 × null ceiling", wProduce, "null", "null", 0.7)
	ratio("produce 1 KiB, durable single node ≥ 1.2 × kfake fsync", wProduce, "kfake-fsync", "kfake-fsync", 1.2)
	ratio("produce 1 KiB, durable single node ≥ 3 × JetStream default", wProduce, "jetstream-default", "JetStream", 3)
	ratio("consume ≥ 1.0 × kfake memory", wConsume, "kfake-memory", "kfake-memory", 1.0)
	ratio("consume ≥ 1.5 × JetStream ordered consumer", wConsume, "jetstream-default", "JetStream", 1.5)

	p99 := func(name, target string, limit time.Duration) {
		g := Goal{Name: name, Status: notMeasured, Figures: target + " not measured"}
		if r := rep.run(target, wE2E); r != nil && r.Result != nil {
			l := r.Result.Latency
			g.Figures = fmt.Sprintf("p99 %s at %.0f records/s (p50 %s, max %s)", ms(l.P99), r.Rate, ms(l.P50), ms(l.Max))
			g.Status = status(l.P99 < limit)
		}
		goals = append(goals, g)
	}
	p99("e2e p99 at 50% of peak, single node < 10 ms", "fluxo-fsync", 10*time.Millisecond)
	p99("e2e p99 at 50% of peak, RF=3 < 20 ms", "fluxo-rf3", 20*time.Millisecond)

	g := Goal{Name: "RF=3 acks=all produce ≥ 0.5 × single node", Status: notMeasured, Figures: "fluxo-rf3 or fluxo-fsync not measured"}
	if r3, ok := mbps("fluxo-rf3", wProduce); ok {
		if r1, ok := mbps("fluxo-fsync", wProduce); ok && r1 > 0 {
			g.Figures = fmt.Sprintf("RF=3 %.1f MB/s, single node %.1f MB/s: %.2f", r3, r1, r3/r1)
			g.Status = status(r3/r1 >= 0.5)
		}
	}
	goals = append(goals, g)

	g = Goal{Name: "10,000 idle partitions < 500 MiB resident", Status: notMeasured, Figures: "not measured"}
	if id := rep.Idle; id != nil {
		g.Figures = fmt.Sprintf("%d partitions: VmRSS %s", id.Partitions, sizeString(id.RSS))
		if id.Partitions != 10_000 {
			g.Figures += fmt.Sprintf(" (not the goal's 10,000: %s)", sizeNote(rep))
		}
		g.Status = status(id.RSS < 500<<20)
	}
	goals = append(goals, g)

	ready := func(name string, limit time.Duration, took func(*Recovery) time.Duration) {
		g := Goal{Name: name, Status: notMeasured, Figures: "not measured"}
		if rc := rep.Recovery; rc != nil {
			g.Figures = fmt.Sprintf("%s in %d partitions: serving %s after the start", sizeString(rc.Bytes), rc.Partitions, seconds(took(rc)))
			if rc.Bytes < 10<<30 {
				g.Figures += fmt.Sprintf(" (not the goal's 10 GiB: %s)", sizeNote(rep))
			}
			g.Status = status(took(rc) < limit)
		}
		goals = append(goals, g)
	}
	ready("10 GiB node serving < 2 s after a clean restart", 2*time.Second, func(r *Recovery) time.Duration { return r.CleanReady })
	ready("10 GiB node serving < 10 s after kill -9", 10*time.Second, func(r *Recovery) time.Duration { return r.CrashReady })
	return goals
}

func sizeNote(rep *Report) string {
	if rep.Quick {
		return "quick mode"
	}
	return "smaller run"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func seconds(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// thousands formats n with commas.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func writeJSONFile(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

const (
	beginMarker = "<!-- bench:compare:begin -->"
	endMarker   = "<!-- bench:compare:end -->"
)

// updateMarkdown replaces the lines from beginMarker to endMarker in path
// with section (which holds both markers). Without the markers, the section
// goes before the file's first "## " heading (after its introduction); a
// missing file is created with the section alone. Nothing else changes.
func updateMarkdown(path, section string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return os.WriteFile(path, []byte(section), 0o644)
	}
	if err != nil {
		return err
	}
	text := string(b)
	lines := strings.SplitAfter(text, "\n")
	begin, end := -1, -1
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case beginMarker:
			if begin >= 0 {
				return fmt.Errorf("%s: two %s lines", path, beginMarker)
			}
			begin = i
		case endMarker:
			if end >= 0 {
				return fmt.Errorf("%s: two %s lines", path, endMarker)
			}
			end = i
		}
	}
	var out string
	switch {
	case begin >= 0 && end > begin:
		out = strings.Join(lines[:begin], "") + section + strings.Join(lines[end+1:], "")
	case begin >= 0 || end >= 0:
		return fmt.Errorf("%s: the %s and %s lines are not a pair in order; fix them by hand", path, beginMarker, endMarker)
	default:
		at := len(lines)
		for i, l := range lines {
			if strings.HasPrefix(l, "## ") {
				at = i
				break
			}
		}
		head := strings.Join(lines[:at], "")
		if head != "" && !strings.HasSuffix(head, "\n") {
			head += "\n"
		}
		sep := ""
		if at < len(lines) {
			sep = "\n"
		}
		out = head + section + sep + strings.Join(lines[at:], "")
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
