import { describe, expect, it } from 'vitest';
import type { Action, Plan } from '../../../src/core/plan.js';
import { renderArgv } from '../../../src/core/quote.js';
import { commandFact, directoryFact, fileFact, serviceFact, userFact, type FactRequest, type FactValues } from '../../../src/facts/state.js';
import { planStep } from '../../../src/steps/plan.js';
import { coresFact, layout, moduleFact, pythonApp, type PythonAppParams } from '../../../src/steps/python-app.js';
import { b64, ctx } from './facts-of.js';

/** Fact values from captured outputs; a fact the test does not give reads as empty output (a fresh host: nothing there). */
function host(outputs: Array<[FactRequest<unknown>, string]>): FactValues {
  const given = new Map(outputs.map(([r, o]) => [r.key, o]));
  return { get: <T>(r: FactRequest<T>): T => r.parse(given.get(r.key) ?? '') };
}
const planFor = (raw: unknown, outputs: Array<[FactRequest<unknown>, string]> = []): Plan => planStep(pythonApp, host(outputs), pythonApp.parseParams(raw), ctx);
const puts = (plan: Plan): Record<string, Extract<Action, { kind: 'put' }>> => Object.fromEntries(plan.actions.flatMap((a) => (a.kind === 'put' ? [[a.path, a]] : [])));
const runs = (plan: Plan): string[] => plan.actions.flatMap((a) => (a.kind === 'run' ? [renderArgv(a.cmd.argv)] : []));
const text = (a: { content: unknown } | undefined): string => String((a?.content as { reveal?: () => string })?.reveal?.() ?? a?.content ?? '');

/** A host where everything of the default parameters is in place, as the step left it. */
function converged(p: PythonAppParams, extra: Array<[FactRequest<unknown>, string]> = []): Array<[FactRequest<unknown>, string]> {
  const l = layout(p);
  const plan = planFor({ ...rawOf(p) }, [[moduleFact(p), '\n@@rc=0'], [coresFact, '4\n@@rc=0']]);
  const files = Object.values(puts(plan)).map((a): [FactRequest<unknown>, string] => [fileFact(a.path), `present ${a.mode.toString(8)} ${a.owner} ${a.group}\n${b64(text(a))}`]);
  const installed = puts(plan)[l.requirements];
  return [
    [userFact(p.name), `${p.name}:x:998:998::/home/${p.name}:/usr/sbin/nologin\n${p.name}`],
    [coresFact, '4\n@@rc=0'], [moduleFact(p), '\n@@rc=0'],
    [fileFact(l.pyvenvCfg), `present 644 root root\n${b64(`home = /usr/bin\ninclude-system-site-packages = ${p.systemSitePackages}\nversion = 3.11.2\n`)}`],
    ...(installed ? [[fileFact(l.installed), `present 644 root root\n${b64(text(installed))}`] as [FactRequest<unknown>, string]] : []),
    [directoryFact(p.dir), 'dir 755 root root'], [directoryFact(l.app), `dir 750 root ${p.name}`], [directoryFact(l.venv), `dir 750 root ${p.name}`],
    [directoryFact(l.logs), `dir 750 ${p.name} ${p.name}`], [directoryFact(l.media), `dir 750 ${p.name} ${p.name}`],
    [serviceFact(l.unit), 'enabled\nactive'],
    ...files, ...extra,
  ];
}
const rawOf = (p: PythonAppParams): Record<string, unknown> => ({ ...p, environment: p.environment ? p.environment.reveal().split('\n').filter(Boolean) : null });

describe('python-app', () => {
  it('on a fresh host makes the app user without a login shell, seed 001\'s layout, a venv that sees Debian\'s gunicorn, and the unit, and leaves the unit stopped while the app is not deployed', () => {
    const plan = planFor({});
    expect(runs(plan)).toEqual([
      'useradd --system --shell /usr/sbin/nologin -- aikovrr',
      'timeout 300 python3 -m venv --system-site-packages --clear -- /opt/aikovrr/backend/venv',
      'systemctl daemon-reload',
    ]);
    const dirs = plan.actions.flatMap((a) => (a.kind === 'directory' ? [`${a.path} ${a.mode.toString(8)} ${a.owner}:${a.group}`] : []));
    expect(dirs).toEqual(['/opt/aikovrr 755 root:root', '/opt/aikovrr/backend 750 root:aikovrr', '/opt/aikovrr/backend/logs 750 aikovrr:aikovrr', '/opt/aikovrr/backend/media 750 aikovrr:aikovrr', '/opt/aikovrr/backend/venv 750 root:aikovrr']);
    const unit = text(puts(plan)['/etc/systemd/system/aikovrr-gunicorn.service']);
    expect(unit).toContain('User=aikovrr\n');
    expect(unit).toContain('ExecStart=/opt/aikovrr/backend/venv/bin/python -m gunicorn --bind 127.0.0.1:8000 --workers 2 --chdir /opt/aikovrr/backend --access-logfile - --error-logfile - aikovrr.wsgi:application\n');
    expect(unit).toContain('ProtectSystem=strict\n');
    expect(unit).toContain('ReadWritePaths=/opt/aikovrr/backend/logs /opt/aikovrr/backend/media\n');
    expect(plan.actions.some((a) => a.kind === 'service'), 'not started before the app is deployed').toBe(false);
    expect(pythonApp.packages?.(pythonApp.parseParams({}))).toEqual(['python3', 'python3-venv', 'python3-gunicorn']);
  });

  it('takes one worker per core (seed 001: 4 on 4 vCPUs), at least 2, unless workers is given', () => {
    const unitOf = (raw: unknown, cores: string): string => text(puts(planFor(raw, [[coresFact, `${cores}\n@@rc=0`]]))['/etc/systemd/system/aikovrr-gunicorn.service']);
    expect(unitOf({}, '4')).toContain('--workers 4 ');
    expect(unitOf({}, '1')).toContain('--workers 2 ');
    expect(unitOf({ workers: 3 }, '16')).toContain('--workers 3 ');
  });

  it('writes the requirements with the index and installs them with pip when they differ from what was installed, restarting the app', () => {
    const raw = { requirements: ['Django==4.2.7', 'gunicorn==21.2.0'], indexUrl: 'http://10.0.0.5:3141/simple/' };
    const p = pythonApp.parseParams(raw) as PythonAppParams;
    const plan = planFor(raw, [[moduleFact(p), '\n@@rc=0']]);
    const req = text(puts(plan)['/opt/aikovrr/backend/requirements.txt']);
    expect(req).toContain('--index-url http://10.0.0.5:3141/simple/\n--trusted-host 10.0.0.5\nDjango==4.2.7\ngunicorn==21.2.0\n');
    expect(puts(plan)['/opt/aikovrr/backend/requirements.txt']?.mode).toBe(0o640);
    const pip = plan.actions.find((a) => a.kind === 'run' && a.cmd.argv.includes('zanuri-pip'));
    expect(pip?.kind === 'run' && pip.notify).toEqual([{ unit: 'aikovrr-gunicorn.service', op: 'restart' }]);
    expect(pip?.kind === 'run' && pip.cmd.argv.slice(3)).toEqual(['zanuri-pip', '/opt/aikovrr/backend/venv', '/opt/aikovrr/backend/requirements.txt', '/opt/aikovrr/backend/venv/zanuri-requirements.txt']);

    // Converged: nothing to do, and the line says what runs.
    const done = planFor(raw, converged(p));
    expect(done.actions).toEqual([]);
    expect('noop' in done && done.noop).toBe('gunicorn serves aikovrr.wsgi:application on 127.0.0.1:8000 with 4 workers as aikovrr (aikovrr-gunicorn.service, venv /opt/aikovrr/backend/venv)');
    // One more requirement: the file and pip, nothing else.
    const more = planFor({ ...raw, requirements: [...raw.requirements, 'whitenoise==6.6.0'] }, converged(p));
    expect(more.actions.map((a) => a.kind)).toEqual(['put', 'run']);
    expect(more.actions[1]?.why).toBe('the requirements differ from those installed in /opt/aikovrr/backend/venv');
  });

  it('makes the venv anew when it was made with the other site-packages setting', () => {
    const p = pythonApp.parseParams({}) as PythonAppParams;
    const isolated = { systemSitePackages: false, requirements: ['gunicorn==21.2.0'] };
    const plan = planFor(isolated, converged(p));
    expect(runs(plan)[0]).toBe('timeout 300 python3 -m venv --clear -- /opt/aikovrr/backend/venv');
    expect(plan.actions.find((a) => a.kind === 'run')?.why).toMatch(/made with the system's site packages, not without/);
    expect(pythonApp.packages?.(pythonApp.parseParams(isolated))).toEqual(['python3', 'python3-venv']);
  });

  it('keeps the environment a secret: a 0640 file for the unit, never in the plan\'s JSON', () => {
    const raw = { environment: ['# the backend .env', 'SECRET_KEY=s3cr3t-value-xyz', 'DEBUG=False'] };
    const plan = planFor(raw);
    const env = puts(plan)['/opt/aikovrr/backend/.env'];
    expect(env?.mode).toBe(0o640);
    expect(env?.group).toBe('aikovrr');
    expect(text(env)).toContain('SECRET_KEY=s3cr3t-value-xyz\nDEBUG=False\n');
    expect(text(puts(plan)['/etc/systemd/system/aikovrr-gunicorn.service'])).toContain('EnvironmentFile=/opt/aikovrr/backend/.env\n');
    expect(JSON.stringify(plan)).not.toContain('s3cr3t');
    expect(JSON.stringify(pythonApp.parseParams(raw))).not.toContain('s3cr3t');
  });

  it('refuses hostile or wrong values before any connection, without quoting an environment value', () => {
    for (const bad of [
      { name: 'root' }, { name: 'deploy' }, { name: 'a;b' }, { dir: '/etc' }, { dir: '/opt' }, { dir: '/opt/../etc' }, { dir: '/opt/a b' },
      { wsgiApp: 'app:app; reboot' }, { wsgiApp: "x:y'" }, { port: 0 }, { workers: 0 },
      { requirements: ['Django==4.2; os_name=="posix"'] }, { requirements: ['-e git+https://x/y'] }, { requirements: ['--index-url http://evil/'] },
      { requirements: ['x\n--trusted-host evil'] }, { indexUrl: 'http://a/$(reboot)' }, { indexUrl: 'ftp://x/' },
      { systemSitePackages: false },
    ]) expect(() => pythonApp.parseParams(bad), JSON.stringify(bad)).toThrow();
    expect(() => pythonApp.parseParams({ environment: ['GOOD=1', 'bad line with hunter2'] })).toThrow(/line 2 of the environment.*not shown/);
    try {
      pythonApp.parseParams({ environment: ['GOOD=1', 'bad line with hunter2'] });
    } catch (error) {
      expect(String((error as Error).message)).not.toContain('hunter2');
    }
  });

  it('stops rather than turn a person\'s account into the service account', () => {
    expect(() => planFor({ name: 'alice' }, [[userFact('alice'), 'alice:x:1000:1000::/home/alice:/bin/bash\nalice']])).toThrow(/login shell \/bin\/bash/);
  });

  it('looks the module up as the app user, isolated and bounded, without importing it', () => {
    const p = pythonApp.parseParams({ wsgiApp: 'config.wsgi:application' }) as PythonAppParams;
    expect(moduleFact(p).key).toBe(commandFact(['timeout', '20', 'runuser', '-u', 'aikovrr', '--', '/opt/aikovrr/backend/venv/bin/python', '-I', '-c',
      'import sys, importlib.machinery as m; sys.exit(0 if m.PathFinder.find_spec(sys.argv[1], [sys.argv[2]] + sys.path) else 3)', 'config', '/opt/aikovrr/backend']).key);
  });
});
