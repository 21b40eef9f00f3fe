package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fluxo-broker/fluxo"
	"github.com/fluxo-broker/fluxo/actors"
)

// ServeConfig is fluxo serve's configuration. Each field is one setting, named by
// its yaml tag: the key in the YAML file (--config), the flag (underscores
// become dashes: --data-dir) and the environment variable (FLUXO_ and the key
// in capitals: FLUXO_DATA_DIR). A flag beats the environment, which beats the
// file, which beats the default (DefaultServeConfig). Validate names the key and
// its allowed values.
type ServeConfig struct {
	DataDir       string `yaml:"data_dir" usage:"directory for segments, Pebble and the coordination store"`
	Listen        string `yaml:"listen" usage:"Kafka protocol listener (host:port); empty disables it"`
	Advertise     string `yaml:"advertise" usage:"host:port Kafka clients are told to use; empty: the bound listen address"`
	RemoteListen  string `yaml:"remote_listen" usage:"protoactor remote endpoint for Go clients (fluxo.Dial), host:port; empty disables it"`
	MetricsListen string `yaml:"metrics_listen" usage:"HTTP listener for Prometheus /metrics, /healthz and /readyz (host:port); empty disables it"`
	Sync          string `yaml:"sync" usage:"durability: always (fsync before acknowledging) or never (leave it to the OS)"`

	NodeID        int      `yaml:"node_id" usage:"this broker's id in a cluster, 0 to 2147483647; every broker of a cluster needs its own"`
	ClusterListen string   `yaml:"cluster_listen" usage:"host:port (fixed port) this broker accepts the other brokers' cluster connections on; empty: a single broker"`
	Peers         []string `yaml:"peers" usage:"the other brokers' cluster_listen addresses, comma-separated (a YAML list in the file); an entry equal to cluster_listen is skipped, so every broker can be given the same list"`

	DefaultPartitions          int            `yaml:"default_partitions" usage:"partition count of topics created without one, 1 to 10000"`
	OffsetsPartitions          int            `yaml:"offsets_partitions" usage:"internal __consumer_offsets partitions group journals are spread over, 1 to 1000 (set it once: changing it moves groups)"`
	GroupMinSessionTimeout     ConfigDuration `yaml:"group_min_session_timeout" usage:"shortest session timeout a group member may ask for, 1ms to 1h"`
	GroupMaxSessionTimeout     ConfigDuration `yaml:"group_max_session_timeout" usage:"longest session timeout a group member may ask for, group_min_session_timeout to 24h"`
	GroupInitialRebalanceDelay ConfigDuration `yaml:"group_initial_rebalance_delay" usage:"how long an empty group's first rebalance waits for more members, 0 to 5m"`

	LogLevel  string `yaml:"log_level" usage:"debug, info, warn or error"`
	LogFormat string `yaml:"log_format" usage:"auto (text on a terminal, JSON otherwise), text or json"`

	// from records where each setting set so far came from (by key), for
	// messages; absent: the default.
	from map[string]string
}

// DefaultServeConfig is the configuration with nothing set.
func DefaultServeConfig() ServeConfig {
	return ServeConfig{
		DataDir:                    "./data",
		Listen:                     "127.0.0.1:9092",
		RemoteListen:               "127.0.0.1:9093",
		MetricsListen:              "127.0.0.1:9644",
		Sync:                       "always",
		DefaultPartitions:          1,
		OffsetsPartitions:          50,
		GroupMinSessionTimeout:     ConfigDuration(6 * time.Second),
		GroupMaxSessionTimeout:     ConfigDuration(30 * time.Minute),
		GroupInitialRebalanceDelay: 0,
		LogLevel:                   "info",
		LogFormat:                  "auto",
	}
}

// ConfigDuration is a time.Duration written as "6s", "30m" or "1h30m".
type ConfigDuration time.Duration

func (d ConfigDuration) String() string { return time.Duration(d).String() }

// serveSetting is one field of ServeConfig and its three names.
type serveSetting struct {
	key   string // YAML key
	usage string
	field int // index in ServeConfig
}

func (s serveSetting) flag() string { return strings.ReplaceAll(s.key, "_", "-") }
func (s serveSetting) env() string  { return "FLUXO_" + strings.ToUpper(s.key) }

// serveSettings lists ServeConfig's fields in order.
var serveSettings = func() []serveSetting {
	t := reflect.TypeFor[ServeConfig]()
	out := make([]serveSetting, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if key := f.Tag.Get("yaml"); key != "" {
			out = append(out, serveSetting{key: key, usage: f.Tag.Get("usage"), field: i})
		}
	}
	return out
}()

func serveSettingByKey(key string) (serveSetting, bool) {
	for _, s := range serveSettings {
		if s.key == key {
			return s, true
		}
	}
	return serveSetting{}, false
}

// get formats the setting's value as flags, the environment and the file
// write it.
func (c *ServeConfig) get(s serveSetting) string {
	switch v := reflect.ValueOf(c).Elem().Field(s.field).Interface().(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case ConfigDuration:
		return v.String()
	case []string:
		return strings.Join(v, ",")
	}
	panic("config: unsupported field type")
}

// show formats the setting's value for messages: strings and lists quoted.
func (c *ServeConfig) show(s serveSetting) string {
	switch reflect.ValueOf(c).Elem().Field(s.field).Interface().(type) {
	case string, []string:
		return strconv.Quote(c.get(s))
	}
	return c.get(s)
}

// source says where the setting's value came from, for messages.
func (c *ServeConfig) source(s serveSetting) string {
	if from := c.from[s.key]; from != "" {
		return "from " + from
	}
	return fmt.Sprintf("the default; set it with --%s, %s or %s in the config file", s.flag(), s.env(), s.key)
}

// set parses raw, which came from the place from names, into the setting's
// field. An error names the key, the value and the place.
func (c *ServeConfig) set(s serveSetting, raw, from string) error {
	if err := c.parse(s, raw); err != nil {
		return fmt.Errorf("config: %s: %v (from %s)", s.key, err, from)
	}
	if c.from == nil {
		c.from = map[string]string{}
	}
	c.from[s.key] = from
	return nil
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty entries; nil when nothing is left.
func splitList(raw string) []string {
	var out []string
	for _, e := range strings.Split(raw, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

func (c *ServeConfig) parse(s serveSetting, raw string) error {
	f := reflect.ValueOf(c).Elem().Field(s.field)
	switch f.Interface().(type) {
	case string:
		f.SetString(raw)
	case int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%q is not an integer", raw)
		}
		f.SetInt(int64(n))
	case ConfigDuration:
		d, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return fmt.Errorf("%q is not a duration (such as 500ms, 6s or 30m)", raw)
		}
		f.SetInt(int64(d))
	case []string:
		f.Set(reflect.ValueOf(splitList(raw)))
	default:
		panic("config: unsupported field type")
	}
	return nil
}

// applyYAML sets what the YAML document data sets. Keys must be known and
// values scalars; errors give the file, line and key.
func (c *ServeConfig) applyYAML(path string, data []byte) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("config file %s: line %d: want a mapping of serveSettings (key: value)", path, m.Line)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		s, ok := serveSettingByKey(k.Value)
		if !ok {
			return fmt.Errorf("config file %s: line %d: unknown key %q (known: %s)", path, k.Line, k.Value, knownConfigKeys())
		}
		isList := c.isList(s)
		if v.Kind == yaml.SequenceNode && isList {
			// A list setting may be a YAML list of scalars too.
			items := make([]string, 0, len(v.Content))
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode || strings.Contains(e.Value, ",") {
					return fmt.Errorf("config file %s: line %d: %s: want a list of host:port values", path, e.Line, s.key)
				}
				items = append(items, e.Value)
			}
			if err := c.set(s, strings.Join(items, ","), fmt.Sprintf("config file %s line %d", path, v.Line)); err != nil {
				return err
			}
			continue
		}
		if v.Kind != yaml.ScalarNode {
			if isList {
				return fmt.Errorf("config file %s: line %d: %s: want a list or a comma-separated string", path, v.Line, s.key)
			}
			return fmt.Errorf("config file %s: line %d: %s: want a single value", path, v.Line, s.key)
		}
		raw := v.Value
		if v.Tag == "!!null" {
			raw = ""
		}
		if err := c.set(s, raw, fmt.Sprintf("config file %s line %d", path, v.Line)); err != nil {
			return err
		}
	}
	return nil
}

// isList says whether the setting is a list ([]string).
func (c *ServeConfig) isList(s serveSetting) bool {
	_, ok := reflect.ValueOf(c).Elem().Field(s.field).Interface().([]string)
	return ok
}

func knownConfigKeys() string {
	keys := make([]string, len(serveSettings))
	for i, s := range serveSettings {
		keys[i] = s.key
	}
	return strings.Join(keys, ", ")
}

// Validate reports the first setting out of range: its key, its value,
// what it accepts and where the value came from, e.g.
//
//	config: default_partitions: 0 is out of range [1, 10000] (from flag --default-partitions)
func (c *ServeConfig) Validate() error {
	bad := func(key, format string, args ...any) error {
		s, _ := serveSettingByKey(key)
		return fmt.Errorf("config: %s: %s %s (%s)", s.key, c.show(s), fmt.Sprintf(format, args...), c.source(s))
	}
	hostPort := func(key, v string) error {
		if v == "" {
			return nil
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			return bad(key, "is not host:port (port 0 picks a free one; empty disables it)")
		}
		return nil
	}
	// fixedHostPort checks a cluster address: other brokers dial it, so
	// the port must be fixed (not 0); a peer needs its host too.
	fixedHostPort := func(key, v string, needHost bool) error {
		host, port, err := net.SplitHostPort(v)
		if err == nil {
			n, perr := strconv.Atoi(port)
			switch {
			case perr != nil || n < 0 || n > 65535:
				err = fmt.Errorf("port %q is not a number 1 to 65535", port)
			case n == 0:
				err = errors.New("port 0 is not allowed: other brokers must know the port")
			case needHost && host == "":
				err = errors.New("no host")
			}
		}
		if err == nil {
			return nil
		}
		if key == "peers" {
			return bad(key, "has %q, which is not host:port with a fixed port: %v", v, err)
		}
		return bad(key, "is not host:port with a fixed port: %v", err)
	}
	inRange := func(key string, v, lo, hi int) error {
		if v < lo || v > hi {
			return bad(key, "is out of range [%d, %d]", lo, hi)
		}
		return nil
	}
	durRange := func(key string, v ConfigDuration, lo, hi time.Duration, loName string) error {
		if time.Duration(v) < lo || time.Duration(v) > hi {
			if loName != "" {
				return bad(key, "is out of range [%v (%s), %v]", lo, loName, hi)
			}
			return bad(key, "is out of range [%v, %v]", lo, hi)
		}
		return nil
	}
	oneOf := func(key, v string, allowed ...string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return bad(key, "is not one of %s", strings.Join(allowed, ", "))
	}
	return firstError(
		func() error {
			if c.DataDir == "" {
				return bad("data_dir", "is empty")
			}
			return nil
		},
		func() error { return hostPort("listen", c.Listen) },
		func() error { return hostPort("advertise", c.Advertise) },
		func() error { return hostPort("remote_listen", c.RemoteListen) },
		func() error { return hostPort("metrics_listen", c.MetricsListen) },
		func() error { return oneOf("sync", c.Sync, "always", "never") },
		func() error { return inRange("node_id", c.NodeID, 0, math.MaxInt32) },
		func() error {
			if c.ClusterListen == "" {
				return nil
			}
			return fixedHostPort("cluster_listen", c.ClusterListen, false)
		},
		func() error {
			seen := map[string]bool{}
			for _, p := range c.Peers {
				if err := fixedHostPort("peers", p, true); err != nil {
					return err
				}
				if seen[p] {
					return bad("peers", "lists %q twice", p)
				}
				seen[p] = true
			}
			if len(c.Peers) > 0 && c.ClusterListen == "" {
				return bad("peers", "needs cluster_listen too (this broker's own cluster address; --cluster-listen)")
			}
			return nil
		},
		func() error {
			if c.ClusterListen != "" && c.RemoteListen == "" {
				return bad("remote_listen", "is empty, but a cluster member (cluster_listen %q) needs it: replicas fetch over it", c.ClusterListen)
			}
			return nil
		},
		func() error { return inRange("default_partitions", c.DefaultPartitions, 1, 10000) },
		func() error { return inRange("offsets_partitions", c.OffsetsPartitions, 1, 1000) },
		func() error {
			return durRange("group_min_session_timeout", c.GroupMinSessionTimeout, time.Millisecond, time.Hour, "")
		},
		func() error {
			return durRange("group_max_session_timeout", c.GroupMaxSessionTimeout, time.Duration(c.GroupMinSessionTimeout), 24*time.Hour, "group_min_session_timeout")
		},
		func() error {
			return durRange("group_initial_rebalance_delay", c.GroupInitialRebalanceDelay, 0, 5*time.Minute, "")
		},
		func() error { return oneOf("log_level", strings.ToLower(c.LogLevel), "debug", "info", "warn", "error") },
		func() error { return oneOf("log_format", c.LogFormat, "auto", "text", "json") },
	)
}

func firstError(checks ...func() error) error {
	for _, check := range checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// YAML is the configuration as a YAML document, each key preceded by its
// description: what --print-config shows, and a valid config file.
func (c *ServeConfig) YAML() []byte {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, s := range serveSettings {
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: s.key,
			HeadComment: fmt.Sprintf("%s (--%s, %s)", s.usage, s.flag(), s.env())}
		if c.isList(s) {
			seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
			for _, e := range reflect.ValueOf(c).Elem().Field(s.field).Interface().([]string) {
				seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: e})
			}
			m.Content = append(m.Content, k, seq)
			continue
		}
		v := &yaml.Node{Kind: yaml.ScalarNode, Value: c.get(s)}
		if _, isString := reflect.ValueOf(c).Elem().Field(s.field).Interface().(string); isString {
			v.Tag = "!!str"
			if v.Value == "" {
				v.Style = yaml.DoubleQuotedStyle
			}
		}
		m.Content = append(m.Content, k, v)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{m}}); err != nil {
		panic(err) // scalars only: cannot fail
	}
	_ = enc.Close()
	return buf.Bytes()
}

// rawServeFlag records a flag's value as given; it is applied after the file and
// the environment so it wins over both.
type rawServeFlag struct {
	def   string
	value string
	set   bool
}

func (f *rawServeFlag) String() string {
	if f == nil {
		return ""
	}
	if f.set {
		return f.value
	}
	return f.def
}

func (f *rawServeFlag) Set(v string) error { f.value, f.set = v, true; return nil }

// serveCommand is fluxo serve's parsed command line.
type serveCommand struct {
	cfg         ServeConfig
	configPath  string // the file read, "" for none
	printConfig bool
}

// parseServe builds the effective configuration from the arguments, the
// environment (lookupEnv) and the config file they name, in that order of
// precedence over the defaults, and validates it.
func parseServe(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (*serveCommand, error) {
	defaults := DefaultServeConfig()
	fs := flag.NewFlagSet("fluxo serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	raws := make([]*rawServeFlag, len(serveSettings))
	for i, s := range serveSettings {
		raws[i] = &rawServeFlag{def: defaults.get(s)}
		fs.Var(raws[i], s.flag(), fmt.Sprintf("%s (env %s)", s.usage, s.env()))
	}
	configPath := fs.String("config", "", "YAML config file; its keys are the flag names with underscores (env FLUXO_CONFIG)")
	printConfig := fs.Bool("print-config", false, "print the effective configuration as YAML and exit")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fluxo serve [flags]\n\nSettings come from flags, then FLUXO_* environment variables, then the\n--config file, then the defaults shown.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	cmd := &serveCommand{cfg: defaults, printConfig: *printConfig}
	path := *configPath
	if path == "" {
		path, _ = lookupEnv("FLUXO_CONFIG")
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config file: %w", err)
		}
		if err := cmd.cfg.applyYAML(path, data); err != nil {
			return nil, err
		}
		cmd.configPath = path
	}
	for _, s := range serveSettings {
		if v, ok := lookupEnv(s.env()); ok {
			if err := cmd.cfg.set(s, v, "env "+s.env()); err != nil {
				return nil, err
			}
		}
	}
	for i, s := range serveSettings {
		if raws[i].set {
			if err := cmd.cfg.set(s, raws[i].value, "flag --"+s.flag()); err != nil {
				return nil, err
			}
		}
	}
	if err := cmd.cfg.Validate(); err != nil {
		return nil, err
	}
	return cmd, nil
}

// options turns a validated configuration into broker options. It creates
// the data directory and checks it is writable, so a bad one fails with a
// plain message before anything starts.
func (c *ServeConfig) options() ([]fluxo.Option, error) {
	if err := usableDir(c.DataDir); err != nil {
		s, _ := serveSettingByKey("data_dir")
		return nil, fmt.Errorf("config: data_dir: %q is not a usable directory: %v (%s)", c.DataDir, err, c.source(s))
	}
	opts := []fluxo.Option{fluxo.WithDataDir(c.DataDir), fluxo.WithDefaultPartitions(int32(c.DefaultPartitions))}
	if c.Listen != "" {
		opts = append(opts, fluxo.WithKafkaListen(c.Listen, c.Advertise))
	}
	if c.RemoteListen != "" {
		opts = append(opts, fluxo.WithRemoteListen(c.RemoteListen))
	}
	if c.MetricsListen != "" {
		opts = append(opts, fluxo.WithMetricsListen(c.MetricsListen))
	}
	if c.ClusterListen != "" {
		opts = append(opts, fluxo.WithCluster(int32(c.NodeID), c.ClusterListen, c.clusterPeers()))
	}
	if c.Sync == "never" {
		opts = append(opts, fluxo.WithoutFsync())
	}
	opts = append(opts, fluxo.WithNodeConfig(func(n *actors.Config) {
		n.OffsetsPartitions = int32(c.OffsetsPartitions)
		n.GroupMinSessionTimeout = time.Duration(c.GroupMinSessionTimeout)
		n.GroupMaxSessionTimeout = time.Duration(c.GroupMaxSessionTimeout)
		n.GroupInitialRebalanceDelay = time.Duration(c.GroupInitialRebalanceDelay)
	}))
	return opts, nil
}

// clusterPeers is peers without this broker's own cluster_listen address,
// so every broker of a cluster can be given the same list. Only an entry
// equal to cluster_listen is recognised (not another name for the host).
func (c *ServeConfig) clusterPeers() []string {
	var out []string
	for _, p := range c.Peers {
		if p != c.ClusterListen {
			out = append(out, p)
		}
	}
	return out
}

// logFormat resolves "auto": text when w is a terminal, JSON otherwise.
func resolveLogFormat(format string, w io.Writer) string {
	if format != "auto" {
		return format
	}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return "text"
		}
	}
	return "json"
}
