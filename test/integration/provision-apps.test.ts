/**
 * The application runtimes on real systemd targets (needs root), each behind nginx, in four cells:
 *
 * python-app: a tiny WSGI application, built here as a real wheel and served from a PEP 503 index on
 * the bridge (targets have no PyPI), installed by pip from that index (pinned by hash) into the venv,
 * which sees Debian's python3-gunicorn through --system-site-packages; gunicorn runs it as the
 * app user, with the environment file the operator gives, and answers through nginx.
 *
 * node-app: PM2 at its pinned version from an npm registry on the bridge that forwards to the real
 * registry.npmjs.org (targets cannot reach it; this controller can); a small HTTP server deployed by
 * the test runs under PM2 as the app user, answers through nginx, and comes back with new processes
 * after the PM2 unit is restarted (PM2 resurrects its saved list).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveNpmRegistry, servePythonIndex, wheel, type Served } from '../helpers/app-registries.js';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { fourCells, zanuriProvision, type ProvisionRun } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();

function get(host: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port: 80, path, timeout: 15_000 }, (res) => {
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

async function until<T>(what: string, seconds: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== null) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`${what}: not within ${seconds} s${last ? ` (${String(last)})` : ''}`);
}

/** The listening sockets of a port inside the target: local addresses only. */
async function listeners(t: TestTarget, port: number): Promise<string[]> {
  const ss = await t.exec(['ss', '-Hltn', `sport = :${port}`]);
  return ss.stdout.trim().split('\n').filter(Boolean).map((l) => l.trim().split(/\s+/)[3] ?? '');
}

const wsgiSource = `import os, pwd

def app(environ, start_response):
    user = pwd.getpwuid(os.getuid()).pw_name
    secret = os.environ.get('SECRET_KEY', '')
    body = ('zanuri_hello user=%s greeting=%s secret-length=%d path=%s\\n' % (user, os.environ.get('GREETING', '-'), len(secret), environ.get('PATH_INFO'))).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(body)))])
    return [body]
`;

const nodeServer = `'use strict';
const http = require('http');
const os = require('os');
const started = Date.now();
http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ pid: process.pid, user: os.userInfo().username, env: process.env.NODE_ENV, started, path: req.url }) + '\\n');
}).listen(Number(process.env.PORT), process.env.HOST);
`;

describe.skipIf(!can.ok && !process.env['CI'])('provision: application runtimes behind nginx on real targets (needs root)', () => {
  let py: TestTarget;
  let node: TestTarget;
  let dir: string;
  let index: Served;
  let registry: Served;
  const secret = randomBytes(24).toString('hex');

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    dir = mkdtempSync(join(tmpdir(), 'zanuri-apps-'));
    await ensureAptProxy();
    [py, node] = (await startTargets(2)) as [TestTarget, TestTarget];
    const hello = wheel('zanuri-hello', '1.0', 'zanuri_hello', wsgiSource);
    index = await servePythonIndex([{ dist: 'zanuri-hello', ...hello }]);
    registry = await serveNpmRegistry();
  }, 600_000);

  afterAll(async () => {
    await stopAllTargets();
    await index?.close();
    await registry?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('python-app: pip installs the app from the operator\'s index, gunicorn runs it as the app user behind nginx, in four cells; secrets stay out of reports', async () => {
    const hello = wheel('zanuri-hello', '1.0', 'zanuri_hello', wsgiSource);
    const envFile = join(dir, 'app.env');
    writeFileSync(envFile, `# the backend's .env\nGREETING=hello-from-env\nSECRET_KEY=${secret}\n`);
    chmodSync(envFile, 0o600);
    const args = ['--playbook', 'test/integration/playbooks/python-app.yaml',
      '--set', `python-app.requirements=${JSON.stringify([`zanuri-hello==1.0 --hash=sha256:${hello.sha256}`])}`,
      '--set', `python-app.indexUrl=${JSON.stringify(`${index.url}simple/`)}`,
      '--set', `python-app.environment=@${envFile}`];
    // Before the app is deployed: the runtime converges, the unit is written but not started, and the step says why.
    const bare = ['--playbook', 'test/integration/playbooks/python-app.yaml'];
    const early = await zanuriProvision(py, bare);
    expect(early.code, early.stderr).toBe(0);
    expect(early.host.steps.filter((s) => s.id !== 'packages').map((s) => [s.id, s.status])).toEqual([['nginx', 'changed'], ['python-app', 'changed']]);
    const waiting = await zanuriProvision(py, [...bare, '--dry-run']);
    expect(waiting.host.steps.find((s) => s.id === 'python-app')).toMatchObject({ status: 'unchanged', why: expect.stringMatching(/zanuri_hello is not deployed yet/) });
    expect((await py.exec(['systemctl', 'is-enabled', 'aikovrr-gunicorn.service'])).stdout.trim()).toBe('disabled');
    expect((await py.exec(['systemctl', 'is-active', 'aikovrr-gunicorn.service'])).stdout.trim()).toBe('inactive');

    // The app arrives as a package from the operator's index: the four cells start it.
    const runs: ProvisionRun[] = [early, waiting, ...await fourCells(py, args, ['python-app'])];
    expect(index.requests.some((r) => r.startsWith('/files/zanuri_hello-1.0')), 'pip fetched the wheel from the index').toBe(true);
    const apply1 = runs[3]?.host.steps.find((s) => s.id === 'python-app');
    expect(apply1?.actions.map((a) => a.summary).join('\n')).toMatch(/pip install -r \/opt\/aikovrr\/backend\/requirements.txt/);

    // A real request through nginx reaches the WSGI app, run by gunicorn as aikovrr with the environment file.
    const reply = await until('the app answers through nginx', 30, async () => {
      const r = await get(py.host, '/hello');
      return r.status === 200 ? r : null;
    });
    expect(reply.body).toBe(`zanuri_hello user=aikovrr greeting=hello-from-env secret-length=${secret.length} path=/hello\n`);

    // gunicorn listens on loopback only, with the workers the playbook asked for, as the app user.
    expect(await listeners(py, 8000)).toEqual(['127.0.0.1:8000']);
    const workers = await py.exec(['sh', '-c', 'ps -o user=,args= -u aikovrr | grep -c "[g]unicorn"']);
    expect(Number(workers.stdout.trim()), 'the master and 2 workers').toBe(3);
    const gunicornFrom = await py.exec(['runuser', '-u', 'aikovrr', '--', '/opt/aikovrr/backend/venv/bin/python', '-c', 'import gunicorn; print(gunicorn.__file__)']);
    expect(gunicornFrom.stdout.trim()).toMatch(/^\/usr\/lib\/python3\/dist-packages\/gunicorn\//);

    // Secure by default: no login shell; the layout's modes; the environment 0640 root:aikovrr; the secret in no report.
    expect((await py.exec(['getent', 'passwd', 'aikovrr'])).stdout.trim()).toMatch(/:\/usr\/sbin\/nologin$/);
    const modes = await py.exec(['stat', '-c', '%n %a %U:%G', '/opt/aikovrr', '/opt/aikovrr/backend', '/opt/aikovrr/backend/venv', '/opt/aikovrr/backend/logs', '/opt/aikovrr/backend/.env', '/opt/aikovrr/backend/requirements.txt']);
    expect(modes.stdout.trim().split('\n')).toEqual([
      '/opt/aikovrr 755 root:root', '/opt/aikovrr/backend 750 root:aikovrr', '/opt/aikovrr/backend/venv 750 root:aikovrr',
      '/opt/aikovrr/backend/logs 750 aikovrr:aikovrr', '/opt/aikovrr/backend/.env 640 root:aikovrr', '/opt/aikovrr/backend/requirements.txt 640 root:aikovrr',
    ]);
    const otherUser = await py.exec(['runuser', '-u', 'nobody', '--', 'cat', '/opt/aikovrr/backend/.env']);
    expect(otherUser.exitCode, 'another user cannot read the environment').not.toBe(0);
    for (const run of runs) expect(run.stdout.includes(secret) || run.stderr.includes(secret), 'the secret in a report').toBe(false);
  }, 1_800_000);

  it('node-app: PM2 from the forwarding registry runs the app as the app user behind nginx, in four cells, and resurrects it when its unit restarts', async () => {
    const args = ['--playbook', 'test/integration/playbooks/node-app.yaml', '--set', `node-app.registry=${JSON.stringify(registry.url)}`];
    // Before the code is deployed: PM2 runs, with nothing to run, and the step says why.
    const early = await zanuriProvision(node, args);
    expect(early.code, early.stderr).toBe(0);
    expect(early.host.steps.filter((s) => s.id !== 'packages').map((s) => [s.id, s.status])).toEqual([['nginx', 'changed'], ['node-app', 'changed']]);
    const waiting = await zanuriProvision(node, [...args, '--dry-run']);
    expect(waiting.host.steps.find((s) => s.id === 'node-app')).toMatchObject({ status: 'unchanged', why: expect.stringMatching(/server.js is not deployed yet/) });
    expect((await node.exec(['systemctl', 'is-active', 'pm2-api.service'])).stdout.trim()).toBe('active');

    // The operator deploys the code (as root, with their own tools); the four cells start it under PM2 and save it.
    const put = await node.exec(['sh', '-c', 'mkdir -p /opt/api/app && printf "%s" "$1" > /opt/api/app/server.js', 'deploy', nodeServer]);
    expect(put.exitCode, put.stderr).toBe(0);
    await fourCells(node, args, ['node-app']);
    expect(registry.requests.some((r) => /^\/pm2\/-\/pm2-6\.0\.8\.tgz/.test(r)), 'npm fetched pm2 through the test registry').toBe(true);
    expect((await node.exec(['node', '--version'])).stdout).toMatch(/^v(1[89]|[2-9]\d)\./);
    expect((await node.exec(['/usr/local/bin/pm2', '--version'])).stdout.trim().split('\n').at(-1)).toBe('6.0.8');

    const pids = async (): Promise<Set<number>> => {
      const seen = new Set<number>();
      for (let i = 0; i < 12; i += 1) {
        const r = await get(node.host, `/api/${i}`);
        expect(r.status, r.body).toBe(200);
        const body = JSON.parse(r.body) as { pid: number; user: string; env: string; path: string };
        expect(body).toMatchObject({ user: 'api', env: 'production', path: `/api/${i}` });
        seen.add(body.pid);
      }
      return seen;
    };
    const before = await until('the app answers through nginx', 30, async () => ((await get(node.host)).status === 200 ? pids() : null));
    expect(await listeners(node, 3000)).toEqual(['127.0.0.1:3000']);

    // PM2's unit restarts: `pm2 kill`, then `pm2 resurrect` from the saved list; new processes answer.
    const restart = await node.exec(['systemctl', 'restart', 'pm2-api.service']);
    expect(restart.exitCode, restart.stderr).toBe(0);
    const after = await until('the app is resurrected', 60, async () => {
      const r = await get(node.host);
      return r.status === 200 ? pids() : null;
    });
    expect([...after].filter((pid) => before.has(pid)), 'every process is new').toEqual([]);
    const jlist = await node.exec(['runuser', '-u', 'api', '--', 'env', 'HOME=/opt/api/.pm2', 'PM2_HOME=/opt/api/.pm2', '/usr/local/bin/pm2', 'jlist']);
    const apps = JSON.parse(jlist.stdout.slice(jlist.stdout.indexOf('['))) as Array<{ name: string; pm2_env: { status: string; exec_mode: string } }>;
    expect(apps.map((a) => [a.name, a.pm2_env.status, a.pm2_env.exec_mode])).toEqual([['api', 'online', 'cluster_mode'], ['api', 'online', 'cluster_mode']]);

    // Secure by default: no login shell, the ecosystem file 0640 root:api, PM2's home the app's own; a converged run after the restart changes nothing.
    expect((await node.exec(['getent', 'passwd', 'api'])).stdout.trim()).toMatch(/:\/usr\/sbin\/nologin$/);
    const modes = await node.exec(['stat', '-c', '%n %a %U:%G', '/opt/api', '/opt/api/ecosystem.config.js', '/opt/api/.pm2']);
    expect(modes.stdout.trim().split('\n')).toEqual(['/opt/api 750 root:api', '/opt/api/ecosystem.config.js 640 root:api', '/opt/api/.pm2 750 api:api']);
    const dry = await zanuriProvision(node, [...args, '--dry-run']);
    expect(dry.host.steps.filter((s) => s.status !== 'unchanged'), 'nothing to do after PM2 resurrected the app').toEqual([]);
  }, 1_800_000);
});
