package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedLog collects the harness's progress lines for the test log.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A quick run measures every target and workload: each produces a
// non-zero result, the JSON holds them all, and the markdown file gets the
// section between the markers, goals table included, without losing the
// rest of the file. It builds fluxo into the test's temp dir.
func TestQuickRun(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "BENCHMARKS.md")
	const intro, rest = "# Fluxo benchmarks\n\nIntro paragraph.\n\n", "## Storage\n\nHand-written figures.\n"
	if err := os.WriteFile(md, []byte(intro+rest), 0o644); err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(dir, "results.json")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var log lockedLog
	start := time.Now()
	err := run(ctx, []string{"-quick", "-records", "3000", "-slow-records", "300", "-e2e-duration", "500ms",
		"-settle", "4s", "-disk-bytes", "8MiB", "-loopback-duration", "200ms",
		"-out", md, "-json", js, "-dir", filepath.Join(dir, "run")}, &log)
	t.Logf("harness output (%v):\n%s", time.Since(start).Round(time.Second), log.String())
	if err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, name := range targetNames() {
		for _, w := range kafkaWorkloads {
			if name == "null" && (w == wConsume || w == wE2E || w == wE2EFixed) {
				continue // produce only
			}
			r := rep.run(name, w)
			if r == nil || r.Result == nil {
				t.Errorf("%s %s: no result", name, w)
				continue
			}
			res := r.Result
			if res.Records <= 0 || res.Bytes <= 0 || res.Elapsed <= 0 || res.MBPerSec() <= 0 {
				t.Errorf("%s %s: empty result %+v", name, w, res)
			}
			if w != wConsume && (res.Latency.Count != res.Records || res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99) {
				t.Errorf("%s %s: latency %+v for %d records", name, w, res.Latency, res.Records)
			}
			if (w == wE2E || w == wE2EFixed) && r.Rate <= 0 {
				t.Errorf("%s %s: no rate", name, w)
			}
		}
	}
	if l := rep.Limits; l.DiskMBps <= 0 || l.LoopbackGBps <= 0 {
		t.Errorf("machine limits %+v", l)
	}
	if m := rep.Machine; m.Cores <= 0 || m.Go == "" || m.MemBytes <= 0 {
		t.Errorf("machine %+v", m)
	}
	if rc := rep.Recovery; rc == nil || rc.Bytes < 64<<20 || rc.CleanReady <= 0 || rc.CrashReady <= 0 || rc.CrashRecords <= 0 {
		t.Errorf("recovery %+v", rc)
	}
	if id := rep.Idle; id == nil || id.Partitions != 500 || id.RSS <= 0 || id.EmptyRSS <= 0 {
		t.Errorf("idle %+v", id)
	}
	if len(rep.Goals) != 11 {
		t.Errorf("%d goals, want 11", len(rep.Goals))
	}
	for _, g := range rep.Goals {
		if g.Status != met && g.Status != missed {
			t.Errorf("goal %q: %s (%s)", g.Name, g.Status, g.Figures)
		}
	}
	if len(rep.Failures) > 0 {
		t.Errorf("failures: %+v", rep.Failures)
	}

	b, err = os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.HasPrefix(text, intro+beginMarker+"\n") || !strings.HasSuffix(text, endMarker+"\n\n"+rest) {
		t.Errorf("the section is not between the intro and the rest, or they changed:\n%s", text)
	}
	for _, want := range []string{"### Goals", "| goal | figures | status |", "task bench:compare", "go run ./bench/compare -quick",
		"### Produce, 1 KiB", "### Consume", "### End-to-end latency", "### Produce, 100 B", "16 producers on 64 partitions",
		"### Recovery", "### Idle partitions", "Machine limits", "Quick mode"} {
		if !strings.Contains(text, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if n := strings.Count(text, "**met**") + strings.Count(text, "**missed**"); n != 11 {
		t.Errorf("%d goal lines say met or missed, want 11", n)
	}
}

func TestUpdateMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "B.md")
	section := func(body string) string { return beginMarker + "\n" + body + "\n" + endMarker + "\n" }
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	read := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// Absent: inserted before the first "## " heading, after the intro.
	write("# T\n\nintro\n\n## A\n\na\n")
	if err := updateMarkdown(path, section("one")); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), "# T\n\nintro\n\n"+section("one")+"\n## A\n\na\n"; got != want {
		t.Fatalf("insert:\n%q\nwant\n%q", got, want)
	}
	// Present: only the lines between the markers change.
	if err := updateMarkdown(path, section("two\nlines")); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), "# T\n\nintro\n\n"+section("two\nlines")+"\n## A\n\na\n"; got != want {
		t.Fatalf("replace:\n%q\nwant\n%q", got, want)
	}
	// No heading: appended.
	write("# T\n\nintro")
	if err := updateMarkdown(path, section("x")); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), "# T\n\nintro\n"+section("x"); got != want {
		t.Fatalf("append:\n%q\nwant\n%q", got, want)
	}
	// Unpaired or doubled markers are left for a person.
	for _, bad := range []string{"a\n" + beginMarker + "\nb\n", endMarker + "\n" + beginMarker + "\n", section("a") + section("b")} {
		write(bad)
		if err := updateMarkdown(path, section("x")); err == nil {
			t.Errorf("%q: no error", bad)
		}
		if read() != bad {
			t.Errorf("%q: changed despite the error", bad)
		}
	}
	// Missing file: the section alone.
	os.Remove(path)
	if err := updateMarkdown(path, section("new")); err != nil || read() != section("new") {
		t.Fatalf("missing file: %v, %q", err, read())
	}
}

func TestParseOnly(t *testing.T) {
	s, err := parseOnly("fluxo, produce,jetstream-always")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"fluxo-fsync": true, "fluxo-nosync": true, "fluxo-rf3": true, "kfake-memory": false,
		"null": false, "jetstream-always": true, "jetstream-default": false} {
		if s.target(name) != want {
			t.Errorf("target %s selected %v, want %v", name, !want, want)
		}
	}
	if !s.workload(wProduce) || s.workload(wConsume) || s.workload(wRecovery) || !s.fluxoSelected() {
		t.Errorf("workloads: %+v", s)
	}
	if s, _ := parseOnly("kfake,recovery"); s.fluxoSelected() {
		t.Error("recovery with only kfake targets: Fluxo-only workloads must not run")
	}
	if s, _ := parseOnly(""); !s.target("null") || !s.workload(wIdle) {
		t.Error("empty -only must select everything")
	}
	if _, err := parseOnly("kafka"); err == nil || !strings.Contains(err.Error(), "unknown name") {
		t.Errorf("unknown name: %v", err)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"10GiB": 10 << 30, "64MiB": 64 << 20, "512 KiB": 512 << 10, "1.5GB": 1_500_000_000, "4096": 4096} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1MiB", "0"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
