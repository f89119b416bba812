/**
 * Secrets never leave their 0600 files, on a real systemd target (needs root). A real run
 * generates PostgreSQL's role password and derives Redis's ACL passwords from a cluster secret the
 * operator supplies (@FILE); while it runs (dry run, apply, the converged runs, NDJSON events and
 * the plain progress lines), every process's command line is sampled on this machine and inside the
 * target, and afterwards every line zanuri printed, the JSON reports, the target's journal, shell
 * histories, logs and /var/lib/zanuri/backup are searched: no generated or supplied secret appears
 * in any of them. The same run carries a PostgreSQL setting made of shell syntax, accepted as free
 * text: a marker file proves no injected command ran on either side.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { fourCells, type ProvisionRun } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const playbook = 'test/integration/playbooks/secrets.yaml';
const marker = `/tmp/zanuri-pwned-secrets-${process.pid}`;
/** Accepted (free text, single-quoted in postgresql.conf); it must reach the server as text and run nowhere. */
const hostileSetting = `'; touch ${marker}-quote; echo $(touch ${marker}-subst) \`touch ${marker}-tick\` '`;

/** Samples the command line of every process on this machine until stopped: what `ps` would have shown anyone. */
function sampleHere(): { stop: () => Promise<Set<string>>; rounds: () => number } {
  const seen = new Set<string>();
  let rounds = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const pids = (await readdir('/proc')).filter((n) => /^\d+$/.test(n));
      await Promise.all(pids.map(async (pid) => {
        const line = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (line) seen.add(line.replaceAll('\0', ' '));
      }));
      rounds += 1;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return { stop: async () => { running = false; await loop; return seen; }, rounds: () => rounds };
}

/** The same inside the target, with its own perl (Debian's perl-base): until /run/zanuri-sampling is removed. */
const targetSampler = `touch /run/zanuri-sampling
exec perl -e 'my %seen; my $n = 0; while (-e "/run/zanuri-sampling") { for my $f (glob "/proc/[0-9]*/cmdline") { open(my $h, "<", $f) or next; local $/; my $c = <$h>; next unless defined $c && length $c; $c =~ tr/\\0/ /; $seen{$c} = 1 } $n++; select(undef, undef, undef, 0.02) } print "rounds $n\\n"; print "$_\\n" for sort keys %seen'`;

function zanuri(target: TestTarget, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = [bin, 'provision', '--yes', '-F', '/dev/null', '--known-hosts', target.knownHostsPath, '-i', target.privateKeyPath, '--host', `root@${target.host}`, ...args];
  return new Promise((resolve) => {
    execFile('node', argv, { timeout: 900_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

describe.skipIf(!can.ok && !process.env['CI'])('secrets never reach argv, logs, reports, the journal, history or backups (needs root)', () => {
  let target: TestTarget;
  let dir: string;
  let clusterSecretFile: string;
  let clusterSecret: string;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    dir = mkdtempSync(join(tmpdir(), 'zanuri-secrets-'));
    clusterSecret = randomBytes(32).toString('hex');
    clusterSecretFile = join(dir, 'cluster.secret');
    writeFileSync(clusterSecretFile, `${clusterSecret}\n`);
    chmodSync(clusterSecretFile, 0o600);
    await ensureAptProxy();
    [target] = (await startTargets(1)) as [TestTarget];
  }, 600_000);

  afterAll(async () => {
    await stopAllTargets();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the generated and the supplied secrets out of every command line, output, log, history and backup, and runs no injected command', async () => {
    const args = [
      '--playbook', playbook,
      '--set', `postgresql.settings=${JSON.stringify({ log_line_prefix: hostileSetting })}`,
      '--set', `redis.bind=${JSON.stringify([target.host])}`, '--set', `redis.clusterSecret=@${clusterSecretFile}`,
    ];
    const here = sampleHere();
    const there = target.exec(['sh', '-c', targetSampler], { timeoutMs: 1_800_000 });
    const outputs: string[] = [];
    let runs: ProvisionRun[];
    try {
      runs = await fourCells(target, args, ['postgresql', 'redis']);
      // The converged host once more with NDJSON events, and once with the plain progress lines on stderr.
      for (const extra of [['--json-events'], []]) {
        const run = await zanuri(target, [...args, ...extra]);
        expect(run.code, run.stderr).toBe(0);
        outputs.push(run.stdout, run.stderr);
      }
      expect(outputs[3], 'progress lines name the steps').toMatch(/postgresql\s+ok/);
    } finally {
      await target.exec(['rm', '-f', '/run/zanuri-sampling']);
    }
    const seenHere = await here.stop();
    const sampled = await there;
    expect(sampled.exitCode, sampled.stderr).toBe(0);
    const seenThere = sampled.stdout.split('\n');
    for (const run of runs) outputs.push(run.stdout, run.stderr);

    // The secrets, read from their files on the target (and the one the operator supplied).
    const files = await target.exec(['sh', '-c', 'for f in /etc/zanuri/postgresql/app.password /etc/zanuri/redis/*.password; do printf "%s %s\\n" "$(stat -c "%a %U" "$f")" "$(cat "$f")"; done']);
    expect(files.exitCode, files.stderr).toBe(0);
    const secrets = [clusterSecret];
    for (const line of files.stdout.trim().split('\n')) {
      const [mode, owner, value] = line.split(' ');
      expect(`${mode} ${owner}`, line.replace(value ?? '', '***')).toBe('600 root');
      expect(value?.length ?? 0).toBeGreaterThanOrEqual(16);
      secrets.push(value as string);
    }
    expect(secrets.length, 'postgresql app, redis admin, app, replica and sentinel, and the cluster secret').toBeGreaterThanOrEqual(5);
    // They are real: Redis lets the app user in with its password (given through the environment, not argv).
    const ping = await target.exec(['sh', '-c', 'REDISCLI_AUTH=$(cat /etc/zanuri/redis/app.password) timeout 20 redis-cli --no-auth-warning --user app -h "$1" PING', 'sh', target.host]);
    expect(ping.stdout.trim(), ping.stderr).toBe('PONG');

    // The samplers saw the run: zanuri here, zanuri's commands there.
    expect(here.rounds()).toBeGreaterThan(50);
    expect([...seenHere].some((c) => c.includes('bin/zanuri.js provision'))).toBe(true);
    expect(Number(/^rounds (\d+)$/m.exec(sampled.stdout)?.[1] ?? 0)).toBeGreaterThan(50);
    expect(seenThere.some((c) => c.includes('zanuri-put')), 'the target sampler saw zanuri write a file').toBe(true);

    // The journal, shell histories, logs and the backups zanuri keeps, searched on the target (the secrets on stdin, never in argv).
    // The list of secrets goes to the target as a 0600 file through stdin, then the search reads it.
    const put = await target.exec(['sh', '-c', 'umask 077; cat > /root/zanuri-secrets.list'], { stdin: `${secrets.join('\n')}\n` });
    expect(put.exitCode).toBe(0);
    const found = await target.exec(['sh', '-c', [
      'j=$(mktemp)',
      'journalctl --no-pager -q -o cat > "$j" 2>/dev/null',
      'echo "journal lines $(wc -l < "$j")"',
      'for f in "$j" /root/.bash_history /root/.sh_history /home/*/.bash_history /var/lib/postgresql/.psql_history /root/.rediscli_history; do [ -f "$f" ] && grep -lF -f "$0" "$f"; done',
      'grep -rlF -f "$0" /var/log /var/lib/zanuri/backup /tmp /var/tmp 2>/dev/null',
      'echo "backups $(find /var/lib/zanuri/backup -type f 2>/dev/null | wc -l)"',
      // The control: the same search finds the secrets in their own files.
      'echo "control $(grep -rlF -f "$0" /etc/zanuri | wc -l)"',
      'rm -f "$j" "$0"',
      'true',
    ].join('\n'), '/root/zanuri-secrets.list']);
    const lines = found.stdout.trim().split('\n');
    expect(Number(/^journal lines (\d+)$/m.exec(found.stdout)?.[1] ?? 0), 'the journal was read').toBeGreaterThan(100);
    expect(Number(/^backups (\d+)$/m.exec(found.stdout)?.[1] ?? 0), 'zanuri kept backups of the files it replaced').toBeGreaterThan(0);
    expect(Number(/^control (\d+)$/m.exec(found.stdout)?.[1] ?? 0), 'the search finds the secrets in their own files').toBeGreaterThanOrEqual(5);
    expect(lines.filter((l) => !/^(?:journal lines|backups|control) \d+$/.test(l)), 'files on the target that hold a secret').toEqual([]);

    for (const [i, secret] of secrets.entries()) {
      const name = i === 0 ? 'the supplied cluster secret' : `generated secret ${i}`;
      expect(outputs.filter((o) => o.includes(secret)).length, `${name} in zanuri's output`).toBe(0);
      expect([...seenHere].filter((c) => c.includes(secret)), `${name} in a command line on this machine`).toEqual([]);
      expect(seenThere.filter((c) => c.includes(secret)), `${name} in a command line on the target`).toEqual([]);
    }

    // The hostile setting reached the server as text, and nothing it holds ran, here or there.
    const shown = await target.exec(['runuser', '-u', 'postgres', '--', 'psql', '-XAtq', '-c', "select setting from pg_file_settings where name = 'log_line_prefix' and applied"]);
    expect(shown.stdout.replace(/\n$/, '')).toBe(hostileSetting.slice(1, -1));
    const markers = await target.exec(['sh', '-c', 'ls -d "$0"* 2>/dev/null; true', marker]);
    expect(markers.stdout.trim(), 'an injected command ran on the target').toBe('');
    for (const suffix of ['-quote', '-subst', '-tick']) expect(existsSync(`${marker}${suffix}`), 'an injected command ran on this machine').toBe(false);
  }, 1_800_000);
});
