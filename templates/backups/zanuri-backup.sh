#!/bin/sh
# Managed by zanuri (backups); edits here are overwritten. Run by zanuri-backup.service (its timer).
# Settings come from /etc/zanuri/backups/backups.conf. Every artifact is written to a temp name and
# renamed when complete; with a GPG key the plaintext never touches the disk.
set -eu
umask 077
. /etc/zanuri/backups/backups.conf
stamp=$(date -u +%Y%m%d_%H%M%S)
mkdir -p -m 0700 -- "$BACKUP_DIR"
# The names written this run: store runs at the end of a pipeline, in a subshell, so they go to a file.
made=$(mktemp)
trap 'rm -f -- "$made"' EXIT
failed=0

# Writes stdin to $BACKUP_DIR/$1 (+ .gpg when encrypting), atomically.
store() {
  name=$1
  if [ -n "$GPG_KEY" ]; then name=$name.gpg; fi
  tmp=$BACKUP_DIR/.$name.partial
  if [ -n "$GPG_KEY" ]; then
    gpg --batch --no-tty --quiet --homedir /etc/zanuri/backups/gnupg --trust-model always --recipient-file "$GPG_KEY" --encrypt --output - > "$tmp"
  else
    cat > "$tmp"
  fi
  mv -f -- "$tmp" "$BACKUP_DIR/$name"
  echo "$name" >> "$made"
}

for db in $PG_DATABASES; do
  if [ "$db" = all ]; then
    set -- $(cd / && runuser -u postgres -- psql -XAtq -c "select datname from pg_database where datallowconn and datname <> 'template1' order by 1")
  else
    set -- $db
  fi
  for d in "$@"; do
    # pipefail is not POSIX: the dump's status travels through a file.
    st=$(mktemp)
    { (cd / && runuser -u postgres -- pg_dump --no-password -- "$d"; echo $? > "$st") | gzip -6; } | store "db_backup_${d}_$stamp.sql.gz"
    if [ "$(cat "$st")" != 0 ]; then echo "zanuri-backup: pg_dump $d failed" >&2; rm -f -- "$BACKUP_DIR/db_backup_${d}_$stamp.sql.gz"*; failed=1; fi
    rm -f -- "$st"
  done
done

if [ "$REDIS" = yes ]; then
  files=''
  for f in dump.rdb appendonlydir; do [ -e "/var/lib/redis/$f" ] && files="$files $f"; done
  if [ -n "$files" ]; then tar -C /var/lib/redis -czf - $files | store "redis_$stamp.tar.gz"; fi
fi

if [ -n "$CONFIG_PATHS" ]; then
  # --ignore-failed-read: a listed path that is not on this host is no error.
  tar --ignore-failed-read -czf - $CONFIG_PATHS 2>/dev/null | store "config_$stamp.tar.gz"
fi

# Retention: only artifacts strictly older than RETENTION_DAYS days (by modification time) go.
find "$BACKUP_DIR" -maxdepth 1 -type f \( -name 'db_backup_*' -o -name 'redis_*' -o -name 'config_*' \) -mmin "+$((RETENTION_DAYS * 1440))" -print -delete

if [ -n "$OFFSITE" ]; then
  # The generated key, the operator's known_hosts line only (no trust on first use), no prompts.
  set -- -i /etc/zanuri/backups/id_ed25519 -o UserKnownHostsFile=/etc/zanuri/backups/known_hosts -o StrictHostKeyChecking=yes \
    -o BatchMode=yes -o ConnectTimeout=30 -o ServerAliveInterval=15
  for name in $(cat "$made"); do
    # -p keeps the modification time (and 0600): the off-site copy ages exactly as the local one.
    timeout 600 scp -q -p -P "$OFFSITE_PORT" "$@" -- "$BACKUP_DIR/$name" "$OFFSITE:$OFFSITE_DIR/" || { echo "zanuri-backup: copying $name off-site failed" >&2; failed=1; }
  done
  # Off-site retention: the same rule on the off-site host, over the same key. OFFSITE_DIR is an
  # absolute path of letters, digits and ._- only (checked by zanuri), quoted for the remote shell.
  timeout 300 ssh -p "$OFFSITE_PORT" "$@" -- "$OFFSITE" \
    "find '$OFFSITE_DIR' -maxdepth 1 -type f -mmin +$((RETENTION_DAYS * 1440)) \\( -name 'db_backup_*' -o -name 'redis_*' -o -name 'config_*' \\) -print -delete" \
    || { echo "zanuri-backup: removing off-site artifacts older than $RETENTION_DAYS days failed" >&2; failed=1; }
fi
echo "zanuri-backup: wrote $(tr '\n' ' ' < "$made")"

# For the monitoring server: the outcome as metrics for node_exporter's textfile collector (Debian's
# directory), where node_exporter is installed; zanuri's alert rules fire when a run failed or the last
# good run is older than the schedule allows.
metrics=/var/lib/prometheus/node-exporter
if [ -d "$metrics" ]; then
  now=$(date +%s)
  last_ok=$(sed -n 's/^zanuri_backup_last_success_timestamp_seconds \([0-9]*\)$/\1/p' "$metrics/zanuri-backup.prom" 2>/dev/null || true)
  [ "$failed" = 0 ] && last_ok=$now
  { printf '# HELP zanuri_backup_last_run_timestamp_seconds When zanuri-backup last ran.\n# TYPE zanuri_backup_last_run_timestamp_seconds gauge\nzanuri_backup_last_run_timestamp_seconds %s\n' "$now"
    [ -z "$last_ok" ] || printf '# HELP zanuri_backup_last_success_timestamp_seconds When zanuri-backup last ran without an error.\n# TYPE zanuri_backup_last_success_timestamp_seconds gauge\nzanuri_backup_last_success_timestamp_seconds %s\n' "$last_ok"
    printf '# HELP zanuri_backup_failed 1 when the last run had an error.\n# TYPE zanuri_backup_failed gauge\nzanuri_backup_failed %s\n' "$failed"
    printf '# HELP zanuri_backup_artifacts Artifacts the last run wrote.\n# TYPE zanuri_backup_artifacts gauge\nzanuri_backup_artifacts %s\n' "$(grep -c . "$made" || true)"
    printf '# HELP zanuri_backup_max_age_seconds The age after which the last good run is overdue (from the schedule).\n# TYPE zanuri_backup_max_age_seconds gauge\nzanuri_backup_max_age_seconds %s\n' "$MAX_AGE_SECONDS"
  } > "$metrics/.zanuri-backup.prom.tmp" && chmod 644 "$metrics/.zanuri-backup.prom.tmp" && mv -f "$metrics/.zanuri-backup.prom.tmp" "$metrics/zanuri-backup.prom" || echo "zanuri-backup: could not write $metrics/zanuri-backup.prom" >&2
fi
exit $failed
