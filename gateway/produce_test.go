package gateway_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/gateway"
	"github.com/fluxo-broker/fluxo/internal/recordbatch"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
	"github.com/fluxo-broker/fluxo/testkit"
)

// prodConn speaks the Kafka protocol over one TCP connection, so a test
// controls exactly what is sent and sees whether the connection survives.
type prodConn struct {
	t    *testing.T
	nc   net.Conn
	corr int32
	f    *kmsg.RequestFormatter
}

func dialProd(t *testing.T, addr string) *prodConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &prodConn{t: t, nc: nc, f: kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))}
}

// send writes req without waiting for an answer (acks=0).
func (c *prodConn) send(req kmsg.Request) int32 {
	c.t.Helper()
	c.corr++
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(c.f.AppendRequest(nil, req, c.corr)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return c.corr
}

// do sends req and decodes its answer.
func (c *prodConn) do(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	corr := c.send(req)
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		c.t.Fatalf("read %s answer: %v", kmsg.NameForKey(req.Key()), err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.nc, body); err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		c.t.Fatalf("correlation id %d, want %d", got, corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	if resp.IsFlexible() && req.Key() != 18 {
		body = body[1:] // empty header tags
	}
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatalf("decode %s answer: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

func produceReq(version int16, acks int16, topic string, parts map[int32][]byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = version
	req.Acks = acks
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	for p := int32(0); p < int32(len(parts))+8; p++ {
		recs, ok := parts[p]
		if !ok {
			continue
		}
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition = p
		rp.Records = recs
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// partitionResults indexes a produce answer by partition.
func partitionResults(t *testing.T, resp kmsg.Response) map[int32]kmsg.ProduceResponseTopicPartition {
	t.Helper()
	pr := resp.(*kmsg.ProduceResponse)
	out := map[int32]kmsg.ProduceResponseTopicPartition{}
	for _, rt := range pr.Topics {
		for _, p := range rt.Partitions {
			out[p.Partition] = p
		}
	}
	return out
}

func build(t *testing.T, p recordbatch.Producer, values ...string) []byte {
	t.Helper()
	recs := make([]recordbatch.Record, len(values))
	for i, v := range values {
		recs[i] = recordbatch.Record{Timestamp: 1700000000000 + int64(i), Key: []byte(fmt.Sprint("k", i)), Value: []byte(v)}
	}
	b, err := recordbatch.Build(recs, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rewriteBody replaces the records section of batch and fixes the length
// and CRC, so the batch is intact on the wire but its content is whatever
// body is.
func rewriteBody(batch []byte, attrs int16, body []byte) []byte {
	out := append(append([]byte(nil), batch[:recordbatch.HeaderSize]...), body...)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	binary.BigEndian.PutUint16(out[21:], uint16(attrs))
	binary.BigEndian.PutUint32(out[17:], recordbatch.Checksum(out))
	return out
}

func fetchAll(t *testing.T, ctx context.Context, b *fluxo.Broker, topic string, partition int32) []fluxo.Record {
	t.Helper()
	res, err := b.Fetch(ctx, topic, partition, 0, fluxo.MaxBytes(64<<20))
	if err != nil {
		t.Fatalf("fetch %s/%d: %v", topic, partition, err)
	}
	return res.Records
}

func highWatermark(t *testing.T, b *fluxo.Broker, topic string, partition int32) int64 {
	t.Helper()
	st, ok := b.Node().Partition(topic, partition)
	if !ok {
		t.Fatalf("partition %s/%d not hosted", topic, partition)
	}
	return st.HighWatermark
}

// rawBatches returns the stored batches of a partition, as written.
func rawBatches(t *testing.T, ctx context.Context, b *fluxo.Broker, topic string, partition int32) [][]byte {
	t.Helper()
	res, err := b.Node().Fetch(ctx, &fluxopb.FetchRequest{Topic: topic, Partition: partition, MaxBytes: 64 << 20})
	if err != nil || res.ErrorCode != 0 {
		t.Fatalf("fetch: %v %d", err, res.GetErrorCode())
	}
	bs, err := recordbatch.Split(res.Records)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

func TestProduceKeyedUnkeyedWithHeaders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, cl := startKafka(t, kgo.RequiredAcks(kgo.AllISRAcks()))
	const topic = "keyed"
	if _, err := b.CreateTopic(ctx, topic, 4); err != nil {
		t.Fatal(err)
	}
	base := time.UnixMilli(1700000000000)
	type sent struct {
		partition int32
		offset    int64
		rec       *kgo.Record
	}
	var all []sent
	keyPartition := map[string]int32{}
	// Keyed: five keys, four records each, produced in one go.
	var keyed []*kgo.Record
	for i := 0; i < 20; i++ {
		keyed = append(keyed, &kgo.Record{
			Topic:     topic,
			Key:       []byte(fmt.Sprint("key-", i%5)),
			Value:     []byte(fmt.Sprint("keyed-", i)),
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
			Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}, {Key: "empty"}},
		})
	}
	if err := cl.ProduceSync(ctx, keyed...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range keyed {
		if p, ok := keyPartition[string(r.Key)]; ok && p != r.Partition {
			t.Fatalf("key %s went to partitions %d and %d", r.Key, p, r.Partition)
		}
		keyPartition[string(r.Key)] = r.Partition
		all = append(all, sent{r.Partition, r.Offset, r})
	}
	// Unkeyed, spread round-robin by a second (idempotent) producer.
	rr, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	var unkeyed []*kgo.Record
	for i := 0; i < 60; i++ {
		unkeyed = append(unkeyed, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprint("unkeyed-", i)), Timestamp: base.Add(time.Duration(100+i) * time.Millisecond)})
	}
	if err := rr.ProduceSync(ctx, unkeyed...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	unkeyedParts := map[int32]int{}
	for _, r := range unkeyed {
		unkeyedParts[r.Partition]++
		all = append(all, sent{r.Partition, r.Offset, r})
	}
	if len(unkeyedParts) != 4 {
		t.Fatalf("60 unkeyed records landed in %v, want all 4 partitions", unkeyedParts)
	}

	stored := map[int32]map[int64]fluxo.Record{}
	total := 0
	for p := int32(0); p < 4; p++ {
		stored[p] = map[int64]fluxo.Record{}
		for _, r := range fetchAll(t, ctx, b, topic, p) {
			stored[p][r.Offset] = r
			total++
		}
		// franz-go is idempotent by default: every stored batch carries
		// its producer id.
		for _, bt := range rawBatches(t, ctx, b, topic, p) {
			h, _ := recordbatch.ParseHeader(bt)
			if h.ProducerID < 0 || h.ProducerEpoch != 0 {
				t.Fatalf("partition %d: batch without producer id: %+v", p, h)
			}
		}
	}
	if total != len(all) {
		t.Fatalf("stored %d records, sent %d", total, len(all))
	}
	for _, s := range all {
		got, ok := stored[s.partition][s.offset]
		if !ok {
			t.Fatalf("record %q not at %d/%d", s.rec.Value, s.partition, s.offset)
		}
		if !bytes.Equal(got.Key, s.rec.Key) || !bytes.Equal(got.Value, s.rec.Value) || got.Timestamp != s.rec.Timestamp.UnixMilli() {
			t.Fatalf("at %d/%d got key %q value %q ts %d, sent %q %q %d", s.partition, s.offset, got.Key, got.Value, got.Timestamp, s.rec.Key, s.rec.Value, s.rec.Timestamp.UnixMilli())
		}
		if len(got.Headers) != len(s.rec.Headers) {
			t.Fatalf("headers %v, sent %v", got.Headers, s.rec.Headers)
		}
		for i, h := range s.rec.Headers {
			if got.Headers[i].Key != h.Key || !bytes.Equal(got.Headers[i].Value, h.Value) {
				t.Fatalf("header %d: %v, sent %v", i, got.Headers[i], h)
			}
		}
	}
}

func TestProduceCompressions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, _ := startKafka(t)
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		attr  int
	}{
		{"gzip", kgo.GzipCompression(), recordbatch.CompressionGzip},
		{"snappy", kgo.SnappyCompression(), recordbatch.CompressionSnappy},
		{"lz4", kgo.Lz4Compression(), recordbatch.CompressionLZ4},
		{"zstd", kgo.ZstdCompression(), recordbatch.CompressionZstd},
	}
	for _, c := range codecs {
		topic := "comp-" + c.name
		if _, err := b.CreateTopic(ctx, topic, 1); err != nil {
			t.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.KafkaAddr()), kgo.ProducerBatchCompression(c.codec), kgo.ProducerLinger(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		var recs []*kgo.Record
		for i := 0; i < 50; i++ {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: bytes.Repeat([]byte(c.name), 20+i)})
		}
		err = cl.ProduceSync(ctx, recs...).FirstErr()
		cl.Close()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := fetchAll(t, ctx, b, topic, 0)
		if len(got) != len(recs) {
			t.Fatalf("%s: %d records back, sent %d", c.name, len(got), len(recs))
		}
		for i, r := range got {
			if r.Offset != int64(i) || !bytes.Equal(r.Value, recs[i].Value) || !bytes.Equal(r.Key, recs[i].Key) {
				t.Fatalf("%s: record %d: %+v", c.name, i, r)
			}
		}
		for _, bt := range rawBatches(t, ctx, b, topic, 0) {
			h, _ := recordbatch.ParseHeader(bt)
			if h.Compression() != c.attr {
				t.Fatalf("%s: stored batch has compression %d, want %d (as sent)", c.name, h.Compression(), c.attr)
			}
		}
	}
}

func TestProduceAcksZero(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, cl := startKafka(t, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	if _, err := b.CreateTopic(ctx, "noack", 1); err != nil {
		t.Fatal(err)
	}
	const n = 30
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "noack", Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for highWatermark(t, b, "noack", 0) < n {
		if ctx.Err() != nil {
			t.Fatalf("acks=0 writes did not land: high watermark %d", highWatermark(t, b, "noack", 0))
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := fetchAll(t, ctx, b, "noack", 0)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("got %d records (%d distinct), want %d", len(got), len(seen), n)
	}

	// A raw acks=0 request gets no answer: the next answer on the
	// connection is the one for the request after it.
	rc := dialProd(t, b.KafkaAddr())
	rc.send(produceReq(9, 0, "noack", map[int32][]byte{0: build(t, recordbatch.NoProducer, "raw")}))
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 9
	if _, ok := rc.do(md).(*kmsg.MetadataResponse); !ok {
		t.Fatal("no metadata answer after an acks=0 produce")
	}
	if hw := highWatermark(t, b, "noack", 0); hw != n+1 {
		// the produce was handled before metadata answered only if in
		// order; allow it to land shortly after
		deadline := time.Now().Add(5 * time.Second)
		for highWatermark(t, b, "noack", 0) != n+1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if hw = highWatermark(t, b, "noack", 0); hw != n+1 {
			t.Fatalf("high watermark %d after raw acks=0 produce, want %d", hw, n+1)
		}
	}
}

func TestProduceAutoCreate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, cl := startKafka(t, kgo.AllowAutoTopicCreation())
	// Through a client: Metadata creates, Produce writes.
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "auto-client", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if len(fetchAll(t, ctx, b, "auto-client", 0)) != 1 {
		t.Fatal("record not stored in auto-created topic")
	}
	// Produce alone creates an unknown topic too.
	rc := dialProd(t, b.KafkaAddr())
	res := partitionResults(t, rc.do(produceReq(9, -1, "auto-raw", map[int32][]byte{0: build(t, recordbatch.NoProducer, "a", "b")})))
	if res[0].ErrorCode != 0 || res[0].BaseOffset != 0 {
		t.Fatalf("produce to unknown topic: %+v", res[0])
	}
	if b.Node().Topic("auto-raw") == nil || len(fetchAll(t, ctx, b, "auto-raw", 0)) != 2 {
		t.Fatal("auto-raw not created with its records")
	}

	// With auto-creation off the answer is UNKNOWN_TOPIC_OR_PARTITION.
	off := testkit.StartBroker(t, fluxo.WithKafkaListen("127.0.0.1:0", ""), fluxo.WithGatewayConfig(func(c *gateway.Config) { c.DisableAutoCreate = true }))
	rc2 := dialProd(t, off.KafkaAddr())
	res = partitionResults(t, rc2.do(produceReq(9, -1, "nope", map[int32][]byte{0: build(t, recordbatch.NoProducer, "a")})))
	if res[0].ErrorCode != kerr.UnknownTopicOrPartition.Code || off.Node().Topic("nope") != nil {
		t.Fatalf("produce with auto-create off: %+v", res[0])
	}
}

func TestProduceMessageTooLarge(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, cl := startKafka(t, kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordRetries(2))
	if _, err := b.CreateTopic(ctx, "small", 1, fluxo.MaxMessageBytes(1024)); err != nil {
		t.Fatal(err)
	}
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "small", Value: bytes.Repeat([]byte("x"), 4096)}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Fatalf("oversized batch: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "small", Value: []byte("fits")}).FirstErr(); err != nil {
		t.Fatalf("small record after a rejected one: %v", err)
	}
	if got := fetchAll(t, ctx, b, "small", 0); len(got) != 1 || string(got[0].Value) != "fits" {
		t.Fatalf("stored %+v", got)
	}
}

func TestProduceRequestErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "errs", 2); err != nil {
		t.Fatal(err)
	}
	rc := dialProd(t, b.KafkaAddr())
	good := build(t, recordbatch.NoProducer, "a", "b")

	// Corrupt CRC on partition 0, a good batch on 1, a partition out of
	// range, and an empty one: each answered on its own.
	bad := append([]byte(nil), good...)
	bad[len(bad)-2] ^= 0xff
	res := partitionResults(t, rc.do(produceReq(9, -1, "errs", map[int32][]byte{0: bad, 1: good, 5: good})))
	if res[0].ErrorCode != kerr.CorruptMessage.Code || res[0].BaseOffset != -1 {
		t.Fatalf("corrupt CRC: %+v", res[0])
	}
	if res[1].ErrorCode != 0 || res[1].BaseOffset != 0 || res[1].LogAppendTime != -1 || res[1].LogStartOffset != 0 {
		t.Fatalf("good partition: %+v", res[1])
	}
	if res[5].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("partition out of range: %+v", res[5])
	}
	// The connection still serves.
	req := produceReq(9, -1, "errs", map[int32][]byte{0: {}, 1: append(append([]byte(nil), good...), good...)})
	req.Topics[0].Partitions[0].Records = nil
	res = partitionResults(t, rc.do(req))
	if res[0].ErrorCode != kerr.InvalidRecord.Code || res[1].ErrorCode != kerr.InvalidRecord.Code {
		t.Fatalf("no batch / two batches: %+v %+v", res[0], res[1])
	}
	for _, v := range []int16{3, 7, 8, 11} {
		res = partitionResults(t, rc.do(produceReq(v, 1, "errs", map[int32][]byte{0: good})))
		if res[0].ErrorCode != 0 {
			t.Fatalf("v%d: %+v", v, res[0])
		}
	}
	if hw := highWatermark(t, b, "errs", 0); hw != 8 {
		t.Fatalf("partition 0 high watermark %d, want 8 (four good batches, nothing from the rejected ones)", hw)
	}
	res = partitionResults(t, rc.do(produceReq(9, 2, "errs", map[int32][]byte{0: good})))
	if res[0].ErrorCode != kerr.InvalidRequiredAcks.Code {
		t.Fatalf("acks=2: %+v", res[0])
	}
	txn := produceReq(9, -1, "errs", map[int32][]byte{0: good})
	id := "txn"
	txn.TransactionID = &id
	res = partitionResults(t, rc.do(txn))
	if res[0].ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transactional id: %+v", res[0])
	}
	if hw := highWatermark(t, b, "errs", 0); hw != 8 {
		t.Fatalf("high watermark %d after rejected requests, want 8", hw)
	}
}

// TestProduceInvalidContent: batches whose CRC is valid but whose records do
// not decode are rejected with INVALID_RECORD and nothing is stored, so no
// consumer ever reads a batch it cannot decode.
func TestProduceInvalidContent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "content", 1); err != nil {
		t.Fatal(err)
	}
	rc := dialProd(t, b.KafkaAddr())
	good := build(t, recordbatch.NoProducer, "a", "b", "c")
	body := good[recordbatch.HeaderSize:]

	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 64))
	w.Close()
	var gzGood bytes.Buffer
	w = gzip.NewWriter(&gzGood)
	w.Write(body)
	w.Close()
	truncated := append([]byte(nil), body[:len(body)-3]...)
	// Offset delta of the second record changed from 1 to 5: the record
	// framing holds but the offsets are not dense.
	badDelta := append([]byte(nil), body...)
	_, n := binary.Varint(badDelta)
	second := n + int(mustVarint(t, badDelta))
	_, n2 := binary.Varint(badDelta[second:])
	tsLen := varintLen(badDelta[second+n2+1:])
	badDelta[second+n2+1+tsLen] = 10 // zig-zag 5

	cases := []struct {
		name  string
		batch []byte
		index int32 // record errors index, -1: none
	}{
		{"gzip of garbage", rewriteBody(good, recordbatch.CompressionGzip, gz.Bytes()), -1},
		{"not gzip at all", rewriteBody(good, recordbatch.CompressionGzip, []byte("this is not gzip")), -1},
		{"uncompressed truncated records", rewriteBody(good, 0, truncated), 2},
		{"uncompressed garbage", rewriteBody(good, 0, bytes.Repeat([]byte{0x7f}, 40)), 0},
		{"offset deltas not dense", rewriteBody(good, 0, badDelta), 1},
		{"snappy garbage", rewriteBody(good, recordbatch.CompressionSnappy, []byte{0xff, 0xff, 0xff, 0x0f, 1, 2}), -1},
		{"lz4 garbage", rewriteBody(good, recordbatch.CompressionLZ4, []byte("not lz4 at all")), -1},
		{"zstd garbage", rewriteBody(good, recordbatch.CompressionZstd, []byte("not zstd at all")), -1},
		{"gzip bomb claiming 2^30 records", withCount(rewriteBody(good, recordbatch.CompressionGzip, gzipZeros(t, 64<<20)), 1<<30), 0},
		{"gzip with trailing data", rewriteBody(good, recordbatch.CompressionGzip, gzipBytes(t, append(append([]byte(nil), body...), 0))), -1},
	}
	for _, c := range cases {
		res := partitionResults(t, rc.do(produceReq(9, -1, "content", map[int32][]byte{0: c.batch})))[0]
		if res.ErrorCode != kerr.InvalidRecord.Code {
			t.Fatalf("%s: error %d, want INVALID_RECORD", c.name, res.ErrorCode)
		}
		if res.ErrorMessage == nil || *res.ErrorMessage == "" {
			t.Fatalf("%s: no error message", c.name)
		}
		if c.index >= 0 && (len(res.ErrorRecords) != 1 || res.ErrorRecords[0].RelativeOffset != c.index) {
			t.Fatalf("%s: record errors %+v, want index %d", c.name, res.ErrorRecords, c.index)
		}
	}
	if hw := highWatermark(t, b, "content", 0); hw != 0 {
		t.Fatalf("high watermark %d after invalid batches, want 0", hw)
	}
	// The same records gzip-compressed properly are accepted and readable.
	res := partitionResults(t, rc.do(produceReq(9, -1, "content", map[int32][]byte{0: rewriteBody(good, recordbatch.CompressionGzip, gzGood.Bytes())})))[0]
	if res.ErrorCode != 0 || res.BaseOffset != 0 {
		t.Fatalf("valid gzip batch: %+v", res)
	}
	if got := fetchAll(t, ctx, b, "content", 0); len(got) != 3 || string(got[2].Value) != "c" {
		t.Fatalf("read back %+v", got)
	}
}

// withCount sets the record count (and last offset delta) of batch and
// fixes its CRC.
func withCount(batch []byte, n int32) []byte {
	binary.BigEndian.PutUint32(batch[57:], uint32(n))
	binary.BigEndian.PutUint32(batch[23:], uint32(n-1))
	binary.BigEndian.PutUint32(batch[17:], recordbatch.Checksum(batch))
	return batch
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func gzipZeros(t *testing.T, n int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < n>>20; i++ {
		w.Write(zeros)
	}
	w.Close()
	return buf.Bytes()
}

func mustVarint(t *testing.T, b []byte) int64 {
	v, n := binary.Varint(b)
	if n <= 0 {
		t.Fatal("bad varint")
	}
	return v
}

func varintLen(b []byte) int {
	_, n := binary.Varint(b)
	return n
}

func initProducerID(t *testing.T, rc *prodConn, version int16, txnID *string) *kmsg.InitProducerIDResponse {
	t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = version
	req.TransactionalID = txnID
	req.TransactionTimeoutMillis = 60000
	return rc.do(req).(*kmsg.InitProducerIDResponse)
}

func TestProduceIdempotentRetries(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "idem", 1); err != nil {
		t.Fatal(err)
	}
	rc := dialProd(t, b.KafkaAddr())
	ip := initProducerID(t, rc, 4, nil)
	if ip.ErrorCode != 0 || ip.ProducerID < 0 || ip.ProducerEpoch != 0 {
		t.Fatalf("init producer id: %+v", ip)
	}
	prod := recordbatch.Producer{ID: ip.ProducerID, Epoch: 0, Sequence: 0}
	first := build(t, prod, "a", "b", "c")
	for i := 0; i < 2; i++ {
		// A fresh copy each time: the broker rewrites the base offset
		// in place, as a client's retry would resend the same bytes.
		res := partitionResults(t, rc.do(produceReq(11, -1, "idem", map[int32][]byte{0: append([]byte(nil), first...)})))[0]
		if res.ErrorCode != 0 || res.BaseOffset != 0 {
			t.Fatalf("send %d of the same batch: %+v", i, res)
		}
	}
	prod.Sequence = 3
	res := partitionResults(t, rc.do(produceReq(11, -1, "idem", map[int32][]byte{0: build(t, prod, "d")})))[0]
	if res.ErrorCode != 0 || res.BaseOffset != 3 {
		t.Fatalf("next sequence: %+v", res)
	}
	prod.Sequence = 10
	res = partitionResults(t, rc.do(produceReq(11, -1, "idem", map[int32][]byte{0: build(t, prod, "gap")})))[0]
	if res.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("sequence gap: %+v", res)
	}
	if got := fetchAll(t, ctx, b, "idem", 0); len(got) != 4 || string(got[3].Value) != "d" {
		t.Fatalf("stored %d records, want 4 (the retry deduplicated, the gap rejected)", len(got))
	}
}

func TestInitProducerIDUniqueAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	seen := map[int64]bool{}
	for run := 0; run < 2; run++ {
		b := testkit.StartBrokerAt(t, dir, fluxo.WithKafkaListen("127.0.0.1:0", ""))
		rc := dialProd(t, b.KafkaAddr())
		for _, v := range []int16{0, 2, 3, 5} {
			ip := initProducerID(t, rc, v, nil)
			if ip.ErrorCode != 0 || ip.ProducerEpoch != 0 || ip.ProducerID < 0 {
				t.Fatalf("run %d v%d: %+v", run, v, ip)
			}
			if seen[ip.ProducerID] {
				t.Fatalf("run %d v%d: producer id %d handed out twice", run, v, ip.ProducerID)
			}
			seen[ip.ProducerID] = true
		}
		txn := "txn"
		if ip := initProducerID(t, rc, 4, &txn); ip.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code || ip.ProducerID != -1 {
			t.Fatalf("transactional id: %+v", ip)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 8 {
		t.Fatalf("%d distinct ids, want 8", len(seen))
	}
}

// TestProducePipelinedBodiesReused: produce bodies come from a pool and are
// reused once every partition answered. Many pipelined requests over one
// connection, answered, rejected and acks=0 alike, must each store exactly
// the bytes sent: a body reused while a partition still had to read it
// would show as another request's records.
func TestProducePipelinedBodiesReused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b, _ := startKafka(t)
	if _, err := b.CreateTopic(ctx, "reuse", 3); err != nil {
		t.Fatal(err)
	}
	rc := dialProd(t, b.KafkaAddr())
	const rounds = 60
	want := map[int32][]string{}
	var acked []int32
	for i := 0; i < rounds; i++ {
		parts := map[int32][]byte{}
		for p := int32(0); p < 3; p++ {
			vals := make([]string, 20)
			for j := range vals {
				vals[j] = fmt.Sprintf("r%d-p%d-%d-%s", i, p, j, bytes.Repeat([]byte{byte('a' + i%26)}, 300))
			}
			want[p] = append(want[p], vals...)
			parts[p] = build(t, recordbatch.NoProducer, vals...)
		}
		switch i % 3 {
		case 0: // acks=0: no answer, the body is never reused
			rc.send(produceReq(9, 0, "reuse", parts))
		case 1: // with a rejected partition next to the good ones
			parts[7] = build(t, recordbatch.NoProducer, "nowhere")
			acked = append(acked, rc.send(produceReq(9, 1, "reuse", parts)))
		default:
			acked = append(acked, rc.send(produceReq(9, -1, "reuse", parts)))
		}
	}
	for range acked {
		var size [4]byte
		if _, err := io.ReadFull(rc.nc, size[:]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(rc.nc, make([]byte, binary.BigEndian.Uint32(size[:]))); err != nil {
			t.Fatal(err)
		}
	}
	for p := int32(0); p < 3; p++ {
		for highWatermark(t, b, "reuse", p) < int64(len(want[p])) {
			if ctx.Err() != nil {
				t.Fatalf("partition %d: high watermark %d, want %d", p, highWatermark(t, b, "reuse", p), len(want[p]))
			}
			time.Sleep(5 * time.Millisecond)
		}
		got := fetchAll(t, ctx, b, "reuse", p)
		if len(got) != len(want[p]) {
			t.Fatalf("partition %d: %d records, want %d", p, len(got), len(want[p]))
		}
		for i, r := range got {
			if string(r.Value) != want[p][i] {
				t.Fatalf("partition %d offset %d: %.20q, want %.20q", p, i, r.Value, want[p][i])
			}
		}
	}
}
