package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// Bucket is the JetStream key-value bucket holding the metadata.
	Bucket = "fluxo_meta"
	// bucketStream is the stream backing Bucket.
	bucketStream = "KV_" + Bucket
	// bucketHistory is the number of revisions kept per key. Watches skip
	// intermediate revisions anyway; readers always re-read the latest.
	bucketHistory = 1

	// maxCASAttempts bounds read-modify-CAS loops under contention.
	maxCASAttempts = 32
	// closeTimeout bounds draining the client connection in Close.
	closeTimeout = 5 * time.Second
)

// Store is the coordination store: an embedded NATS server with a JetStream
// key-value bucket. It is safe for concurrent use.
type Store struct {
	opts Options
	srv  *server.Server
	nc   *nats.Conn
	js   jetstream.JetStream
	kv   jetstream.KeyValue

	closed    atomic.Bool
	isolated  atomic.Bool // SetIsolated: a test's network partition
	closeOnce sync.Once
	closeErr  error
	done      chan struct{} // closed by Close; stops watch forwarders
}

// Open starts the embedded NATS server for this node, connects to it
// in-process and opens (creating if needed) the metadata bucket. The server is
// ready within Options.StartTimeout or Open fails with a descriptive error.
func Open(ctx context.Context, o Options) (*Store, error) {
	srv, nc, err := startServer(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("cluster: open: %w", err)
	}
	s := &Store{opts: o, srv: srv, nc: nc, done: make(chan struct{})}
	if err := s.openBucket(ctx); err != nil {
		s.Close()
		return nil, opError("open", err)
	}
	return s, nil
}

func (s *Store) openBucket(ctx context.Context) error {
	js, err := jetstream.New(s.nc)
	if err != nil {
		return err
	}
	s.js = js
	cfg := jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "Fluxo cluster metadata (topics, producer ids)",
		History:     bucketHistory,
		Storage:     jetstream.FileStorage,
		Replicas:    s.opts.replicas(),
	}
	// In a cluster JetStream answers only once its meta group has a leader
	// (a quorum of brokers is up): keep asking until ctx ends.
	var kv jetstream.KeyValue
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second) // an attempt before the meta leader exists gets no answer
		kv, err = js.CreateOrUpdateKeyValue(actx, cfg)
		cancel()
		if err == nil || s.opts.ClusterListen == "" {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bucket %s: waiting for the cluster (is a majority of brokers up?): %w (last: %v)", Bucket, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
	if err != nil {
		return fmt.Errorf("bucket %s: %w", Bucket, err)
	}
	s.kv = kv
	// Bounded attempts: a request sent while the cluster still settles may
	// get no answer at all.
	var st jetstream.Stream
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err = js.Stream(actx, bucketStream)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bucket stream %s: %w (last: %v)", bucketStream, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
	if got := st.CachedInfo().Config.Storage; got != jetstream.FileStorage {
		return fmt.Errorf("bucket stream %s has %s storage, want file", bucketStream, got)
	}
	// Controller writes are atomic batches (fenced by the controller key's
	// revision, see fenced.go). The KV API cannot set this, and a later
	// CreateOrUpdateKeyValue (another broker opening) resets it: until this
	// runs again there, fenced writes fail (closed, retryable), never pass.
	// Like the bucket creation above, an update sent while the cluster is
	// still forming (or racing another broker's) may get no answer: retry
	// with a bounded attempt until ctx ends.
	for wait := 50 * time.Millisecond; !st.CachedInfo().Config.AllowAtomicPublish; wait = min(2*wait, time.Second) {
		cfg := st.CachedInfo().Config
		cfg.AllowAtomicPublish = true
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = js.UpdateStream(actx, cfg)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bucket stream %s: allow atomic publish: %w (last: %v)", bucketStream, ctx.Err(), err)
		case <-time.After(wait):
		}
		actx, cancel = context.WithTimeout(ctx, 2*time.Second)
		if st2, err := js.Stream(actx, bucketStream); err == nil {
			st = st2
		}
		cancel()
	}
	return nil
}

// Close drains the client connection, shuts the embedded server down and waits
// for it to stop. Later calls return the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.done)
		if s.nc != nil {
			drained := make(chan struct{})
			s.nc.SetClosedHandler(func(*nats.Conn) { close(drained) })
			if err := s.nc.Drain(); err != nil {
				s.nc.Close()
			} else {
				select {
				case <-drained:
				case <-time.After(closeTimeout):
					s.nc.Close()
					s.closeErr = fmt.Errorf("cluster: close: drain did not finish in %s", closeTimeout)
				}
			}
		}
		if s.srv != nil {
			s.srv.Shutdown()
			s.srv.WaitForShutdown()
		}
	})
	return s.closeErr
}

// entry is one key's latest state as read from the stream leader.
type entry struct {
	value    []byte
	revision uint64 // stream sequence of the latest message on the key
	deleted  bool   // latest message is a delete/purge marker
}

var (
	errNoKey      = errors.New("key not found")
	errKeyExists  = errors.New("key exists")
	errStoreClose = fmt.Errorf("%w: store closed", ErrUnavailable)
)

// msgGetRequest/-Response mirror the JetStream STREAM.MSG.GET API.
type msgGetRequest struct {
	LastFor string `json:"last_by_subj,omitempty"`
}

type msgGetResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     uint16 `json:"err_code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
	Message *storedMsg `json:"message,omitempty"`
}

// storedMsg is one message as the STREAM.MSG.GET API returns it.
type storedMsg struct {
	Subject  string `json:"subject"`
	Sequence uint64 `json:"seq"`
	Header   []byte `json:"hdrs,omitempty"`
	Data     []byte `json:"data,omitempty"`
}

// headers decodes the message's headers (nil when it has none).
func (m *storedMsg) headers() (nats.Header, error) {
	if len(m.Header) == 0 {
		return nil, nil
	}
	return nats.DecodeHeadersMsg(m.Header)
}

const jsNoMessageFound = 10037

// leaderLast returns the latest message on subject in stream as answered by
// the stream leader through the STREAM.MSG.GET API, never a direct get
// (which any replica may answer, possibly stale). errNoKey if the subject
// holds no message.
func (s *Store) leaderLast(ctx context.Context, stream, subject string) (*storedMsg, error) {
	if s.down() {
		return nil, errStoreClose
	}
	req, err := json.Marshal(msgGetRequest{LastFor: subject})
	if err != nil {
		return nil, err
	}
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	msg, err := s.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+stream, req)
	if err != nil {
		return nil, err
	}
	var resp msgGetResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return nil, fmt.Errorf("decode msg get response: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.ErrCode == jsNoMessageFound {
			return nil, errNoKey
		}
		if resp.Error.Code == 503 {
			return nil, fmt.Errorf("%w: %s", ErrUnavailable, resp.Error.Description)
		}
		return nil, fmt.Errorf("msg get: %s (code %d/%d)", resp.Error.Description, resp.Error.Code, resp.Error.ErrCode)
	}
	if resp.Message == nil {
		return nil, errors.New("msg get: empty response")
	}
	return resp.Message, nil
}

// readLatest is the one read used for decisions: it returns the key's latest
// message as answered by the stream leader (leaderLast). It returns errNoKey
// if the key never existed (or was purged away), and an entry with
// deleted=true if its latest message is a delete marker.
func (s *Store) readLatest(ctx context.Context, key string) (entry, error) {
	m, err := s.leaderLast(ctx, bucketStream, "$KV."+Bucket+"."+key)
	if err != nil {
		return entry{}, err
	}
	e := entry{value: m.Data, revision: m.Sequence}
	hdr, err := m.headers()
	if err != nil {
		return entry{}, fmt.Errorf("msg get: headers: %w", err)
	}
	switch hdr.Get("KV-Operation") {
	case "DEL", "PURGE":
		e.deleted = true
	}
	if hdr.Get(jetstream.MarkerReasonHeader) != "" {
		e.deleted = true
	}
	return e, nil
}

// create writes value at key only if the key does not exist or its latest
// message is a delete marker. errKeyExists if a live value is there.
func (s *Store) create(ctx context.Context, key string, value []byte) (uint64, error) {
	if s.down() {
		return 0, errStoreClose
	}
	// Fast path: the key never existed (expected last subject sequence 0).
	rev, err := s.kv.Create(ctx, key, value)
	if err == nil {
		return rev, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, err
	}
	// kv.Create's own retry over a delete marker uses a direct get; do that
	// step with the leader read instead.
	for range maxCASAttempts {
		e, err := s.readLatest(ctx, key)
		switch {
		case errors.Is(err, errNoKey):
			e.revision = 0
		case err != nil:
			return 0, err
		case !e.deleted:
			return 0, errKeyExists
		}
		rev, err := s.kv.Update(ctx, key, value, e.revision)
		if err == nil {
			return rev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, err
		}
	}
	return 0, ErrConflict
}

// update writes value at key only if the key's latest revision is rev.
// A lost race returns an error wrapping ErrConflict.
func (s *Store) update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if s.down() {
		return 0, errStoreClose
	}
	n, err := s.kv.Update(ctx, key, value, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return n, err
}

// delete places a delete marker at key only if its latest revision is rev.
func (s *Store) delete(ctx context.Context, key string, rev uint64) error {
	if s.down() {
		return errStoreClose
	}
	err := s.kv.Delete(ctx, key, jetstream.LastRevision(rev))
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return err
}

// defaultOpTimeout bounds a single store round trip when the caller's context
// has no deadline.
const defaultOpTimeout = 5 * time.Second

func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	// Always bounded, even under a longer deadline: in a cluster a request
	// sent while a stream changes leader may get no answer at all, and the
	// caller should get an error it can retry rather than wait it out.
	return context.WithTimeout(ctx, defaultOpTimeout)
}

// down reports whether the store must not be used: closed, or cut off by
// SetIsolated.
func (s *Store) down() bool { return s.closed.Load() || s.isolated.Load() }

// SetIsolated cuts this broker off from the coordination store (true) or
// reconnects it (false), for fault-injection tests: while isolated every
// operation fails as unavailable, no heartbeat is sent or heard, and
// watches deliver nothing (watchers resynchronise when it ends). The
// embedded server itself stays in its cluster: this isolates the broker,
// not its NATS server.
func (s *Store) SetIsolated(on bool) { s.isolated.Store(on) }

// watchKV watches the keys matching pattern and delivers what conv makes of
// each entry (ok false: skip it) until ctx is done or the store closes; then
// the channel is closed. initial is true for the entries that existed when
// the watch started. While the store is isolated (SetIsolated) entries are
// dropped: watchers resynchronise afterwards.
func watchKV[T any](ctx context.Context, s *Store, op, pattern string, buffer int, conv func(e jetstream.KeyValueEntry, initial bool) (T, bool)) (<-chan T, error) {
	if s.down() {
		return nil, opError(op, errStoreClose)
	}
	w, err := s.kv.Watch(ctx, pattern)
	if err != nil {
		return nil, opError(op, err)
	}
	out := make(chan T, buffer)
	go func() {
		defer close(out)
		defer w.Stop()
		initial := true
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case <-ctx.Done():
				return
			case <-s.done:
				return
			case e, ok = <-w.Updates():
				if !ok {
					return
				}
			}
			if s.isolated.Load() {
				continue
			}
			if e == nil { // end of the initial values
				initial = false
				continue
			}
			v, ok := conv(e, initial)
			if !ok {
				continue
			}
			select {
			case out <- v:
			case <-ctx.Done():
				return
			case <-s.done:
				return
			}
		}
	}()
	return out, nil
}

// StreamLeader is the node whose NATS server leads the bucket's stream (the
// Raft group every write and decision read goes through), as the stream
// reports it now; ok is false when it has no leader or cannot say. When that
// node dies, the store cannot write until the stream elects another leader
// (5-7 s measured), whatever the brokers do.
func (s *Store) StreamLeader(ctx context.Context) (nodeID int32, ok bool) {
	if s.down() {
		return 0, false
	}
	st, err := s.js.Stream(ctx, bucketStream)
	if err != nil || st.CachedInfo().Cluster == nil {
		return 0, false
	}
	var id int32
	if _, err := fmt.Sscanf(st.CachedInfo().Cluster.Leader, "fluxo-%d", &id); err != nil {
		return 0, false
	}
	return id, true
}
