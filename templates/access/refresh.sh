#!/usr/bin/env bash
# skyplan cross-cloud storage access (README "Cross-cloud storage access"). The machine proves
# who it is with a short-lived token from its own cloud's metadata service; the storage cloud's
# STS exchanges it for short-lived credentials. No key is ever written.
#
# /etc/skyplan/access.env (written by Terraform at launch) holds the settings; they are the
# standard variables the SDKs, CLIs and rclone read: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE,
# GOOGLE_APPLICATION_CREDENTIALS (an external_account credential configuration),
# AZURE_CLIENT_ID + AZURE_TENANT_ID + AZURE_FEDERATED_TOKEN_FILE.
#
# Without arguments: refresh the token file (the skyplan-access timer runs this every 10 minutes;
# the tokens live one hour). With arguments: refresh, then run them with the settings exported.
set -euo pipefail

set -a
# shellcheck disable=SC1090,SC1091
. "${SKYPLAN_ACCESS_ENV:-/etc/skyplan/access.env}"
set +a

fetch() { curl -fsS --retry 5 --retry-connrefused --max-time 20 "$@"; }
# The metadata servers (overridable for tests only).
gce_metadata="${SKYPLAN_ACCESS_GCE_METADATA:-http://metadata.google.internal}"
azure_imds="${SKYPLAN_ACCESS_AZURE_IMDS:-http://169.254.169.254}"

token=""
case "$SKYPLAN_ACCESS_SOURCE" in
  gcp-metadata)  # Google-signed ID token of the VM's service account (sub = its unique id)
    token="$(fetch -H 'Metadata-Flavor: Google' --get --data-urlencode "audience=$SKYPLAN_ACCESS_AUDIENCE" \
      --data-urlencode format=full \
      "$gce_metadata/computeMetadata/v1/instance/service-accounts/default/identity")" ;;
  azure-imds)  # Entra ID token of the VM's user-assigned managed identity (sub = its principal id)
    token="$(fetch -H 'Metadata: true' --get --data-urlencode api-version=2018-02-01 \
      --data-urlencode "resource=$SKYPLAN_ACCESS_AUDIENCE" --data-urlencode "client_id=$SKYPLAN_ACCESS_IDENTITY" \
      "$azure_imds/metadata/identity/oauth2/token" \
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')" ;;
  aws-signed) ;;  # Google's STS checks a signed sts:GetCallerIdentity request: no token file
  *) echo "skyplan access: unknown SKYPLAN_ACCESS_SOURCE '$SKYPLAN_ACCESS_SOURCE'" >&2; exit 1 ;;
esac

umask 077
mkdir -p "$(dirname "${SKYPLAN_ACCESS_TOKEN_FILE:-/run/skyplan/access/token}")" \
  "$(dirname "${GOOGLE_APPLICATION_CREDENTIALS:-/run/skyplan/access/x}")"
if [ -n "$token" ]; then
  printf '%s' "$token" > "$SKYPLAN_ACCESS_TOKEN_FILE.new"
  mv -f "$SKYPLAN_ACCESS_TOKEN_FILE.new" "$SKYPLAN_ACCESS_TOKEN_FILE"
fi

# Google: the credential configuration of Workload Identity Federation ("Configure Workload
# Identity Federation with AWS or Azure", IAM docs), read by the client libraries, gcloud and rclone.
if [ -n "${SKYPLAN_GCP_AUDIENCE:-}" ] && [ ! -s "$GOOGLE_APPLICATION_CREDENTIALS" ]; then
  python3 - "$GOOGLE_APPLICATION_CREDENTIALS" <<'PY'
import json, os, sys
source = os.environ["SKYPLAN_ACCESS_SOURCE"]
if source == "aws-signed":
    imds = "http://169.254.169.254/latest"
    cred = {"environment_id": "aws1", "region_url": f"{imds}/meta-data/placement/availability-zone",
            "url": f"{imds}/meta-data/iam/security-credentials",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            "imdsv2_session_token_url": f"{imds}/api/token"}
    kind = "urn:ietf:params:aws:token-type:aws4_request"
else:
    cred = {"file": os.environ["SKYPLAN_ACCESS_TOKEN_FILE"]}
    kind = "urn:ietf:params:oauth:token-type:jwt"
config = {"type": "external_account", "audience": os.environ["SKYPLAN_GCP_AUDIENCE"],
          "subject_token_type": kind, "token_url": "https://sts.googleapis.com/v1/token",
          "credential_source": cred}
with open(sys.argv[1], "w") as out:
    json.dump(config, out)
PY
fi

if [ "$#" -gt 0 ]; then
  exec "$@"
fi
