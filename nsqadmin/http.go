package nsqadmin

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"path"
	"strconv"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/clusterinfo"
	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/protocol"
)

// Errors of the API whose status and message are NSQ's.
var (
	errForbidden       = httpapi.Err(http.StatusForbidden, "FORBIDDEN")
	errInvalidTopic    = httpapi.Err(http.StatusBadRequest, "INVALID_TOPIC")
	errInvalidChannel  = httpapi.Err(http.StatusBadRequest, "INVALID_CHANNEL")
	errInvalidAction   = httpapi.Err(http.StatusBadRequest, "INVALID_ACTION")
	errInvalidBody     = httpapi.Err(http.StatusBadRequest, "INVALID_BODY")
	errTopicNotFound   = httpapi.Err(http.StatusNotFound, "TOPIC_NOT_FOUND")
	errChannelNotFound = httpapi.Err(http.StatusNotFound, "CHANNEL_NOT_FOUND")
	errNodeNotFound    = httpapi.Err(http.StatusNotFound, "NODE_NOT_FOUND")
	errNotFound        = httpapi.Err(http.StatusNotFound, "NOT_FOUND")
)

// maxRequestBody bounds the JSON bodies of write actions and PUT /config.
const maxRequestBody = 1 << 20

// httpServer holds the handlers of nsqadmin's HTTP interface.
type httpServer struct {
	a   *NSQAdmin
	log *slog.Logger
}

// newHTTPHandler returns every route under the base path, compressed when
// the client accepts it.
func (a *NSQAdmin) newHTTPHandler() http.Handler {
	s := &httpServer{a: a, log: a.log}
	log := a.log
	r := httpapi.NewRouter(log)
	p := func(route string) string { return path.Join(a.basePath, route) }
	logged := func(h httprouter.Handle) httprouter.Handle { return httpapi.Log(log, h) }
	api := func(f func(*http.Request, httprouter.Params) (any, error)) httprouter.Handle {
		return logged(s.api(f))
	}
	admin := func(f func(*http.Request, httprouter.Params) (any, error)) httprouter.Handle {
		return logged(s.api(s.adminOnly(f)))
	}

	r.GET(p("/ping"), logged(httpapi.PlainText(log, func(*http.Request, httprouter.Params) (string, error) { return "OK", nil })))

	for _, route := range []string{"/", "/topics", "/topics/:topic", "/topics/:topic/:channel", "/nodes", "/nodes/:node", "/counter", "/lookup"} {
		r.GET(p(route), logged(s.index))
	}
	r.GET(p("/static/:asset"), logged(s.staticAsset))
	r.GET(p("/fonts/:asset"), logged(s.staticAsset))

	r.GET(p("/api/topics"), api(s.topics))
	r.GET(p("/api/topics/:topic"), api(s.topic))
	r.GET(p("/api/topics/:topic/:channel"), api(s.channel))
	r.GET(p("/api/nodes"), api(s.nodes))
	r.GET(p("/api/nodes/:node"), api(s.node))
	r.GET(p("/api/counter"), api(s.counter))
	r.GET(p("/api/graphite"), api(s.graphite))
	r.GET(p("/api/history"), api(s.history))

	r.POST(p("/api/topics"), admin(s.createTopicChannel))
	r.POST(p("/api/topics/:topic"), admin(s.topicAction))
	r.POST(p("/api/topics/:topic/:channel"), admin(s.channelAction))
	r.DELETE(p("/api/topics/:topic"), admin(s.deleteTopic))
	r.DELETE(p("/api/topics/:topic/:channel"), admin(s.deleteChannel))
	r.DELETE(p("/api/nodes/:node"), admin(s.tombstoneTopicProducer))
	r.POST(p("/api/nodes/:node"), admin(s.nodeAction)) // drainpeek.go
	r.GET(p("/api/peek"), admin(s.peek))

	config := logged(httpapi.V1(log, s.config))
	r.GET(p("/config/:opt"), config)
	r.PUT(p("/config/:opt"), config)

	r.GET(p("/metrics"), logged(s.metrics))
	if a.opts.ProxyGraphite && a.graphiteURL != nil {
		r.Handler(http.MethodGet, p("/render"), a.graphiteProxy())
	}
	return compress(r)
}

// envelope is the part every /api object response has: message is "" or
// NSQ's "WARNING: <errors>" when some upstreams failed, and (our addition)
// upstream_errors names each of them for the UI's banners.
type envelope struct {
	Message        string          `json:"message"`
	UpstreamErrors []upstreamError `json:"upstream_errors,omitempty"`
}

// upstreamError is one upstream that failed.
type upstreamError struct {
	Kind  string `json:"kind"`  // nsqd or nsqlookupd
	Node  string `json:"node"`  // its address
	Error string `json:"error"` // why, without the request URL
}

// newEnvelope describes err, the partial failure of a fan-out (or nil).
func newEnvelope(err error) envelope {
	if err == nil {
		return envelope{}
	}
	return envelope{Message: "WARNING: " + err.Error(), UpstreamErrors: upstreamErrors(err)}
}

func upstreamErrors(err error) []upstreamError {
	var out []upstreamError
	for _, e := range clusterinfo.NodeErrors(err) {
		out = append(out, upstreamError{Kind: e.Kind, Node: e.Addr, Error: e.Reason()})
	}
	return out
}

// api adapts f to NSQ's V1 envelope, mapping clusterinfo's errors: not-found
// sentinels to 404, *UpstreamError (nobody answered) to 502
// UPSTREAM_ERROR with the failures listed.
func (s *httpServer) api(f func(*http.Request, httprouter.Params) (any, error)) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		v, err := f(req, ps)
		if ue, ok := errors.AsType[*clusterinfo.UpstreamError](err); ok {
			s.log.Warn("HTTP: upstream error", "uri", req.URL.RequestURI(), "err", ue)
			body, _ := json.Marshal(envelope{Message: "UPSTREAM_ERROR: " + ue.Error(), UpstreamErrors: upstreamErrors(ue)})
			h := w.Header()
			h.Set("X-NSQ-Content-Type", "nsq; version=1.0")
			h.Set("Content-Type", "application/json; charset=utf-8")
			h.Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(http.StatusBadGateway)
			w.Write(body)
			return
		}
		switch {
		case errors.Is(err, clusterinfo.ErrTopicNotFound):
			err = errTopicNotFound
		case errors.Is(err, clusterinfo.ErrChannelNotFound):
			err = errChannelNotFound
		case errors.Is(err, clusterinfo.ErrNodeNotFound):
			err = errNodeNotFound
		}
		httpapi.V1(s.log, func(*http.Request, httprouter.Params) (any, error) { return v, err })(w, req, ps)
	}
}

// isAdmin reports whether req may run write actions: everyone when no
// --admin-user is set, else those whose --acl-http-header names one.
func (a *NSQAdmin) isAdmin(req *http.Request) bool {
	if len(a.opts.AdminUsers) == 0 {
		return true
	}
	user := req.Header.Get(a.opts.ACLHTTPHeader)
	for _, u := range a.opts.AdminUsers {
		if u == user {
			return true
		}
	}
	return false
}

// adminOnly refuses f to non-admins with 403 FORBIDDEN.
func (s *httpServer) adminOnly(f func(*http.Request, httprouter.Params) (any, error)) func(*http.Request, httprouter.Params) (any, error) {
	return func(req *http.Request, ps httprouter.Params) (any, error) {
		if !s.a.isAdmin(req) {
			return nil, errForbidden
		}
		return f(req, ps)
	}
}

// pathTopic returns the :topic path parameter, refusing invalid names with
// 400 (NSQ passes them on; nothing could match them anyway).
func pathTopic(ps httprouter.Params) (string, error) {
	t := ps.ByName("topic")
	if !protocol.IsValidTopicName(t) {
		return "", errInvalidTopic
	}
	return t, nil
}

// pathTopicChannel returns the :topic and :channel path parameters.
func pathTopicChannel(ps httprouter.Params) (string, string, error) {
	t, err := pathTopic(ps)
	if err != nil {
		return "", "", err
	}
	c := ps.ByName("channel")
	if !protocol.IsValidChannelName(c) {
		return "", "", errInvalidChannel
	}
	return t, c, nil
}
