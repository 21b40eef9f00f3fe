package gateway_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo"
)

// rawConn sends requests at exactly the version asked for, which kgo does
// not let a test pin per request.
type rawConn struct {
	t    *testing.T
	nc   net.Conn
	r    *bufio.Reader
	corr int32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// do sends req at its set version and decodes the answer.
func (c *rawConn) do(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	resp, err := c.try(req, 10*time.Second)
	if err != nil {
		c.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp
}

func (c *rawConn) try(req kmsg.Request, timeout time.Duration) (kmsg.Response, error) {
	c.corr++
	buf := make([]byte, 4, 256)
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.Key()))
	buf = binary.BigEndian.AppendUint16(buf, uint16(req.GetVersion()))
	buf = binary.BigEndian.AppendUint32(buf, uint32(c.corr))
	buf = binary.BigEndian.AppendUint16(buf, 4)
	buf = append(buf, "test"...)
	if req.IsFlexible() {
		buf = append(buf, 0)
	}
	buf = req.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	c.nc.SetDeadline(time.Now().Add(timeout))
	if _, err := c.nc.Write(buf); err != nil {
		return nil, err
	}
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.r, body); err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != c.corr {
		return nil, fmt.Errorf("correlation id %d, want %d", got, c.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != 18 {
		body = body[1:] // empty tag section of the response header
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, err
	}
	return resp, nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// record is what a test produced, to compare with what it consumed.
func testRecord(p int32, i int, ts int64) fluxo.Record {
	return fluxo.Record{
		Timestamp: ts,
		Key:       []byte(fmt.Sprintf("k-%d-%d", p, i)),
		Value:     []byte(fmt.Sprintf("value %d of partition %d", i, p)),
		Headers:   []fluxo.Header{{Key: "h", Value: []byte(fmt.Sprint(i))}, {Key: "empty"}},
	}
}

// produceBatches writes batches of perBatch records to a partition through
// the Go API and returns the records with their offsets.
func produceBatches(t *testing.T, b *fluxo.Broker, topic string, p int32, batches, perBatch int, baseTS int64) []fluxo.Record {
	t.Helper()
	ctx := testCtx(t)
	var out []fluxo.Record
	for i := 0; i < batches; i++ {
		recs := make([]fluxo.Record, perBatch)
		for j := range recs {
			n := i*perBatch + j
			recs[j] = testRecord(p, n, baseTS+int64(n))
		}
		base, err := b.Produce(ctx, topic, p, recs...)
		if err != nil {
			t.Fatal(err)
		}
		for j := range recs {
			recs[j].Offset = base + int64(j)
		}
		out = append(out, recs...)
	}
	return out
}

// consume polls until n records arrived or the context ends.
func consume(t *testing.T, ctx context.Context, cl *kgo.Client, n int) []*kgo.Record {
	t.Helper()
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), n, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch error %s/%d: %v", topic, p, err) })
		got = append(got, fs.Records()...)
	}
	return got
}

func sameRecord(t *testing.T, want fluxo.Record, got *kgo.Record) {
	t.Helper()
	ok := got.Offset == want.Offset && string(got.Key) == string(want.Key) &&
		string(got.Value) == string(want.Value) && got.Timestamp.UnixMilli() == want.Timestamp &&
		len(got.Headers) == len(want.Headers)
	for i := 0; ok && i < len(want.Headers); i++ {
		ok = got.Headers[i].Key == want.Headers[i].Key && string(got.Headers[i].Value) == string(want.Headers[i].Value)
	}
	if !ok {
		t.Fatalf("record at %d: got key %q value %q ts %d headers %v, want %+v",
			got.Offset, got.Key, got.Value, got.Timestamp.UnixMilli(), got.Headers, want)
	}
}

func TestFetchConsumeAllPartitionsFromStart(t *testing.T) {
	ctx := testCtx(t)
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "all", 3); err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Hour).UnixMilli()
	want := map[int32][]fluxo.Record{}
	for p := int32(0); p < 3; p++ {
		want[p] = produceBatches(t, b, "all", p, 5, int(p)+1, ts)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ConsumeTopics("all"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := consume(t, ctx, cl, 5*(1+2+3))
	next := map[int32]int{}
	for _, r := range got {
		i := next[r.Partition]
		if i >= len(want[r.Partition]) {
			t.Fatalf("extra record %d in partition %d", r.Offset, r.Partition)
		}
		sameRecord(t, want[r.Partition][i], r)
		next[r.Partition]++
	}
	for p := int32(0); p < 3; p++ {
		if next[p] != len(want[p]) {
			t.Fatalf("partition %d: %d records, want %d", p, next[p], len(want[p]))
		}
	}
}

func TestFetchFromOffset(t *testing.T) {
	ctx := testCtx(t)
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "from", 1); err != nil {
		t.Fatal(err)
	}
	want := produceBatches(t, b, "from", 0, 4, 3, time.Now().UnixMilli())
	// Offset 5 is inside the second batch: the broker sends the whole batch
	// and the client drops the records before 5.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"from": {0: kgo.NewOffset().At(5)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := consume(t, ctx, cl, len(want)-5)
	for i, r := range got {
		sameRecord(t, want[5+i], r)
	}
}

// fetchReq builds a fetch of one partition by name and id.
func fetchReq(version int16, topic string, id [16]byte, p int32, offset int64, partMax int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(version)
	req.MaxBytes = 50 << 20
	req.SessionEpoch = -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = topic, id
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, offset, partMax
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func TestFetchByNameAndTopicID(t *testing.T) {
	ctx := testCtx(t)
	b, _ := startKafka(t)
	md, err := b.CreateTopic(ctx, "ids", 2)
	if err != nil {
		t.Fatal(err)
	}
	var id [16]byte
	copy(id[:], md.Id)
	produceBatches(t, b, "ids", 1, 2, 2, time.Now().UnixMilli())
	rc := dialRaw(t, b.KafkaAddr())
	for _, v := range []int16{4, 11, 12, 13, 16} {
		resp := rc.do(fetchReq(v, "ids", id, 1, 0, 1<<20)).(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("v%d: %+v", v, resp)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.HighWatermark != 4 || p.LastStableOffset != 4 || (v >= 5 && p.LogStartOffset != 0) {
			t.Fatalf("v%d: partition %+v", v, p)
		}
		if v >= 13 && resp.Topics[0].TopicID != id {
			t.Fatalf("v%d: topic id %x, want %x", v, resp.Topics[0].TopicID, id)
		}
		fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "ids", Partition: 1}, &p, kgo.DefaultDecompressor(), nil)
		if fp.Err != nil || len(fp.Records) != 4 || string(fp.Records[3].Key) != "k-1-3" {
			t.Fatalf("v%d: records %d err %v", v, len(fp.Records), fp.Err)
		}
	}
	// Unknown topics and partitions, by name and by id.
	for _, c := range []struct {
		v     int16
		topic string
		id    [16]byte
		p     int32
		want  int16
	}{
		{12, "nope", [16]byte{}, 0, kerr.UnknownTopicOrPartition.Code},
		{12, "ids", [16]byte{}, 7, kerr.UnknownTopicOrPartition.Code},
		{13, "", [16]byte{1, 2, 3}, 0, kerr.UnknownTopicID.Code},
		{16, "", id, 7, kerr.UnknownTopicOrPartition.Code},
	} {
		resp := rc.do(fetchReq(c.v, c.topic, c.id, c.p, 0, 1<<20)).(*kmsg.FetchResponse)
		if got := resp.Topics[0].Partitions[0].ErrorCode; got != c.want {
			t.Fatalf("v%d %q %x p%d: error %d, want %d", c.v, c.topic, c.id, c.p, got, c.want)
		}
	}
}
