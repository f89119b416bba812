/**
 * Every shipped playbook (playbooks/*.yaml, the seed roles' playbooks the profiles name) dry-runs
 * against one real systemd target without error (needs root): one target, the playbooks one after
 * another; a dry run plans and changes nothing, which the last check confirms.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProfiles } from '../../src/profiles/load.js';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { operatorKeyArgs, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbookDir = new URL('../../playbooks/', import.meta.url);
const shipped = readdirSync(playbookDir).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, '')).sort();

let dir: string;
/**
 * What an operator must give a playbook on the command line (the values only they know): here a
 * throwaway signing key in place of NVIDIA's, a random cluster secret, a test domain.
 */
const required: Record<string, (t: TestTarget) => string[]> = {
  'load-balancer': () => ['--set', 'keepalived.virtualIp=10.213.0.250', '--set', 'keepalived.peers=["10.213.0.209"]', '--set', 'keepalived.authPass=drytest1'],
  'gpu-server': () => ['nvidia-driver', 'fabric-manager', 'cuda-toolkit', 'nvidia-container-toolkit'].flatMap((step) => ['--set', `${step}.repositoryKey=@${join(dir, 'key.asc')}`]),
  'redis-server': (t) => ['redis', 'redis-sentinel'].flatMap((step) => ['--set', `${step}.clusterSecret=@${join(dir, 'cluster.secret')}`]).concat(['--set', `redis-sentinel.primary=${JSON.stringify({ host: t.host, port: 6379 })}`]),
  'redis-cache': (t) => ['--set', `redis.clusterSecret=@${join(dir, 'cluster.secret')}`, '--set', `redis.bind=${JSON.stringify([t.host])}`],
  'web-app': () => ['--set', 'certbot.domain=web.zanuri.test', '--set', 'certbot.email=ops@zanuri.test'],
};

describe.skipIf(!can.ok && !process.env['CI'])('playbooks: a dry run of every shipped playbook on a real target (needs root)', () => {
  let target: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    dir = mkdtempSync(join(tmpdir(), 'zanuri-dry-'));
    writeFileSync(join(dir, 'cluster.secret'), `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const gpg = { ...process.env, GNUPGHOME: dir };
    execFileSync('gpg', ['--batch', '--passphrase', '', '--quick-gen-key', 'zanuri dry run <dry@zanuri.test>', 'ed25519', 'sign', '1d'], { env: gpg, stdio: 'ignore', timeout: 60_000 });
    writeFileSync(join(dir, 'key.asc'), execFileSync('gpg', ['--batch', '--armor', '--export'], { env: gpg, timeout: 60_000 }));
    await ensureAptProxy();
    [target] = (await startTargets(1)) as [TestTarget];
  }, 600_000);

  afterAll(async () => {
    await stopAllTargets();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every profile names a shipped playbook', async () => {
    const profiles = await loadProfiles({});
    const missing = profiles.flatMap((p) => (p.playbook && !shipped.includes(p.playbook) ? [`${p.id}: ${p.playbook}`] : []));
    expect(missing).toEqual([]);
  });

  it.each(shipped)('plans %s without error and changes nothing', async (name) => {
    const before = (await target.exec(['sh', '-c', 'dpkg-query -W -f "\\${Package}\\n" | sort | md5sum; find /etc -newer /etc/hostname -type f | sort | md5sum'])).stdout;
    const run = await zanuriProvision(target, ['--playbook', `playbooks/${name}.yaml`, ...operatorKeyArgs(target), ...(required[name]?.(target) ?? []), '--dry-run']);
    expect(run.host.error, `${run.stderr}\n${run.stdout.slice(0, 2000)}`).toBeUndefined();
    expect(run.host.steps.filter((s) => s.status === 'failed'), run.stderr).toEqual([]);
    expect(run.host.steps.length).toBeGreaterThan(0);
    const after = (await target.exec(['sh', '-c', 'dpkg-query -W -f "\\${Package}\\n" | sort | md5sum; find /etc -newer /etc/hostname -type f | sort | md5sum'])).stdout;
    expect(after, 'a dry run changes nothing').toBe(before);
  }, 300_000);
});
