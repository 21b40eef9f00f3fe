// Package metrics exposes a broker's Prometheus metrics and its health
// endpoints.
//
// Metrics holds one dedicated prometheus.Registry per broker (never the
// global default, so several brokers in one process do not collide) with:
//
//   - the Kafka gateway's request counters, latency histograms and
//     produce/fetch error codes, updated as requests are served (Metrics is
//     the gateway's Observer);
//   - a collector that reads the node at scrape time: traffic per topic,
//     partitions and their offsets, consumer group lag, actor restarts and
//     storage statistics (nothing polls between scrapes);
//   - the Go runtime and process collectors.
//
// Handler serves /metrics, /healthz (the process is alive) and /readyz (the
// broker has loaded its partitions and groups and is serving; 503 before and
// while stopping).
package metrics

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fluxo-broker/fluxo/actors"
)

// Metrics is one broker's metrics. The zero value is not usable; call New.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
	ready    prometheus.GaugeFunc

	// apis caches each API key's series, so serving a request costs no
	// label lookup after the first of its key.
	apis [kmsg.MaxKey + 1]atomic.Pointer[apiSeries]

	node    atomic.Pointer[actors.Node]
	isReady atomic.Bool
}

type apiSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

const namespace = "fluxo"

// New creates the registry with the gateway metrics, the node collector (idle
// until SetNode), and the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "kafka_requests_total",
		Help: "Kafka requests served, by API.",
	}, []string{"api"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Name: "kafka_request_duration_seconds",
		Help:    "Time from decoding a Kafka request to its answer being ready (a fetch's long poll included), by API.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 17), // 0.5 ms .. 33 s
	}, []string{"api"})
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "kafka_errors_total",
		Help: "Error codes in Produce and Fetch answers (one per partition answered with an error, or per request-wide error), by API and Kafka error name.",
	}, []string{"api", "error"})
	m.ready = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "ready",
		Help: "1 when the broker has loaded its partitions and groups and is serving (what /readyz reports), else 0.",
	}, func() float64 {
		if m.isReady.Load() {
			return 1
		}
		return 0
	})
	m.reg.MustRegister(m.requests, m.duration, m.errors, m.ready, &nodeCollector{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is the broker's registry (to register more collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// SetNode points the scrape-time collector at a running node; nil detaches
// it (node metrics are then absent from scrapes).
func (m *Metrics) SetNode(n *actors.Node) { m.node.Store(n) }

// SetReady sets what /readyz answers.
func (m *Metrics) SetReady(ready bool) { m.isReady.Store(ready) }

// Request counts one served Kafka request and observes its duration
// (gateway.Observer).
func (m *Metrics) Request(key int16, took time.Duration) {
	s := m.api(key)
	s.requests.Inc()
	s.duration.Observe(took.Seconds())
}

func (m *Metrics) api(key int16) *apiSeries {
	if key >= 0 && int(key) < len(m.apis) {
		if s := m.apis[key].Load(); s != nil {
			return s
		}
	}
	name := apiName(key)
	s := &apiSeries{requests: m.requests.WithLabelValues(name), duration: m.duration.WithLabelValues(name)}
	if key >= 0 && int(key) < len(m.apis) {
		m.apis[key].Store(s)
	}
	return s
}

// ErrorCode counts one error code in a Produce or Fetch answer
// (gateway.Observer).
func (m *Metrics) ErrorCode(key, code int16) {
	m.errors.WithLabelValues(apiName(key), errorName(code)).Inc()
}

func apiName(key int16) string {
	if name := kmsg.NameForKey(key); name != "Unknown" {
		return name
	}
	return "Unknown" + strconv.Itoa(int(key))
}

func errorName(code int16) string {
	if e, ok := kerr.ErrorForCode(code).(*kerr.Error); ok && e.Code == code && e.Message != "" {
		return e.Message
	}
	return "CODE_" + strconv.Itoa(int(code))
}

// Handler serves /metrics (Prometheus text or protobuf format), /healthz
// (200 while the process runs) and /readyz (200 once the broker is ready,
// 503 before and while stopping).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !m.isReady.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
