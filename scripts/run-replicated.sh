#!/usr/bin/env bash
# Runs a local replica set in the foreground from the binaries in $BIN
# (default bin/): nsqlookupd, three nsqd forming one replica set
# (docs/replication.md) and nsqadmin. Ctrl-C (or SIGTERM) stops them all; if
# one exits by itself the others are stopped too.
#
#   replica  TCP   HTTP  raft  data
#   1        4150  4151  4153  data/replica1
#   2        4250  4251  4253  data/replica2
#   3        4350  4351  4353  data/replica3
#
# GET http://127.0.0.1:4151/replication shows the set; kill one replica (its
# PID is printed) to watch another take over.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}

for b in nsqlookupd nsqd nsqadmin; do
	if [[ ! -x $BIN/$b ]]; then
		echo "run-replicated: no $BIN/$b; run make build" >&2
		exit 1
	fi
done

pids=()
stopping=0

stop_all() {
	stopping=1
	for pid in "${pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
}

on_signal() {
	trap - INT TERM
	echo "run-replicated: stopping" >&2
	stop_all
	exit 0
}
trap on_signal INT TERM

start() {
	"$@" &
	pids+=("$!")
	echo "run-replicated: pid $! $*" >&2
}

peers=1@127.0.0.1:4153,2@127.0.0.1:4253,3@127.0.0.1:4353
start "$BIN/nsqlookupd"
for i in 1 2 3; do
	mkdir -p "data/replica$i"
	start "$BIN/nsqd" --node-id="$i" --data-path="data/replica$i" \
		--tcp-address="127.0.0.1:4${i}50" --http-address="127.0.0.1:4${i}51" \
		--broadcast-address=127.0.0.1 --lookupd-tcp-address=127.0.0.1:4160 \
		--replication-address="127.0.0.1:4${i}53" --replication-peers="$peers"
done
start "$BIN/nsqadmin" --lookupd-http-address=127.0.0.1:4161

status=0
wait -n || status=$?
if ((!stopping)); then
	echo "run-replicated: a daemon exited (status $status); stopping the others" >&2
	stop_all
fi
exit "$status"
