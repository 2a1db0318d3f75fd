#!/usr/bin/env bash
# Runs a local NSQ cluster in the foreground from the binaries in $BIN
# (default bin/): nsqlookupd, nsqd registered with it (data in ./data/nsqd)
# and nsqadmin, each only if its binary exists. Ctrl-C (or SIGTERM) stops
# them all; if one exits by itself the others are stopped too.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}

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
	echo "run-cluster: stopping" >&2
	stop_all
	exit 0
}
trap on_signal INT TERM

start() {
	echo "run-cluster: $*" >&2
	"$@" &
	pids+=("$!")
}

if [[ -x $BIN/nsqlookupd ]]; then
	start "$BIN/nsqlookupd"
fi
if [[ -x $BIN/nsqd ]]; then
	mkdir -p data/nsqd
	start "$BIN/nsqd" --lookupd-tcp-address=127.0.0.1:4160 --broadcast-address=127.0.0.1 --data-path=data/nsqd
fi
if [[ -x $BIN/nsqadmin ]]; then
	start "$BIN/nsqadmin" --lookupd-http-address=127.0.0.1:4161
fi
if ((${#pids[@]} == 0)); then
	echo "run-cluster: no nsqlookupd, nsqd or nsqadmin in $BIN/; run make build" >&2
	exit 1
fi

# wait -n returns when any child exits (or a trapped signal arrives, in
# which case on_signal has already exited).
status=0
wait -n || status=$?
if ((!stopping)); then
	echo "run-cluster: a daemon exited (status $status); stopping the others" >&2
	stop_all
fi
exit "$status"
