#!/usr/bin/env bash
# Moves task data between the run's storage on this machine and a pool host, with scp through
# the run's ssh-agent and the pinned host key (never trust-on-first-use).
#   push: the task's secrets (values from this environment), its staged workdir/, mounts/ and result-id,
#         and upstream tasks' status.json and outputs/ → host
#   pull: this task's status.json, log-tail.txt and outputs/ → local storage
set -euo pipefail
local_storage="${SKYPLAN_STORAGE#file://}"
opts=(-o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=${SKYPLAN_SSH_KNOWN_HOSTS_RUN:?}"
      -o ConnectTimeout=20 -P "$SKYPLAN_PORT")
remote_storage="$SKYPLAN_REMOTE_DIR/storage"

case "$1" in
  push)
    if [ -n "${SKYPLAN_SECRETS:-}" ]; then
      # Secret values go from this environment to a 0600 file in the task's directory on the
      # host, which node.sh reads and deletes before the task starts; they never pass through
      # Terraform (config, plan, state) and are never printed.
      secrets="$(umask 077 && mktemp)"
      trap 'rm -f "$secrets"' EXIT
      for name in $SKYPLAN_SECRETS; do
        if [ -n "${!name+x}" ]; then
          printf 'export %s=%q\n' "$name" "${!name}" >>"$secrets"
        fi
      done
      scp -p "${opts[@]}" "$secrets" "$SKYPLAN_REMOTE:$SKYPLAN_REMOTE_DIR/$SKYPLAN_SLUG/secrets.env"
    fi
    # The task's workdir, local file_mounts and result id, staged by `skyplan apply` into local
    # storage.
    staged_parts=()
    for part in workdir mounts result-id; do
      if [ -e "$local_storage/$SKYPLAN_SLUG/$part" ]; then
        staged_parts+=("$part")
      fi
    done
    if [ ${#staged_parts[@]} -gt 0 ]; then
      staged="$(mktemp -d)"
      trap 'rm -rf "$staged" "${secrets:-}"' EXIT
      mkdir "$staged/$SKYPLAN_SLUG"
      for part in "${staged_parts[@]}"; do
        cp -a "$local_storage/$SKYPLAN_SLUG/$part" "$staged/$SKYPLAN_SLUG/"
      done
      scp -r "${opts[@]}" "$staged/$SKYPLAN_SLUG" "$SKYPLAN_REMOTE:$remote_storage/"
    fi
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
