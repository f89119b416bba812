import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Action } from '../../../src/core/plan.js';
import { Secret } from '../../../src/core/secret.js';
import { directoryFact, fileFact, packagesFact, serviceFact, type FactRequest } from '../../../src/facts/state.js';
import { compose, composePath, envPath, unitOf, wrapperPath, type ComposeParams } from '../../../src/steps/compose.js';
import { planOf, present, templates } from './facts-of.js';

const yaml = 'services:\n  web:\n    image: zanuri/busybox\n    ports: ["8000:80"]\n    env_file: [.env]\n';
const wrapper = String(templates.render('compose/zanuri-compose', {}).text);

interface Host { files?: Record<string, string>; dir?: string; unit?: string; plugin?: string }
function entries(p: ComposeParams, host: Host = {}): Array<[FactRequest<unknown>, string]> {
  const paths = [wrapperPath, envPath(p), composePath(p), `/etc/systemd/system/${unitOf(p)}`];
  return [
    [directoryFact('/opt/demo'), host.dir ?? 'absent'],
    [serviceFact(unitOf(p)), host.unit ?? 'not-found\ninactive'],
    [packagesFact(['docker-compose-plugin']), host.plugin ?? ''],
    ...paths.map((f): [FactRequest<unknown>, string] => [fileFact(f), host.files?.[f] ?? 'absent']),
  ];
}
const params = (raw: Record<string, unknown> = {}): ComposeParams => compose.parseParams({ project: 'demo', file: yaml, ...raw });
const actionsOf = (p: ComposeParams, host: Host = {}): Action[] => planOf(compose, entries(p, host), p).actions;

/** The host as a first run leaves it, rendered by the step's own resources. */
function converged(p: ComposeParams): Host {
  const files: Record<string, string> = {};
  for (const a of actionsOf(p)) {
    if (a.kind === 'put') {
      const text = a.content instanceof Secret ? a.content.reveal() : String(a.content);
      files[a.path] = present(text, a.mode.toString(8), a.owner, a.group);
    }
  }
  return { files, dir: 'dir 750 root root', unit: 'enabled\nactive' };
}

describe('compose parameters', () => {
  it('refuse a hostile project name before anything is contacted', () => {
    for (const project of ['Demo', '../etc', 'a b', 'x;reboot', '-rf', '']) expect(() => params({ project }), project).toThrow(/project must be a project name/);
  });

  it('take the file as text, as a mapping (written as JSON), or as a JSON file\'s lines; YAML lines from @FILE are refused without being shown', () => {
    expect(params().file).toBe(yaml);
    expect(JSON.parse(params({ file: { services: { web: { image: 'x' } } } }).file ?? '')).toEqual({ services: { web: { image: 'x' } } });
    const lines = JSON.stringify({ services: { web: { image: 'x', ports: ['8000:80'] } } }, null, 2).split('\n').map((l) => l.trim());
    expect(JSON.parse(params({ file: lines }).file ?? '')).toEqual({ services: { web: { image: 'x', ports: ['8000:80'] } } });
    const trimmedYaml = yaml.split('\n').map((l) => l.trim()).filter(Boolean);
    expect(() => params({ file: trimmedYaml })).toThrow(/given as a list of lines must be JSON: trimmed lines lose YAML's indentation/);
    try {
      params({ file: trimmedYaml });
    } catch (error) {
      expect((error as Error).message).not.toContain('zanuri/busybox');
    }
    expect(() => params({ file: '   \n' })).toThrow(/file is empty/);
    expect(() => params({ file: 'services:\u0000' })).toThrow(/control characters/);
  });

  it('hold the env file as a Secret, and name a bad line by its number only', () => {
    const p = params({ env: ['# the database', 'DB_PASSWORD=s3cret-value', '', 'API_KEY=k=v'] });
    expect(p.env).toBeInstanceOf(Secret);
    expect(p.env?.reveal()).toBe('DB_PASSWORD=s3cret-value\nAPI_KEY=k=v\n');
    expect(JSON.stringify(p)).not.toContain('s3cret');
    try {
      params({ env: ['GOOD=1', 'not a pair s3cret'] });
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(/env line 2 .*content is not shown/);
      expect((error as Error).message).not.toContain('s3cret');
    }
    expect(() => params({ env: ['A=1', 'A=2'] })).toThrow(/sets A twice/);
    expect(() => params({ env: ['A=1\u001b[2J'] })).toThrow(/env line 1/);
  });

  it('want a file for env, open and check, and each opened port once', () => {
    expect(() => compose.parseParams({ open: [{ port: 8000 }] })).toThrow(/give its file too/);
    expect(() => params({ open: [{ port: 8000 }, { port: 8000, protocol: 'tcp' }] })).toThrow(/8000\/tcp twice/);
    expect(compose.parseParams({}).file).toBeNull();
  });

  it('declare as served only the ports the operator opens, internal unless said public', () => {
    expect(compose.serves?.(params())).toEqual([]);
    expect(compose.serves?.(params({ open: [{ port: 8000 }, { port: 8443, access: 'public' }] }))).toEqual([
      { port: 8000, protocol: 'tcp', access: 'internal', why: 'published by the Compose project demo' },
      { port: 8443, protocol: 'tcp', access: 'public', why: 'published by the Compose project demo' },
    ]);
  });
});

describe('compose plan', () => {
  it('on a fresh host: the wrapper, /opt/demo 0750, .env 0600 (not shown), the file validated on its staged copy, the unit, enabled and started', () => {
    const p = params({ env: ['TOKEN=t0ps3cret'] });
    const actions = actionsOf(p);
    expect(actions.map((a) => `${a.kind} ${'path' in a ? a.path : 'unit' in a ? `${a.unit} ${a.op}` : a.kind === 'run' ? a.cmd.argv.join(' ') : ''}`)).toEqual([
      `put ${wrapperPath}`, 'directory /opt/demo', 'put /opt/demo/.env', 'put /opt/demo/compose.yaml',
      'put /etc/systemd/system/zanuri-compose-demo.service', 'run systemctl daemon-reload', 'service zanuri-compose-demo.service enable-now',
    ]);
    const put = (path: string) => actions.find((a): a is Extract<Action, { kind: 'put' }> => a.kind === 'put' && a.path === path);
    expect(actions.find((a) => a.kind === 'directory')).toMatchObject({ mode: 0o750, owner: 'root', group: 'root' });
    expect(put('/opt/demo/.env')).toMatchObject({ mode: 0o600, owner: 'root' });
    expect(put('/opt/demo/.env')?.content).toBeInstanceOf(Secret);
    expect(JSON.stringify(actions)).not.toContain('t0ps3cret');
    expect(put('/opt/demo/compose.yaml')).toMatchObject({ mode: 0o640, content: yaml, notify: [{ unit: 'zanuri-compose-demo.service', op: 'reload' }] });
    expect(put('/opt/demo/compose.yaml')?.validate?.argv).toEqual([
      wrapperPath, '--project-name', 'demo', '--project-directory', '/opt/demo', '--env-file', '/opt/demo/.env', '-f', '{}', 'config', '--quiet',
    ]);
  });

  it('renders a unit that brings the project up at boot, re-applies on reload and takes it down on stop', () => {
    const unit = actionsOf(params()).find((a) => a.kind === 'put' && a.path.endsWith('.service'));
    const text = unit?.kind === 'put' ? String(unit.content) : '';
    const args = '--project-name demo --project-directory /opt/demo --env-file /opt/demo/.env -f /opt/demo/compose.yaml';
    expect(text).toContain(`ExecStart=${wrapperPath} ${args} up -d --remove-orphans\n`);
    expect(text).toContain(`ExecReload=${wrapperPath} ${args} up -d --remove-orphans\n`);
    expect(text).toContain(`ExecStop=${wrapperPath} ${args} down\n`);
    expect(text).toMatch(/^Requires=docker\.service$/m);
    expect(text).toMatch(/^RemainAfterExit=yes$/m);
    expect(text).toMatch(/^WantedBy=multi-user\.target$/m);
  });

  it('is empty on a converged host, and a changed file is the one change, re-applied by a reload', () => {
    const p = params();
    const plan = planOf(compose, entries(p, converged(p)), p);
    expect(plan.actions).toEqual([]);
    expect('noop' in plan && plan.noop).toMatch(/project demo \(docker-compose\) runs from \/opt\/demo\/compose\.yaml.*ports opened: none/);

    const changed = params({ file: yaml.replace('8000:80', '8001:80') });
    const actions = planOf(compose, entries(changed, converged(p)), changed).actions;
    expect(actions).toHaveLength(1);
    expect(actions[0]).toMatchObject({ kind: 'put', path: '/opt/demo/compose.yaml', why: 'the Compose file of demo differs from the one given', notify: [{ op: 'reload' }] });
  });

  it('changed secrets are re-applied without showing them', () => {
    const p = params({ env: ['TOKEN=one'] });
    const next = params({ env: ['TOKEN=two'] });
    const actions = planOf(compose, entries(next, converged(p)), next).actions;
    expect(actions.map((a) => a.kind === 'put' && a.path)).toEqual(['/opt/demo/.env']);
    expect(actions[0]?.why).toBe('the project\'s secrets differ from those given (not shown)');
  });

  it('without a file installs Compose only; with Docker\'s repository the plugin is a resource, after the repository exists', () => {
    const only = compose.parseParams({});
    expect(compose.packages?.(only)).toEqual(['docker-compose']);
    expect(planOf(compose, entries(only), only).actions.map((a) => a.kind === 'put' && a.path)).toEqual([wrapperPath]);
    const plugin = compose.parseParams({ source: 'docker' });
    expect(compose.packages?.(plugin)).toEqual([]);
    expect(planOf(compose, entries(plugin), plugin).actions[0]).toMatchObject({ kind: 'packages', install: ['docker-compose-plugin'] });
  });
});

describe('the compose wrapper', () => {
  /** Runs the wrapper with stand-ins for docker and docker-compose on PATH that print what they were given. */
  function runWrapper(shell: string, plugin: boolean, args: string[]): string {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-compose-'));
    try {
      writeFileSync(join(dir, 'docker'), `#!/bin/sh\nif [ "$1 $2" = "compose version" ]; then ${plugin ? 'echo v2; exit 0' : 'echo "docker: \'compose\' is not a docker command." >&2; exit 1'}; fi\nprintf 'docker'; printf ' [%s]' "$@"; echo\n`);
      writeFileSync(join(dir, 'docker-compose'), '#!/bin/sh\nprintf \'docker-compose\'; printf \' [%s]\' "$@"; echo\n');
      writeFileSync(join(dir, 'wrapper'), wrapper);
      for (const f of ['docker', 'docker-compose', 'wrapper']) chmodSync(join(dir, f), 0o755);
      const r = spawnSync(shell, [join(dir, 'wrapper'), ...args], { env: { PATH: `${dir}:/usr/bin:/bin` }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return r.stdout;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it.each(['dash', 'bash'])('runs the plugin where it answers, else docker-compose, passing hostile arguments unchanged (%s)', (shell) => {
    const hostile = ['-f', "x'; $(reboot) `id` \"q\"\nline"];
    expect(runWrapper(shell, true, hostile)).toBe(`docker [compose] [-f] [x'; $(reboot) \`id\` "q"\nline]\n`);
    expect(runWrapper(shell, false, hostile)).toBe(`docker-compose [-f] [x'; $(reboot) \`id\` "q"\nline]\n`);
  });

  it('is a shell script dash parses', () => {
    expect(readFileSync(new URL('../../../templates/compose/zanuri-compose', import.meta.url), 'utf8').startsWith('#!/bin/sh\n')).toBe(true);
    expect(spawnSync('dash', ['-n'], { input: wrapper }).status).toBe(0);
  });
});
