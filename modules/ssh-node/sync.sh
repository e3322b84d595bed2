#!/usr/bin/env bash
# Moves task data between the run's storage on this machine and a pool host, with scp through
# the run's ssh-agent and the pinned host key (never trust-on-first-use).
#   push: upstream tasks' status.json and outputs/ → host storage
#   pull: this task's status.json, log-tail.txt and outputs/ → local storage
set -euo pipefail
local_storage="${SKYPLAN_STORAGE#file://}"
opts=(-o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=${SKYPLAN_SSH_KNOWN_HOSTS_RUN:?}"
      -o ConnectTimeout=20 -P "$SKYPLAN_PORT")
remote_storage="$SKYPLAN_REMOTE_DIR/storage"

case "$1" in
  push)
    for up in $SKYPLAN_UPSTREAM; do
      if [ -d "$local_storage/$up" ]; then
        scp -r "${opts[@]}" "$local_storage/$up" "$SKYPLAN_REMOTE:$remote_storage/"
      fi
    done
    ;;
  pull)
    mkdir -p "$local_storage"
    tmp="$(mktemp -d "$local_storage/.pull-$SKYPLAN_SLUG.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    scp -r "${opts[@]}" "$SKYPLAN_REMOTE:$remote_storage/$SKYPLAN_SLUG" "$tmp/"
    rm -rf "${local_storage:?}/$SKYPLAN_SLUG"
    mv "$tmp/$SKYPLAN_SLUG" "$local_storage/$SKYPLAN_SLUG"
    ;;
  *)
    echo "usage: sync.sh push|pull" >&2
    exit 64
    ;;
esac
