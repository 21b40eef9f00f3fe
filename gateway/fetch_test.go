package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
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
	// No fetch sessions: a session we never handed out is not found, and
	// every answer says session 0 (full fetches).
	req := fetchReq(16, "", id, 1, 0, 1<<20)
	req.SessionID, req.SessionEpoch = 42, 1
	if resp := rc.do(req).(*kmsg.FetchResponse); resp.ErrorCode != kerr.FetchSessionIDNotFound.Code || resp.SessionID != 0 {
		t.Fatalf("unknown session: %+v", resp)
	}
	req.SessionID, req.SessionEpoch = 0, 0 // asks for a new session
	if resp := rc.do(req).(*kmsg.FetchResponse); resp.ErrorCode != 0 || resp.SessionID != 0 || len(resp.Topics[0].Partitions[0].RecordBatches) == 0 {
		t.Fatalf("new session: %+v", resp)
	}
}

func listOffsetsReq(version int16, topic string, p int32, ts int64, epoch int32) *kmsg.ListOffsetsRequest {
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(version)
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p, ts, epoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func TestListOffsets(t *testing.T) {
	ctx := testCtx(t)
	b, cl := startKafka(t)
	if _, err := b.CreateTopic(ctx, "lo", 1); err != nil {
		t.Fatal(err)
	}
	const base = 1_700_000_000_000
	produceBatches(t, b, "lo", 0, 5, 2, base) // offsets 0-9, timestamps base+0..9
	for _, ts := range []int64{base + 50, base + 20} {
		if _, err := b.Produce(ctx, "lo", 0, fluxo.Record{Timestamp: ts, Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	} // offset 10 has the max timestamp, 11 an older one
	adm := kadm.NewClient(cl)
	check := func(what string, l kadm.ListedOffsets, err error, offset, ts int64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		o, ok := l.Lookup("lo", 0)
		if !ok || o.Err != nil || o.Offset != offset || o.Timestamp != ts || o.LeaderEpoch != 0 {
			t.Fatalf("%s: %+v, want offset %d timestamp %d", what, o, offset, ts)
		}
	}
	l, err := adm.ListStartOffsets(ctx, "lo")
	check("start", l, err, 0, -1)
	l, err = adm.ListEndOffsets(ctx, "lo")
	check("end", l, err, 12, -1)
	l, err = adm.ListOffsetsAfterMilli(ctx, base+5, "lo")
	check("after base+5", l, err, 5, base+5)
	l, err = adm.ListOffsetsAfterMilli(ctx, base+30, "lo")
	check("after base+30", l, err, 10, base+50)

	rc := dialRaw(t, b.KafkaAddr())
	part := func(req *kmsg.ListOffsetsRequest) kmsg.ListOffsetsResponseTopicPartition {
		t.Helper()
		return rc.do(req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	}
	if p := part(listOffsetsReq(7, "lo", 0, -3, -1)); p.ErrorCode != 0 || p.Offset != 10 || p.Timestamp != base+50 || p.LeaderEpoch != 0 {
		t.Fatalf("max timestamp: %+v", p)
	}
	if p := part(listOffsetsReq(6, "lo", 0, -3, -1)); p.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("max timestamp at v6: %+v", p)
	}
	if p := part(listOffsetsReq(8, "lo", 0, base+51, -1)); p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
		t.Fatalf("after the last timestamp: %+v", p)
	}
	if p := part(listOffsetsReq(1, "lo", 0, -1, -1)); p.ErrorCode != 0 || p.Offset != 12 {
		t.Fatalf("latest at v1: %+v", p)
	}
	if p := part(listOffsetsReq(4, "lo", 0, -1, 3)); p.ErrorCode != kerr.UnknownLeaderEpoch.Code {
		t.Fatalf("newer leader epoch: %+v", p)
	}
	if p := part(listOffsetsReq(4, "lo", 0, -1, 0)); p.ErrorCode != 0 || p.Offset != 12 || p.LeaderEpoch != 0 {
		t.Fatalf("current leader epoch: %+v", p)
	}
	if p := part(listOffsetsReq(8, "lo", 4, -1, -1)); p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("unknown partition: %+v", p)
	}
}

func TestFetchLongPoll(t *testing.T) {
	ctx := testCtx(t)
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "lp", 2); err != nil {
		t.Fatal(err)
	}
	rc := dialRaw(t, b.KafkaAddr())

	// Nothing to read: held for max wait, then an empty answer.
	req := fetchReq(12, "lp", [16]byte{}, 0, 0, 1<<20)
	req.MinBytes, req.MaxWaitMillis = 1, 300
	start := time.Now()
	p := rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if waited := time.Since(start); waited < 250*time.Millisecond || p.ErrorCode != 0 || len(p.RecordBatches) != 0 || p.HighWatermark != 0 {
		t.Fatalf("empty long poll after %v: %+v", waited, p)
	}

	// No partitions: answered at once.
	empty := kmsg.NewPtrFetchRequest()
	empty.SetVersion(16)
	empty.MinBytes, empty.MaxWaitMillis, empty.SessionEpoch = 1, 5000, -1
	start = time.Now()
	if resp := rc.do(empty).(*kmsg.FetchResponse); resp.ErrorCode != 0 || len(resp.Topics) != 0 || time.Since(start) > time.Second {
		t.Fatalf("fetch of nothing: %+v after %v", resp, time.Since(start))
	}

	// min_bytes above what there is: held for max wait, then what there is.
	produceBatches(t, b, "lp", 0, 1, 1, time.Now().UnixMilli())
	req.MinBytes = 1 << 20
	start = time.Now()
	p = rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if waited := time.Since(start); waited < 250*time.Millisecond || len(p.RecordBatches) == 0 || p.HighWatermark != 1 {
		t.Fatalf("min bytes not reached after %v: %+v", waited, p)
	}

	// A consumer polling both empty partitions gets a record produced later,
	// on either partition, as soon as it is acknowledged.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.FetchMaxWait(5*time.Second),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"lp": {0: kgo.NewOffset().At(1), 1: kgo.NewOffset().At(0)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i, part := range []int32{1, 0, 1} {
		got := make(chan time.Time, 1)
		go func() {
			fs := cl.PollFetches(ctx)
			if len(fs.Records()) != 1 {
				t.Errorf("poll %d: %d records, errors %v", i, len(fs.Records()), fs.Errors())
			}
			got <- time.Now()
		}()
		time.Sleep(300 * time.Millisecond) // let the fetch park
		if _, err := b.Produce(ctx, "lp", part, fluxo.Record{Value: []byte("wake")}); err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		select {
		case at := <-got:
			t.Logf("record on partition %d received %v after its ack", part, at.Sub(acked))
			if at.Sub(acked) > time.Second {
				t.Fatalf("long poll answered %v after the ack", at.Sub(acked))
			}
		case <-time.After(5 * time.Second):
			t.Fatal("long poll did not return the new record")
		}
	}
}

// batchCount counts the record batches in a fetch answer's bytes.
func batchCount(t *testing.T, b []byte) int {
	t.Helper()
	n := 0
	for len(b) > 0 {
		if len(b) < 12 {
			t.Fatalf("partial batch of %d bytes", len(b))
		}
		size := 12 + int(binary.BigEndian.Uint32(b[8:]))
		if size > len(b) {
			t.Fatalf("partial batch: %d of %d bytes", len(b), size)
		}
		b = b[size:]
		n++
	}
	return n
}

func TestFetchMaxBytes(t *testing.T) {
	ctx := testCtx(t)
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "mb", 2); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 4096)
	for p := int32(0); p < 2; p++ {
		for i := 0; i < 3; i++ {
			if _, err := b.Produce(ctx, "mb", p, fluxo.Record{Key: []byte{byte(i)}, Value: big}); err != nil {
				t.Fatal(err)
			}
		}
	}
	rc := dialRaw(t, b.KafkaAddr())
	fetch := func(maxBytes, partMax int32) [2]int {
		req := fetchReq(12, "mb", [16]byte{}, 0, 0, partMax)
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = 1, partMax
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, rp)
		req.MaxBytes = maxBytes
		ps := rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions
		return [2]int{batchCount(t, ps[0].RecordBatches), batchCount(t, ps[1].RecordBatches)}
	}
	for _, c := range []struct {
		maxBytes, partMax int32
		want              [2]int
	}{
		{100, 100, [2]int{1, 0}},       // one whole batch despite both limits
		{1 << 20, 100, [2]int{1, 0}},   // KIP-74 covers only the first partition with data
		{1 << 20, 9000, [2]int{2, 2}},  // two batches of ~4.1 KiB fit in 9000
		{6000, 1 << 20, [2]int{1, 0}},  // response limit
		{13000, 1 << 20, [2]int{3, 0}}, // three fit, the second partition's first does not
		{1 << 20, 1 << 20, [2]int{3, 3}},
	} {
		if got := fetch(c.maxBytes, c.partMax); got != c.want {
			t.Fatalf("max bytes %d, partition max %d: batches %v, want %v", c.maxBytes, c.partMax, got, c.want)
		}
	}
	// A consumer with tiny limits still reads everything.
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ConsumeTopics("mb"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(100), kgo.FetchMaxPartitionBytes(100))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if got := consume(t, ctx, cl, 6); len(got) != 6 {
		t.Fatalf("%d records", len(got))
	}
}

func TestDeleteRecordsAndFetchOutOfRange(t *testing.T) {
	ctx := testCtx(t)
	b, cl := startKafka(t)
	if _, err := b.CreateTopic(ctx, "dr", 1); err != nil {
		t.Fatal(err)
	}
	want := produceBatches(t, b, "dr", 0, 10, 1, time.Now().UnixMilli())
	adm := kadm.NewClient(cl)
	var os kadm.Offsets
	os.AddOffset("dr", 0, 4, -1)
	res, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r := res["dr"][0]; r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("delete records: %+v", r)
	}
	l, err := adm.ListStartOffsets(ctx, "dr")
	if o, _ := l.Lookup("dr", 0); err != nil || o.Offset != 4 {
		t.Fatalf("start offset %+v %v", o, err)
	}

	rc := dialRaw(t, b.KafkaAddr())
	for _, c := range []struct {
		offset int64
		want   int16
	}{{0, kerr.OffsetOutOfRange.Code}, {3, kerr.OffsetOutOfRange.Code}, {11, kerr.OffsetOutOfRange.Code}, {4, 0}, {10, 0}} {
		p := rc.do(fetchReq(16, "dr", topicID(b, "dr"), 0, c.offset, 1<<20)).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if p.ErrorCode != c.want || p.LogStartOffset != 4 || p.HighWatermark != 10 {
			t.Fatalf("fetch at %d: %+v, want error %d", c.offset, p, c.want)
		}
	}

	// A consumer positioned below the log start resets to it.
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"dr": {0: kgo.NewOffset().At(1)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := consume(t, ctx, cons, 6)
	for i, r := range got {
		sameRecord(t, want[4+i], r)
	}

	// Past the high watermark is refused; -1 means the high watermark.
	drReq := func(offset int64) kmsg.DeleteRecordsResponseTopicPartition {
		req := kmsg.NewPtrDeleteRecordsRequest()
		req.SetVersion(2)
		req.TimeoutMillis = 5000
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = "dr"
		rp := kmsg.NewDeleteRecordsRequestTopicPartition()
		rp.Partition, rp.Offset = 0, offset
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rc.do(req).(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0]
	}
	if p := drReq(11); p.ErrorCode != kerr.OffsetOutOfRange.Code || p.LowWatermark != -1 {
		t.Fatalf("delete past the high watermark: %+v", p)
	}
	if p := drReq(2); p.ErrorCode != 0 || p.LowWatermark != 4 {
		t.Fatalf("delete below the log start: %+v", p)
	}
	if p := drReq(-1); p.ErrorCode != 0 || p.LowWatermark != 10 {
		t.Fatalf("delete to the high watermark: %+v", p)
	}
}

func TestOffsetForLeaderEpochAndEpochChecks(t *testing.T) {
	ctx := testCtx(t)
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "ep", 1); err != nil {
		t.Fatal(err)
	}
	produceBatches(t, b, "ep", 0, 3, 1, time.Now().UnixMilli())
	st, _ := b.Node().Partition("ep", 0)
	epoch := st.LeaderEpoch
	rc := dialRaw(t, b.KafkaAddr())
	oe := func(version int16, topic string, leaderEpoch, current int32) kmsg.OffsetForLeaderEpochResponseTopicPartition {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.SetVersion(version)
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.LeaderEpoch, rp.CurrentLeaderEpoch = leaderEpoch, current
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rc.do(req).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
	}
	for _, c := range []struct {
		version       int16
		topic         string
		epoch, cur    int32
		code          int16
		wantEp        int32
		wantEndOffset int64
	}{
		{4, "ep", epoch, -1, 0, epoch, 3},
		{4, "ep", epoch, epoch, 0, epoch, 3},
		{1, "ep", epoch, -1, 0, epoch, 3},
		{4, "ep", epoch + 1, -1, 0, -1, -1},
		{4, "ep", -1, -1, 0, -1, -1},
		{4, "ep", epoch, epoch + 1, kerr.UnknownLeaderEpoch.Code, -1, -1},
		{4, "nope", epoch, -1, kerr.UnknownTopicOrPartition.Code, -1, -1},
	} {
		p := oe(c.version, c.topic, c.epoch, c.cur)
		if p.ErrorCode != c.code || p.EndOffset != c.wantEndOffset || (c.version >= 1 && p.LeaderEpoch != c.wantEp) {
			t.Fatalf("%+v: %+v", c, p)
		}
	}
	if p := oe(0, "ep", epoch, -1); p.EndOffset != 3 {
		t.Fatalf("v0: %+v", p)
	}

	// Fetch checks current_leader_epoch and last_fetched_epoch.
	req := fetchReq(12, "ep", [16]byte{}, 0, 1, 1<<20)
	req.Topics[0].Partitions[0].CurrentLeaderEpoch = epoch + 1
	if p := rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]; p.ErrorCode != kerr.UnknownLeaderEpoch.Code || len(p.RecordBatches) != 0 {
		t.Fatalf("fetch with a newer epoch: %+v", p)
	}
	req.Topics[0].Partitions[0].CurrentLeaderEpoch = epoch
	req.Topics[0].Partitions[0].LastFetchedEpoch = epoch
	if p := rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || batchCount(t, p.RecordBatches) != 2 || p.DivergingEpoch.Epoch != -1 {
		t.Fatalf("fetch with our epoch: %+v", p)
	}
	req.Topics[0].Partitions[0].FetchOffset = 5 // past our end in our epoch: diverged
	if p := rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.DivergingEpoch.Epoch != epoch || p.DivergingEpoch.EndOffset != 3 {
		t.Fatalf("fetch past our end: %+v", p)
	}
}

func topicID(b *fluxo.Broker, name string) (id [16]byte) {
	copy(id[:], b.Node().Topic(name).GetId())
	return id
}

// gzipBatch builds a gzip-compressed v2 batch of values, as a producer would.
func gzipBatch(t *testing.T, ts int64, values ...string) []byte {
	t.Helper()
	var raw []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), Key: []byte(fmt.Sprint(i)), Value: []byte(v)}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		raw = r.AppendTo(raw)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(raw)
	zw.Close()
	rb := kmsg.RecordBatch{
		Magic: 2, Attributes: 1, LastOffsetDelta: int32(len(values) - 1),
		FirstTimestamp: ts, MaxTimestamp: ts, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1,
		NumRecords: int32(len(values)), Records: zb.Bytes(),
	}
	rb.Length = int32(49 + len(rb.Records))
	out := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(out[17:], crc32.Checksum(out[21:], crc32.MakeTable(crc32.Castagnoli)))
	return out
}

func TestFetchServesCompressedBatchesAsStored(t *testing.T) {
	ctx := testCtx(t)
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "gz", 1); err != nil {
		t.Fatal(err)
	}
	produceBatches(t, b, "gz", 0, 1, 2, time.Now().UnixMilli()) // offsets 0-1
	batch := gzipBatch(t, time.Now().UnixMilli(), "alpha", "beta", "gamma")
	sent := append([]byte(nil), batch...)
	res, err := b.Node().Produce(ctx, &fluxopb.ProduceRequest{Topic: "gz", Partition: 0, Records: batch, Acks: -1})
	if err != nil || res.ErrorCode != 0 || res.BaseOffset != 2 {
		t.Fatalf("produce: %+v %v", res, err)
	}
	rc := dialRaw(t, b.KafkaAddr())
	req := fetchReq(12, "gz", [16]byte{}, 0, 3, 1<<20)
	req.IsolationLevel = 1 // read_committed reads the same
	p := rc.do(req).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	// The batch holding offset 3 comes back byte for byte past the base
	// offset and leader epoch the broker assigned.
	if p.ErrorCode != 0 || !bytes.Equal(p.RecordBatches[16:], sent[16:]) || binary.BigEndian.Uint64(p.RecordBatches) != 2 {
		t.Fatalf("compressed batch not served as stored: %+v", p)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"gz": {0: kgo.NewOffset().At(3)}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := consume(t, ctx, cl, 2)
	if got[0].Offset != 3 || string(got[0].Value) != "beta" || got[1].Offset != 4 || string(got[1].Value) != "gamma" {
		t.Fatalf("records %v", got)
	}
}

func TestFetchLongPollEndsWithConnection(t *testing.T) {
	ctx := testCtx(t)
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "gone", 1); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	const conns = 20
	var ncs []net.Conn
	for i := 0; i < conns; i++ {
		rc := dialRaw(t, b.KafkaAddr())
		req := fetchReq(12, "gone", [16]byte{}, 0, 0, 1<<20)
		req.MinBytes, req.MaxWaitMillis = 1, 60_000
		// Send without reading: the fetch parks on the broker.
		go rc.try(req, time.Minute)
		ncs = append(ncs, rc.nc)
	}
	// Each connection holds a reader goroutine and a parked handler.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() < before+3*conns && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	parked := runtime.NumGoroutine()
	if parked < before+3*conns {
		t.Fatalf("goroutines %d -> %d: fetches did not park", before, parked)
	}
	for _, nc := range ncs {
		nc.Close()
	}
	for runtime.NumGoroutine() > before+5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+5 {
		t.Fatalf("goroutines: %d before, %d parked, %d after the connections closed", before, parked, n)
	}
}
