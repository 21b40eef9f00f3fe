package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/testkit"
)

// The CLI tests run the real binary (the test binary re-executed as fluxo,
// see TestMain) against a broker started in the test.

type cliResult struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cliBroker starts a broker with a Kafka listener and returns its address.
func cliBroker(t *testing.T) string {
	t.Helper()
	b := testkit.StartBroker(t, fluxo.WithKafkaListen("127.0.0.1:0", ""), fluxo.WithoutFsync())
	return b.KafkaAddr()
}

// fluxoCmd builds a fluxo process with FLUXO_BROKERS set to brokers.
func fluxoCmd(ctx context.Context, brokers, stdin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "FLUXO_TEST_MAIN=1", "FLUXO_BROKERS="+brokers)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// fluxoRun runs fluxo to completion, bounded to a minute.
func fluxoRun(t *testing.T, brokers, stdin string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := fluxoCmd(ctx, brokers, stdin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := cliResult{stdout: out.String(), stderr: errb.String(), elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("fluxo %s did not finish in a minute:\n%s", strings.Join(args, " "), r)
	}
	if err != nil && cmd.ProcessState == nil {
		t.Fatal(err)
	}
	r.code = cmd.ProcessState.ExitCode()
	return r
}

// ok runs fluxo and fails the test unless it exits 0.
func ok(t *testing.T, brokers, stdin string, args ...string) cliResult {
	t.Helper()
	r := fluxoRun(t, brokers, stdin, args...)
	if r.code != 0 {
		t.Fatalf("fluxo %s:\n%s", strings.Join(args, " "), r)
	}
	return r
}

// fails runs fluxo and checks the exit code and that stderr holds want.
func fails(t *testing.T, brokers string, code int, want string, args ...string) cliResult {
	t.Helper()
	r := fluxoRun(t, brokers, "", args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Fatalf("fluxo %s: want exit %d and stderr containing %q, got\n%s", strings.Join(args, " "), code, want, r)
	}
	return r
}

// fields splits output into lines of whitespace-separated fields.
func fields(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	return rows
}

// hasRow reports whether out has a line starting with the given fields.
func hasRow(out string, want ...string) bool {
	for _, f := range fields(out) {
		if len(f) >= len(want) && strings.Join(f[:len(want)], " ") == strings.Join(want, " ") {
			return true
		}
	}
	return false
}

func mustRow(t *testing.T, out string, want ...string) {
	t.Helper()
	if !hasRow(out, want...) {
		t.Fatalf("no row %q in:\n%s", strings.Join(want, " "), out)
	}
}

func TestCLITopics(t *testing.T) {
	addr := cliBroker(t)

	r := ok(t, addr, "", "topic", "create", "orders", "--partitions", "3")
	mustRow(t, r.stdout, "TOPIC", "PARTITIONS", "REPLICAS", "STATUS")
	mustRow(t, r.stdout, "orders", "3", "1", "created")
	// Flags may come before the name, and the broker's refusal of a
	// replication factor it cannot reach is shown as it gave it.
	fails(t, addr, 1, "INVALID_REPLICATION_FACTOR", "topic", "create", "--replicas", "3", "triple")
	fails(t, addr, 1, "TOPIC_ALREADY_EXISTS", "topic", "create", "orders")

	r = ok(t, addr, "", "topic", "list")
	mustRow(t, r.stdout, "NAME", "PARTITIONS", "REPLICAS")
	mustRow(t, r.stdout, "orders", "3", "1")
	if hasRow(r.stdout, "triple") {
		t.Fatalf("refused topic listed:\n%s", r.stdout)
	}
	var list []topicSummary
	r = ok(t, addr, "", "topic", "list", "--format", "json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Name != "orders" || list[0].Partitions != 3 || list[0].Replicas != 1 || list[0].ID == "" {
		t.Fatalf("topic list --format json: %v %+v\n%s", err, list, r.stdout)
	}

	ok(t, addr, "", "topic", "alter-config", "orders", "--set", "retention.ms=60000", "--set", "max.message.bytes=2000000")
	fails(t, addr, 1, "segment.bytes", "topic", "alter-config", "orders", "--set", "segment.bytes=1")
	r = ok(t, addr, "", "topic", "add-partitions", "orders", "--num", "2")
	if !strings.Contains(r.stdout, "now 5") {
		t.Fatalf("add-partitions: %s", r)
	}
	r = ok(t, addr, "", "topic", "describe", "orders")
	mustRow(t, r.stdout, "PARTITIONS", "5")
	mustRow(t, r.stdout, "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START-OFFSET", "HIGH-WATERMARK")
	mustRow(t, r.stdout, "4", "0", "0", "[0]", "[0]", "0", "0")
	mustRow(t, r.stdout, "retention.ms", "60000", "DYNAMIC_TOPIC_CONFIG")
	mustRow(t, r.stdout, "max.message.bytes", "2000000", "DYNAMIC_TOPIC_CONFIG")
	mustRow(t, r.stdout, "retention.bytes", "-1", "DEFAULT_CONFIG")

	// --delete reverts one key and keeps the other.
	ok(t, addr, "", "topic", "alter-config", "orders", "--delete", "max.message.bytes")
	var desc topicDescription
	r = ok(t, addr, "", "topic", "describe", "orders", "--format", "json")
	if err := json.Unmarshal([]byte(r.stdout), &desc); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	cfg := map[string]configEntry{}
	for _, c := range desc.Configs {
		cfg[c.Key] = c
	}
	if len(desc.Partitions) != 5 || cfg["retention.ms"].Value != "60000" || cfg["max.message.bytes"].Source != "DEFAULT_CONFIG" {
		t.Fatalf("describe json after alter: %+v", desc)
	}

	r = ok(t, addr, "", "topic", "delete", "orders")
	if !strings.Contains(r.stdout, "deleted topic orders") {
		t.Fatalf("delete: %s", r)
	}
	r = ok(t, addr, "", "topic", "list")
	if hasRow(r.stdout, "orders") {
		t.Fatalf("deleted topic still listed:\n%s", r.stdout)
	}
	fails(t, addr, 1, `unknown topic "orders"`, "topic", "describe", "orders")
	fails(t, addr, 1, `unknown topic "orders"`, "topic", "delete", "orders")
	fails(t, addr, 1, `unknown topic "nope"`, "topic", "add-partitions", "nope", "--num", "1")
	fails(t, addr, 1, `unknown topic "nope"`, "topic", "alter-config", "nope", "--set", "retention.ms=1")
}

func TestCLIProduceConsume(t *testing.T) {
	addr := cliBroker(t)
	ok(t, addr, "", "topic", "create", "events", "--partitions", "2")

	// A file with keys, a line without the separator, a CRLF line and a
	// blank line (skipped).
	file := filepath.Join(t.TempDir(), "events.txt")
	content := "user1|login\nuser2|click|twice\nno-key-here\r\n\nuser1|logout\n"
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ok(t, addr, "", "produce", "events", "--file", file, "--key-sep", "|", "-H", "source=file", "-H", "v=1", "--compression", "zstd")
	if !strings.Contains(r.stderr, "produced 4 records") {
		t.Fatalf("produce summary: %s", r)
	}

	r = ok(t, addr, "", "consume", "events", "-n", "4", "--format", `%k=%v\t[%h] %t`)
	got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	sort.Strings(got)
	want := []string{
		"=no-key-here\t[source=file,v=1] events",
		"user1=login\t[source=file,v=1] events",
		"user1=logout\t[source=file,v=1] events",
		"user2=click|twice\t[source=file,v=1] events",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("consume with a format:\n got %q\nwant %q", got, want)
	}

	// One key's records share a partition, in order.
	r = ok(t, addr, "", "consume", "events", "--no-follow", "--format", "json")
	var recs []jsonRecord
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var jr jsonRecord
		if err := json.Unmarshal([]byte(line), &jr); err != nil {
			t.Fatalf("%v: %q", err, line)
		}
		recs = append(recs, jr)
	}
	if len(recs) != 4 {
		t.Fatalf("--no-follow read %d records, want 4:\n%s", len(recs), r.stdout)
	}
	part := map[string]int32{}
	for _, jr := range recs {
		if jr.Headers["source"] != "file" || jr.Timestamp <= 0 {
			t.Fatalf("record %+v", jr)
		}
		if jr.Key == nil {
			if *jr.Value != "no-key-here" {
				t.Fatalf("record without key: %+v", jr)
			}
			continue
		}
		if p, seen := part[*jr.Key]; seen && p != jr.Partition {
			t.Fatalf("key %s in partitions %d and %d", *jr.Key, p, jr.Partition)
		}
		part[*jr.Key] = jr.Partition
	}

	// stdin, an explicit partition, and reading it from an offset.
	r = ok(t, addr, "a\nb\nc\n", "produce", "events", "--partition", "1", "--acks", "1")
	if !strings.Contains(r.stderr, "produced 3 records") {
		t.Fatalf("produce from stdin: %s", r)
	}
	r = ok(t, addr, "", "consume", "events", "-p", "1", "--offset", "-2", "-e", "-f", "%p:%o:%v")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], ":b") || !strings.HasSuffix(lines[1], ":c") || !strings.HasPrefix(lines[0], "1:") {
		t.Fatalf("consume -p 1 --offset -2: %q", lines)
	}
	// From the end with --no-follow: nothing, and it exits.
	r = ok(t, addr, "", "consume", "events", "--offset", "end", "-e")
	if r.stdout != "" {
		t.Fatalf("--offset end -e printed %q", r.stdout)
	}
	fails(t, addr, 1, "there is no partition 7", "produce", "events", "--partition", "7")
}

// describeGroup returns the group describe table rows by partition
// (CURRENT-OFFSET, LOG-END-OFFSET, LAG) and the TOTAL LAG.
func describeGroup(t *testing.T, addr, group string) (map[string][]string, string) {
	t.Helper()
	return describeGroupTopic(t, addr, group, "lagged")
}

func describeGroupTopic(t *testing.T, addr, group, topic string) (map[string][]string, string) {
	t.Helper()
	r := ok(t, addr, "", "group", "describe", group)
	mustRow(t, r.stdout, "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID", "CLIENT-ID", "HOST")
	rows := map[string][]string{}
	total := ""
	for _, f := range fields(r.stdout) {
		if f[0] == topic && len(f) >= 5 {
			rows[f[1]] = f[2:5]
		}
		if len(f) == 3 && f[0] == "TOTAL" && f[1] == "LAG" {
			total = f[2]
		}
	}
	if total == "" {
		t.Fatalf("no TOTAL LAG line:\n%s", r.stdout)
	}
	return rows, total
}

func TestCLIGroupLagAndSeek(t *testing.T) {
	addr := cliBroker(t)
	ok(t, addr, "", "topic", "create", "lagged", "--partitions", "1")
	var in strings.Builder
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&in, "v%d\n", i)
	}
	ok(t, addr, in.String(), "produce", "lagged")

	r := ok(t, addr, "", "consume", "lagged", "--group", "billing", "-n", "4")
	if r.stdout != "v0\nv1\nv2\nv3\n" {
		t.Fatalf("group consume: %q", r.stdout)
	}
	rows, total := describeGroup(t, addr, "billing")
	if strings.Join(rows["0"], " ") != "4 10 6" || total != "6" {
		t.Fatalf("after consuming 4 of 10: rows %v total %s", rows, total)
	}
	// Produce more: the lag grows.
	ok(t, addr, "v10\nv11\nv12\nv13\nv14\n", "produce", "lagged")
	rows, total = describeGroup(t, addr, "billing")
	if strings.Join(rows["0"], " ") != "4 15 11" || total != "11" {
		t.Fatalf("after producing 5 more: rows %v total %s", rows, total)
	}
	var gd groupDescription
	r = ok(t, addr, "", "group", "describe", "billing", "--format", "json")
	if err := json.Unmarshal([]byte(r.stdout), &gd); err != nil || gd.TotalLag != 11 || len(gd.Partitions) != 1 || gd.Partitions[0].CurrentOffset != 4 || gd.State != "Empty" {
		t.Fatalf("group describe --format json: %v %+v", err, gd)
	}
	r = ok(t, addr, "", "group", "list")
	mustRow(t, r.stdout, "billing", "Empty", "0")

	// The next member continues from the commit.
	r = ok(t, addr, "", "consume", "lagged", "-g", "billing", "-n", "1")
	if r.stdout != "v4\n" {
		t.Fatalf("second group consume: %q", r.stdout)
	}

	// Dry run: a plan, nothing changed.
	r = ok(t, addr, "", "group", "seek", "billing", "--to", "earliest")
	mustRow(t, r.stdout, "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET")
	mustRow(t, r.stdout, "lagged", "0", "5", "0")
	if !strings.Contains(r.stderr, "dry run") {
		t.Fatalf("seek without --execute: %s", r)
	}
	if rows, _ := describeGroup(t, addr, "billing"); rows["0"][0] != "5" {
		t.Fatalf("dry run moved the offset: %v", rows)
	}
	// --execute moves it.
	r = ok(t, addr, "", "group", "seek", "billing", "--to", "earliest", "--execute")
	if !strings.Contains(r.stdout, "committed 1 offset for group billing") {
		t.Fatalf("seek --execute: %s", r)
	}
	rows, total = describeGroup(t, addr, "billing")
	if strings.Join(rows["0"], " ") != "0 15 15" || total != "15" {
		t.Fatalf("after seek to earliest: rows %v total %s", rows, total)
	}
	ok(t, addr, "", "group", "seek", "billing", "--to", "12", "--execute", "--topic", "lagged")
	r = ok(t, addr, "", "consume", "lagged", "-g", "billing", "-n", "2")
	if r.stdout != "v12\nv13\n" {
		t.Fatalf("consume after seek to 12: %q", r.stdout)
	}
	// An offset past the end is clamped to it.
	r = ok(t, addr, "", "group", "seek", "billing", "--to", "99")
	mustRow(t, r.stdout, "lagged", "0", "14", "15")

	// A group with a live member: describe shows it, seek and delete refuse.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	live := fluxoCmd(ctx, addr, "", "consume", "lagged", "--group", "billing")
	var liveOut, liveErr bytes.Buffer
	live.Stdout, live.Stderr = &liveOut, &liveErr
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer live.Process.Kill()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = ok(t, addr, "", "group", "describe", "billing")
		if hasRow(r.stdout, "MEMBERS", "1") && hasRow(r.stdout, "STATE", "Stable") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the consumer did not join:\n%s\n%s", r, liveErr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(r.stdout, "fluxo-cli") {
		t.Fatalf("member's client id missing:\n%s", r.stdout)
	}
	fails(t, addr, 1, `group "billing" has 1 active member (state Stable)`, "group", "seek", "billing", "--to", "earliest", "--execute")
	fails(t, addr, 1, "active members", "group", "delete", "billing")
	// SIGTERM: the consumer commits what it printed and leaves.
	if err := live.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := live.Wait(); err != nil {
		t.Fatalf("consumer after SIGTERM: %v\n%s", err, liveErr.String())
	}
	if liveOut.String() != "v14\n" {
		t.Fatalf("live consumer printed %q", liveOut.String())
	}
	if rows, total := describeGroup(t, addr, "billing"); strings.Join(rows["0"], " ") != "15 15 0" || total != "0" {
		t.Fatalf("after the live consumer: %v %s", rows, total)
	}

	// Without --topic, seek moves every partition of the topics the group
	// committed to, including those it has not committed on yet.
	ok(t, addr, "", "topic", "create", "wide", "--partitions", "3")
	ok(t, addr, "a:1\nb:2\nc:3\nd:4\ne:5\nf:6\n", "produce", "wide", "--key-sep", ":")
	ok(t, addr, "", "consume", "wide", "-g", "w", "-n", "1")
	if _, total := describeGroupTopic(t, addr, "w", "wide"); total != "5" {
		t.Fatalf("group w before seek: total lag %s, want 5", total)
	}
	r = ok(t, addr, "", "group", "seek", "w", "--to", "end", "--execute")
	if !strings.Contains(r.stdout, "committed 3 offsets") {
		t.Fatalf("seek all partitions: %s", r)
	}
	if rows, total := describeGroupTopic(t, addr, "w", "wide"); total != "0" || len(rows) != 3 {
		t.Fatalf("group w after seek to end: %v, total lag %s", rows, total)
	}

	r = ok(t, addr, "", "group", "delete", "billing")
	if !strings.Contains(r.stdout, "deleted group billing") {
		t.Fatalf("group delete: %s", r)
	}
	fails(t, addr, 1, `unknown group "billing"`, "group", "describe", "billing")
}

func TestCLIClusterInfo(t *testing.T) {
	addr := cliBroker(t)
	ok(t, addr, "", "topic", "create", "a", "--partitions", "2")
	ok(t, addr, "", "topic", "create", "b", "--partitions", "1")
	r := ok(t, addr, "", "cluster", "info")
	_, port, _ := strings.Cut(addr, ":")
	mustRow(t, r.stdout, "CONTROLLER", "0")
	mustRow(t, r.stdout, "0*", "127.0.0.1", port)
	mustRow(t, r.stdout, "TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR")
	mustRow(t, r.stdout, "a", "1", "0", "[0]", "[0]")
	mustRow(t, r.stdout, "b", "0", "0", "[0]", "[0]")
	if !strings.Contains(r.stdout, "2 topics, 3 partitions, 0 under-replicated, 0 offline") {
		t.Fatalf("cluster info summary:\n%s", r.stdout)
	}
	var cd clusterDescription
	r = ok(t, addr, "", "cluster", "info", "--format", "json")
	if err := json.Unmarshal([]byte(r.stdout), &cd); err != nil || len(cd.Brokers) != 1 || len(cd.Partitions) != 3 || cd.Controller != 0 || cd.UnderReplicated != 0 {
		t.Fatalf("cluster info json: %v %+v", err, cd)
	}
}

func TestCLIErrors(t *testing.T) {
	addr := cliBroker(t)
	dead := freePort(t) // nothing listens there

	// Unreachable broker: exit 1 at once with the address and a hint.
	for _, args := range [][]string{
		{"topic", "list"},
		{"consume", "x", "-n", "1"},
		{"group", "describe", "g"},
	} {
		r := fails(t, dead, 1, "cannot reach broker "+dead, args...)
		if !strings.Contains(r.stderr, "is fluxo serve running?") || r.elapsed > 5*time.Second {
			t.Fatalf("unreachable broker took %s:\n%s", r.elapsed, r)
		}
	}
	// The flag wins over FLUXO_BROKERS, both ways.
	fails(t, addr, 1, "cannot reach broker "+dead, "topic", "list", "--brokers", dead)
	ok(t, dead, "", "topic", "list", "--brokers", addr)

	// Command-line mistakes: exit 2 with the usage.
	r := fails(t, addr, 2, "flag provided but not defined: -bogus", "topic", "list", "--bogus")
	if !strings.Contains(r.stderr, "Usage: fluxo topic list") {
		t.Fatalf("bad flag without usage:\n%s", r)
	}
	fails(t, addr, 2, "want exactly one TOPIC", "produce")
	fails(t, addr, 2, "name the topic", "consume")
	fails(t, addr, 2, "unknown verb %x", "consume", "t", "--format", "%x")
	fails(t, addr, 2, "--offset", "consume", "t", "--offset", "middle")
	fails(t, addr, 2, "--partition and --group", "consume", "t", "-p", "0", "-g", "g")
	fails(t, addr, 2, "--to", "group", "seek", "g")
	fails(t, addr, 2, "--format", "topic", "list", "--format", "yaml")
	fails(t, addr, 2, "--partitions 0", "topic", "create", "t", "--partitions", "0")
	fails(t, addr, 2, `unknown command "topic frob"`, "topic", "frob")
	fails(t, addr, 2, "--brokers", "topic", "list", "--brokers", "no-port")
	r = ok(t, addr, "", "consume", "-h")
	if !strings.Contains(r.stdout, "%v value") || !strings.Contains(r.stdout, "-no-follow") {
		t.Fatalf("consume -h:\n%s", r)
	}

	// Unknown topics and groups: exit 1, named.
	fails(t, addr, 1, `unknown topic "ghost"`, "consume", "ghost", "-n", "1")
	fails(t, addr, 1, `unknown topic "ghost"`, "produce", "ghost")
	fails(t, addr, 1, `unknown topic "ghost"`, "group", "seek", "g", "--to", "start", "--topic", "ghost")
	fails(t, addr, 1, `unknown group "ghost"`, "group", "describe", "ghost")
	fails(t, addr, 1, `unknown group "ghost"`, "group", "delete", "ghost")
	// Asking about a topic does not create it.
	if r := ok(t, addr, "", "topic", "list"); hasRow(r.stdout, "ghost") {
		t.Fatalf("ghost was auto-created:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`^fluxo: `).MatchString(fails(t, addr, 1, "ghost", "topic", "describe", "ghost").stderr) {
		t.Fatal("error not prefixed with fluxo:")
	}
}
