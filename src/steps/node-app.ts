import { CommandError, StepFailedError } from '../core/errors.js';
import { quoteArg, renderArgv } from '../core/quote.js';
import { fileFact, packagesFact, userFact, type FactRequest, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { appDirPattern, appUser, checkAppName, daemonReload } from './app-shared.js';
import { activeWithin, localHttpCmd } from './service-shared.js';
import { params, pattern, port, Type, url } from './schema.js';
import { defineStep } from './types.js';

/**
 * A Node.js application under PM2, as seed 002's API servers run theirs (Node.js 18 LTS, PM2, nginx
 * in front): Debian 12's nodejs (18.x) and npm; PM2 at a pinned version, installed with npm from the
 * registry the operator names (a mirror inside the network: targets often cannot reach
 * registry.npmjs.org); the application's own system user (no login shell) runs the PM2 daemon from
 * PM2's systemd startup unit (the unit `pm2 startup systemd` writes: `pm2 resurrect` at start, `pm2
 * kill` at stop); an ecosystem file from a template says what PM2 runs: the script, on
 * 127.0.0.1:PORT (as HOST and PORT in its environment), in cluster mode.
 *
 * When the ecosystem file changes or PM2's saved list lacks the app, zanuri runs `pm2 startOrReload`
 * (a zero-downtime reload when it runs already) and `pm2 save`, so the unit resurrects it after a
 * restart or a reboot. The code is the operator's to deploy (the script under DIR); until the
 * script exists the PM2 daemon runs with nothing, and the step says so.
 */
const id = 'node-app';
const pm2Root = '/usr/local/lib/node_modules/pm2';
export const pm2Bin = '/usr/local/bin/pm2';
export const pm2PackageJson = `${pm2Root}/package.json`;

const schema = params({
  name: Type.String({ pattern: pattern.userName, default: 'api', what: 'a user name', description: 'The application\'s user and group (a system account without a login shell), its PM2 app name and its unit, pm2-NAME.service.' }),
  dir: Type.String({ pattern: appDirPattern, default: '/opt/api', what: 'a directory right under /opt or /srv', description: 'The application\'s directory: its code (the operator deploys it), ecosystem.config.js, and PM2\'s home in .pm2/ (logs, saved process list).' }),
  script: Type.String({ maxLength: 255, pattern: '^[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*$', default: 'app/server.js', what: 'a path inside dir', description: 'The application\'s entry point, relative to dir; it listens on process.env.HOST and process.env.PORT.' }),
  port: port({ default: 3000, description: 'The port the application listens on, on 127.0.0.1 only; the nginx step\'s upstream points here.' }),
  instances: Type.Union([Type.Literal('max'), Type.Integer({ minimum: 1, maximum: 256 })], { default: 'max', what: '"max" or a whole number from 1 to 256', description: 'PM2 cluster-mode instances: max (one per CPU core) or a number; 1 runs in fork mode.' }),
  pm2Version: Type.String({ pattern: '^\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}$', default: '6.0.8', what: 'a version like 6.0.8', description: 'The PM2 version, pinned (installed globally under /usr/local with npm, lifecycle scripts off).' }),
  registry: url({ default: 'https://registry.npmjs.org/', description: 'The npm registry PM2 is installed from (npm checks each tarball against the registry\'s integrity hash).' }),
  maxMemoryRestart: Type.Union([Type.Null(), Type.String({ pattern: '^[1-9]\\d{0,5}[KMG]$' })], { default: null, what: 'a size like 512M or 1G, or null', description: 'PM2 restarts an instance that uses more memory than this; null: no limit.' }),
});

type Params = { name: string; dir: string; script: string; port: number; instances: 'max' | number; pm2Version: string; registry: string; maxMemoryRestart: string | null };

export const layout = (p: { name: string; dir: string; script: string }) => ({
  ecosystem: `${p.dir}/ecosystem.config.js`, home: `${p.dir}/.pm2`, dump: `${p.dir}/.pm2/dump.pm2`,
  script: `${p.dir}/${p.script}`, cwd: `${p.dir}/${p.script}`.replace(/\/[^/]*$/, ''),
  unit: `pm2-${p.name}.service`, unitPath: `/etc/systemd/system/pm2-${p.name}.service`,
});

/** Node 18 or later; Debian's version strings look like 18.19.0+dfsg-6~deb12u2. */
export const nodeMajor = (version: string | null): number | null => {
  const m = /^(?:\d+:)?(\d+)\./.exec(version ?? '');
  return m ? Number(m[1]) : null;
};

/** The apps PM2 saved (dump.pm2: a JSON list) as name and script; null when there is no dump (or no node to read it). */
export function savedAppsFact(dump: string): FactRequest<Array<{ name: string; script: string }> | null> {
  const js = 'const fs = require("fs"); let d; try { d = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { process.exit(0); } console.log("dump"); for (const a of Array.isArray(d) ? d : []) console.log(`${a.name}\\t${a.pm_exec_path}`);';
  return {
    key: `pm2-saved:${dump}`,
    script: `if [ -f ${quoteArg(dump)} ] && command -v node >/dev/null; then ${renderArgv(['timeout', '20', 'node', '-e', js, dump])}; fi; true`,
    parse(output) {
      const lines = output.split('\n').filter(Boolean);
      if (lines[0] !== 'dump') return null;
      return lines.slice(1).map((l) => ({ name: l.split('\t')[0] ?? '', script: l.split('\t').slice(1).join('\t') }));
    },
  };
}

const pm2Version = (facts: FactValues): string | null => {
  const pkg = facts.get(fileFact(pm2PackageJson));
  try {
    const v = (JSON.parse(pkg.content ?? 'null') as { version?: unknown } | null)?.version;
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
};

/** pm2 as the application user, with PM2's home; bounded. Fixed script: user, home, then pm2's argv. */
const asAppScript = 'u=$1 home=$2; shift 2; cd "$home" && exec timeout 120 runuser -u "$u" -- env HOME="$home" PM2_HOME="$home" "$@"';
export const asApp = (p: { name: string; dir: string; script: string }, ...args: string[]): { argv: [string, ...string[]] } => ({ argv: ['sh', '-c', asAppScript, 'zanuri-pm2', p.name, layout(p).home, pm2Bin, ...args] });

/** Start or reload the app from the ecosystem file, then save the list the unit resurrects. Fixed script: user, home, pm2, ecosystem file. */
const startScript = `set -e
u=$1 home=$2 pm2=$3 eco=$4
cd "$home"
timeout 120 runuser -u "$u" -- env HOME="$home" PM2_HOME="$home" "$pm2" startOrReload "$eco" --update-env
timeout 60 runuser -u "$u" -- env HOME="$home" PM2_HOME="$home" "$pm2" save --force`;

const deployed = (p: Params, facts: FactValues): boolean => facts.get(fileFact(layout(p).script)).exists;

export const nodeApp = defineStep({
  id,
  title: 'Node.js application (PM2)',
  after: ['nginx'],
  params: schema,

  check(raw): Params {
    checkAppName(id, raw.name);
    return raw as Params;
  },

  packages: () => ['nodejs', 'npm'],

  facts: (p: Params) => [packagesFact(['nodejs']), userFact(p.name), fileFact(pm2PackageJson), fileFact(layout(p).script), fileFact(layout(p).dump), savedAppsFact(layout(p).dump)],

  resources(facts, p: Params, { templates }) {
    const l = layout(p);
    const major = nodeMajor(facts.get(packagesFact(['nodejs']))['nodejs'] ?? null);
    if (major !== null && major < 18) {
      throw new StepFailedError('this host', `${id}: this host's nodejs is ${major}.x; the API servers need Node.js 18 or later (seed 002)`, {
        hint: 'Debian 12 ships 18.x; on Ubuntu 22.04 (nodejs 12) add a Node.js 18+ repository first (an apt repository step) or use Debian 12',
      });
    }
    const installedPm2 = pm2Version(facts);
    const ready = deployed(p, facts);
    const ecosystem = file(l.ecosystem, templates.render('node-app/ecosystem.config.js', {
      name: JSON.stringify(p.name), script: JSON.stringify(l.script), cwd: JSON.stringify(l.cwd),
      instances: p.instances === 'max' ? '"max"' : String(p.instances), execMode: JSON.stringify(p.instances === 1 ? 'fork' : 'cluster'),
      port: JSON.stringify(String(p.port)), maxMemoryRestart: p.maxMemoryRestart ? JSON.stringify(p.maxMemoryRestart) : null,
    }), { mode: 0o640, owner: 'root', group: p.name, whyMissing: `PM2's ecosystem file ${l.ecosystem} does not exist`, whyDiffers: `${l.ecosystem} differs from what PM2 should run` });
    const unitFile = file(l.unitPath, templates.render('node-app/pm2.service', { user: p.name, home: l.home, pm2: pm2Bin }), {
      notify: [{ unit: l.unit, op: 'restart' }], whyMissing: `PM2's startup unit ${l.unit} does not exist`, whyDiffers: `${l.unitPath} differs from PM2's startup unit`,
    });
    const saved = facts.get(savedAppsFact(l.dump));
    const registered = saved?.some((a) => a.name === p.name && a.script === l.script) ?? false;
    const ecosystemChanges = ecosystem.plan(facts).length > 0;
    const startWhy = !ready ? null
      : ecosystemChanges && registered ? `PM2 reloads ${p.name} from the changed ecosystem file, and saves the list it resurrects at start`
        : !registered ? `PM2's saved list has no ${p.name} running ${l.script}: PM2 starts it from ${l.ecosystem} and saves the list` : null;
    return [
      appUser(id, p.name, facts),
      command('pm2-install', installedPm2 === p.pm2Version ? null : installedPm2 ? `PM2 ${installedPm2} is installed, not ${p.pm2Version}` : `PM2 ${p.pm2Version} is not installed`, {
        argv: ['timeout', '600', 'npm', 'install', '--global', '--prefix', '/usr/local', '--ignore-scripts', '--no-audit', '--no-fund', '--no-update-notifier', '--registry', p.registry, `pm2@${p.pm2Version}`],
      }, { checkpoint: true, notify: [{ unit: l.unit, op: 'restart' }] }),
      directory(p.dir, { mode: 0o750, owner: 'root', group: p.name }),
      directory(l.home, { mode: 0o750, owner: p.name, group: p.name }),
      // `pm2 resurrect` (the unit's start) wants a saved list: an empty one until the app is started.
      command('pm2-empty-dump', facts.get(fileFact(l.dump)).exists ? null : 'PM2 has no saved process list yet: the unit resurrects an empty one', {
        argv: ['sh', '-c', 'umask 027 && printf "[]" > "$1.tmp" && chown -- "$2:$2" "$1.tmp" && mv -f -- "$1.tmp" "$1"', 'zanuri-pm2-dump', l.dump, p.name],
      }),
      ecosystem,
      unitFile,
      daemonReload(id, [unitFile], facts, `unit ${l.unit}`),
      service(l.unit),
      command('pm2-start', startWhy, { argv: ['sh', '-c', startScript, 'zanuri-pm2-start', p.name, l.home, pm2Bin, l.ecosystem] }, {
        display: `pm2 startOrReload ${l.ecosystem} --update-env && pm2 save (as ${p.name})`,
      }),
    ];
  },

  converged: (p: Params, facts) => {
    const l = layout(p);
    return deployed(p, facts)
      ? `PM2 ${p.pm2Version} (${l.unit}, as ${p.name}) runs ${l.script} on 127.0.0.1:${p.port} (${p.instances === 1 ? 'fork mode' : `cluster, ${p.instances} instances`}) and resurrects it at start`
      : `PM2 ${p.pm2Version} runs as ${p.name} (${l.unit}), but ${l.script} is not deployed yet: deploy it, then run again to start it`;
  },

  async verify(ctx, p: Params) {
    const l = layout(p);
    const active = await ctx.run(activeWithin(l.unit));
    if (!active.ok) throw new CommandError(active, `PM2's unit ${l.unit} is not active`);
    const script = await ctx.run({ argv: ['test', '-f', l.script] });
    if (!script.ok) return;
    const answer = await ctx.run(localHttpCmd(p.port, '/', 'HTTP/1.'));
    if (!answer.ok) {
      const logs = await ctx.run(asApp(p, 'logs', p.name, '--nostream', '--lines', '15'));
      throw new CommandError(answer, `${p.name} does not answer on 127.0.0.1:${p.port} under PM2; its last log lines:\n${logs.stdout.trim().slice(-1500)}`);
    }
  },
});
