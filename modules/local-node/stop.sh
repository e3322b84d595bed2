#!/usr/bin/env bash
# Stops a node's process group if it is still running: TERM, then KILL after 10 s.
set -u
pidfile="$SKYPLAN_WORK_DIR/pid"
[ -f "$pidfile" ] || exit 0
pid="$(cat "$pidfile")"
if kill -0 -- "-$pid" 2>/dev/null; then
  kill -TERM -- "-$pid" 2>/dev/null
  for _ in $(seq 100); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$pid" 2>/dev/null
fi
rm -f "$pidfile"
exit 0
