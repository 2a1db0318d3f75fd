package clusterinfo

import (
	"errors"
	"net/url"
	"strings"
)

// Kinds of upstream, as NodeError.Kind and in messages.
const (
	KindNSQD       = "nsqd"
	KindNSQLookupd = "nsqlookupd"
)

// ErrTopicNotFound is returned when no upstream knows a topic.
var ErrTopicNotFound = errors.New("topic not found")

// ErrChannelNotFound is returned when no producer of a topic has a channel.
var ErrChannelNotFound = errors.New("channel not found")

// ErrNodeNotFound is returned when no nsqd has a node's address.
var ErrNodeNotFound = errors.New("node not found")

// NodeError is the failure of one upstream. Its Error is the underlying
// error's text, which for HTTP errors names the URL (NSQ's "WARNING: ..."
// messages carry exactly that text).
type NodeError struct {
	Kind string // KindNSQD or KindNSQLookupd
	Addr string // the address queried: host:port
	Err  error
}

func (e *NodeError) Error() string { return e.Err.Error() }
func (e *NodeError) Unwrap() error { return e.Err }

// Reason is the error without the request's method and URL, for showing next
// to the node's name: "dial tcp 127.0.0.1:4151: connect: connection refused".
func (e *NodeError) Reason() string {
	if ue, ok := errors.AsType[*url.Error](e.Err); ok {
		return ue.Err.Error()
	}
	return e.Err.Error()
}

// Errors lists the failed upstreams of one or more fan-outs.
type Errors []*NodeError

func (es Errors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

// PartialError means some upstreams failed and the result holds what the
// others answered.
type PartialError struct {
	Errors Errors
}

func (e *PartialError) Error() string { return e.Errors.Error() }

// UpstreamError means no upstream of Kind answered (or there was none to
// ask); the result is empty.
type UpstreamError struct {
	Kind   string
	Errors Errors
}

func (e *UpstreamError) Error() string {
	return "failed to query any " + e.Kind + ": " + e.Errors.Error()
}

// NodeErrors returns every NodeError inside err (partial or not), in order.
func NodeErrors(err error) Errors {
	var out Errors
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *NodeError:
			out = append(out, e)
		case *PartialError:
			out = append(out, e.Errors...)
		case *UpstreamError:
			out = append(out, e.Errors...)
		case interface{ Unwrap() []error }:
			for _, e := range e.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// result turns the per-node failures of a fan-out over total upstreams of
// kind into the error returned with its result: nil, a *PartialError, or an
// *UpstreamError when every one failed or there were none.
func result(kind string, total int, errs Errors) error {
	switch {
	case len(errs) == 0 && total > 0:
		return nil
	case len(errs) < total:
		return &PartialError{Errors: errs}
	}
	return &UpstreamError{Kind: kind, Errors: errs}
}

// Merge combines the errors of two steps of one request: nil, or a
// *PartialError listing every failure (an *UpstreamError of either step is
// the caller's to return on its own, before calling Merge).
func Merge(errs ...error) error {
	var all Errors
	for _, err := range errs {
		all = append(all, NodeErrors(err)...)
	}
	if len(all) == 0 {
		return nil
	}
	return &PartialError{Errors: all}
}
