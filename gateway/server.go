// Package gateway speaks the Kafka wire protocol. A listener actor accepts TCP
// connections and spawns one connection actor per client; the connection
// actor reads frames, decodes them with kmsg, runs each request's handler
// (one file per API key, registered in registry.go) against the broker node,
// and writes the answers in request order while allowing pipelining.
package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/fluxo-broker/fluxo/actors"
)

// Config configures the gateway. Zero fields take the default in the comment.
type Config struct {
	// Listen is the TCP address of the Kafka listener. Default 127.0.0.1:9092.
	Listen string
	// Advertise is the host:port Metadata tells clients. Default: the bound
	// listen address.
	Advertise string
	// MaxFrameBytes caps a request frame; a larger size prefix closes the
	// connection before anything is allocated. Default 100 MiB (Kafka's
	// socket.request.max.bytes).
	MaxFrameBytes int32
	// MaxSmallFrameBytes caps frames of every API but Produce, whose
	// requests carry records; others are small, and decoding amplifies a
	// frame (arrays of tiny entries become larger structs), so their cap is
	// lower. Default 8 MiB.
	MaxSmallFrameBytes int32
	// MaxBytesInFlight bounds the frame bytes of all connections read but
	// not yet answered (Kafka's queued.max.request.bytes); a reader waits
	// for room before reading a frame body. Default 512 MiB.
	MaxBytesInFlight int64
	// MaxInflightPerConn bounds the requests of one connection being served
	// at once; past it the connection stops reading (backpressure). Default 64.
	MaxInflightPerConn int
	// WriteTimeout bounds writing one response to a client. Default 30 s.
	WriteTimeout time.Duration
	// NodeID is this broker's id in Metadata. Default 0.
	NodeID int32
	// ClusterID is reported in Metadata and DescribeCluster. Default "fluxo".
	ClusterID string
	// AutoCreateTopics creates unknown topics on Metadata and Produce
	// (auto.create.topics.enable). Default true; DisableAutoCreate turns it off.
	DisableAutoCreate bool
	// Logger. Default slog.Default().
	Logger *slog.Logger
	// Observer receives request counts, latencies and produce/fetch error
	// codes. Default: none.
	Observer Observer
}

// EnsureDefaults fills unset fields.
func (c *Config) EnsureDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9092"
	}
	if c.MaxFrameBytes == 0 {
		c.MaxFrameBytes = 100 << 20
	}
	if c.MaxSmallFrameBytes == 0 {
		c.MaxSmallFrameBytes = 8 << 20
	}
	if c.MaxSmallFrameBytes > c.MaxFrameBytes {
		c.MaxSmallFrameBytes = c.MaxFrameBytes
	}
	if c.MaxBytesInFlight == 0 {
		c.MaxBytesInFlight = 512 << 20
	}
	if c.MaxInflightPerConn == 0 {
		c.MaxInflightPerConn = 64
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.ClusterID == "" {
		c.ClusterID = "fluxo"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
}

// Validate reports the first setting out of range.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("gateway: listen %q: want host:port", c.Listen)
	}
	if c.Advertise != "" {
		if _, _, err := net.SplitHostPort(c.Advertise); err != nil {
			return fmt.Errorf("gateway: advertise %q: want host:port", c.Advertise)
		}
	}
	if c.MaxFrameBytes < 1024 {
		return fmt.Errorf("gateway: MaxFrameBytes %d below 1 KiB", c.MaxFrameBytes)
	}
	if c.MaxBytesInFlight < int64(c.MaxFrameBytes) {
		return fmt.Errorf("gateway: MaxBytesInFlight %d below MaxFrameBytes %d", c.MaxBytesInFlight, c.MaxFrameBytes)
	}
	if c.MaxInflightPerConn < 1 || c.MaxInflightPerConn > 10000 {
		return fmt.Errorf("gateway: MaxInflightPerConn %d out of range [1, 10000]", c.MaxInflightPerConn)
	}
	return nil
}

// Server is a running Kafka listener.
type Server struct {
	cfg      Config
	node     *actors.Node
	logger   *slog.Logger
	ln       net.Listener
	system   *actor.ActorSystem
	listener *actor.PID
	host     string
	port     int32
	memory   *byteBudget

	closeOnce sync.Once
}

// Start binds the listener and starts accepting. A taken port is an error
// here, not later.
func Start(node *actors.Node, cfg Config) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("gateway: listen %s: %w", cfg.Listen, err)
	}
	s := &Server{cfg: cfg, node: node, logger: cfg.Logger, ln: ln, system: node.System(), memory: newByteBudget(cfg.MaxBytesInFlight)}
	adv := cfg.Advertise
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, portStr, _ := net.SplitHostPort(adv)
	var port int
	fmt.Sscan(portStr, &port)
	s.host, s.port = host, int32(port)
	props := actor.PropsFromProducer(func() actor.Actor { return &listenerActor{server: s} },
		actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive {
			// A connection actor that fails closes its connection; the
			// client reconnects. Nothing else is affected.
			return actor.StopDirective
		})))
	pid, err := s.system.Root.SpawnNamed(props, "gateway")
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("gateway: spawn listener: %w", err)
	}
	s.listener = pid
	return s, nil
}

// Addr is the bound listen address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Advertised is the host and port Metadata tells clients for this broker.
func (s *Server) Advertised() (string, int32) { return s.host, s.port }

// Close stops accepting and closes every connection.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.ln.Close()
		if _, perr := s.system.Root.PoisonFuture(s.listener).Result(); perr != nil {
			s.logger.Warn("gateway: stop listener", "err", perr)
		}
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// listenerActor accepts connections (on its own goroutine) and supervises one
// connection actor per client.
type listenerActor struct {
	server *Server
}

type acceptedMsg struct{ c net.Conn }

func (l *listenerActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		self, root := ctx.Self(), ctx.ActorSystem().Root
		go func() {
			for {
				c, err := l.server.ln.Accept()
				if err != nil {
					return // closed
				}
				root.Send(self, &acceptedMsg{c: c})
			}
		}()
	case *acceptedMsg:
		cn := newConn(l.server, m.c)
		ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return cn }))
	}
}
