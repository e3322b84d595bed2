#!/usr/bin/env bash
# Piped to `bash -s -- RUN_ID` on a pool host by skyplan after a destroy: stops every process
# of the run that still runs (recorded process groups, and anything whose SKYPLAN_WORK_DIR is
# in the run's directory), in case Terraform never got to run the destroy provisioner.
run_id="$1"
root="$HOME/.skyplan/runs/$run_id"
for f in "$root"/*/work/pid; do
  [ -f "$f" ] || continue
  kill -TERM -- "-$(cat "$f")" 2>/dev/null
  rm -f "$f"
done
pids=()
for env in /proc/[0-9]*/environ; do
  if tr '\0' '\n' <"$env" 2>/dev/null | grep -q "^SKYPLAN_WORK_DIR=$root/"; then
    pid="${env#/proc/}"
    pids+=("${pid%/environ}")
  fi
done
for pid in "${pids[@]}"; do
  [ "$pid" = "$$" ] || kill -TERM "$pid" 2>/dev/null
done
if [ "${#pids[@]}" -gt 0 ]; then
  sleep 1
  for pid in "${pids[@]}"; do
    [ "$pid" = "$$" ] || kill -KILL "$pid" 2>/dev/null
  done
fi
# The run's copies of task data on this host are not needed once its tasks are torn down.
rm -rf "$root"
echo "${#pids[@]}"
