package gateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/internal/bufpool"
)

// conn is the connection actor of one client. Its reader goroutine reads
// frames and hands them to the mailbox; the actor checks and decodes each,
// starts its handler on a goroutine (handlers wait on fsyncs and long polls),
// and writes answers strictly in request order as they complete, so clients
// may pipeline. At most MaxInflightPerConn requests are served at once; past
// that the reader stops reading.
type conn struct {
	server *Server
	nc     net.Conn
	w      *bufio.Writer
	ctx    context.Context
	cancel context.CancelFunc
	slots  chan struct{} // in-flight requests

	nextSeq  uint64             // sequence of the next frame read
	writeSeq uint64             // sequence of the next answer to write
	done     map[uint64]*result // finished, waiting for their turn
	clientID string
	tokens   tokenSet // budget held by frames read and not yet served

	lastProduce <-chan struct{} // closed when the last produce request submitted (order.go)
	wbuf        []byte          // reused to encode answers (written by the actor only)
}

// Messages of the connection actor.
type (
	frameMsg struct {
		body  []byte
		token *frameToken
	}
	readerEnd struct{ err error }
	result    struct {
		seq     uint64
		corr    int32
		key     int16
		resp    kmsg.Response // nil: no answer (acks=0)
		err     error         // close the connection
		noReply bool
	}
)

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		server: s,
		nc:     nc,
		w:      bufio.NewWriterSize(nc, 64<<10),
		ctx:    ctx,
		cancel: cancel,
		slots:  make(chan struct{}, s.cfg.MaxInflightPerConn),
		done:   make(map[uint64]*result),
	}
}

func (c *conn) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		go c.readLoop(ctx.ActorSystem().Root, ctx.Self())
	case *frameMsg:
		c.dispatch(ctx, m.body, m.token)
	case *result:
		c.done[m.seq] = m
		c.flushInOrder(ctx)
	case *readerEnd:
		if m.err != nil && !errors.Is(m.err, io.EOF) && !errors.Is(m.err, net.ErrClosed) {
			c.server.logger.Debug("gateway: connection closed", "remote", c.nc.RemoteAddr(), "err", m.err)
		}
		ctx.Stop(ctx.Self())
	case *actor.Stopping:
		c.cancel()
		c.nc.Close()
		c.tokens.close()
	}
}

// readLoop reads size-prefixed frames. A size outside [8, MaxFrameBytes]
// ends the connection before anything is allocated.
func (c *conn) readLoop(root *actor.RootContext, self *actor.PID) {
	r := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	for {
		if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
			root.Send(self, &readerEnd{err: err})
			return
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 10 || size > c.server.cfg.MaxFrameBytes {
			root.Send(self, &readerEnd{err: fmt.Errorf("frame size %d outside [10, %d]", size, c.server.cfg.MaxFrameBytes)})
			return
		}
		// The API key leads the body: only Produce may use the full cap.
		key, err := r.Peek(2)
		if err != nil {
			root.Send(self, &readerEnd{err: fmt.Errorf("truncated frame: %w", err)})
			return
		}
		if k := int16(binary.BigEndian.Uint16(key)); k != 0 && size > c.server.cfg.MaxSmallFrameBytes {
			root.Send(self, &readerEnd{err: fmt.Errorf("%s frame of %d bytes over the %d-byte cap", kmsg.NameForKey(k), size, c.server.cfg.MaxSmallFrameBytes)})
			return
		}
		select {
		case c.slots <- struct{}{}:
		case <-c.ctx.Done():
			return
		}
		if !c.server.memory.acquire(c.ctx, int64(size)) {
			return
		}
		token := &frameToken{budget: c.server.memory, size: int64(size)}
		if !c.tokens.add(token) {
			return
		}
		// Produce bodies are the large ones: they come from the pool and go
		// back once their handler says nothing refers to them (recycle.go).
		// Fresh ones cost a page fault per 4 KiB when the heap has handed
		// the memory back to the kernel.
		var body []byte
		if key[0] == 0 && key[1] == 0 {
			body = bufpool.Get(int(size))
		} else {
			body = make([]byte, size)
		}
		if _, err := io.ReadFull(r, body); err != nil {
			c.tokens.done(token)
			root.Send(self, &readerEnd{err: fmt.Errorf("truncated frame: %w", err)})
			return
		}
		root.Send(self, &frameMsg{body: body, token: token})
	}
}

// requestHeader is the decoded Kafka request header (v1 or v2).
type requestHeader struct {
	key, version int16
	corr         int32
	clientID     string
}

// parseHeader decodes the header and returns the offset of the body. The
// flexible header (v2) adds tagged fields after the client id.
func parseHeader(b []byte) (requestHeader, int, error) {
	var h requestHeader
	if len(b) < 10 {
		return h, 0, errors.New("request header truncated")
	}
	h.key = int16(binary.BigEndian.Uint16(b[0:]))
	h.version = int16(binary.BigEndian.Uint16(b[2:]))
	h.corr = int32(binary.BigEndian.Uint32(b[4:]))
	n := int16(binary.BigEndian.Uint16(b[8:]))
	off := 10
	if n > 0 {
		if int(n) > len(b)-off {
			return h, 0, errors.New("client id truncated")
		}
		h.clientID = string(b[off : off+int(n)])
		off += int(n)
	} else if n < -1 {
		return h, 0, errors.New("bad client id length")
	}
	return h, off, nil
}

// skipTags skips a tagged-field section (flexible versions).
func skipTags(b []byte) (int, error) {
	num, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, errors.New("bad tagged fields")
	}
	off := n
	for i := uint64(0); i < num; i++ {
		_, n1 := binary.Uvarint(b[off:])
		if n1 <= 0 {
			return 0, errors.New("bad tag")
		}
		off += n1
		size, n2 := binary.Uvarint(b[off:])
		if n2 <= 0 || size > uint64(len(b)-off-n2) {
			return 0, errors.New("bad tag size")
		}
		off += n2 + int(size)
	}
	return off, nil
}

// errVersionTooNew marks an ApiVersions request above our maximum: it gets
// the v0 answer with UNSUPPORTED_VERSION that clients use to negotiate.
var errVersionTooNew = errors.New("ApiVersions version above our maximum")

// decodeRequest checks and decodes one frame body: header, API key, version
// range, then the body with kmsg. It allocates nothing beyond what kmsg needs
// for the bytes given, and never panics on any input (FuzzDecodeRequest).
func decodeRequest(body []byte) (requestHeader, apiHandler, kmsg.Request, error) {
	h, off, err := parseHeader(body)
	if err != nil {
		return h, apiHandler{}, nil, err
	}
	api, ok := handlers[h.key]
	if !ok {
		return h, api, nil, fmt.Errorf("unknown API key %d", h.key)
	}
	if h.key == 18 && h.version > api.maxVersion {
		return h, api, nil, errVersionTooNew
	}
	if h.version < api.minVersion || h.version > api.maxVersion {
		return h, api, nil, fmt.Errorf("%s version %d outside [%d, %d]", kmsg.NameForKey(h.key), h.version, api.minVersion, api.maxVersion)
	}
	req := kmsg.RequestForKey(h.key)
	req.SetVersion(h.version)
	if req.IsFlexible() {
		n, err := skipTags(body[off:])
		if err != nil {
			return h, api, nil, err
		}
		off += n
	}
	if err := req.ReadFrom(body[off:]); err != nil {
		return h, api, nil, fmt.Errorf("decode %s v%d: %w", kmsg.NameForKey(h.key), h.version, err)
	}
	return h, api, req, nil
}

// dispatch decodes one frame and starts its handler. Anything malformed, an
// unknown key or a version out of range closes the connection (after the
// answers to earlier requests), except errVersionTooNew.
func (c *conn) dispatch(ctx actor.Context, body []byte, token *frameToken) {
	seq := c.nextSeq
	c.nextSeq++
	h, api, req, err := decodeRequest(body)
	if c.clientID == "" {
		c.clientID = h.clientID
	}
	if errors.Is(err, errVersionTooNew) {
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.SetVersion(0)
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		fillApiVersions(resp)
		c.tokens.done(token)
		c.finish(ctx, &result{seq: seq, corr: h.corr, key: h.key, resp: resp})
		return
	}
	if err != nil {
		c.tokens.done(token)
		c.finish(ctx, &result{seq: seq, err: err})
		return
	}
	self, root := ctx.Self(), ctx.ActorSystem().Root
	hctx := c.ctx
	var rec *bodyRecycle
	if h.key == 0 {
		hctx = withProduceGate(hctx, c.nextProduceGate())
		rec = &bodyRecycle{}
		hctx = withBodyRecycle(hctx, rec)
	}
	go func() {
		res := &result{seq: seq, corr: h.corr, key: h.key}
		start := time.Now()
		defer func() {
			c.tokens.done(token)
			if rec != nil && rec.ok {
				bufpool.Put(body)
			}
			if r := recover(); r != nil {
				res.resp, res.err = nil, fmt.Errorf("handler %s panicked: %v", kmsg.NameForKey(h.key), r)
			}
			c.server.cfg.Observer.Request(h.key, time.Since(start))
			root.Send(self, res)
		}()
		res.resp, res.err = api.serve(hctx, c, req)
		if res.resp == nil && res.err == nil {
			res.noReply = true
		}
	}()
}

func (c *conn) finish(ctx actor.Context, r *result) {
	c.done[r.seq] = r
	c.flushInOrder(ctx)
}

// flushInOrder writes every finished answer whose turn has come. An answer
// that is an error closes the connection (after the answers before it).
func (c *conn) flushInOrder(ctx actor.Context) {
	wrote := false
	for {
		r, ok := c.done[c.writeSeq]
		if !ok {
			break
		}
		delete(c.done, c.writeSeq)
		c.writeSeq++
		<-c.slots
		if r.err != nil {
			c.server.logger.Info("gateway: closing connection", "remote", c.nc.RemoteAddr(), "client", c.clientID, "reason", r.err)
			c.w.Flush()
			ctx.Stop(ctx.Self())
			return
		}
		if r.noReply {
			continue
		}
		if err := c.writeResponse(r); err != nil {
			ctx.Stop(ctx.Self())
			return
		}
		wrote = true
	}
	if wrote {
		c.nc.SetWriteDeadline(time.Now().Add(c.server.cfg.WriteTimeout))
		if err := c.w.Flush(); err != nil {
			ctx.Stop(ctx.Self())
		}
	}
}

// writeResponse frames one answer: size, correlation id, the flexible
// header's empty tag section (never for ApiVersions, whose response header
// is always v0), then the body.
func (c *conn) writeResponse(r *result) error {
	if f, ok := r.resp.(*kmsg.FetchResponse); ok {
		done, err := c.writeFetchVectored(r.corr, f)
		if done {
			releaseReads(f)
			return err
		}
	}
	if need := answerSizeHint(r.resp); cap(c.wbuf) < need {
		c.wbuf = make([]byte, 0, need)
	}
	buf := append(c.wbuf[:0], 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(buf[4:], uint32(r.corr))
	if r.resp.IsFlexible() && r.key != 18 {
		buf = append(buf, 0)
	}
	buf = r.resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf[0:], uint32(len(buf)-4))
	releaseReads(r.resp)
	if cap(buf) <= 16<<20 {
		c.wbuf = buf // keep for the next answer; drop outsized ones
	} else {
		c.wbuf = nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.server.cfg.WriteTimeout))
	_, err := c.w.Write(buf)
	return err
}

// releaseReads hands a fetch answer's record bytes, read from segments into
// pooled slices, back to the pool once they are encoded.
func releaseReads(resp kmsg.Response) {
	f, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return
	}
	for i := range f.Topics {
		for j := range f.Topics[i].Partitions {
			bufpool.Put(f.Topics[i].Partitions[j].RecordBatches)
			f.Topics[i].Partitions[j].RecordBatches = nil
		}
	}
}

// answerSizeHint estimates an answer's encoded size so the buffer is sized
// once: fetch answers are dominated by their record bytes, which would
// otherwise make the buffer grow (and copy) several times per answer.
func answerSizeHint(resp kmsg.Response) int {
	fr, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	n := 1 << 10
	for i := range fr.Topics {
		n += 64
		for j := range fr.Topics[i].Partitions {
			n += 96 + len(fr.Topics[i].Partitions[j].RecordBatches)
		}
	}
	return n
}
