package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func fakeEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeConfigFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fluxo.yaml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigPrecedence: a flag beats the environment, which beats the file,
// which beats the default, setting by setting.
func TestConfigPrecedence(t *testing.T) {
	file := writeConfigFile(t, `
listen: 127.0.0.1:19092
sync: never
default_partitions: 3
offsets_partitions: 7
group_min_session_timeout: 2s
log_level: debug
`)
	env := map[string]string{
		"FLUXO_SYNC":               "always",
		"FLUXO_DEFAULT_PARTITIONS": "4",
		"FLUXO_REMOTE_LISTEN":      "",  // set and empty: disables
		"FLUXO_TEST_MAIN":          "x", // not a setting: ignored
	}
	cmd, err := parseServe([]string{"--config", file, "--default-partitions", "5", "--metrics-listen", "127.0.0.1:0"}, fakeEnv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultServeConfig()
	want.Listen = "127.0.0.1:19092"                               // file
	want.Sync = "always"                                          // env over file
	want.DefaultPartitions = 5                                    // flag over env over file
	want.OffsetsPartitions = 7                                    // file
	want.GroupMinSessionTimeout = ConfigDuration(2 * time.Second) // file
	want.LogLevel = "debug"                                       // file
	want.RemoteListen = ""                                        // env
	want.MetricsListen = "127.0.0.1:0"                            // flag
	got := cmd.cfg
	got.from = nil
	if !equalConfig(got, want) {
		t.Fatalf("effective config\n%s\nwant\n%s", got.YAML(), want.YAML())
	}
	if cmd.configPath != file {
		t.Fatalf("config path %q, want %q", cmd.configPath, file)
	}

	// FLUXO_CONFIG names the file when --config does not; --config wins.
	other := writeConfigFile(t, "default_partitions: 9\n")
	cmd, err = parseServe(nil, fakeEnv(map[string]string{"FLUXO_CONFIG": other}), io.Discard)
	if err != nil || cmd.cfg.DefaultPartitions != 9 {
		t.Fatalf("FLUXO_CONFIG: %v, %+v", err, cmd)
	}
	cmd, err = parseServe([]string{"--config", file}, fakeEnv(map[string]string{"FLUXO_CONFIG": other}), io.Discard)
	if err != nil || cmd.cfg.DefaultPartitions != 3 {
		t.Fatalf("--config over FLUXO_CONFIG: %v, %+v", err, cmd)
	}

	// Nothing set: the defaults.
	cmd, err = parseServe(nil, fakeEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !equalConfig(cmd.cfg, DefaultServeConfig()) {
		t.Fatalf("defaults\n%s", cmd.cfg.YAML())
	}
}

func equalConfig(a, b ServeConfig) bool {
	a.from, b.from = nil, nil
	return reflect.DeepEqual(a, b)
}

// TestConfigValidation: a bad value stops start-up with a message naming the
// key, the allowed range and where the value came from.
func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string
	}{
		{"flag out of range", []string{"--default-partitions", "0"}, nil, "",
			"config: default_partitions: 0 is out of range [1, 10000] (from flag --default-partitions)"},
		{"env out of range", nil, map[string]string{"FLUXO_OFFSETS_PARTITIONS": "5000"}, "",
			"config: offsets_partitions: 5000 is out of range [1, 1000] (from env FLUXO_OFFSETS_PARTITIONS)"},
		{"file out of range", nil, nil, "sync: never\ndefault_partitions: 20000\n",
			"config: default_partitions: 20000 is out of range [1, 10000] (from config file "},
		{"not an integer", nil, map[string]string{"FLUXO_DEFAULT_PARTITIONS": "two"}, "",
			`config: default_partitions: "two" is not an integer (from env FLUXO_DEFAULT_PARTITIONS)`},
		{"not a duration", []string{"--group-initial-rebalance-delay", "3"}, nil, "",
			`config: group_initial_rebalance_delay: "3" is not a duration`},
		{"duration out of range", nil, nil, "group_initial_rebalance_delay: 1h\n",
			"config: group_initial_rebalance_delay: 1h0m0s is out of range [0s, 5m0s]"},
		{"max below min", []string{"--group-min-session-timeout", "1m"}, nil, "group_max_session_timeout: 30s\n",
			"config: group_max_session_timeout: 30s is out of range [1m0s (group_min_session_timeout), 24h0m0s]"},
		{"default fails against a set value", []string{"--group-min-session-timeout", "59m"}, map[string]string{}, "",
			""}, // 30m default max < 59m min
		{"bad host:port", nil, map[string]string{"FLUXO_METRICS_LISTEN": "9644"}, "",
			`config: metrics_listen: "9644" is not host:port`},
		{"bad enum", nil, nil, "log_format: xml\n",
			`config: log_format: "xml" is not one of auto, text, json`},
		{"bad level", []string{"--log-level", "loud"}, nil, "",
			`config: log_level: "loud" is not one of debug, info, warn, error`},
		{"empty data dir", []string{"--data-dir", ""}, nil, "",
			`config: data_dir: "" is empty (from flag --data-dir)`},
		{"unknown key", nil, nil, "listen: 127.0.0.1:0\ndefault_partition: 3\n",
			`line 2: unknown key "default_partition"`},
		{"not a scalar", nil, nil, "listen: [a, b]\n",
			"line 1: listen: want a single value"},
		{"not a mapping", nil, nil, "- listen\n",
			"want a mapping of serveSettings"},
		{"bad flag", []string{"--no-such-flag"}, nil, "",
			"flag provided but not defined"},
		{"stray argument", []string{"now"}, nil, "",
			`unexpected argument "now"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeConfigFile(t, tc.file)}, args...)
			}
			_, err := parseServe(args, fakeEnv(tc.env), io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			want := tc.want
			if want == "" {
				want = "group_max_session_timeout: 30m0s is out of range [59m0s (group_min_session_timeout), 24h0m0s] (the default; set it with --group-max-session-timeout, FLUXO_GROUP_MAX_SESSION_TIMEOUT or group_max_session_timeout in the config file)"
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q\nwant it to contain %q", err, want)
			}
		})
	}
}

// TestConfigPrintConfig: --print-config prints the effective configuration
// as YAML, documented, and exits 0; fed back as --config it gives the same
// configuration.
func TestConfigPrintConfig(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"serve", "--print-config", "--default-partitions", "7", "--group-initial-rebalance-delay", "3s", "--listen", "",
		"--node-id", "2", "--cluster-listen", "127.0.0.1:6224", "--peers", "127.0.0.1:6222,127.0.0.1:6223"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	var m map[string]any
	if err := yaml.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, out)
	}
	for _, s := range serveSettings {
		if _, ok := m[s.key]; !ok {
			t.Fatalf("key %s missing:\n%s", s.key, out)
		}
		if !strings.Contains(out, s.env()) || !strings.Contains(out, "--"+s.flag()) {
			t.Fatalf("no comment naming %s and --%s:\n%s", s.env(), s.flag(), out)
		}
	}
	for _, line := range []string{"default_partitions: 7\n", "group_initial_rebalance_delay: 3s\n", "listen: \"\"\n", "data_dir: ./data\n",
		"node_id: 2\n", "cluster_listen: 127.0.0.1:6224\n", "peers: ['127.0.0.1:6222', '127.0.0.1:6223']\n"} {
		if !strings.Contains(out, line) {
			t.Fatalf("no %q in\n%s", line, out)
		}
	}
	// The output is a config file giving the same configuration.
	cmd, err := parseServe([]string{"--config", writeConfigFile(t, out)}, fakeEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	again.Write(cmd.cfg.YAML())
	if again.String() != out {
		t.Fatalf("round trip changed the config:\n%s\nthen\n%s", out, again.String())
	}
}

// TestServeStopsOnBadConfigFile runs `fluxo serve --config` with a value out
// of range: it exits 2 before starting, naming the key and the range.
func TestServeStopsOnBadConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := writeConfigFile(t, "data_dir: "+dir+"\nlisten: 127.0.0.1:0\nremote_listen: \"\"\ndefault_partitions: 0\n")
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "serve", "--config", file)
	cmd.Env = append(os.Environ(), "FLUXO_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		t.Fatal("fluxo serve with a bad config did not exit")
	}
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, stderr.String())
	}
	want := "config: default_partitions: 0 is out of range [1, 10000] (from config file " + file + " line 4)"
	if !strings.Contains(stderr.String(), want) {
		t.Fatalf("stderr %q\nwant %q", stderr.String(), want)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("the data dir was touched: %v", entries)
	}
}

// TestServeMetricsAndJSONLogs runs `fluxo serve` with its stderr a pipe: the
// logs are JSON (log_format auto), the start line names the metrics address,
// and /healthz, /readyz and /metrics answer there.
func TestServeMetricsAndJSONLogs(t *testing.T) {
	srv := startServe(t, "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--remote-listen", "", "--metrics-listen", "127.0.0.1:0")
	var started struct {
		Msg, Metrics, Kafka string
	}
	for _, line := range strings.Split(srv.stderr.String(), "\n") {
		if !strings.Contains(line, "fluxo broker started") {
			continue
		}
		if err := json.Unmarshal([]byte(line), &started); err != nil {
			t.Fatalf("start line is not JSON: %q: %v", line, err)
		}
	}
	if started.Metrics == "" || started.Kafka == "" {
		t.Fatalf("no metrics or kafka address in the start line:\n%s", srv.stderr)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "\nfluxo_ready 1\n"} {
		res, err := c.Get("http://" + started.Metrics + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d, body without %q:\n%.500s", path, res.StatusCode, want, body)
		}
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(t); code != 0 {
		t.Fatalf("exit %d after SIGTERM:\n%s", code, srv.stderr)
	}
}

// TestConfigCluster: node_id, cluster_listen and peers come from flags, the
// environment and the file like every setting; peers is a comma-separated
// string anywhere and a YAML list in the file too.
func TestConfigCluster(t *testing.T) {
	parse := func(t *testing.T, args []string, env map[string]string, file string) ServeConfig {
		t.Helper()
		if file != "" {
			args = append([]string{"--config", writeConfigFile(t, file)}, args...)
		}
		cmd, err := parseServe(args, fakeEnv(env), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return cmd.cfg
	}
	t.Run("YAML list", func(t *testing.T) {
		cfg := parse(t, nil, nil, "node_id: 2\ncluster_listen: 127.0.0.1:6224\npeers:\n  - 127.0.0.1:6222\n  - 127.0.0.1:6223\n")
		if cfg.NodeID != 2 || cfg.ClusterListen != "127.0.0.1:6224" || !reflect.DeepEqual(cfg.Peers, []string{"127.0.0.1:6222", "127.0.0.1:6223"}) {
			t.Fatalf("got\n%s", cfg.YAML())
		}
	})
	t.Run("YAML string and flow list", func(t *testing.T) {
		for _, file := range []string{
			"cluster_listen: 127.0.0.1:6224\npeers: 127.0.0.1:6222, 127.0.0.1:6223\n",
			"cluster_listen: 127.0.0.1:6224\npeers: [127.0.0.1:6222, 127.0.0.1:6223]\n",
		} {
			cfg := parse(t, nil, nil, file)
			if !reflect.DeepEqual(cfg.Peers, []string{"127.0.0.1:6222", "127.0.0.1:6223"}) {
				t.Fatalf("%q: peers %q", file, cfg.Peers)
			}
		}
		if cfg := parse(t, nil, nil, "peers: []\n"); cfg.Peers != nil {
			t.Fatalf("empty list: %q", cfg.Peers)
		}
	})
	t.Run("precedence", func(t *testing.T) {
		file := "node_id: 1\ncluster_listen: 127.0.0.1:7777\npeers: [10.0.0.1:1]\n"
		env := map[string]string{"FLUXO_NODE_ID": "3", "FLUXO_PEERS": "127.0.0.1:6222,127.0.0.1:6223", "FLUXO_CLUSTER_LISTEN": "127.0.0.1:6224"}
		cfg := parse(t, []string{"--node-id", "4"}, env, file)
		if cfg.NodeID != 4 || cfg.ClusterListen != "127.0.0.1:6224" || !reflect.DeepEqual(cfg.Peers, []string{"127.0.0.1:6222", "127.0.0.1:6223"}) {
			t.Fatalf("got\n%s", cfg.YAML())
		}
		// An empty flag clears the list the environment set.
		cfg = parse(t, []string{"--peers", ""}, env, file)
		if cfg.Peers != nil {
			t.Fatalf("--peers '': %q", cfg.Peers)
		}
	})
	t.Run("own address skipped", func(t *testing.T) {
		all := "127.0.0.1:6222,127.0.0.1:6223,127.0.0.1:6224"
		cfg := parse(t, []string{"--cluster-listen", "127.0.0.1:6223", "--peers", all}, nil, "")
		if got := cfg.clusterPeers(); !reflect.DeepEqual(got, []string{"127.0.0.1:6222", "127.0.0.1:6224"}) {
			t.Fatalf("cluster peers %q", got)
		}
		if len(cfg.Peers) != 3 {
			t.Fatalf("the configuration keeps the list as given: %q", cfg.Peers)
		}
	})
	t.Run("single node default", func(t *testing.T) {
		cfg := parse(t, nil, nil, "")
		if cfg.NodeID != 0 || cfg.ClusterListen != "" || cfg.Peers != nil {
			t.Fatalf("got\n%s", cfg.YAML())
		}
		// No peers: a cluster of one, remote_listen at its default.
		cfg = parse(t, []string{"--cluster-listen", "127.0.0.1:6222"}, nil, "")
		if cfg.RemoteListen != DefaultServeConfig().RemoteListen {
			t.Fatalf("remote_listen %q", cfg.RemoteListen)
		}
	})
}

// TestConfigClusterValidation: bad cluster settings stop start-up naming the
// key, the value and its source.
func TestConfigClusterValidation(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want string
	}{
		{"negative node id", []string{"--node-id", "-1"}, nil, "",
			"config: node_id: -1 is out of range [0, 2147483647] (from flag --node-id)"},
		{"node id too big", nil, map[string]string{"FLUXO_NODE_ID": "2147483648"}, "",
			"config: node_id: 2147483648 is out of range [0, 2147483647] (from env FLUXO_NODE_ID)"},
		{"cluster port 0", []string{"--cluster-listen", "127.0.0.1:0"}, nil, "",
			`config: cluster_listen: "127.0.0.1:0" is not host:port with a fixed port: port 0 is not allowed`},
		{"cluster not host:port", nil, nil, "cluster_listen: 6222\n",
			`config: cluster_listen: "6222" is not host:port with a fixed port`},
		{"cluster port out of range", []string{"--cluster-listen", "127.0.0.1:70000"}, nil, "",
			`port "70000" is not a number 1 to 65535 (from flag --cluster-listen)`},
		{"peer port 0", []string{"--cluster-listen", "127.0.0.1:6222"}, map[string]string{"FLUXO_PEERS": "127.0.0.1:6223,127.0.0.1:0"}, "",
			`config: peers: "127.0.0.1:6223,127.0.0.1:0" has "127.0.0.1:0", which is not host:port with a fixed port: port 0 is not allowed: other brokers must know the port (from env FLUXO_PEERS)`},
		{"peer without host", []string{"--cluster-listen", "127.0.0.1:6222", "--peers", ":6223"}, nil, "",
			`has ":6223", which is not host:port with a fixed port: no host (from flag --peers)`},
		{"peer not host:port", nil, nil, "cluster_listen: 127.0.0.1:6222\npeers: [node-b]\n",
			`config: peers: "node-b" has "node-b", which is not host:port`},
		{"peer twice", []string{"--cluster-listen", "127.0.0.1:6222", "--peers", "127.0.0.1:6223,127.0.0.1:6223"}, nil, "",
			`config: peers: "127.0.0.1:6223,127.0.0.1:6223" lists "127.0.0.1:6223" twice`},
		{"peers without cluster_listen", []string{"--peers", "127.0.0.1:6223"}, nil, "",
			`config: peers: "127.0.0.1:6223" needs cluster_listen too (this broker's own cluster address; --cluster-listen) (from flag --peers)`},
		{"cluster without remote_listen", []string{"--cluster-listen", "127.0.0.1:6222"}, map[string]string{"FLUXO_REMOTE_LISTEN": ""}, "",
			`config: remote_listen: "" is empty, but a cluster member (cluster_listen "127.0.0.1:6222") needs it: replicas fetch over it (from env FLUXO_REMOTE_LISTEN)`},
		{"peers a mapping", nil, nil, "peers: {a: b}\n",
			"line 1: peers: want a list or a comma-separated string"},
		{"peers a nested list", nil, nil, "peers: [[a]]\n",
			"line 1: peers: want a list of host:port values"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeConfigFile(t, tc.file)}, args...)
			}
			_, err := parseServe(args, fakeEnv(tc.env), io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
