// Package nsqlog writes NSQ's log format through log/slog:
// "[nsqd] 2025/01/27 09:09:04.123456 INFO: TOPIC: created topic=orders".
// It also parses NSQ's --log-level values.
package nsqlog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
)

// LevelFatal is the slog level of NSQ's FATAL lines. Logging at it never exits:
// only main decides to exit.
const LevelFatal = slog.LevelError + 4

// Level is a --log-level value in NSQ's numbering (1 debug .. 5 fatal), which
// is what GET /config/log_level reports.
type Level int

// NSQ's log levels.
const (
	Debug Level = 1
	Info  Level = 2
	Warn  Level = 3
	Error Level = 4
	Fatal Level = 5
)

// ParseLevel parses debug, info, warn, error or fatal in any case.
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return Debug, nil
	case "info":
		return Info, nil
	case "warn":
		return Warn, nil
	case "error":
		return Error, nil
	case "fatal":
		return Fatal, nil
	}
	return 0, fmt.Errorf("invalid log level '%s' (debug, info, warn, error, fatal)", s)
}

// String returns the level as NSQ prints it in --help (upper case).
func (l Level) String() string {
	switch l {
	case Debug:
		return "DEBUG"
	case Info:
		return "INFO"
	case Warn:
		return "WARNING"
	case Error:
		return "ERROR"
	case Fatal:
		return "FATAL"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// Set implements flag.Value.
func (l *Level) Set(s string) error {
	v, err := ParseLevel(s)
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Get implements flag.Getter.
func (l *Level) Get() any { return *l }

// Slog maps the level to slog's scale.
func (l Level) Slog() slog.Level {
	switch l {
	case Debug:
		return slog.LevelDebug
	case Warn:
		return slog.LevelWarn
	case Error:
		return slog.LevelError
	case Fatal:
		return LevelFatal
	}
	return slog.LevelInfo
}

// Handler is a slog.Handler writing one NSQ-format line per record.
type Handler struct {
	prefix string
	level  slog.Leveler
	attrs  []byte // preformatted " key=value" pairs from WithAttrs
	mu     *sync.Mutex
	w      io.Writer
}

// NewHandler returns a handler writing to w with prefix (e.g. "[nsqd] ") at
// the given minimum level (a *slog.LevelVar makes it adjustable at runtime).
func NewHandler(w io.Writer, prefix string, level slog.Leveler) *Handler {
	return &Handler{prefix: prefix, level: level, mu: new(sync.Mutex), w: w}
}

// New is slog.New(NewHandler(w, prefix, level)).
func New(w io.Writer, prefix string, level slog.Leveler) *slog.Logger {
	return slog.New(NewHandler(w, prefix, level))
}

func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	b := make([]byte, 0, 128)
	b = append(b, h.prefix...)
	b = r.Time.AppendFormat(b, "2006/01/02 15:04:05.000000")
	b = append(b, ' ')
	b = append(b, levelName(r.Level)...)
	b = append(b, ": "...)
	b = append(b, r.Message...)
	b = append(b, h.attrs...)
	r.Attrs(func(a slog.Attr) bool { b = appendAttr(b, a); return true })
	b = append(b, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b)
	return err
}

func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.attrs = append([]byte(nil), h.attrs...)
	for _, a := range attrs {
		h2.attrs = appendAttr(h2.attrs, a)
	}
	return &h2
}

// WithGroup is not used by this project; groups are flattened.
func (h *Handler) WithGroup(string) slog.Handler { return h }

func appendAttr(b []byte, a slog.Attr) []byte {
	if a.Equal(slog.Attr{}) {
		return b
	}
	return fmt.Appendf(b, " %s=%v", a.Key, a.Value.Resolve())
}

func levelName(l slog.Level) string {
	switch {
	case l >= LevelFatal:
		return "FATAL"
	case l >= slog.LevelError:
		return "ERROR"
	case l >= slog.LevelWarn:
		return "WARNING"
	case l >= slog.LevelInfo:
		return "INFO"
	}
	return "DEBUG"
}
