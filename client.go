package fluxo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/remote"

	"github.com/fluxo-broker/fluxo/actors"
	"github.com/fluxo-broker/fluxo/proto/fluxopb"
)

// Client talks to a broker in another process by sending protobuf actor
// messages over protoactor remote. Remote delivery is at most once: a request
// whose reply is lost times out (ErrTimeout) and may have taken effect.
type Client struct {
	ops
	system *actor.ActorSystem
	remote *remote.Remote
	broker *actor.PID
}

var _ Conn = (*Client)(nil)

// ClientOption configures Dial.
type ClientOption func(*clientConfig)

type clientConfig struct {
	listen  string
	timeout time.Duration
	logger  *slog.Logger
}

// ClientListen sets the local endpoint replies come back to (default
// 127.0.0.1:0). The broker must be able to reach it.
func ClientListen(addr string) ClientOption { return func(c *clientConfig) { c.listen = addr } }

// ClientTimeout bounds each request that has no earlier context deadline
// (default 30 s).
func ClientTimeout(d time.Duration) ClientOption { return func(c *clientConfig) { c.timeout = d } }

// Dial connects to the broker whose remote endpoint is addr and checks that
// it answers.
func Dial(ctx context.Context, addr string, opts ...ClientOption) (*Client, error) {
	cfg := clientConfig{listen: "127.0.0.1:0", timeout: 30 * time.Second, logger: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	host, portStr, err := net.SplitHostPort(cfg.listen)
	if err != nil {
		return nil, fmt.Errorf("fluxo: client listen %q: %w", cfg.listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("fluxo: client listen %q: bad port", cfg.listen)
	}
	if port == 0 {
		l, err := net.Listen("tcp", cfg.listen)
		if err != nil {
			return nil, fmt.Errorf("fluxo: client listen %q: %w", cfg.listen, err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	r := remote.NewRemote(system, actors.RemoteConfig(host, port))
	if err := startRemote(r); err != nil {
		return nil, fmt.Errorf("fluxo: client listen %s:%d: %w", host, port, err)
	}
	c := &Client{system: system, remote: r, broker: actor.NewPID(addr, actors.BrokerActorName)}
	c.ops = ops{r: actorRequester{system: system, broker: c.broker, timeout: cfg.timeout}}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Topics(pingCtx); err != nil {
		c.remote.Shutdown(false)
		c.system.Shutdown()
		return nil, fmt.Errorf("fluxo: broker at %s does not answer: %w", addr, err)
	}
	return c, nil
}

func startRemote(r *remote.Remote) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	r.Start()
	return nil
}

// Close stops the client's endpoint.
func (c *Client) Close() error {
	c.remote.Shutdown(true)
	c.system.Shutdown()
	return nil
}

// actorRequester sends each request as an actor message to a broker actor and
// waits for the reply: over remote for a Client, in process for ActorClient.
type actorRequester struct {
	system  *actor.ActorSystem
	broker  *actor.PID
	timeout time.Duration
}

func (r actorRequester) request(ctx context.Context, msg any) (any, error) {
	timeout := r.timeout
	if f, ok := msg.(*fluxopb.FetchRequest); ok && f.MaxWaitMs > 0 {
		// A long poll legitimately takes MaxWait; leave room for it.
		if w := time.Duration(f.MaxWaitMs)*time.Millisecond + 5*time.Second; w > timeout {
			timeout = w
		}
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return nil, context.DeadlineExceeded
	}
	res, err := r.system.Root.RequestFuture(r.broker, msg, timeout).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return res, nil
}
