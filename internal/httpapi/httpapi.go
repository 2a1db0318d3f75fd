// Package httpapi holds what the HTTP APIs of nsqd, nsqlookupd and nsqadmin
// share: an httprouter router answering unknown paths, wrong methods and
// panics in NSQ's JSON; adapters writing NSQ's "V1" envelope and plain-text
// responses; strict query-string parameters; request logging; and the
// daemons' outbound HTTP client.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"
)

// Header values of NSQ's V1 responses. go-nsq and NSQ's tools pick the V1
// decoding by the presence of X-NSQ-Content-Type, so every V1 response,
// errors included, carries it.
const (
	headerNSQContentType = "X-NSQ-Content-Type"
	nsqContentTypeV1     = "nsq; version=1.0"
	contentTypeJSON      = "application/json; charset=utf-8"
	contentTypeText      = "text/plain; charset=utf-8"
)

// Error is an error with an HTTP status whose Message is sent to the client:
// as {"message":"<Message>"} by V1 handlers, as plain text by PlainText ones.
// Handlers return it (possibly wrapped) for every expected failure.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Err returns an *Error; a shorthand for handlers' many error returns.
func Err(status int, message string) *Error { return &Error{Status: status, Message: message} }

// ErrInvalidRequest is returned when the URL query string cannot be parsed.
var ErrInvalidRequest = Err(http.StatusBadRequest, "INVALID_REQUEST")

// NewRouter returns a router with NSQ's behaviour for everything no route
// handles, each response logged as Log does:
//
//   - unknown path: 404 {"message":"NOT_FOUND"};
//   - known path, other method: 405 {"message":"METHOD_NOT_ALLOWED"} with
//     httprouter's sorted Allow header (which lists OPTIONS);
//   - OPTIONS on a known path: 200, empty body, Allow header;
//   - path differing by a trailing slash (or case): redirect, 301 for GET and
//     307 for other methods, keeping the query string;
//   - a panicking handler: 500 {"message":"INTERNAL_ERROR"}, logged at ERROR.
//
// HEAD is not routed to GET handlers.
func NewRouter(log *slog.Logger) *httprouter.Router {
	r := httprouter.New() // redirects, OPTIONS and 405 are on by default
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		logRequest(log, req, http.StatusNotFound, time.Now())
		writeV1Error(w, http.StatusNotFound, "NOT_FOUND")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		logRequest(log, req, http.StatusMethodNotAllowed, time.Now())
		writeV1Error(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		if v == http.ErrAbortHandler {
			panic(v) // the handler asked net/http to drop the connection
		}
		log.Error("HTTP: panic in handler", "method", req.Method, "uri", req.URL.RequestURI(), "panic", v)
		logRequest(log, req, http.StatusInternalServerError, time.Now()) // Log's own line was skipped
		writeV1Error(w, http.StatusInternalServerError, "INTERNAL_ERROR")
	}
	return r
}

// Empty is the result of a V1 handler that answers 200 with no body.
type Empty = struct{}

// V1 adapts f to NSQ's V1 envelope. Every response has the header
// X-NSQ-Content-Type: nsq; version=1.0. A successful result is written as:
//
//   - string: raw, Content-Type text/plain; charset=utf-8;
//   - []byte: raw, Content-Type sniffed (text/plain for text);
//   - nil, Empty, "" or an empty []byte: Content-Length 0, no Content-Type;
//   - anything else: JSON, Content-Type application/json; charset=utf-8.
//
// An *Error anywhere in the returned error's chain is sent with its status as
// {"message":"..."}; any other error is logged and answered 500
// {"message":"INTERNAL_ERROR"}.
func V1[T any](log *slog.Logger, f func(*http.Request, httprouter.Params) (T, error)) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		v, err := f(req, ps)
		if err != nil {
			status, msg := errorStatus(log, req, err)
			writeV1Error(w, status, msg)
			return
		}
		h := w.Header()
		h.Set(headerNSQContentType, nsqContentTypeV1)
		var body []byte
		switch v := any(v).(type) {
		case nil, Empty:
		case string:
			if v != "" {
				h.Set("Content-Type", contentTypeText)
			}
			writeBody(w, http.StatusOK, []byte(v))
			return
		case []byte:
			body = v
			if len(body) > 0 {
				h.Set("Content-Type", http.DetectContentType(body))
			}
		default:
			body, err = json.Marshal(v)
			if err != nil {
				log.Error("HTTP: failed to encode response", "uri", req.URL.RequestURI(), "err", err)
				writeV1Error(w, http.StatusInternalServerError, "INTERNAL_ERROR")
				return
			}
			h.Set("Content-Type", contentTypeJSON)
		}
		writeBody(w, http.StatusOK, body)
	}
}

// PlainText adapts f for endpoints that answer plain text (/ping, /debug/*):
// the result is written raw with status 200 (text/plain; charset=utf-8 unless
// empty); an *Error is written as its Message with its status; any other
// error is logged and answered 500 INTERNAL_ERROR. No X-NSQ-Content-Type.
func PlainText(log *slog.Logger, f func(*http.Request, httprouter.Params) (string, error)) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		status := http.StatusOK
		s, err := f(req, ps)
		if err != nil {
			status, s = errorStatus(log, req, err)
		}
		if s != "" {
			w.Header().Set("Content-Type", contentTypeText)
		}
		writeBody(w, status, []byte(s))
	}
}

// errorStatus maps a handler's error to the status and message sent; errors
// that are not *Error are logged here, once.
func errorStatus(log *slog.Logger, req *http.Request, err error) (int, string) {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Status, e.Message
	}
	log.Error("HTTP: internal error", "method", req.Method, "uri", req.URL.RequestURI(), "err", err)
	return http.StatusInternalServerError, "INTERNAL_ERROR"
}

func writeV1Error(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg}) // a struct of one string cannot fail to encode
	h := w.Header()
	h.Set(headerNSQContentType, nsqContentTypeV1)
	h.Set("Content-Type", contentTypeJSON)
	writeBody(w, status, body)
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body) // a write error means the client went away: nothing to do
}

// Log wraps h to log each request at INFO once it is answered, in NSQ's
// format: "<status> <METHOD> <uri> (<remote>) <elapsed>". NSQ does not log
// its publishing endpoints, so their routes are registered without it.
func Log(log *slog.Logger, h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		if !log.Enabled(req.Context(), slog.LevelInfo) {
			h(w, req, ps)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		h(sw, req, ps)
		logRequest(log, req, sw.status(), start)
	}
}

func logRequest(log *slog.Logger, req *http.Request, status int, start time.Time) {
	if !log.Enabled(req.Context(), slog.LevelInfo) {
		return
	}
	log.Info(fmt.Sprintf("%d %s %s (%s) %s", status, req.Method, req.URL.RequestURI(), req.RemoteAddr, time.Since(start)))
}

// statusWriter records the status a handler sent.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// Query is a request's URL query string. Parameters are taken only from it,
// never from a form body, and the first of repeated values wins.
type Query url.Values

// ParseQuery parses req's query string; a malformed one is ErrInvalidRequest
// (400 INVALID_REQUEST).
func ParseQuery(req *http.Request) (Query, error) {
	v, err := url.ParseQuery(req.URL.RawQuery)
	if err != nil {
		return nil, ErrInvalidRequest
	}
	return Query(v), nil
}

// Get returns the first value of key and whether key is present at all
// ("?topic=" is present and empty).
func (q Query) Get(key string) (string, bool) {
	vs, ok := q[key]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// Bool reads a boolean NSQ's way: def when absent, false for "false" or "0",
// true for "true", "1" and any other value.
func (q Query) Bool(key string, def bool) bool {
	v, ok := q.Get(key)
	if !ok {
		return def
	}
	b, _ := ParseBool(v)
	return b
}

// ParseBool parses NSQ's boolean parameter values: known is false for values
// other than "true", "1", "false" and "0", which count as true.
func ParseBool(s string) (v, known bool) {
	switch s {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return true, false
}
