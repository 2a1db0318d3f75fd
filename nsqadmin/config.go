package nsqadmin

import (
	"encoding/json"
	"io"
	"net"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/httpapi"
	"github.com/nsqclone/nsq/internal/nsqlog"
	"github.com/nsqclone/nsq/internal/options"
)

var (
	errInvalidRemoteAddr = httpapi.Err(http.StatusBadRequest, "INVALID_REMOTE_ADDR")
	errInvalidOption     = httpapi.Err(http.StatusBadRequest, "INVALID_OPTION")
	errInvalidValue      = httpapi.Err(http.StatusBadRequest, "INVALID_VALUE")
	errValueTooBig       = httpapi.Err(http.StatusRequestEntityTooLarge, "INVALID_VALUE")
)

// config serves GET and PUT /config/:opt to clients inside
// --allow-config-from-cidr. PUT changes nsqlookupd_http_addresses (a JSON
// array) or log_level (a level name) and answers the new value as GET does.
func (s *httpServer) config(req *http.Request, ps httprouter.Params) (any, error) {
	host, _, err := net.SplitHostPort(req.RemoteAddr)
	if err != nil {
		return nil, errInvalidRemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, errInvalidRemoteAddr
	}
	if !s.a.allowConfigFrom.Contains(ip) {
		return nil, errForbidden
	}

	opt := ps.ByName("opt")
	if req.Method == http.MethodPut {
		body, err := io.ReadAll(io.LimitReader(req.Body, maxRequestBody+1))
		switch {
		case err != nil:
			return nil, err
		case len(body) == 0 || len(body) > maxRequestBody:
			return nil, errValueTooBig
		}
		switch opt {
		case "nsqlookupd_http_addresses":
			var addrs []string
			if err := json.Unmarshal(body, &addrs); err != nil {
				return nil, errInvalidValue
			}
			if len(addrs) == 0 && len(s.a.opts.NSQDHTTPAddresses) == 0 {
				return nil, errInvalidValue // nothing left to ask
			}
			s.a.setLookupds(addrs)
		case "log_level":
			l, err := nsqlog.ParseLevel(string(body))
			if err != nil {
				return nil, errInvalidValue
			}
			s.a.setLogLevel(l)
		default:
			return nil, errInvalidOption
		}
	}
	return s.configValue(opt)
}

// configValue is the current value of the option whose config-file key is
// key: strings as raw text, everything else as JSON (durations in
// nanoseconds, log_level as an integer, lists as arrays).
func (s *httpServer) configValue(key string) (any, error) {
	switch key {
	case "log_level":
		return s.a.logLevel(), nil
	case "nsqlookupd_http_addresses":
		return nonNil(s.a.Lookupds()), nil
	case "base_path":
		return s.a.basePath, nil
	}
	v, ok := options.Value(s.a.opts, key)
	if !ok {
		return nil, errInvalidOption
	}
	return v, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
