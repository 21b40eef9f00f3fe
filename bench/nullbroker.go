package bench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// NullBroker is a Kafka broker that acknowledges Produce and stores nothing:
// the practical ceiling of a machine, where client and broker share the
// cores. It serves just enough for a franz-go producer with its defaults
// (ApiVersions, Metadata, InitProducerId, CreateTopics, Produce) for one
// topic of a fixed partition count, answering every batch with the next
// offsets as a real broker would. Everything else closes the connection.
type NullBroker struct {
	ln         net.Listener
	topic      string
	partitions int32

	mu      sync.Mutex
	pid     int64
	offsets map[int32]int64
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// versions served, as the Fluxo gateway serves them, so both brokers speak
// the same protocol versions to the client.
var nullVersions = map[int16][2]int16{
	0:  {3, 11}, // Produce
	3:  {0, 12}, // Metadata
	18: {0, 3},  // ApiVersions
	19: {0, 7},  // CreateTopics
	22: {0, 5},  // InitProducerId
}

// StartNullBroker listens on addr (use 127.0.0.1:0) and serves until Close.
func StartNullBroker(addr, topic string, partitions int32) (*NullBroker, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &NullBroker{ln: ln, topic: topic, partitions: partitions, offsets: map[int32]int64{}, conns: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.accept()
	return b, nil
}

// Addr is the listening address.
func (b *NullBroker) Addr() string { return b.ln.Addr().String() }

// Close stops listening, closes every connection and waits for them.
func (b *NullBroker) Close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *NullBroker) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.serve(c)
			b.mu.Lock()
			delete(b.conns, c)
			b.mu.Unlock()
			c.Close()
		}()
	}
}

const nullMaxFrame = 100 << 20

func (b *NullBroker) serve(c net.Conn) {
	r := bufio.NewReaderSize(c, 1<<20)
	w := bufio.NewWriterSize(c, 64<<10)
	var size [4]byte
	var frame, out []byte
	for {
		if _, err := io.ReadFull(r, size[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(size[:])
		if n > nullMaxFrame || n < 10 {
			return
		}
		if cap(frame) < int(n) {
			frame = make([]byte, n)
		}
		frame = frame[:n]
		if _, err := io.ReadFull(r, frame); err != nil {
			return
		}
		resp, corr, err := b.handle(frame)
		if err != nil {
			return
		}
		if resp == nil { // acks=0
			continue
		}
		out = append(out[:0], 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(out[4:], uint32(corr))
		if resp.IsFlexible() && resp.Key() != 18 {
			out = append(out, 0)
		}
		out = resp.AppendTo(out)
		binary.BigEndian.PutUint32(out, uint32(len(out)-4))
		if _, err := w.Write(out); err != nil {
			return
		}
		if r.Buffered() == 0 { // flush once the pipelined requests are answered
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// handle decodes one request and builds its answer (nil for acks=0 produce).
func (b *NullBroker) handle(frame []byte) (kmsg.Response, int32, error) {
	key := int16(binary.BigEndian.Uint16(frame))
	ver := int16(binary.BigEndian.Uint16(frame[2:]))
	corr := int32(binary.BigEndian.Uint32(frame[4:]))
	idLen := int(int16(binary.BigEndian.Uint16(frame[8:])))
	off := 10 + max(idLen, 0)
	if off > len(frame) {
		return nil, 0, errors.New("truncated header")
	}
	rng, ok := nullVersions[key]
	if key == 18 && ver > rng[1] {
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.ErrorCode = 35 // UNSUPPORTED_VERSION, answered at v0
		resp.ApiKeys = b.apiKeys()
		return resp, corr, nil
	}
	if !ok || ver < rng[0] || ver > rng[1] {
		return nil, 0, fmt.Errorf("api %d v%d not served", key, ver)
	}
	req := kmsg.RequestForKey(key)
	req.SetVersion(ver)
	body := frame[off:]
	if req.IsFlexible() { // the v2 request header's tags (ApiVersions v3+ too)
		var err error
		if body, err = skipTagSection(body); err != nil {
			return nil, 0, err
		}
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, 0, err
	}
	resp := req.ResponseKind()
	resp.SetVersion(ver)
	switch q := req.(type) {
	case *kmsg.ApiVersionsRequest:
		resp.(*kmsg.ApiVersionsResponse).ApiKeys = b.apiKeys()
	case *kmsg.MetadataRequest:
		b.metadata(resp.(*kmsg.MetadataResponse))
	case *kmsg.InitProducerIDRequest:
		r := resp.(*kmsg.InitProducerIDResponse)
		b.mu.Lock()
		b.pid++
		r.ProducerID = b.pid
		b.mu.Unlock()
	case *kmsg.CreateTopicsRequest:
		r := resp.(*kmsg.CreateTopicsResponse)
		for _, t := range q.Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = t.Topic
			rt.ErrorCode = 36 // TOPIC_ALREADY_EXISTS: the one topic always does
			r.Topics = append(r.Topics, rt)
		}
	case *kmsg.ProduceRequest:
		r := b.produce(q, resp.(*kmsg.ProduceResponse))
		if q.Acks == 0 {
			return nil, corr, nil
		}
		return r, corr, nil
	}
	return resp, corr, nil
}

func (b *NullBroker) apiKeys() []kmsg.ApiVersionsResponseApiKey {
	var keys []kmsg.ApiVersionsResponseApiKey
	for k, v := range nullVersions {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: v[0], MaxVersion: v[1]})
	}
	return keys
}

func (b *NullBroker) metadata(r *kmsg.MetadataResponse) {
	host, port, _ := net.SplitHostPort(b.Addr())
	var p int32
	fmt.Sscan(port, &p)
	r.Brokers = []kmsg.MetadataResponseBroker{{NodeID: 0, Host: host, Port: p}}
	r.ControllerID = 0
	t := kmsg.NewMetadataResponseTopic()
	t.Topic = &b.topic
	for i := int32(0); i < b.partitions; i++ {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.Replicas, mp.ISR = i, 0, []int32{0}, []int32{0}
		t.Partitions = append(t.Partitions, mp)
	}
	r.Topics = []kmsg.MetadataResponseTopic{t}
}

// produce acknowledges every batch with the next offsets of its partition,
// reading only the record count from the batch header.
func (b *NullBroker) produce(q *kmsg.ProduceRequest, r *kmsg.ProduceResponse) *kmsg.ProduceResponse {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, t := range q.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.BaseOffset = b.offsets[p.Partition]
			rp.LogAppendTime = -1
			for rec := p.Records; len(rec) >= 61; {
				size := int(int32(binary.BigEndian.Uint32(rec[8:]))) + 12
				b.offsets[p.Partition] += int64(int32(binary.BigEndian.Uint32(rec[57:])))
				if size <= 12 || size > len(rec) {
					break
				}
				rec = rec[size:]
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		r.Topics = append(r.Topics, rt)
	}
	return r
}

// skipTagSection skips a flexible request header's tagged fields.
func skipTagSection(b []byte) ([]byte, error) {
	num, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, errors.New("bad tagged fields")
	}
	b = b[n:]
	for i := uint64(0); i < num; i++ {
		_, n1 := binary.Uvarint(b)
		if n1 <= 0 {
			return nil, errors.New("bad tag")
		}
		size, n2 := binary.Uvarint(b[n1:])
		if n2 <= 0 || size > uint64(len(b)-n1-n2) {
			return nil, errors.New("bad tag size")
		}
		b = b[n1+n2+int(size):]
	}
	return b, nil
}
