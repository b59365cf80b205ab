#!/usr/bin/env bash
# The deid job for cron (deploy/cron/deid.cron): spark-submit jobs/deid_notes.py --reprocess affected on this
# machine, as `make run` submits it, its output appended to a dated log. deid.cron's flock keeps it to one at a time.
#   DEID_ROOT         the deid checkout (default: two folders up from this script)
#   DEID_CONFIG       the job config (default $DEID_ROOT/conf/local.yaml)
#   DEID_VENV         the venv with deid and pyspark (default $DEID_ROOT/.venv, as make run builds it)
#   DEID_LOG_DIR      where the logs go (default $DEID_ROOT/data/logs)
#   DEID_SECRET       the job's HMAC key; when unset, read from DEID_SECRET_FILE (default /etc/deid/secret), a file
#                     only its owner may read (chmod 600): the same key every night, or every note is re-processed
# Extra arguments go to the job (e.g. --optimize). Exit status: the job's; 2 when the key is missing.
set -euo pipefail

root="${DEID_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
config="${DEID_CONFIG:-$root/conf/local.yaml}"
venv="${DEID_VENV:-$root/.venv}"
log_dir="${DEID_LOG_DIR:-$root/data/logs}"
secret_file="${DEID_SECRET_FILE:-/etc/deid/secret}"

if [ -z "${DEID_SECRET:-}" ]; then
  if [ ! -r "$secret_file" ]; then
    echo "error: DEID_SECRET is not set and $secret_file cannot be read; put the job's HMAC key there (chmod 600)" >&2
    exit 2
  fi
  case "$(stat -c %a "$secret_file")" in
    [0-7]00) ;;
    *) echo "error: $secret_file can be read by others; chmod 600 $secret_file" >&2; exit 2 ;;
  esac
  DEID_SECRET="$(cat "$secret_file")"
  export DEID_SECRET
fi

mkdir -p "$log_dir"
exec >>"$log_dir/nightly-$(date +%Y%m%d).log" 2>&1
echo "$(date -Is) deid-nightly: config $config"
# Delta Lake's jars where `make install` fetched them (the native engine), as make run passes them; else delta-rs.
shopt -s nullglob
jar_files=("$root"/build/delta-jars/*.jar)
jars="$(IFS=,; echo "${jar_files[*]}")"
PATH="$venv/bin:$PATH" SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" spark-submit \
  --driver-java-options "-Dlog4j2.configurationFile=file:$root/conf/log4j2.properties" \
  ${jars:+--jars "$jars"} \
  "$root/jobs/deid_notes.py" --config "$config" --reprocess affected "$@"
