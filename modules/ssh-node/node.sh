#!/usr/bin/env bash
# Runs on the pool host (uploaded by Terraform's file provisioner): takes CPU slots of the host,
# starts the executor in a session of its own (PID recorded for teardown), waits for it.
# Usage: node.sh RUN_ID TASK_SLUG CPUS HOST_CPUS HOST_NAME. Exit status: 0 once the executor
# ran (the task's exit code is in status.json), 75 when the host has no free slot, 69 when
# flock or setsid is missing.
set -uo pipefail
run_id="$1" slug="$2" need="$3" host_cpus="$4" host="$5"

root="$HOME/.skyplan/runs/$run_id"
dir="$root/$slug"
export SKYPLAN_STORAGE="file://$root/storage"
export SKYPLAN_WORK_DIR="$dir/work"
export SKYPLAN_SHUTDOWN=0 SKYPLAN_NODE_RANK=0 SKYPLAN_NUM_NODES=1
mkdir -p "$SKYPLAN_WORK_DIR"

for tool in flock setsid; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    # An environment error, not a capacity one: skyplan must not fail this host over for it.
    echo "skyplan-ssh: host $host lacks $tool (util-linux): install it on the host" >&2
    exit 69
  fi
done

slots_dir="${XDG_CACHE_HOME:-$HOME/.cache}/skyplan/slots"
mkdir -p "$slots_dir"
held=0
for ((i = 0; i < host_cpus && held < need; i++)); do
  exec {fd}>>"$slots_dir/cpu-$i.lock"
  if flock -n "$fd"; then
    held=$((held + 1))
  else
    exec {fd}>&-
  fi
done
if [ "$held" -lt "$need" ]; then
  # Keep this text: skyplan's ssh target classifies it as a zone-scope capacity failure.
  echo "skyplan-ssh: host $host has no free slot (capacity): $need CPU slots needed, $held free" >&2
  exit 75
fi

if [ -f "$dir/secrets.env" ]; then
  # shellcheck disable=SC1091  # written by sync.sh push, read once, removed before the task runs
  . "$dir/secrets.env"
  rm -f "$dir/secrets.env"
fi

setsid bash "$dir/executor.sh" </dev/null 2>&1 &
pid=$!
echo "$pid" >"$SKYPLAN_WORK_DIR/pid"
trap 'kill -TERM -- "-$pid" 2>/dev/null; exit 130' INT TERM HUP
wait "$pid"
rc=$?
rm -f "$SKYPLAN_WORK_DIR/pid"
echo "skyplan-ssh: task $slug exited with $rc on $host"
exit 0
