package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fluxo-broker/fluxo"
)

// serve runs `fluxo serve`: settings from flags, FLUXO_* and the config file
// (config.go), a broker until SIGINT or SIGTERM, then a clean shutdown.
func serve(args []string, stdout, stderr io.Writer) int {
	cmd, err := parseServe(args, os.LookupEnv, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintf(stderr, "fluxo serve: %v\n", err)
		return 2
	}
	cfg := &cmd.cfg
	if cmd.printConfig {
		_, _ = stdout.Write(cfg.YAML())
		return 0
	}
	logger, err := newLogger(stderr, cfg.LogLevel, resolveLogFormat(cfg.LogFormat, stderr))
	if err != nil {
		fmt.Fprintf(stderr, "fluxo serve: %v\n", err)
		return 2
	}
	opts, err := cfg.options()
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
	topics, _ := b.Topics(ctx)
	attrs := []any{"version", version, "data_dir", cfg.DataDir, "config", cmd.configPath,
		"kafka", b.KafkaAddr(), "remote", b.RemoteAddress(), "metrics", b.MetricsAddr(), "sync", cfg.Sync,
		"topics", len(topics), "groups", len(b.Node().ListGroups()), "node_id", cfg.NodeID}
	if cfg.ClusterListen != "" {
		attrs = append(attrs, "cluster_listen", cfg.ClusterListen, "peers", strings.Join(cfg.clusterPeers(), ","))
	}
	logger.Info("fluxo broker started", attrs...)
	<-ctx.Done()
	logger.Info("shutting down")
	if err := b.Close(); err != nil {
		fmt.Fprintf(stderr, "fluxo serve: shutdown: %v\n", err)
		return 1
	}
	logger.Info("stopped cleanly")
	return 0
}

// usableDir creates dir if needed and checks it is a writable directory, so a
// bad data_dir fails with a plain message before anything starts.
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
