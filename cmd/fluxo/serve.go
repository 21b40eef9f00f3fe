package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/fluxo-broker/fluxo"
)

// serveFlags are fluxo serve's settings.
type serveFlags struct {
	dataDir           string
	listen            string
	advertise         string
	remoteListen      string
	sync              string
	defaultPartitions int
	logLevel          string
	logFormat         string
}

func serve(args []string, stderr io.Writer) int {
	var f serveFlags
	fs := flag.NewFlagSet("fluxo serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.dataDir, "data-dir", "./data", "directory for segments, Pebble and the coordination store")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:9092", "Kafka protocol listener; empty disables it")
	fs.StringVar(&f.advertise, "advertise", "", "address Kafka clients are told to use (default: the bound --listen address)")
	fs.StringVar(&f.remoteListen, "remote-listen", "127.0.0.1:9093", "protoactor remote endpoint for Go clients (fluxo.Dial); empty disables it")
	fs.StringVar(&f.sync, "sync", "always", "durability: always (fsync before acknowledging) or never (leave it to the OS)")
	fs.IntVar(&f.defaultPartitions, "default-partitions", 1, "partition count of topics created without one")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fluxo serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	logger, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "fluxo serve: %v\n", err)
		return 2
	}
	opts, err := f.options()
	if err != nil {
		fmt.Fprintf(stderr, "fluxo serve: %v\n", err)
		return 2
	}
	opts = append(opts, fluxo.WithLogger(logger))

	ctx, stop := signalContext()
	defer stop()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	b, err := fluxo.Start(startCtx, opts...)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "fluxo serve: %v\n", err)
		return 1
	}
	logger.Info("fluxo broker started", "data_dir", f.dataDir, "kafka", b.KafkaAddr(), "remote", b.RemoteAddress(), "sync", f.sync, "version", version)
	<-ctx.Done()
	logger.Info("shutting down")
	if err := b.Close(); err != nil {
		fmt.Fprintf(stderr, "fluxo serve: shutdown: %v\n", err)
		return 1
	}
	logger.Info("stopped cleanly")
	return 0
}

// options validates the flags and turns them into broker options. Errors
// name the flag and what it accepts.
func (f serveFlags) options() ([]fluxo.Option, error) {
	var opts []fluxo.Option
	if f.dataDir == "" {
		return nil, fmt.Errorf("--data-dir must not be empty")
	}
	if err := usableDir(f.dataDir); err != nil {
		return nil, fmt.Errorf("--data-dir %s: %w", f.dataDir, err)
	}
	opts = append(opts, fluxo.WithDataDir(f.dataDir))
	if f.listen != "" {
		if _, _, err := net.SplitHostPort(f.listen); err != nil {
			return nil, fmt.Errorf("--listen %q: want host:port", f.listen)
		}
		if f.advertise != "" {
			if _, _, err := net.SplitHostPort(f.advertise); err != nil {
				return nil, fmt.Errorf("--advertise %q: want host:port", f.advertise)
			}
		}
		opts = append(opts, fluxo.WithKafkaListen(f.listen, f.advertise))
	}
	if f.remoteListen != "" {
		if _, _, err := net.SplitHostPort(f.remoteListen); err != nil {
			return nil, fmt.Errorf("--remote-listen %q: want host:port", f.remoteListen)
		}
		opts = append(opts, fluxo.WithRemoteListen(f.remoteListen))
	}
	switch f.sync {
	case "always":
	case "never":
		opts = append(opts, fluxo.WithoutFsync())
	default:
		return nil, fmt.Errorf("--sync %q: want always or never", f.sync)
	}
	if f.defaultPartitions < 1 || f.defaultPartitions > 10000 {
		return nil, fmt.Errorf("--default-partitions %d: want 1 to 10000", f.defaultPartitions)
	}
	opts = append(opts, fluxo.WithDefaultPartitions(int32(f.defaultPartitions)))
	return opts, nil
}

// usableDir creates dir if needed and checks it is a writable directory, so a
// bad --data-dir fails with a plain message before anything starts.
func usableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot create: %w", err)
	}
	probe, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("not writable: %w", err)
	}
	name := probe.Name()
	probe.Close()
	return os.Remove(filepath.Clean(name))
}
