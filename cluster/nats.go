package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// DefaultStartTimeout bounds how long Open waits for the embedded server to
// become ready when Options.StartTimeout is zero.
const DefaultStartTimeout = 10 * time.Second

// Options configure the embedded NATS server behind a Store.
//
// With no ClusterListen the server runs alone: JetStream on, no client port
// (the broker connects in-process), no routes: the single-node default. With
// ClusterListen (and the other brokers' route addresses in Peers) the
// brokers' servers form one NATS cluster named ClusterName over routes, and
// the metadata bucket is replicated min(3, brokers) ways.
type Options struct {
	// DataDir is the broker's data directory; JetStream stores its files
	// under DataDir/nats. Required.
	DataDir string
	// NodeID identifies this broker; the server is named "fluxo-<NodeID>".
	NodeID int
	// ClusterListen is the host:port this server accepts NATS routes on.
	// Empty: single node.
	ClusterListen string
	// Peers are the other brokers' route addresses (host:port of their
	// ClusterListen). A broker listed here that is not up yet is retried.
	Peers []string
	// ClusterName names the NATS cluster; every broker must use the same.
	// Default "fluxo".
	ClusterName string
	// Logger receives the server's log lines (notice→Info, warn→Warn,
	// error/fatal→Error, debug→Debug). nil: server logging is off.
	Logger *slog.Logger
	// StartTimeout bounds the wait for the server to become ready
	// (default DefaultStartTimeout). The Open context also bounds it.
	StartTimeout time.Duration
}

func (o Options) validate() error {
	if o.DataDir == "" {
		return errors.New("Options.DataDir is required")
	}
	if len(o.Peers) > 0 && o.ClusterListen == "" {
		return errors.New("Options.Peers needs Options.ClusterListen (this broker's route address)")
	}
	for _, a := range append([]string{o.ClusterListen}, o.Peers...) {
		if a == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" || port == "0" {
			return fmt.Errorf("cluster address %q: want host:port with a fixed port", a)
		}
	}
	if o.NodeID < 0 {
		return fmt.Errorf("Options.NodeID %d is negative", o.NodeID)
	}
	return nil
}

func (o Options) clusterName() string {
	if o.ClusterName == "" {
		return "fluxo"
	}
	return o.ClusterName
}

// replicas is the metadata bucket's replication: 3 where 3 brokers exist.
func (o Options) replicas() int {
	if o.ClusterListen == "" {
		return 1
	}
	return min(3, 1+len(o.Peers))
}

// natsDir is where JetStream keeps its store for a broker data dir.
func natsDir(dataDir string) string { return filepath.Join(dataDir, "nats") }

// startServer starts the embedded NATS server and returns it ready, with an
// in-process client connection. On error nothing is left running.
func startServer(ctx context.Context, o Options) (*server.Server, *nats.Conn, error) {
	if err := o.validate(); err != nil {
		return nil, nil, err
	}
	storeDir := natsDir(o.DataDir)
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("data dir unusable: %w", err)
	}
	name := "fluxo-" + strconv.Itoa(o.NodeID)
	sopts := &server.Options{
		ServerName: name,
		JetStream:  true,
		StoreDir:   storeDir,
		// The file store otherwise fsyncs only every 2 minutes: an
		// acknowledged CAS must survive a power loss.
		SyncAlways: true,
		DontListen: true,
		NoSigs:     true,
		NoLog:      true,
		// Gateway, leafnode and monitoring ports stay unset (off); routes
		// only in cluster mode.
	}
	if o.ClusterListen != "" {
		host, portStr, _ := net.SplitHostPort(o.ClusterListen)
		port, _ := strconv.Atoi(portStr)
		sopts.Cluster = server.ClusterOpts{Name: o.clusterName(), Host: host, Port: port}
		// The server starts routing only after its client listener is up:
		// open one, on loopback and a random port (the broker still talks
		// to its server in-process).
		sopts.DontListen = false
		sopts.Host, sopts.Port = "127.0.0.1", server.RANDOM_PORT
		// Our own address too, as NATS configurations list every server:
		// JetStream sizes its meta group from the route count (a route to
		// ourselves is detected and dropped).
		for _, p := range append([]string{o.ClusterListen}, o.Peers...) {
			sopts.Routes = append(sopts.Routes, &url.URL{Scheme: "nats-route", Host: p})
		}
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, nil, fmt.Errorf("nats server: %w", err)
	}
	lg := newNATSLogger(o.Logger)
	srv.SetLoggerV2(lg, lg.debug, false, false)

	timeout := o.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	ready := make(chan error, 1)
	go func() {
		// Start enables JetStream synchronously (recovering the store);
		// on failure it logs a fatal line and returns early.
		srv.Start()
		if !srv.ReadyForConnections(timeout) {
			ready <- fmt.Errorf("not ready for connections after %s", timeout)
			return
		}
		ready <- nil
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	fail := func(err error) (*server.Server, *nats.Conn, error) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, nil, err
	}
	select {
	case err := <-ready:
		if err != nil {
			if ferr := lg.fatalErr(); ferr != nil {
				return fail(fmt.Errorf("nats server %s: %w", name, ferr))
			}
			return fail(fmt.Errorf("nats server %s: %w", name, err))
		}
	case <-lg.fatal:
		return fail(fmt.Errorf("nats server %s: %w", name, lg.fatalErr()))
	case <-timer.C:
		return fail(fmt.Errorf("nats server %s: not ready after %s", name, timeout))
	case <-ctx.Done():
		return fail(fmt.Errorf("nats server %s: %w", name, ctx.Err()))
	}
	if ferr := lg.fatalErr(); ferr != nil {
		return fail(fmt.Errorf("nats server %s: %w", name, ferr))
	}
	if !srv.JetStreamEnabled() {
		return fail(fmt.Errorf("nats server %s: JetStream did not start (store dir %s)", name, storeDir))
	}
	nc, err := nats.Connect("",
		nats.InProcessServer(srv),
		nats.Name(name+"-store"),
		nats.NoReconnect(),
	)
	if err != nil {
		return fail(fmt.Errorf("nats connect in-process: %w", err))
	}
	return srv, nc, nil
}

// natsLogger adapts the server's Logger interface to slog. Fatal lines are
// also recorded so startServer can report them (the server does not return
// errors from Start; with a nil slog.Logger they are the only lines kept).
type natsLogger struct {
	l     *slog.Logger
	debug bool

	once  sync.Once
	mu    sync.Mutex
	err   error
	fatal chan struct{}
}

func newNATSLogger(l *slog.Logger) *natsLogger {
	nl := &natsLogger{l: l, fatal: make(chan struct{})}
	if l != nil {
		nl.debug = l.Enabled(context.Background(), slog.LevelDebug)
	}
	return nl
}

func (n *natsLogger) log(level slog.Level, format string, v ...any) {
	if n.l == nil {
		return
	}
	n.l.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nats")
}

func (n *natsLogger) fatalErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func (n *natsLogger) Noticef(format string, v ...any) { n.log(slog.LevelDebug, format, v...) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.log(slog.LevelWarn, format, v...) }
func (n *natsLogger) Errorf(format string, v ...any)  { n.log(slog.LevelError, format, v...) }
func (n *natsLogger) Debugf(format string, v ...any)  { n.log(slog.LevelDebug, format, v...) }
func (n *natsLogger) Tracef(format string, v ...any)  {}

// Fatalf records the error instead of exiting the process.
func (n *natsLogger) Fatalf(format string, v ...any) {
	n.log(slog.LevelError, format, v...)
	n.mu.Lock()
	if n.err == nil {
		n.err = fmt.Errorf(format, v...)
	}
	n.mu.Unlock()
	n.once.Do(func() { close(n.fatal) })
}
