package nsqadmin

import (
	"compress/flate"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
)

// compress wraps h so responses are gzip- (preferred) or deflate-compressed
// when the request's Accept-Encoding allows, as NSQ's nsqadmin does.
func compress(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		enc := acceptedEncoding(req.Header.Get("Accept-Encoding"))
		if enc == "" {
			h.ServeHTTP(w, req)
			return
		}
		cw := &compressWriter{ResponseWriter: w, encoding: enc, method: req.Method}
		defer cw.close()
		h.ServeHTTP(cw, req)
	})
}

// acceptedEncoding picks gzip or deflate from an Accept-Encoding header.
func acceptedEncoding(header string) string {
	var deflate bool
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.ReplaceAll(strings.TrimSpace(params), " ", "") == "q=0" {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "gzip":
			return "gzip"
		case "deflate":
			deflate = true
		}
	}
	if deflate {
		return "deflate"
	}
	return ""
}

// compressWriter compresses the body once the handler has chosen its status
// and headers, unless there is no body or it is encoded already.
type compressWriter struct {
	http.ResponseWriter
	encoding    string
	method      string
	wroteHeader bool
	w           io.WriteCloser // nil: passing through
}

func (cw *compressWriter) WriteHeader(status int) {
	if cw.wroteHeader {
		return
	}
	cw.wroteHeader = true
	h := cw.Header()
	h.Add("Vary", "Accept-Encoding")
	if cw.method != http.MethodHead && status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified &&
		h.Get("Content-Encoding") == "" && h.Get("Content-Length") != "0" {
		h.Del("Content-Length")
		h.Set("Content-Encoding", cw.encoding)
		if cw.encoding == "gzip" {
			cw.w = gzip.NewWriter(cw.ResponseWriter)
		} else {
			cw.w, _ = flate.NewWriter(cw.ResponseWriter, flate.DefaultCompression) // the level is valid
		}
	}
	cw.ResponseWriter.WriteHeader(status)
}

func (cw *compressWriter) Write(b []byte) (int, error) {
	if !cw.wroteHeader {
		if cw.Header().Get("Content-Type") == "" {
			cw.Header().Set("Content-Type", http.DetectContentType(b))
		}
		cw.WriteHeader(http.StatusOK)
	}
	if cw.w == nil {
		return cw.ResponseWriter.Write(b)
	}
	return cw.w.Write(b)
}

// Flush lets streaming handlers (the Graphite proxy) flush compressed data.
func (cw *compressWriter) Flush() {
	if f, ok := cw.w.(interface{ Flush() error }); ok {
		f.Flush()
	}
	if f, ok := cw.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (cw *compressWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

func (cw *compressWriter) close() {
	if cw.w != nil {
		cw.w.Close()
	}
}
