/**
 * The compose step on a real systemd target that runs dockerd (needs root): Debian 12's
 * docker-compose through the test apt proxy, the operator's Compose file (given with
 * --set compose.file=@FILE) and secrets (--set compose.env=@FILE) in /opt/demo, a systemd unit
 * that runs the project; the four cells, then the project proven from the test host: its
 * published ports closed by docker-ufw until the operator opens one, an HTTP request answered by
 * a service of the project, a changed file re-applied, a broken one refused with nothing changed,
 * and the project back after a reboot. Images come from `docker import` of a busybox tree (there
 * is no registry here).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { portOpen, sleep } from '../helpers/proc.js';
import { fourCells, zanuriProvision, type ProvisionRun } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = (name: string): string[] => ['--playbook', `test/integration/playbooks/${name}.yaml`];
const token = `tok-${randomBytes(8).toString('hex')}`;

/** Two services: web (8000, shows the page with the secret from .env) and admin (8001, never opened). */
function composeFile(greeting: string): Record<string, unknown> {
  return {
    services: {
      web: {
        image: 'zanuri/busybox',
        command: ['/bin/busybox', 'sh', '-c', `echo "${greeting} $$DEMO_TOKEN" > /www/index.html && exec /bin/busybox httpd -f -p 80 -h /www`],
        env_file: ['.env'],
        ports: ['8000:80'],
        restart: 'unless-stopped',
      },
      admin: { image: 'zanuri/busybox', command: ['/bin/busybox', 'httpd', '-f', '-p', '80', '-h', '/www'], ports: ['8001:80'], restart: 'unless-stopped' },
    },
  };
}

async function must(target: TestTarget, argv: string[], timeoutMs = 300_000): Promise<string> {
  const r = await target.exec(argv, { timeoutMs });
  expect(r.exitCode, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** GET from the test host, as a client on the network would. */
async function get(host: string, port: number): Promise<string> {
  const response = await fetch(`http://${host}:${port}/`, { signal: AbortSignal.timeout(10_000) });
  expect(response.status).toBe(200);
  return response.text();
}

const stepOf = (run: ProvisionRun, id: string) => run.host.steps.find((s) => s.id === id);

describe.skipIf(!can.ok && !process.env['CI'])('provision: a Docker Compose project behind docker-ufw on a real target (needs root)', () => {
  let target: TestTarget;
  let dir: string;
  const files = { compose: '', env: '', changed: '', broken: '' };
  let args: string[];

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [target] = (await startTargets(1, { docker: true, rebootable: true })) as [TestTarget];
    dir = mkdtempSync(join(tmpdir(), 'zanuri-compose-test-'));
    const write = (name: string, text: string): string => {
      writeFileSync(join(dir, name), text, { mode: 0o600 });
      return join(dir, name);
    };
    files.compose = write('compose.json', JSON.stringify(composeFile('hello from demo'), null, 2));
    files.changed = write('changed.json', JSON.stringify(composeFile('hello from demo, v2'), null, 2));
    files.broken = write('broken.json', JSON.stringify({ services: { web: { image: 'zanuri/busybox', imagee: 'typo', ports: ['8000:80'] } } }, null, 2));
    files.env = write('secrets.env', `# the project's secrets\nDEMO_TOKEN=${token}\n`);
    args = [...playbook('compose'), '--set', `compose.file=@${files.compose}`, '--set', `compose.env=@${files.env}`];
  }, 300_000);

  afterAll(async () => {
    await stopAllTargets();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('installs Compose and runs the operator\'s project in four cells: /opt/demo 0750, .env 0600 and never shown, a unit enabled at boot; its published ports stay closed from outside', async () => {
    // Docker first, to import the image the project runs (no registry here).
    const engine = await zanuriProvision(target, playbook('docker'));
    expect(engine.code, engine.stderr).toBe(0);
    await must(target, ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'busybox-static']);
    await must(target, ['sh', '-c', 'set -e; d=$(mktemp -d); mkdir -p "$d/bin" "$d/tmp" "$d/www"; cp /bin/busybox "$d/bin/"; echo standin-web > "$d/www/index.html"; tar -C "$d" -c . | docker import - zanuri/busybox']);

    const runs = await fourCells(target, args, ['ufw', 'docker-ufw', 'compose']);
    const [dry1, apply1] = runs;
    for (const run of runs) expect(`${run.stdout}${run.stderr}`, 'the secret never reaches the report').not.toContain(token);
    const planned = stepOf(dry1, 'compose')?.actions ?? [];
    expect(planned.find((a) => a.summary.includes('/opt/demo/.env'))?.diff).toMatch(/secret content: not shown/);
    expect(planned.map((a) => a.why)).toContain('the Compose project demo is not on the host yet');
    expect(stepOf(apply1, 'packages')?.why).toMatch(/docker-compose/);

    expect((await must(target, ['stat', '-c', '%a %U %G %n', '/opt/demo', '/opt/demo/.env', '/opt/demo/compose.yaml'])).trim().split('\n')).toEqual([
      '750 root root /opt/demo', '600 root root /opt/demo/.env', '640 root root /opt/demo/compose.yaml',
    ]);
    expect(await must(target, ['cat', '/opt/demo/.env'])).toBe(`DEMO_TOKEN=${token}\n`);
    expect((await must(target, ['systemctl', 'is-enabled', 'zanuri-compose-demo.service'])).trim()).toBe('enabled');
    expect(await must(target, ['docker-compose', 'version'])).toMatch(/docker-compose version 1\.29/);
    const running = await must(target, ['docker', 'ps', '--filter', 'label=com.docker.compose.project=demo', '--format', '{{.Label "com.docker.compose.service"}} {{.Ports}}']);
    expect(running).toMatch(/^web .*:8000->80\/tcp/m);
    expect(running).toMatch(/^admin .*:8001->80\/tcp/m);
    // The service answers on the host (the step's own check did the same)...
    expect(await must(target, ['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/8000 && printf "GET / HTTP/1.0\\r\\n\\r\\n" >&3 && cat <&3'])).toContain(`hello from demo ${token}`);
    // ...but not from outside: nothing opened it.
    expect(await portOpen(target.host, 8000, 3000), 'published 8000 closed by docker-ufw').toBe(false);
    expect(await portOpen(target.host, 8001, 3000), 'published 8001 closed by docker-ufw').toBe(false);
    expect(await portOpen(target.host, 22, 3000), 'SSH still open').toBe(true);
  }, 1_500_000);

  it('opens a published port only when the operator opens it, and a service of the project answers HTTP from the test host', async () => {
    const opened = await zanuriProvision(target, [...args, '--set', 'compose.open=[{"port":8000,"access":"public"}]']);
    expect(opened.code, opened.stderr).toBe(0);
    expect(stepOf(opened, 'docker-ufw')?.status).toBe('changed');
    expect(stepOf(opened, 'compose')?.status, 'the project itself is unchanged').toBe('unchanged');
    expect(await get(target.host, 8000)).toBe(`hello from demo ${token}\n`);
    expect(await portOpen(target.host, 8001, 3000), 'the other published port stays closed').toBe(false);

  }, 900_000);

  it('re-applies a changed Compose file; a broken one is refused on its staged copy and changes nothing', async () => {
    const open = ['--set', 'compose.open=[{"port":8000,"access":"public"}]'];
    const withFile = (file: string): string[] => [...playbook('compose'), '--set', `compose.file=@${file}`, '--set', `compose.env=@${files.env}`, ...open];
    const settled = await zanuriProvision(target, withFile(files.compose));
    expect(settled.code, settled.stderr).toBe(0);

    const changed = await zanuriProvision(target, withFile(files.changed));
    expect(changed.code, changed.stderr).toBe(0);
    const step = stepOf(changed, 'compose');
    expect(step?.status).toBe('changed');
    expect(step?.actions.map((a) => a.why)).toEqual(['the Compose file of demo differs from the one given']);
    expect(await get(target.host, 8000)).toBe(`hello from demo, v2 ${token}\n`);
    const again = await zanuriProvision(target, withFile(files.changed));
    expect(again.host.summary.changed, 'converged after the change').toBe(0);

    const before = await must(target, ['sh', '-c', 'sha256sum /opt/demo/compose.yaml; docker ps -q --no-trunc --filter label=com.docker.compose.project=demo | sort']);
    const broken = await zanuriProvision(target, withFile(files.broken));
    expect(broken.code, 'a refused file fails the run').not.toBe(0);
    expect(['rolled-back', 'failed']).toContain(stepOf(broken, 'compose')?.status);
    expect(stepOf(broken, 'compose')?.why).toMatch(/validation refused the new \/opt\/demo\/compose\.yaml/);
    expect(stepOf(broken, 'compose')?.why, 'Compose\'s own reason').toMatch(/imagee/);
    for (const run of [settled, changed, again, broken]) expect(`${run.stdout}${run.stderr}`).not.toContain(token);
    expect(await must(target, ['sh', '-c', 'sha256sum /opt/demo/compose.yaml; docker ps -q --no-trunc --filter label=com.docker.compose.project=demo | sort']), 'same file, same containers').toBe(before);
    expect(await get(target.host, 8000)).toBe(`hello from demo, v2 ${token}\n`);
    expect((await must(target, ['sh', '-c', 'ls -a /opt/demo'])).split('\n').filter((f) => f.includes('zanuri-')), 'no staged copy left behind').toEqual([]);
  }, 900_000);

  it('brings the project back after a reboot', async () => {
    const bootId = async (): Promise<string> => (await target.exec(['cat', '/proc/sys/kernel/random/boot_id'])).stdout.trim();
    const before = await bootId();
    await target.exec(['systemctl', 'reboot'], { timeoutMs: 30_000 });
    let after = '';
    for (let i = 0; i < 120 && (after === '' || after === before); i++) {
      await sleep(1000);
      after = await bootId().catch(() => '');
    }
    expect(after, 'the target booted again').not.toBe(before);
    expect(after).not.toBe('');
    let page = '';
    for (let i = 0; i < 120 && !page.includes('hello from demo'); i++) {
      page = await get(target.host, 8000).catch(() => '');
      if (!page.includes('hello from demo')) await sleep(1000);
    }
    expect(page, (await target.exec(['sh', '-c', 'systemctl status zanuri-compose-demo.service docker.service --no-pager 2>&1 | tail -30'])).stdout).toBe(`hello from demo, v2 ${token}\n`);
    expect(await portOpen(target.host, 8001, 3000), 'still closed after the reboot').toBe(false);
  }, 600_000);
});
