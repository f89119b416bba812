/**
 * `zanuri cloud-init` proven by a real first boot (needs root): a systemd-nspawn machine with Debian's
 * cloud-init package and a NoCloud seed (/var/lib/cloud/seed/nocloud/) boots with the user-data
 * zanuri wrote, fetches the Node runtime from "the operator's URL" (this test host's own node binary,
 * served on the bridge and pinned by its real sha256), converges itself to a site profile (the
 * whole hardened playbook, baseline included, with one of the site's own templates), and a later
 * `zanuri provision --host` over SSH finds nothing to change. A second machine gets a wrong sha256
 * and must fail cloud-init without running anything.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { ensureCloudRootfs } from '../helpers/cloud-rootfs.js';
import { BRIDGE_IP, ensureHostNetwork } from '../helpers/network.js';
import { zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, clientPublicKey, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';
// @ts-expect-error: a plain ESM build script without types
import { bundle } from '../../scripts/bundle.mjs';

const can = canRunTargets();
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
// A site profile file: the hardened playbook (every step, baseline included) and a template of the site's own.
const siteDir = mkdtempSync(join(tmpdir(), 'zanuri-first-boot-site-'));
const profile = join(siteDir, 'site-first-boot.yaml');
const siteNtp = '# Our site (overrides timesync/timesyncd.conf)\n[Time]\nFallbackNTP=ntp.site.example\n';
mkdirSync(join(siteDir, 'overrides', 'timesync'), { recursive: true });
writeFileSync(join(siteDir, 'overrides', 'timesync', 'timesyncd.conf'), siteNtp);
writeFileSync(profile, [
  'id: site-first-boot', 'system: Site', 'tier: production', 'rank: 1', 'title: Our hardened hosts', "source: 'our own'",
  'playbook: hardened', 'templates: ./overrides', 'requirements:', '  - { id: cores, check: cpu.cores, level: required, min: 1, source: ours }', '',
].join('\n'));
const skip: string[] = [];
const nodeBinary = process.execPath;

function zanuri(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { timeout: 120_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const seed = (userData: string, id: string): Record<string, string> => ({
  '/var/lib/cloud/seed/nocloud/user-data': userData,
  '/var/lib/cloud/seed/nocloud/meta-data': `instance-id: ${id}\nlocal-hostname: ${id}\n`,
});

describe.skipIf(!can.ok && !process.env['CI'])('a cloud-init first boot with zanuri\'s user-data (needs root)', () => {
  let server: Server;
  let nodeUrl: string;
  let good: TestTarget;
  let bad: TestTarget;
  let userData: string;
  let publicKey: string;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureHostNetwork();
    const [lowerDir] = await Promise.all([ensureCloudRootfs(), ensureAptProxy(), bundle()]);
    // "The operator's URL": this host's node binary, on the bridge the targets reach.
    const node = readFileSync(nodeBinary);
    server = createServer((req, res) => {
      if (req.url === '/node') res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(node);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, BRIDGE_IP, resolve));
    nodeUrl = `http://${BRIDGE_IP}:${(server.address() as AddressInfo).port}/node`;
    const sha = createHash('sha256').update(node).digest('hex');

    // The operator's key: this test process's client key, which root of every target accepts too.
    publicKey = await clientPublicKey();
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-first-boot-'));
    writeFileSync(join(dir, 'operator.pub'), `${publicKey}\n`);

    const out = await zanuri(['cloud-init', '--profile', profile, '--ssh-key', join(dir, 'operator.pub'), '--node-url', nodeUrl, '--node-sha256', sha, ...skip]);
    expect(out.code, out.stderr).toBe(0);
    userData = out.stdout;
    const wrong = await zanuri(['cloud-init', '--profile', profile, '--ssh-key', join(dir, 'operator.pub'), '--node-url', nodeUrl, '--node-sha256', '0'.repeat(64), ...skip]);
    expect(wrong.code, wrong.stderr).toBe(0);

    [good, bad] = (await Promise.all([
      startTargets(1, { lowerDir, files: seed(userData, 'zanuri-first-boot') }),
      startTargets(1, { lowerDir, files: seed(wrong.stdout, 'zanuri-bad-sha') }),
    ])).flat() as [TestTarget, TestTarget];
  }, 900_000);

  afterAll(async () => {
    await stopAllTargets();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('writes user-data that Debian\'s cloud-init accepts (cloud-init schema)', async () => {
    expect(userData.startsWith('#cloud-config\n')).toBe(true);
    // The site template travels as one more write_files entry, which the schema check covers too.
    expect(userData).toContain('- path: /opt/zanuri/site-templates/timesync/timesyncd.conf');
    const schema = await good.exec(['cloud-init', 'schema', '--config-file', '/var/lib/cloud/seed/nocloud/user-data']);
    expect(schema.exitCode, schema.stdout + schema.stderr).toBe(0);
    expect(schema.stdout).toMatch(/Valid cloud-config/);
  });

  it('converges the machine on its first boot, reports it, and cloud-init ends done', async () => {
    const status = await good.exec(['cloud-init', 'status', '--wait', '--long'], { timeoutMs: 900_000 });
    const output = (await good.exec(['cat', '/var/log/cloud-init-output.log'])).stdout;
    expect(status.exitCode, `${status.stdout}\n${output.slice(-4000)}`).toBe(0);
    expect(status.stdout).toMatch(/status: done/);
    expect(output).toMatch(/zanuri first boot: converged to profile site-first-boot\.yaml: \d+ changed, 0 unchanged, 0 failed; report in \/var\/log\/zanuri\/report\.json/);
    // Debian's cloud-init found nothing to object to in the user-data or the image config.
    expect((await good.exec(['cat', '/var/log/cloud-init.log'])).stdout).not.toMatch(/Invalid cloud-config|schema\.py\[WARNING\]/);
    expect(readFileSync(good.logPath, 'utf8')).toMatch(/zanuri first boot: converged to profile site-first-boot\.yaml/);
    const report = JSON.parse((await good.exec(['cat', '/var/log/zanuri/report.json'])).stdout) as { exitCode: number; hosts: Array<{ host: string; ok: boolean; steps: Array<{ id: string; status: string }> }> };
    expect(report.exitCode).toBe(0);
    expect(report.hosts[0]?.ok).toBe(true);
    expect(report.hosts[0]?.steps.map((s) => s.status).filter((s) => s !== 'changed')).toEqual([]);
    expect(report.hosts[0]?.steps.map((s) => s.id)).toContain('baseline');
    expect((await good.exec(['ufw', 'status'])).stdout).toMatch(/Status: active/);
    // The site's own template, shipped in the user-data, is what first boot wrote.
    expect((await good.exec(['cat', '/etc/systemd/timesyncd.conf.d/50-zanuri.conf'])).stdout).toBe(siteNtp);
    // baseline's file integrity: AIDE's tools (aide-common) are there and its database was built.
    expect((await good.exec(['test', '-s', '/var/lib/aide/aide.db'])).exitCode).toBe(0);
    // The operator's key reached the deploy user.
    expect((await good.exec(['cat', '/home/deploy/.ssh/authorized_keys'])).stdout).toContain(publicKey);
  }, 900_000);

  it('leaves a machine on which zanuri provision --host finds nothing to change', async () => {
    // The hardened playbook closes root's SSH login once the deploy user is proven: the operator comes back as deploy.
    const again = await zanuriProvision(good, ['--profile', profile, ...skip, '--set', `deploy-user.authorizedKeys=${JSON.stringify([publicKey])}`], 'deploy');
    expect(again.code, again.stderr).toBe(0);
    expect(again.host.steps.filter((s) => s.status !== 'unchanged'), again.stderr).toEqual([]);
    expect(again.host.summary.changed).toBe(0);
  }, 300_000);

  it('fails cloud-init and runs nothing when the Node runtime does not have the pinned sha256', async () => {
    const status = await bad.exec(['cloud-init', 'status', '--wait', '--long'], { timeoutMs: 300_000 });
    expect(status.exitCode).not.toBe(0);
    expect(status.stdout).toMatch(/status: error/);
    const output = (await bad.exec(['cat', '/var/log/cloud-init-output.log'])).stdout;
    expect(output).toMatch(/zanuri first boot: FAILED: http:\/\/[0-9.:]+\/node does not have sha256 0{64}: not running it/);
    expect((await bad.exec(['test', '-e', '/opt/zanuri/node/bin/node'])).exitCode).not.toBe(0);
    expect((await bad.exec(['test', '-e', '/var/log/zanuri/report.json'])).exitCode).not.toBe(0);
  }, 300_000);
});
