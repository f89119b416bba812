import { describe, expect, it } from 'vitest';
import type { Action, Plan } from '../../../src/core/plan.js';
import { renderArgv } from '../../../src/core/quote.js';
import { directoryFact, fileFact, packagesFact, serviceFact, userFact, type FactRequest, type FactValues } from '../../../src/facts/state.js';
import { layout, nodeApp, nodeMajor, pm2PackageJson, savedAppsFact } from '../../../src/steps/node-app.js';
import { planStep } from '../../../src/steps/plan.js';
import { b64, ctx } from './facts-of.js';

/** Fact values from captured outputs; a fact the test does not give reads as empty output (a fresh host). */
function host(outputs: Array<[FactRequest<unknown>, string]>): FactValues {
  const given = new Map(outputs.map(([r, o]) => [r.key, o]));
  return { get: <T>(r: FactRequest<T>): T => r.parse(given.get(r.key) ?? '') };
}
const planFor = (raw: unknown, outputs: Array<[FactRequest<unknown>, string]> = []): Plan => planStep(nodeApp, host(outputs), nodeApp.parseParams(raw), ctx);
const puts = (plan: Plan): Record<string, Extract<Action, { kind: 'put' }>> => Object.fromEntries(plan.actions.flatMap((a) => (a.kind === 'put' ? [[a.path, a]] : [])));
const runs = (plan: Plan): string[] => plan.actions.flatMap((a) => (a.kind === 'run' ? [renderArgv(a.cmd.argv)] : []));
const l = layout({ name: 'api', dir: '/opt/api', script: 'app/server.js' });
const deployed: Array<[FactRequest<unknown>, string]> = [[fileFact(l.script), `present 644 root root\n${b64('require("http")')}`]];
const node18: Array<[FactRequest<unknown>, string]> = [[packagesFact(['nodejs']), 'nodejs\tii \t18.19.0+dfsg-6~deb12u2\n']];

function converged(raw: unknown): Array<[FactRequest<unknown>, string]> {
  const files = Object.values(puts(planFor(raw, [...node18, ...deployed]))).map((a): [FactRequest<unknown>, string] => [fileFact(a.path), `present ${a.mode.toString(8)} ${a.owner} ${a.group}\n${b64(String(a.content))}`]);
  return [
    ...node18, ...deployed, ...files,
    [userFact('api'), 'api:x:998:998::/home/api:/usr/sbin/nologin\napi'],
    [fileFact(pm2PackageJson), `present 644 root root\n${b64('{"name":"pm2","version":"6.0.8"}')}`],
    [directoryFact('/opt/api'), 'dir 750 root api'], [directoryFact(l.home), 'dir 750 api api'],
    [fileFact(l.dump), `present 640 api api\n${b64('[]')}`], [savedAppsFact(l.dump), 'dump\napi\t/opt/api/app/server.js\n'],
    [serviceFact(l.unit), 'enabled\nactive'],
  ];
}

describe('node-app', () => {
  it('on a fresh host makes the app user, installs the pinned PM2 from the registry without lifecycle scripts, and starts PM2\'s unit before it starts the app and saves the list', () => {
    const plan = planFor({ registry: 'http://10.0.0.5:4873/' }, [...node18, ...deployed]);
    expect(runs(plan)).toEqual([
      'useradd --system --shell /usr/sbin/nologin -- api',
      'timeout 600 npm install --global --prefix /usr/local --ignore-scripts --no-audit --no-fund --no-update-notifier --registry http://10.0.0.5:4873/ pm2@6.0.8',
      expect.stringMatching(/^sh -c .* zanuri-pm2-dump \/opt\/api\/.pm2\/dump.pm2 api$/s),
      'systemctl daemon-reload',
      expect.stringMatching(/^sh -c .* zanuri-pm2-start api \/opt\/api\/.pm2 \/usr\/local\/bin\/pm2 \/opt\/api\/ecosystem.config.js$/s),
    ]);
    const kinds = plan.actions.map((a) => (a.kind === 'service' ? `service ${a.unit}` : a.kind === 'run' ? a.cmd.argv.find((x) => x.startsWith('zanuri-')) ?? a.cmd.argv[0] : a.kind));
    expect(kinds.indexOf('service pm2-api.service'), 'the unit runs the daemon before the app is started in it').toBeLessThan(kinds.indexOf('zanuri-pm2-start'));
    const unit = String(puts(plan)[l.unitPath]?.content);
    expect(unit).toContain('User=api\n');
    expect(unit).toContain('ExecStart=/usr/local/bin/pm2 resurrect\n');
    expect(unit).toContain('PIDFile=/opt/api/.pm2/pm2.pid\n');
    const eco = puts(plan)[l.ecosystem];
    expect(eco?.mode).toBe(0o640);
    expect(eco?.group).toBe('api');
    expect(String(eco?.content)).toContain('script: "/opt/api/app/server.js",\n    cwd: "/opt/api/app",\n    instances: "max",\n    exec_mode: "cluster",');
    expect(String(eco?.content)).toContain("HOST: '127.0.0.1',\n      PORT: \"3000\",");
  });

  it('is converged when PM2 is at its version, the files are as declared and the saved list runs the script', () => {
    const plan = planFor({}, converged({}));
    expect(plan.actions).toEqual([]);
    expect('noop' in plan && plan.noop).toBe('PM2 6.0.8 (pm2-api.service, as api) runs /opt/api/app/server.js on 127.0.0.1:3000 (cluster, max instances) and resurrects it at start');
  });

  it('reloads the app from a changed ecosystem file, and upgrades PM2 to a new pin with a restart of its unit', () => {
    const changed = planFor({ instances: 1, maxMemoryRestart: '512M' }, converged({}));
    expect(changed.actions.map((a) => a.kind)).toEqual(['put', 'run']);
    expect(changed.actions[1]?.why).toMatch(/reloads api from the changed ecosystem file/);
    expect(String(puts(changed)[l.ecosystem]?.content)).toContain('instances: 1,\n    exec_mode: "fork",');
    expect(String(puts(changed)[l.ecosystem]?.content)).toContain('max_memory_restart: "512M",');
    const upgrade = planFor({ pm2Version: '6.0.9' }, converged({}));
    const install = upgrade.actions.find((a) => a.kind === 'run');
    expect(install?.why).toBe('PM2 6.0.8 is installed, not 6.0.9');
    expect(install?.kind === 'run' && install.notify).toEqual([{ unit: 'pm2-api.service', op: 'restart' }]);
  });

  it('runs the PM2 daemon without an app until the script is deployed, and says so', () => {
    const outputs = converged({}).filter(([r]) => r.key !== fileFact(l.script).key && r.key !== savedAppsFact(l.dump).key);
    const plan = planFor({}, [...outputs, [savedAppsFact(l.dump), 'dump\n']]);
    expect(plan.actions).toEqual([]);
    expect('noop' in plan && plan.noop).toMatch(/\/opt\/api\/app\/server.js is not deployed yet/);
  });

  it('refuses a Node.js older than 18 (Ubuntu 22.04\'s nodejs 12) before changing anything of its own', () => {
    expect(nodeMajor('12.22.9~dfsg-1ubuntu3')).toBe(12);
    expect(nodeMajor('18.19.0+dfsg-6~deb12u2')).toBe(18);
    expect(() => planFor({}, [[packagesFact(['nodejs']), 'nodejs\tii \t12.22.9~dfsg-1ubuntu3\n']])).toThrow(/Node.js 18 or later/);
  });

  it('refuses hostile or wrong values before any connection', () => {
    for (const bad of [
      { name: 'root' }, { name: 'deploy' }, { dir: '/usr' }, { dir: '/opt' }, { script: '../etc/passwd' }, { script: '/etc/passwd' }, { script: "a'.js" },
      { pm2Version: 'latest' }, { pm2Version: '6.0.8; reboot' }, { registry: 'http://x/$(reboot)' }, { instances: 0 }, { instances: 'all' }, { maxMemoryRestart: '1 G' },
    ]) expect(() => nodeApp.parseParams(bad), JSON.stringify(bad)).toThrow();
  });

  it('reads PM2\'s saved list by name and script, and no list as null', () => {
    const fact = savedAppsFact('/opt/api/.pm2/dump.pm2');
    expect(fact.parse('dump\napi\t/opt/api/app/server.js\nother\t/x.js\n')).toEqual([{ name: 'api', script: '/opt/api/app/server.js' }, { name: 'other', script: '/x.js' }]);
    expect(fact.parse('')).toBeNull();
    expect(fact.parse('dump\n')).toEqual([]);
  });
});
