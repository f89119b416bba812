/**
 * Docker, the NVIDIA Container Toolkit (from a local stand-in of NVIDIA's repository) and
 * docker-ufw on a real systemd target that runs dockerd (needs root): the four cells each, then
 * containers really run (images from `docker import` of a busybox tree: no registry here), the
 * nvidia runtime from daemon.json really starts a container, and a published port is proven from
 * the test host to be reachable without docker-ufw, blocked with it, and open after its allow.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { BRIDGE_IP } from '../helpers/network.js';
import { portOpen } from '../helpers/proc.js';
import { fourCells, zanuriProvision } from '../helpers/provision.js';
import { startStandinRepo, type StandinRepo } from '../helpers/standin-repo.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = (name: string): string[] => ['--playbook', `test/integration/playbooks/${name}.yaml`];

/** The stand-in toolkit: the runtime hands every container to runc, nvidia-ctk knows no GPU. */
const toolkitStandin = {
  name: 'nvidia-container-toolkit',
  version: '1.17.0-1',
  files: {
    '/usr/bin/nvidia-container-runtime': ['#!/bin/sh\n# stand-in: NVIDIA\'s runtime adds GPU hooks, then runs runc\nexec runc "$@"\n', 0o755] as [string, number],
    '/usr/bin/nvidia-ctk': ['#!/bin/sh\necho "stand-in nvidia-ctk: no NVIDIA driver here" >&2\nexit 1\n', 0o755] as [string, number],
  },
};

async function must(target: TestTarget, argv: string[], timeoutMs = 300_000): Promise<string> {
  const r = await target.exec(argv, { timeoutMs });
  expect(r.exitCode, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

/** A busybox image from a local tree (busybox-static from Debian), for containers without a registry. */
async function importBusybox(target: TestTarget): Promise<void> {
  await must(target, ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'busybox-static']);
  await must(target, ['sh', '-c', 'set -e; d=$(mktemp -d); mkdir -p "$d/bin" "$d/tmp" "$d/www"; cp /bin/busybox "$d/bin/"; echo standin-web > "$d/www/index.html"; tar -C "$d" -c . | docker import - zanuri/busybox']);
}

/** A container publishing HOST:80 with busybox httpd. */
async function publish(target: TestTarget, hostPort: number): Promise<void> {
  await must(target, ['docker', 'run', '-d', '--name', `web${hostPort}`, '-p', `${hostPort}:80`, 'zanuri/busybox', '/bin/busybox', 'httpd', '-f', '-p', '80', '-h', '/www']);
  for (let i = 0; i < 50; i++) {
    if ((await target.exec(['sh', '-c', 'ss -Htln "sport = :$1" | grep -q .', 'sh', String(hostPort)])).exitCode === 0) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  const why = await target.exec(['sh', '-c', 'docker ps -a; ss -Htlnp; docker logs "$1" 2>&1 | tail -5', 'sh', `web${hostPort}`]);
  throw new Error(`nothing listens on ${hostPort}:\n${why.stdout}${why.stderr}`);
}

describe.skipIf(!can.ok && !process.env['CI'])('provision: docker, the toolkit stand-in and docker-ufw on a real target (needs root)', () => {
  let target: TestTarget;
  let repo: StandinRepo;
  let keyFile: string;
  let dir: string;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [target] = (await startTargets(1, { docker: true })) as [TestTarget];
    repo = await startStandinRepo('stable/deb/amd64', [toolkitStandin]);
    dir = mkdtempSync(join(tmpdir(), 'zanuri-docker-test-'));
    keyFile = join(dir, 'standin.asc');
    writeFileSync(keyFile, repo.keyArmored);
  }, 300_000);

  afterAll(async () => {
    await stopAllTargets();
    await repo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('installs docker.io in four cells with daemon.json from the template, and containers run', async () => {
    const [dry1, apply1] = await fourCells(target, playbook('docker'), ['docker']);
    const put = dry1.host.steps.find((s) => s.id === 'docker')?.actions.find((a) => a.kind === 'put');
    expect(put?.why).toMatch(/no log rotation/);
    expect(apply1.host.steps.find((s) => s.id === 'packages')?.why).toMatch(/docker\.io/);

    const daemon = JSON.parse(await must(target, ['cat', '/etc/docker/daemon.json'])) as Record<string, unknown>;
    expect(daemon).toEqual({ 'log-driver': 'json-file', 'log-opts': { 'max-size': '20m', 'max-file': '2' }, 'live-restore': true });
    const info = JSON.parse(await must(target, ['docker', 'info', '--format', '{{json .}}'])) as { LiveRestoreEnabled: boolean; Runtimes: Record<string, unknown> };
    expect(info.LiveRestoreEnabled).toBe(true);
    expect(Object.keys(info.Runtimes)).not.toContain('nvidia');
    expect((await must(target, ['systemctl', 'is-enabled', 'docker.service'])).trim()).toBe('enabled');
    expect(await must(target, ['getent', 'group', 'docker'])).toMatch(/^docker:x:\d+:$/m);

    // The harness made the cgroup controllers writable for dockerd (nspawn mounts them read-only).
    expect(await must(target, ['sh', '-c', 'findmnt -no OPTIONS /sys/fs/cgroup/memory || echo "v2"; systemctl is-active zanuri-test-cgroup-rw'])).toMatch(/^(?:rw|v2)/);
    await importBusybox(target);
    expect(await must(target, ['docker', 'run', '--rm', 'zanuri/busybox', '/bin/busybox', 'echo', 'from a container'])).toBe('from a container\n');
  }, 900_000);

  it('installs the toolkit stand-in from its signed repository in four cells; daemon.json gains the nvidia runtime, which runs a container; CDI is skipped without a GPU', async () => {
    await must(target, ['sh', '-c', `echo 'Acquire::http::Proxy::${BRIDGE_IP} "DIRECT";' > /etc/apt/apt.conf.d/02standin-direct`]);
    const args = [...playbook('docker-gpu'), '--set', `nvidia-container-toolkit.repositoryUrl=${repo.url}`, '--set', `nvidia-container-toolkit.repositoryKey=@${keyFile}`];
    const [dry1, apply1, dry2] = await fourCells(target, args, ['docker', 'nvidia-container-toolkit']);

    const dockerDry = dry1.host.steps.find((s) => s.id === 'docker');
    expect(dockerDry?.actions.find((a) => a.kind === 'put')?.diff, 'the dry run shows the runtime entry').toMatch(/^\+\s+"runtimes": \{/m);
    const toolkit = apply1.host.steps.find((s) => s.id === 'nvidia-container-toolkit');
    expect(toolkit?.actions.map((a) => a.why).join('\n')).toMatch(/repository is not configured/);
    expect(dry2.host.steps.find((s) => s.id === 'nvidia-container-toolkit')?.why).toMatch(/CDI spec skipped: nvidia-smi is not installed/);
    expect(repo.requests.some((r) => r.endsWith('/stable/deb/amd64/InRelease')), 'apt read the signed InRelease').toBe(true);

    expect(await must(target, ['cat', '/etc/apt/sources.list.d/zanuri-nvidia-container-toolkit.sources'])).toContain('Signed-By: /etc/apt/keyrings/zanuri-nvidia-container-toolkit.asc');
    expect(await must(target, ['dpkg-query', '-W', '-f', '${Version} ${Description}', 'nvidia-container-toolkit'])).toMatch(/^1\.17\.0-1 stand-in/);
    const runtimes = JSON.parse(await must(target, ['docker', 'info', '--format', '{{json .Runtimes}}'])) as Record<string, { path?: string }>;
    expect(runtimes['nvidia']?.path).toBe('/usr/bin/nvidia-container-runtime');
    expect(await must(target, ['docker', 'run', '--rm', '--runtime=nvidia', 'zanuri/busybox', '/bin/busybox', 'echo', 'through the nvidia runtime'])).toBe('through the nvidia runtime\n');
    expect((await target.exec(['test', '-e', '/etc/cdi/nvidia.yaml'])).exitCode, 'no CDI spec without a GPU').not.toBe(0);

    // A later run of docker alone keeps the runtime the toolkit installed.
    const alone = await zanuriProvision(target, playbook('docker'));
    expect(alone.host.steps.find((s) => s.id === 'docker')?.status).toBe('unchanged');
  }, 900_000);

  it('a published port bypasses plain ufw; docker-ufw closes it in four cells, and only the opened host port reaches its container', async () => {
    await publish(target, 8080);
    await publish(target, 8081);
    expect(await portOpen(target.host, 8080, 3000), 'reachable before any firewall').toBe(true);

    const ufwOnly = await zanuriProvision(target, [...playbook('docker-ufw'), '--only', 'ufw']);
    expect(ufwOnly.code, ufwOnly.stderr).toBe(0);
    expect(await portOpen(target.host, 8080, 3000), 'ufw alone: Docker forwards it ahead of ufw (the hole)').toBe(true);

    const [dry1] = await fourCells(target, playbook('docker-ufw'), ['docker-ufw']);
    const step = dry1.host.steps.find((s) => s.id === 'docker-ufw');
    expect(step?.actions[0]?.why).toMatch(/published container ports bypass ufw/);
    expect(step?.actions[0]?.diff).not.toMatch(/10\.0\.0\.0\/8|172\.16\.0\.0\/12|192\.168\.0\.0\/16/);
    expect(await portOpen(target.host, 8080, 3000), 'closed by docker-ufw, from the test host on a 10.x bridge').toBe(false);
    expect(await portOpen(target.host, 8081, 3000)).toBe(false);
    expect(await portOpen(target.host, 22, 3000), 'SSH still open').toBe(true);
    // Containers still reach out (their replies come back): the stand-in repository on the test host answers them.
    // (busybox-static's wget crashes in a bare image, so the request goes through its nc)
    const { port: repoPort, pathname } = new URL(`${repo.url}/amd64/Release`);
    const egress = await target.exec(['docker', 'run', '-i', '--rm', 'zanuri/busybox', '/bin/busybox', 'nc', '-w', '5', BRIDGE_IP, repoPort], { stdin: `GET ${pathname} HTTP/1.0\r\n\r\n`, timeoutMs: 60_000 });
    expect(egress.stdout, egress.stderr).toMatch(/^Origin: zanuri-standin\r?$/m);

    const opened = await zanuriProvision(target, [...playbook('docker-ufw'), '--set', 'docker-ufw.allow=[{"port":8080,"protocol":"tcp"}]']);
    expect(opened.code, opened.stderr).toBe(0);
    expect(opened.host.steps.find((s) => s.id === 'docker-ufw')?.status).toBe('changed');
    expect(await portOpen(target.host, 8080, 3000), 'opened by its allow').toBe(true);
    expect(await portOpen(target.host, 8081, 3000), 'another published port stays closed').toBe(false);

    // ufw's own route rules reach containers too (matched on the container's port), and survive a Docker restart.
    await must(target, ['ufw', 'route', 'allow', 'proto', 'tcp', 'from', 'any', 'to', 'any', 'port', '80']);
    await must(target, ['systemctl', 'restart', 'docker.service']);
    expect(await portOpen(target.host, 8081, 3000), 'ufw route allow ... port 80').toBe(true);
    expect(await must(target, ['iptables', '-S', 'DOCKER-USER'])).toMatch(/zanuri-docker-ufw [0-9a-f]{16}/);
  }, 900_000);
});
