/**
 * nginx and certbot on real systemd targets (needs root): nginx alone serves /health; then nginx +
 * certbot obtain a real certificate from Pebble (a local ACME server) by an HTTP-01 challenge that
 * Pebble validates against the target's nginx, and the target serves HTTPS with it.
 */
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { httpsGet, startPebble, type Pebble } from '../helpers/pebble.js';
import { fourCells, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = ['--playbook', 'test/integration/playbooks/web.yaml'];
const domain = 'web.zanuri.test';

function httpGet(host: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port: 80, path, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}${path}: timeout`)));
    req.end();
  });
}

/** The CLI as zanuriProvision drives it, without assuming a per-host report (a usage error has none). */
function zanuriRaw(target: TestTarget, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
  const argv = [bin, 'provision', '--json', '--yes', '-F', '/dev/null', '--known-hosts', target.knownHostsPath, '-i', target.privateKeyPath, '--host', `root@${target.host}`, ...args];
  return new Promise((resolve) => {
    execFile('node', argv, { timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

/** How many SSH logins the target's sshd has accepted so far. */
async function acceptedLogins(target: TestTarget): Promise<number> {
  const r = await target.exec(['journalctl', '--no-pager', '-o', 'cat', '-t', 'sshd']);
  return r.stdout.split('\n').filter((l) => l.startsWith('Accepted publickey')).length;
}

describe.skipIf(!can.ok && !process.env['CI'])('provision: nginx and certbot on real targets against Pebble (needs root)', () => {
  let web: TestTarget;
  let tls: TestTarget;
  let pebble: Pebble;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [web, tls] = (await startTargets(2)) as [TestTarget, TestTarget];
    pebble = await startPebble();
  });

  afterAll(async () => {
    await Promise.all([stopAllTargets(), pebble?.stop()]);
  });

  it('converges nginx alone in four cells; /health answers 200 "ok" from outside and the default site is gone', async () => {
    const [dry1, , , apply2] = await fourCells(web, [...playbook, '--only', 'nginx'], ['nginx']);
    const site = dry1.host.steps.find((s) => s.id === 'nginx')?.actions.find((a) => a.kind === 'put');
    expect(site?.diff).toContain('+    location = /health {');
    expect(apply2.host.steps.find((s) => s.id === 'nginx')?.why).toMatch(/nginx serves the zanuri site/);

    const health = await httpGet(web.host, '/health');
    expect(health).toEqual({ status: 200, body: 'ok\n' });
    const other = await httpGet(web.host, '/');
    expect(other.status, 'the rest is ours (404), not Debian\'s welcome page').toBe(404);
    expect((await web.exec(['test', '-e', '/etc/nginx/sites-enabled/default'])).exitCode, 'the default site is disabled').not.toBe(0);
    expect((await web.exec(['readlink', '/etc/nginx/sites-enabled/zanuri'])).stdout.trim()).toBe('/etc/nginx/sites-available/zanuri');
    expect((await web.exec(['systemctl', 'is-enabled', 'nginx.service'])).stdout.trim()).toBe('enabled');
  }, 900_000);

  it('puts the old site back when nginx -t fails after the new one is written, and nginx keeps serving', async () => {
    // Something else on the host breaks nginx's configuration: the step must not make it worse.
    await web.exec(['sh', '-c', 'printf "zanuri_test_bogus_directive on;\\n" > /etc/nginx/conf.d/zz-broken.conf']);
    try {
      const run = await zanuriProvision(web, [...playbook, '--only', 'nginx', '--set', 'nginx.serverName="other.zanuri.test"']);
      const step = run.host.steps.find((s) => s.id === 'nginx');
      expect(step?.status, run.stderr).toBe('rolled-back');
      expect(step?.why).toMatch(/validating \/etc\/nginx\/sites-available\/zanuri in place/);
      expect(run.code).toBe(6);
      expect((await web.exec(['grep', '-c', 'server_name web.zanuri.test;', '/etc/nginx/sites-available/zanuri'])).stdout.trim()).toBe('1');
    } finally {
      await web.exec(['rm', '-f', '/etc/nginx/conf.d/zz-broken.conf']);
    }
    expect(await httpGet(web.host, '/health')).toEqual({ status: 200, body: 'ok\n' });
    const again = await zanuriProvision(web, [...playbook, '--only', 'nginx', '--dry-run']);
    expect(again.host.steps.find((s) => s.id === 'nginx')?.status, 'still converged').toBe('unchanged');
  }, 300_000);

  it('obtains a certificate from Pebble through nginx in four cells; HTTPS serves /health with it and the renewal timer is active', async () => {
    await pebble.addA(domain, tls.host);
    const caBundle = await pebble.installCa(tls);
    const args = [...playbook, '--set', `certbot.server=${JSON.stringify(pebble.directoryUrl)}`, '--set', `certbot.caBundle=${JSON.stringify(caBundle)}`];
    let runs;
    try {
      runs = await fourCells(tls, args, ['nginx', 'certbot']);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${pebble.logs()}`);
    }
    const [dry1, apply1, , apply2] = runs;
    expect(dry1.host.steps.find((s) => s.id === 'certbot')?.why).toMatch(/no certificate for web\.zanuri\.test yet/);
    const certonly = apply1.host.steps.find((s) => s.id === 'certbot')?.actions.find((a) => a.summary.includes('certbot certonly'));
    expect(certonly?.summary).toContain(`REQUESTS_CA_BUNDLE=${caBundle}`);
    expect(certonly?.summary).toContain('--webroot');
    expect(apply2.host.steps.find((s) => s.id === 'certbot')?.why).toMatch(/valid for more than 30 days/);

    // Real HTTPS: the name checked against the Pebble-issued certificate, trusting only Pebble's root
    // (like curl --resolve web.zanuri.test:443:IP --cacert root.pem https://web.zanuri.test/health).
    const root = await pebble.issuingRoot();
    const health = await httpsGet(`https://${domain}/health`, root, { host: tls.host, servername: domain });
    expect(health).toEqual({ status: 200, body: 'ok\n' });
    await expect(httpsGet(`https://${domain}/health`, pebble.caPem, { host: tls.host, servername: domain }), 'not trusted without Pebble\'s root').rejects.toThrow();

    expect((await tls.exec(['systemctl', 'is-active', 'certbot.timer'])).stdout.trim()).toBe('active');
    expect((await tls.exec(['systemctl', 'is-enabled', 'certbot.timer'])).stdout.trim()).toBe('enabled');
    expect((await tls.exec(['test', '-x', '/etc/letsencrypt/renewal-hooks/deploy/zanuri-reload-nginx'])).exitCode).toBe(0);
    // Renewals by the timer trust Pebble's HTTPS too.
    expect((await tls.exec(['systemctl', 'show', '-p', 'Environment', 'certbot.service'])).stdout).toContain(`REQUESTS_CA_BUNDLE=${caBundle}`);
    // certbot's nginx installer never ran: the nginx step's site is exactly as it wrote it.
    expect((await tls.exec(['grep', '-c', 'letsencrypt', '/etc/nginx/sites-available/zanuri'])).stdout.trim()).toBe('0');
    expect((await tls.exec(['nginx', '-t', '-q'])).exitCode).toBe(0);
  }, 900_000);

  it('refuses a hostile domain with exit 2 before any connection', async () => {
    const before = await acceptedLogins(web);
    expect(before, 'the earlier runs\' logins are in the journal: the count means something').toBeGreaterThan(0);
    for (const bad of ['a;reboot', '$(id)', 'web.zanuri.test\nreboot', 'WEB.zanuri.test\'', '*.zanuri.test']) {
      for (const set of [`certbot.domain=${JSON.stringify(bad)}`, `nginx.serverName=${JSON.stringify(bad)}`]) {
        const run = await zanuriRaw(web, [...playbook, '--set', set]);
        expect(run.code, `${set}: ${run.stderr}`).toBe(2);
        expect(JSON.parse(run.stdout).error.message).toMatch(/(certbot: domain|nginx: serverName) must be a DNS name/);
      }
    }
    expect(await acceptedLogins(web), 'no SSH login happened').toBe(before);
  }, 300_000);
});
