#!/usr/bin/env bash
# Runs one node of a task on this machine: takes CPU slots of the zone, starts the executor in a
# session of its own (its PID = process group id, recorded for stop.sh and skyplan's reaper),
# streams its log to Terraform and waits. Exit status: 0 once the executor ran (the task's own
# exit code is in status.json and exit_code), 75 when the zone has no free slot, 69 when a
# program it needs (flock, setsid, tail) is missing.
set -uo pipefail

zone="$SKYPLAN_ZONE"
no_slot() {
  # Keep this text: skyplan's local target classifies it as a zone-scope capacity failure.
  echo "skyplan-local: zone $zone has no free slot (capacity)${1:+: $1}" >&2
  exit 75
}

if [ "${SKYPLAN_INJECT_FAILURE:-}" = "capacity" ]; then
  no_slot "inject_failure is set in the local config"
fi

for tool in flock setsid tail; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    # An environment error, not a capacity one: skyplan must not fail the zone over for it.
    echo "skyplan-local: this machine lacks $tool (util-linux/coreutils): install it" >&2
    exit 69
  fi
done

slots_dir="${SKYPLAN_LOCAL_SLOTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/skyplan/local-slots}/$zone"
mkdir -p "$slots_dir" "$SKYPLAN_WORK_DIR"

# One lock file per CPU slot; a held flock is a taken slot. The executor inherits the open
# descriptors, so the slots stay taken exactly as long as the task's processes live.
# Each taken slot names its holder in cpu-<i>.owner (executor PID and work directory), so that a
# run refused a slot can say whose leftovers hold it, and skyplan can tell when they are gone.
need="$SKYPLAN_TASK_CPUS"
held=0
owners=()
taken=()
for ((i = 0; i < SKYPLAN_ZONE_CPUS && held < need; i++)); do
  exec {fd}>>"$slots_dir/cpu-$i.lock"
  if flock -n "$fd"; then
    held=$((held + 1))
    owners+=("$slots_dir/cpu-$i.owner")
  else
    exec {fd}>&-
    owner="$(cat "$slots_dir/cpu-$i.owner" 2>/dev/null)"
    taken+=("${owner:-unknown}")
  fi
done
if [ "$held" -lt "$need" ]; then
  no_slot "$need CPU slots needed, $held free (taken by other runs: ${taken[*]})"
fi

log="$SKYPLAN_WORK_DIR/node.log"
rm -f "$SKYPLAN_WORK_DIR/exit_code"
: >"$log"
# Not a process group leader here (no job control), so setsid(1) does not fork: $! is the
# session leader and its PID is the group id stop.sh kills. (The executor writes task.log
# itself; node.log is everything it printed, streamed to Terraform below.)
setsid bash "$SKYPLAN_EXECUTOR" </dev/null >>"$log" 2>&1 &
pid=$!
echo "$pid" >"$SKYPLAN_WORK_DIR/pid"
# Its start time too: skyplan's reaper never signals a group whose leader's PID was reused.
cut -d' ' -f22 "/proc/$pid/stat" >"$SKYPLAN_WORK_DIR/pid.start" 2>/dev/null || true
for owner in "${owners[@]}"; do
  echo "pid $pid in $SKYPLAN_WORK_DIR" >"$owner"
done

# shellcheck disable=SC2317  # invoked by the trap
stop() {
  kill -TERM -- "-$pid" 2>/dev/null
  exit 130
}
trap stop INT TERM HUP

tail --pid="$pid" -n +1 -f "$log" &
wait "$pid"
rc=$?
wait
echo "$rc" >"$SKYPLAN_WORK_DIR/exit_code"
rm -f "$SKYPLAN_WORK_DIR/pid" "$SKYPLAN_WORK_DIR/pid.start"
echo "skyplan-local: task $SKYPLAN_TASK node $SKYPLAN_NODE_RANK exited with $rc"
exit 0
