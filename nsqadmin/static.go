package nsqadmin

import (
	"bytes"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"sync"

	"github.com/julienschmidt/httprouter"

	"github.com/nsqclone/nsq/internal/version"
)

// assets are the UI's files, embedded so that `go build` alone gives a
// working nsqadmin. index.html is a template: the page shell every UI route
// answers with.
//
//go:embed static
var assets embed.FS

// assetFS returns the UI's files: from --dev-static-dir when set (to edit
// them without rebuilding), else the embedded ones.
func (a *NSQAdmin) assetFS() fs.FS {
	if a.opts.DevStaticDir != "" {
		return os.DirFS(a.opts.DevStaticDir)
	}
	sub, _ := fs.Sub(assets, "static") // "static" is embedded above
	return sub
}

// contentTypes are those NSQ's nsqadmin sends for its assets; anything else
// goes by Go's table.
var contentTypes = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".png":   "image/png",
	".map":   "application/json",
	".svg":   "image/svg+xml",
	".woff2": "font/woff2",
	".woff":  "application/font-woff",
	".ttf":   "font/ttf",
	".eot":   "application/vnd.ms-fontobject",
	".html":  "text/html; charset=utf-8",
}

// staticAsset is GET /static/:asset (and /fonts/:asset): an embedded file,
// or 404 NOT_FOUND as plain text.
func (s *httpServer) staticAsset(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	name := ps.ByName("asset")
	b, err := fs.ReadFile(s.a.assetFS(), name)
	if err != nil || name == "index.html" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("NOT_FOUND"))
		return
	}
	ext := path.Ext(name)
	ct, ok := contentTypes[ext]
	if !ok {
		if ct = mime.TypeByExtension(ext); ct == "" {
			ct = http.DetectContentType(b)
		}
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// embeddedIndex is index.html parsed once (with --dev-static-dir it is
// parsed at each request instead, to pick up edits).
var embeddedIndex = sync.OnceValues(func() (*template.Template, error) {
	return template.ParseFS(assets, "static/index.html")
})

func (a *NSQAdmin) indexTemplate() (*template.Template, error) {
	if a.opts.DevStaticDir != "" {
		return template.ParseFS(a.assetFS(), "index.html")
	}
	return embeddedIndex()
}

// index is the page shell of every UI route. It defines the JavaScript
// globals NSQ's front-end reads (USER_AGENT, VERSION, GRAPHITE_URL, ...,
// IS_ADMIN per request) and ours (SAMPLE_INTERVAL_MS, NSQD_MODE).
func (s *httpServer) index(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	tmpl, err := s.a.indexTemplate()
	if err != nil {
		s.log.Error("HTTP: failed to load index.html", "err", err)
		http.Error(w, "INTERNAL_ERROR", http.StatusInternalServerError)
		return
	}
	o := s.a.opts
	graphiteURL := o.GraphiteURL
	if o.ProxyGraphite {
		graphiteURL = ""
	}
	js := func(v any) template.JS {
		b, _ := json.Marshal(v) // strings, bools and numbers
		return template.JS(b)
	}
	basePath := s.a.basePath
	assetBase := basePath
	if assetBase == "/" {
		assetBase = ""
	}
	data := map[string]any{
		"BasePath":  assetBase,
		"Version":   version.Binary,
		"UserAgent": js("nsqadmin/v" + version.Binary),
		"VersionJS": js(version.Binary),
		"Globals": []struct {
			Name  template.JS // a constant identifier
			Value template.JS
		}{
			{"GRAPHITE_URL", js(graphiteURL)},
			{"GRAPH_ENABLED", js(o.GraphiteURL != "")},
			{"STATSD_COUNTER_FORMAT", js(o.StatsdCounterFormat)},
			{"STATSD_GAUGE_FORMAT", js(o.StatsdGaugeFormat)},
			{"STATSD_INTERVAL", js(int64(o.StatsdInterval.Seconds()))},
			{"STATSD_PREFIX", js(o.StatsdPrefix)},
			{"NSQLOOKUPD", js(nonNil(s.a.Lookupds()))},
			{"NSQD_HTTP_ADDRESSES", js(nonNil(o.NSQDHTTPAddresses))},
			{"IS_ADMIN", js(s.a.isAdmin(req))},
			{"BASE_PATH", js(basePath)},
			{"SAMPLE_INTERVAL_MS", js(o.StatsSampleInterval.Milliseconds())},
			{"SAMPLE_WINDOW_MS", js(o.StatsSampleWindow.Milliseconds())},
		},
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		s.log.Error("HTTP: failed to render index.html", "err", err)
		http.Error(w, "INTERNAL_ERROR", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.Write(b.Bytes())
}
