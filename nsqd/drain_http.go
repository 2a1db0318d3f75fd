package nsqd

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nsqclone/nsq/internal/httpapi"
)

// errHTTPDraining answers publishes and creations while the node drains
// (NSQ has no drain; 503 tells load balancers and HTTP publishers to go
// elsewhere).
var errHTTPDraining = httpapi.Err(http.StatusServiceUnavailable, "DRAINING")

// drainRoutes adds the endpoints beyond NSQ's API: the drain's (GET /state,
// PUT /state/drain, PUT /state/shutdown, GET /ready) and peek's.
func (s *httpServer) drainRoutes(r *httprouter.Router, logged func(httprouter.Handle) httprouter.Handle) {
	log := s.log
	r.GET("/ready", logged(httpapi.PlainText(log, s.ready)))
	r.GET("/state", logged(httpapi.V1(log, s.state)))
	r.PUT("/state/drain", logged(httpapi.V1(log, s.stateDrain)))
	r.PUT("/state/shutdown", logged(httpapi.V1(log, s.stateShutdown)))
	s.peekRoutes(r, logged)
}

// ready is GET /ready, for readiness probes: 503 while the node drains or
// shuts down (publishers should go elsewhere), else what /ping answers.
// /ping stays 200 during a drain, so a liveness probe does not restart it.
func (s *httpServer) ready(req *http.Request, ps httprouter.Params) (string, error) {
	if s.n.Draining() {
		return "", httpapi.Err(http.StatusServiceUnavailable, "DRAINING")
	}
	if s.n.shuttingDown() {
		return "", httpapi.Err(http.StatusServiceUnavailable, "EXITING")
	}
	return s.ping(req, ps)
}

func (s *httpServer) state(*http.Request, httprouter.Params) (NodeState, error) {
	return s.n.State(), nil
}

// stateDrain starts a drain (again: no change) and answers the state.
func (s *httpServer) stateDrain(*http.Request, httprouter.Params) (NodeState, error) {
	s.n.Drain()
	return s.n.State(), nil
}

// stateShutdown starts a clean shutdown, as SIGTERM does by default.
func (s *httpServer) stateShutdown(*http.Request, httprouter.Params) (NodeState, error) {
	s.log.Info("NSQ: shutdown requested over HTTP")
	s.n.Shutdown()
	return s.n.State(), nil
}

// configDrain is PUT /config/drain, the RFC's (nsqio/nsq#1302) name for PUT
// /state/drain (any body, or none); GET /config/drain answers whether the
// node drains.
func (s *httpServer) configDrain(req *http.Request) (any, error) {
	if req.Method == http.MethodPut {
		s.n.Drain()
	}
	return s.n.Draining(), nil
}

var descDraining = prometheus.NewDesc("nsq_draining", "1 while the node drains (refuses publishes until its channels are empty), else 0.", nil, nil)

// drainCollector adds nsq_draining to GET /metrics.
type drainCollector struct{ n *NSQD }

func (d drainCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descDraining }

func (d drainCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descDraining, prometheus.GaugeValue, boolValue(d.n.Draining()))
}
