import { describe, expect, it } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import { fileFact, osReleaseFact, serviceFact, userFact, directoryFact, packagesFact } from '../../../src/facts/state.js';
import { keyringPath, sourcesPath } from '../../../src/resources/apt-repository.js';
import { docker } from '../../../src/steps/docker.js';
import { archFact, daemonJsonPath, nvidiaRuntimeFact } from '../../../src/steps/docker-shared.js';
import { planOf, present } from './facts-of.js';

const debian = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n';
const ubuntu = 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n';
/** A key block of the right shape (not a real key: the plan only carries it). */
const key = ['-----BEGIN PGP PUBLIC KEY BLOCK-----', '', 'mDMEZk1aBhYJKwYBBAHaRw8BAQdA0000000000000000000000000000000000000', '=abcd', '-----END PGP PUBLIC KEY BLOCK-----'];
const written = '{\n  "log-driver": "json-file",\n  "log-opts": {\n    "max-size": "10m",\n    "max-file": "3"\n  },\n  "live-restore": true\n}\n';

interface Host { daemon?: string | null; runtime?: boolean; os?: string; deploy?: string; docker?: string; repo?: boolean }
function planFor(host: Host, raw: Record<string, unknown> = {}, selected: string[] = ['docker']) {
  const p = docker.parseParams(raw);
  return planOf(docker, [
    [osReleaseFact(), host.os ?? debian],
    [archFact(), 'amd64\n@@rc=0'],
    [nvidiaRuntimeFact(), host.runtime ? '\n@@rc=0' : '\n@@rc=1'],
    [directoryFact('/etc/docker'), 'dir 755 root root'],
    [fileFact(daemonJsonPath), host.daemon === null ? 'absent' : present(host.daemon ?? written)],
    [serviceFact('docker.service'), host.docker ?? 'enabled\nactive'],
    [userFact('deploy'), host.deploy ?? 'deploy:x:1000:1000::/home/deploy:/bin/bash\ndeploy sudo'],
    [fileFact(keyringPath('docker')), host.repo ? present(`${key.join('\n')}\n`) : 'absent'],
    [fileFact(sourcesPath('docker')), 'absent'],
    [packagesFact(['containerd.io', 'docker-ce', 'docker-ce-cli']), ''],
  ], p, { selected });
}
const put = (actions: readonly Action[], path = daemonJsonPath) => {
  const a = actions.find((x) => x.kind === 'put' && x.path === path);
  if (!a || a.kind !== 'put') throw new Error(`no put of ${path}`);
  return a;
};

describe('docker parameters', () => {
  it('take the distribution package, 10m x 3 log rotation, live-restore and no docker group member by default', () => {
    expect(docker.parseParams({})).toEqual({ source: 'distribution', repositoryUrl: null, repositoryKey: null, logMaxSize: '10m', logMaxFile: 3, liveRestore: true, groupMembers: [] });
    expect(docker.packages?.(docker.parseParams({}))).toEqual(['docker.io']);
  });

  it('take Docker\'s repository with the shipped key by default; refuse a key that is not one armored block, and a hostile size', () => {
    expect(docker.parseParams({ source: 'docker' })).toMatchObject({ source: 'docker', repositoryKey: null });
    expect(() => docker.parseParams({ source: 'docker', repositoryKey: 'not a key' })).toThrow(/one ASCII-armored PGP public key/);
    expect(() => docker.parseParams({ source: 'docker', repositoryKey: [...key.slice(0, 2), 'x"; rm -rf /', ...key.slice(2)] })).toThrow(/ASCII-armored/);
    expect(() => docker.parseParams({ repositoryKey: key })).toThrow(/go with source docker/);
    expect(() => docker.parseParams({ logMaxSize: '10m", "x": "' })).toThrow(/logMaxSize must be a size like 10m/);
    expect(() => docker.parseParams({ groupMembers: ['root;id'] })).toThrow(/groupMembers\[0\] must be a user name/);
  });

  it('say in the group parameter\'s description that membership is root-equivalent', () => {
    expect(JSON.stringify(docker.params)).toMatch(/groupMembers.*root-equivalent/);
  });
});

describe('docker plan', () => {
  it('writes daemon.json with log rotation and live-restore, validated by dockerd where it can, and restarts docker', () => {
    const plan = planFor({ daemon: null });
    const file = put(plan.actions);
    expect(JSON.parse(String(file.content))).toEqual({ 'log-driver': 'json-file', 'log-opts': { 'max-size': '10m', 'max-file': '3' }, 'live-restore': true });
    expect(file.why).toMatch(/no log rotation/);
    expect(file.validate?.argv.join(' ')).toMatch(/dockerd --validate --config-file/);
    expect(file.notify).toEqual([{ unit: 'docker.service', op: 'restart' }]);
  });

  it('is converged on a host as written, and says so', () => {
    const plan = planFor({});
    expect(plan).toEqual({ actions: [], noop: 'docker (docker.io) is running with log rotation (10m x 3), live-restore' });
  });

  it('adds the NVIDIA runtime when the toolkit step is selected, so the dry run shows it before the toolkit is installed', () => {
    const plan = planFor({}, {}, ['docker', 'nvidia-container-toolkit']);
    const daemon = JSON.parse(String(put(plan.actions).content)) as { runtimes?: Record<string, { path: string }> };
    expect(daemon.runtimes).toEqual({ nvidia: { path: '/usr/bin/nvidia-container-runtime', runtimeArgs: [] } });
  });

  it('keeps the NVIDIA runtime an earlier run installed when docker runs alone', () => {
    const withRuntime = String(put(planFor({}, {}, ['docker', 'nvidia-container-toolkit']).actions).content);
    expect(planFor({ daemon: withRuntime, runtime: true })).toMatchObject({ actions: [], noop: expect.stringMatching(/and the NVIDIA runtime$/) });
    expect(put(planFor({ daemon: withRuntime, runtime: false }).actions).why).toMatch(/differs/);
  });

  it('adds a docker group member only when asked, saying it is root-equivalent, with an undo', () => {
    expect(planFor({}).actions).toEqual([]);
    const plan = planFor({}, { groupMembers: ['deploy'] });
    expect(plan.actions).toHaveLength(1);
    const [join] = plan.actions;
    expect(join?.kind === 'run' && join.cmd.argv).toEqual(['usermod', '--append', '--groups', 'docker', '--', 'deploy']);
    expect(join?.why).toMatch(/root-equivalent/);
    expect(join?.kind === 'run' && join.undo?.argv).toEqual(['gpasswd', '--delete', 'deploy', 'docker']);
    expect(planFor({ deploy: 'deploy:x:1000:1000::/home/deploy:/bin/bash\ndeploy sudo docker' }, { groupMembers: ['deploy'] }).actions).toEqual([]);
  });

  it('with Docker\'s repository, configures it in deb822 with its own keyring before installing docker-ce', () => {
    const plan = planFor({ os: ubuntu }, { source: 'docker', repositoryKey: key });
    expect(plan.actions.map((a) => (a.kind === 'put' ? a.path : a.kind === 'packages' ? `install ${a.install.join(' ')}` : a.kind === 'run' ? a.cmd.argv.slice(2, 4).join(' ') : a.kind))).toEqual([
      keyringPath('docker'), sourcesPath('docker'), 'apt-get update', 'install containerd.io docker-ce docker-ce-cli',
    ]);
    const sources = String(put(plan.actions, sourcesPath('docker')).content);
    expect(sources).toContain('URIs: https://download.docker.com/linux/ubuntu\nSuites: noble\nComponents: stable\nArchitectures: amd64\nSigned-By: /etc/apt/keyrings/zanuri-docker.asc\n');
    expect(String(put(plan.actions, keyringPath('docker')).content)).toBe(`${key.join('\n')}\n`);
    expect(docker.packages?.(docker.parseParams({ source: 'docker', repositoryKey: key }))).toEqual([]);
  });

  it('refuses a daemon.json template override that does not render JSON, before any change', async () => {
    const { loadTemplates } = await import('../../../src/templates/load.js');
    const { mkdtempSync, mkdirSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-tpl-'));
    mkdirSync(join(dir, 'docker'));
    writeFileSync(join(dir, 'docker/daemon.json'), '{ "log-opts": { "max-size": "{{logMaxSize}}" }, {{logMaxFile}} {{liveRestore}} {{nvidiaRuntime}} }\n');
    const templates = await loadTemplates({ overrideDir: dir });
    expect(() => planOf(docker, [
      [osReleaseFact(), debian], [archFact(), 'amd64\n@@rc=0'], [nvidiaRuntimeFact(), '\n@@rc=1'],
    ], docker.parseParams({}), { templates })).toThrow(/does not render valid JSON/);
  });
});
