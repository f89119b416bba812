#!/bin/sh
# zanuri first boot, written by `zanuri cloud-init` {{version}}: installs the pinned Node runtime and the
# pinned zanuri archive, waits for apt/dpkg, converges this machine, and fails cloud-init when a step fails.
# Everything it executes is pinned by sha256 below; a mismatch stops it before anything runs.
set -u
umask 077
prefix=/opt/zanuri
logdir=/var/log/zanuri
node_url={{nodeUrl}}
node_sha256={{nodeSha256}}
node_kind={{nodeKind}}
archive_url={{archiveUrl}}
archive_sha256={{archiveSha256}}
say() { echo "zanuri first boot: $*"; }
die() { say "FAILED: $*"; exit 1; }
# site-templates: the site profile's overriding templates, when it has any (written by cloud-init; may be empty).
mkdir -p "$prefix" "$prefix/site-templates" "$logdir" || die "cannot create $prefix or $logdir"
chmod 0750 "$logdir"

# Downloads with python3 (cloud-init's own runtime, so always there), each under a deadline.
fetch() {
  timeout 600 python3 -c 'import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=60) as r, open(sys.argv[2], "wb") as f:
    while True:
        b = r.read(1 << 20)
        if not b: break
        f.write(b)' "$1" "$2"
}
verify() { echo "$2  $1" | sha256sum -c --status; }

# The Node runtime: a pinned binary or official tarball from the operator's URL.
node="$prefix/node/bin/node"
if [ ! -x "$node" ] || [ "$(cat "$prefix/node/.sha256" 2>/dev/null)" != "$node_sha256" ]; then
  say "fetching the Node runtime from $node_url"
  rm -rf "$prefix/node" "$prefix/node.download" && mkdir -p "$prefix/node/bin" || die "cannot create $prefix/node"
  fetch "$node_url" "$prefix/node.download" || die "cannot download $node_url"
  verify "$prefix/node.download" "$node_sha256" || die "$node_url does not have sha256 $node_sha256: not running it"
  case $node_kind in
    binary) mv "$prefix/node.download" "$node" ;;
    tarball) tar -xf "$prefix/node.download" -C "$prefix/node" --strip-components=1 --no-same-owner && rm -f "$prefix/node.download" || die "cannot unpack $node_url" ;;
  esac
  chmod 0755 "$node"
  echo "$node_sha256" > "$prefix/node/.sha256"
fi
"$node" --version >/dev/null || die "the Node runtime from $node_url does not run on this machine ($(uname -m))"

# zanuri: one archive (the bundled CLI, profiles, playbooks, templates), written by cloud-init or fetched.
archive="$prefix/zanuri.tar.gz"
if [ -n "$archive_url" ]; then
  say "fetching zanuri from $archive_url"
  fetch "$archive_url" "$archive" || die "cannot download $archive_url"
fi
verify "$archive" "$archive_sha256" || die "$archive does not have sha256 $archive_sha256: not running it"
rm -rf "$prefix/app" && mkdir -p "$prefix/app" && tar -xzf "$archive" -C "$prefix/app" --no-same-owner || die "cannot unpack $archive"

# cloud-init, apt-daily and unattended-upgrades hold the apt/dpkg locks around first boot: wait for them.
say "waiting for the apt/dpkg locks"
timeout 1200 python3 -c 'import fcntl, os, sys, time
locks = ["/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock", "/var/cache/apt/archives/lock"]
while True:
    busy = []
    for path in locks:
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(fd, fcntl.LOCK_UN)
        except OSError:
            busy.append(path)
        finally:
            os.close(fd)
    if not busy: sys.exit(0)
    time.sleep(2)' || die "the apt/dpkg locks were still held after 20 minutes"

say "converging this machine to {{what}}"
timeout 7200 "$node" "$prefix/app/dist/bundle/zanuri.mjs" provision --local --yes --json {{args}} > "$logdir/report.json.tmp"
rc=$?
mv "$logdir/report.json.tmp" "$logdir/report.json"
summary=$("$node" -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const h = (r.hosts || [])[0]; const e = h && h.error || r.error;
console.log(e ? `${e.code}: ${e.message}` : `${h.summary.changed} changed, ${h.summary.unchanged} unchanged, ${h.summary.failed} failed`)' "$logdir/report.json" 2>/dev/null)
if [ "$rc" -eq 0 ]; then
  say "converged to {{what}}: ${summary:-see the report}; report in $logdir/report.json"
else
  say "FAILED (exit $rc): ${summary:-no report}; report in $logdir/report.json, log in /var/log/cloud-init-output.log"
fi
exit "$rc"
