#!/usr/bin/env bash
# `make demo`: the sandbox swarm with the seeds' example, the operator running
# the built-in handlers against it, and the terminal UI on top. Without a
# terminal (e.g. under CI) it shows the sandbox and the operator's status instead.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${SANDBOX:-swarmop}
BIN=.venv/bin
LOG_DIR=.cache/demo
HTTP=127.0.0.1:${SWARMOP_DEMO_PORT:-8787}
mkdir -p "$LOG_DIR"

"$BIN/swarmop" sandbox up --name "$NAME" --example
eval "$("$BIN/swarmop" sandbox env --name "$NAME")"

# One operator per demo sandbox: a previous demo's operator is replaced.
pid_file="$LOG_DIR/operator-$NAME.pid"
if [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
  kill "$(cat "$pid_file")" && sleep 1
fi
"$BIN/swarmop" run --http "$HTTP" --log-level INFO >"$LOG_DIR/operator-$NAME.log" 2>&1 &
operator=$!
echo "$operator" >"$pid_file"
trap 'kill "$operator" 2>/dev/null || true; rm -f "$pid_file"' EXIT
echo "demo: operator running (pid $operator, log $LOG_DIR/operator-$NAME.log, status http://$HTTP/status)"

for _ in $(seq 1 30); do
  if ! kill -0 "$operator" 2>/dev/null; then
    echo "demo: the operator exited; its log:" >&2
    cat "$LOG_DIR/operator-$NAME.log" >&2
    exit 1
  fi
  "$BIN/python" -c "import urllib.request as u; u.urlopen('http://$HTTP/readyz', timeout=2)" 2>/dev/null && break
  sleep 1
done

if [ -t 0 ] && [ -t 1 ]; then
  "$BIN/swarmop" tui
else
  "$BIN/swarmop" sandbox status --name "$NAME"
  sleep 5
  echo "demo: operator status"
  "$BIN/python" -c "import json, urllib.request as u; print(json.dumps(json.load(u.urlopen('http://$HTTP/status', timeout=5)), indent=2))" | head -n 60
  echo "demo: no terminal, so no TUI; run \`make demo\` in a terminal for the UI"
fi
