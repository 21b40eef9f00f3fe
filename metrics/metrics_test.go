package metrics_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/metrics"
	"github.com/fluxo-broker/fluxo/testkit"
)

// TestMetricsAfterTraffic produces and consumes through the Kafka gateway
// with a consumer group that commits, produces more, then scrapes /metrics
// and checks that the traffic, request, error and lag series moved as they
// should.
func TestMetricsAfterTraffic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := testkit.StartBroker(t, fluxo.WithKafkaListen("127.0.0.1:0", ""), fluxo.WithMetricsListen("127.0.0.1:0"),
		fluxo.WithNodeConfig(func(c *actors.Config) { c.OffsetsPartitions = 4 }))
	base := "http://" + b.MetricsAddr()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, base+path); code != http.StatusOK {
			t.Fatalf("%s: %d %q", path, code, body)
		}
	}
	if _, err := b.CreateTopic(ctx, "metered", 2); err != nil {
		t.Fatal(err)
	}

	prod, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(partition int32, n int) {
		t.Helper()
		var rs []*kgo.Record
		for i := 0; i < n; i++ {
			rs = append(rs, &kgo.Record{Topic: "metered", Partition: partition, Value: []byte(fmt.Sprintf("value-%d-%d", partition, i))})
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 10)
	produce(1, 5)

	// A group reads all 15 records and commits, then 7 more arrive on
	// partition 0: its lag is 7 there and 0 on partition 1.
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ConsumerGroup("meter-readers"), kgo.ConsumeTopics("metered"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.HeartbeatInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for got := 0; got < 15; {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of 15 records", got)
		}
		got += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	cons.Close()
	produce(0, 7)

	// Errors by code: a produce to a partition that does not exist, a fetch
	// past the log end.
	preq := kmsg.NewPtrProduceRequest()
	preq.Acks, preq.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "metered"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Partition = 9
	pt.Partitions = append(pt.Partitions, pp)
	preq.Topics = append(preq.Topics, pt)
	if _, err := preq.RequestWith(ctx, prod); err != nil {
		t.Fatal(err)
	}
	freq := kmsg.NewPtrFetchRequest()
	freq.MaxBytes = 1 << 20
	freq.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "metered"
	copy(ft.TopicID[:], b.Node().Topic("metered").Id) // v13+ name topics by id
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 1, 1000, 1<<20
	fp.CurrentLeaderEpoch, fp.LastFetchedEpoch, fp.LogStartOffset = -1, -1, -1
	ft.Partitions = append(ft.Partitions, fp)
	freq.Topics = append(freq.Topics, ft)
	fres, err := freq.RequestWith(ctx, prod)
	if err != nil {
		t.Fatal(err)
	}
	if len(fres.Topics) != 1 || len(fres.Topics[0].Partitions) != 1 || fres.Topics[0].Partitions[0].ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch past the end: %+v", fres)
	}

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	s := parse(t, body)
	topic := map[string]string{"topic": "metered"}
	s.want(t, "fluxo_topic_records_in_total", topic, 22)
	s.atLeast(t, "fluxo_topic_bytes_in_total", topic, 22*10) // each record's value alone is ~10 bytes
	s.atLeast(t, "fluxo_topic_records_out_total", topic, 15)
	s.atLeast(t, "fluxo_topic_bytes_out_total", topic, 15*10)
	s.want(t, "fluxo_consumer_group_lag", map[string]string{"group": "meter-readers", "topic": "metered", "partition": "0"}, 7)
	s.want(t, "fluxo_consumer_group_lag", map[string]string{"group": "meter-readers", "topic": "metered", "partition": "1"}, 0)
	s.want(t, "fluxo_consumer_group_committed_offset", map[string]string{"group": "meter-readers", "topic": "metered", "partition": "0"}, 10)
	s.want(t, "fluxo_consumer_group_lag_sum", map[string]string{"group": "meter-readers"}, 7)
	s.want(t, "fluxo_consumer_groups", map[string]string{"state": "Empty"}, 1)
	s.want(t, "fluxo_partition_high_watermark", map[string]string{"topic": "metered", "partition": "0"}, 17)
	s.want(t, "fluxo_partition_log_end_offset", map[string]string{"topic": "metered", "partition": "1"}, 5)
	s.want(t, "fluxo_partitions", nil, 2)
	s.want(t, "fluxo_topics", nil, 1)
	s.want(t, "fluxo_under_replicated_partitions", nil, 0)
	for _, api := range []string{"Produce", "Fetch", "Metadata", "FindCoordinator", "JoinGroup", "SyncGroup", "OffsetCommit", "OffsetFetch"} {
		s.atLeast(t, "fluxo_kafka_requests_total", map[string]string{"api": api}, 1)
	}
	s.atLeast(t, "fluxo_kafka_request_duration_seconds_count", map[string]string{"api": "Produce"}, 3)
	s.want(t, "fluxo_kafka_errors_total", map[string]string{"api": "Produce", "error": "UNKNOWN_TOPIC_OR_PARTITION"}, 1)
	s.want(t, "fluxo_kafka_errors_total", map[string]string{"api": "Fetch", "error": "OFFSET_OUT_OF_RANGE"}, 1)
	s.want(t, "fluxo_actor_restarts_total", map[string]string{"kind": "partition"}, 0)
	s.atLeast(t, "fluxo_pebble_disk_usage_bytes", nil, 1)
	s.atLeast(t, "fluxo_pebble_wal_syncs_total", nil, 1) // group commits are synced
	s.atLeast(t, "fluxo_segment_syncs_total", nil, 1)
	s.want(t, "fluxo_ready", nil, 1)
	s.atLeast(t, "go_goroutines", nil, 1)
	s.atLeast(t, "process_resident_memory_bytes", nil, 1)
}

// TestMetricsReadyz checks the health endpoints and that node metrics are
// absent until a node is attached.
func TestMetricsReadyz(t *testing.T) {
	m := metrics.New()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d", code)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before ready: %d, want 503", code)
	}
	_, body := get(t, srv.URL+"/metrics")
	s := parse(t, body)
	s.want(t, "fluxo_ready", nil, 0)
	if _, ok := s.get("fluxo_partitions", nil); ok {
		t.Fatal("node metrics present without a node")
	}
	m.SetReady(true)
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz when ready: %d", code)
	}
	m.Request(0, 3*time.Millisecond)
	m.ErrorCode(1, 1)
	_, body = get(t, srv.URL+"/metrics")
	s = parse(t, body)
	s.want(t, "fluxo_kafka_requests_total", map[string]string{"api": "Produce"}, 1)
	s.want(t, "fluxo_kafka_request_duration_seconds_bucket", map[string]string{"api": "Produce", "le": "0.004"}, 1)
	s.want(t, "fluxo_kafka_request_duration_seconds_bucket", map[string]string{"api": "Produce", "le": "0.002"}, 0)
	s.want(t, "fluxo_kafka_errors_total", map[string]string{"api": "Fetch", "error": "OFFSET_OUT_OF_RANGE"}, 1)
}

// Two brokers in one process keep separate registries.
func TestMetricsPerBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b1 := testkit.StartBroker(t, fluxo.WithMetricsListen("127.0.0.1:0"))
	b2 := testkit.StartBroker(t, fluxo.WithMetricsListen(""))
	if b2.MetricsAddr() != "" || b2.Metrics() == nil {
		t.Fatalf("metrics without a listener: addr %q, metrics %v", b2.MetricsAddr(), b2.Metrics())
	}
	if _, err := b1.CreateTopic(ctx, "only-one", 3); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(b2.Metrics().Handler())
	defer srv.Close()
	_, body := get(t, "http://"+b1.MetricsAddr()+"/metrics")
	parse(t, body).want(t, "fluxo_partitions", nil, 3)
	_, body = get(t, srv.URL+"/metrics")
	parse(t, body).want(t, "fluxo_partitions", nil, 0)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// scrape is a parsed text exposition: every sample with its labels.
type scrape []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
	line   string
}

func parse(t *testing.T, body string) scrape {
	t.Helper()
	var out scrape
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}, line: line}
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			s.name = line[:i]
			for _, kv := range splitLabels(line[i+1 : j]) {
				k, v, _ := strings.Cut(kv, "=")
				s.labels[k] = strings.Trim(v, `"`)
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			s.name, rest, _ = strings.Cut(line, " ")
		}
		v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
		if err != nil {
			t.Fatalf("bad sample %q: %v", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out
}

// splitLabels splits `a="x",b="y"` (values here never hold commas or quotes).
func splitLabels(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func (s scrape) get(name string, labels map[string]string) (sample, bool) {
next:
	for _, m := range s {
		if m.name != name {
			continue
		}
		for k, v := range labels {
			if m.labels[k] != v {
				continue next
			}
		}
		return m, true
	}
	return sample{}, false
}

func (s scrape) want(t *testing.T, name string, labels map[string]string, v float64) {
	t.Helper()
	m, ok := s.get(name, labels)
	if !ok {
		t.Fatalf("no sample %s%v", name, labels)
	}
	if m.value != v {
		t.Fatalf("%s = %v, want %v", m.line, m.value, v)
	}
	t.Log(m.line)
}

func (s scrape) atLeast(t *testing.T, name string, labels map[string]string, v float64) {
	t.Helper()
	m, ok := s.get(name, labels)
	if !ok {
		t.Fatalf("no sample %s%v", name, labels)
	}
	if m.value < v {
		t.Fatalf("%s = %v, want at least %v", m.line, m.value, v)
	}
	t.Log(m.line)
}
