// Package nsqadmin is NSQ's cluster web UI as a library: an HTTP server whose
// /api answers in NSQ nsqadmin's JSON by asking the cluster's nsqlookupds or
// nsqds (internal/clusterinfo), whose write actions (pause, empty, delete,
// tombstone, create) fan out to them, and whose single-page UI is embedded
// in the binary.
//
// Unlike NSQ's nsqadmin it needs no Graphite for live charts: a sampler asks
// every nsqd for its stats each --stats-sample-interval, keeps a window of
// them in memory and serves message rates and depths at /api/history. It
// also serves cluster totals to Prometheus at /metrics.
//
// New validates Options, resolves the upstream addresses and binds the
// listener; Run serves until its context ends.
package nsqadmin
