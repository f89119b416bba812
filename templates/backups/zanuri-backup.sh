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
  for name in $(cat "$made"); do
    timeout 600 scp -q -B -i /etc/zanuri/backups/id_ed25519 -P "$OFFSITE_PORT" -o UserKnownHostsFile=/etc/zanuri/backups/known_hosts \
      -o StrictHostKeyChecking=yes -o ConnectTimeout=30 -o ServerAliveInterval=15 -- "$BACKUP_DIR/$name" "$OFFSITE:$OFFSITE_DIR/" || { echo "zanuri-backup: copying $name off-site failed" >&2; failed=1; }
  done
fi
echo "zanuri-backup: wrote $(tr '\n' ' ' < "$made")"
exit $failed
