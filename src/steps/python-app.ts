import { CommandError, ConfigError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import { commandFact, fileFact, userFact, type FactRequest, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { appDirPattern, appUser, checkAppName, daemonReload, environmentOf } from './app-shared.js';
import { activeWithin, localHttpCmd } from './service-shared.js';
import { params, pattern, port, Type, url } from './schema.js';
import { defineStep } from './types.js';

/**
 * A Python WSGI application the way seed 001 lays out AIKovrr's backend: /opt/aikovrr/backend with
 * its virtual environment in venv/, logs/ and media/, run by gunicorn under systemd as the
 * application's own user (no login shell), on 127.0.0.1:8000 behind the nginx step's upstream.
 *
 * Python is Debian 12's python3 (3.11). gunicorn is Debian's python3-gunicorn (security updates
 * through unattended-upgrades) seen through a venv made with --system-site-packages, unless the
 * requirements pin their own (seed 001 pins gunicorn==21.2.0; pip then installs it into the venv,
 * where it comes first). Requirements are installed with pip from the index the operator names;
 * the requirements file zanuri writes is copied into the venv after a successful install, so a
 * later run compares the two and installs only when they differ.
 *
 * The application's code is the operator's to deploy: into backend/ (e.g. a git checkout) or as a
 * package in the requirements. Until its top-level module can be found, the unit is written but
 * not started, and the step says so; the next run after the deployment starts it.
 */
const id = 'python-app';

const requirement = '^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?(?:\\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\\])?(?: ?(?:===|==|~=|!=|<=|>=|<|>) ?[A-Za-z0-9.*+!_-]+(?:, ?(?:===|==|~=|!=|<=|>=|<|>) ?[A-Za-z0-9.*+!_-]+)*)?(?: --hash=sha256:[0-9a-f]{64})*$';

const schema = params({
  name: Type.String({ pattern: pattern.userName, default: 'aikovrr', what: 'a user name', description: 'The application\'s user and group (a system account without a login shell) and its unit, NAME-gunicorn.service.' }),
  dir: Type.String({ pattern: appDirPattern, default: '/opt/aikovrr', what: 'a directory right under /opt or /srv', description: 'The application\'s directory (seed 001: /opt/aikovrr); the code, venv/, logs/ and media/ are in its backend/.' }),
  wsgiApp: Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*(?:\\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$', default: 'aikovrr.wsgi:application', what: 'module:callable', description: 'The WSGI callable gunicorn serves, as module:callable (Django: PROJECT.wsgi:application), found in backend/ or in the venv.' }),
  port: port({ default: 8000, description: 'gunicorn listens on 127.0.0.1:PORT only (seed 001: 8000, internal); the nginx step\'s upstream points here.' }),
  workers: Type.Union([Type.Null(), Type.Integer({ minimum: 1, maximum: 64 })], { default: null, what: 'a whole number from 1 to 64, or null', description: 'gunicorn worker processes; null: one per CPU core of the host, at least 2 (seed 001: 4 workers on its 4 vCPUs).' }),
  requirements: Type.Array(Type.String({ pattern: requirement, maxLength: 600, what: 'a requirement like Django==4.2.7 (optionally with --hash=sha256:...)' }), {
    default: [], description: 'pip requirements, one per item (or --set python-app.requirements=@requirements.txt; # lines are skipped); installed into the venv when they change. Names and version specifiers only: no URLs or options.',
  }),
  indexUrl: Type.Union([Type.Null(), url()], { default: null, what: 'an http(s) URL', description: 'The package index pip installs from (--index-url, e.g. a mirror inside the network); null: pip\'s default, PyPI. An http:// index is also given as --trusted-host (pin --hash=sha256 in the requirements then).' }),
  systemSitePackages: Type.Boolean({ default: true, description: 'Make the venv with --system-site-packages, so Debian\'s python3-gunicorn serves the app unless the requirements pin a gunicorn; false: an isolated venv, and gunicorn must be in the requirements.' }),
  environment: Type.Union([Type.Null(), Type.Array(Type.String())], {
    default: null, what: 'lines NAME=value (--set python-app.environment=@FILE)',
    description: 'The application\'s environment (seed 001\'s backend .env: SECRET_KEY, DATABASE_PASSWORD, ...) from a file: --set python-app.environment=@app.env. Written to backend/.env (0640 root:NAME), read by the unit; never shown.',
  }),
});

export interface PythonAppParams {
  name: string; dir: string; wsgiApp: string; port: number; workers: number | null; requirements: string[];
  indexUrl: string | null; systemSitePackages: boolean; environment: Secret | null;
}

export const layout = (p: { name: string; dir: string }) => {
  const app = `${p.dir}/backend`;
  return {
    app, venv: `${app}/venv`, logs: `${app}/logs`, media: `${app}/media`, requirements: `${app}/requirements.txt`,
    installed: `${app}/venv/zanuri-requirements.txt`, env: `${app}/.env`, unit: `${p.name}-gunicorn.service`,
    unitPath: `/etc/systemd/system/${p.name}-gunicorn.service`, pyvenvCfg: `${app}/venv/pyvenv.cfg`,
  };
};

/** The number of CPU cores, for the default number of workers. */
export const coresFact = commandFact(['nproc']);

/** Is the WSGI module's top-level package in backend/ or the venv? Looked up as the application user, without importing (running) any of it. */
export function moduleFact(p: PythonAppParams): FactRequest<{ exitCode: number; stdout: string }> {
  return commandFact(moduleCheck(p).argv);
}

const moduleCheck = (p: PythonAppParams): { argv: [string, ...string[]] } => {
  const l = layout(p);
  const top = p.wsgiApp.split(/[.:]/)[0] ?? '';
  return {
    argv: ['timeout', '20', 'runuser', '-u', p.name, '--', `${l.venv}/bin/python`, '-I', '-c',
      'import sys, importlib.machinery as m; sys.exit(0 if m.PathFinder.find_spec(sys.argv[1], [sys.argv[2]] + sys.path) else 3)', top, l.app],
  };
};

export const workersOf = (p: PythonAppParams, facts: FactValues): number => {
  if (p.workers !== null) return p.workers;
  const cores = facts.get(coresFact);
  const n = cores.exitCode === 0 && /^\d+$/.test(cores.stdout.trim()) ? Number(cores.stdout.trim()) : 2;
  return Math.min(64, Math.max(2, n));
};

const deployed = (p: PythonAppParams, facts: FactValues): boolean => facts.get(moduleFact(p)).exitCode === 0;

/** pip install -r, then the file is copied beside the venv as the record of what was installed; bounded. Fixed script; paths as $1..$3. */
const pipScript = `set -eu
venv=$1 req=$2 record=$3
timeout 900 "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --no-cache-dir --root-user-action=ignore --timeout 30 --retries 2 --requirement "$req"
cp -- "$req" "$record.tmp" && mv -f -- "$record.tmp" "$record"`;

export const pythonApp = defineStep({
  id,
  title: 'Python application (venv, gunicorn)',
  after: ['nginx'],
  params: schema,

  check(raw): PythonAppParams {
    checkAppName(id, raw.name);
    const requirements = raw.requirements.filter((r) => !r.startsWith('#'));
    const gunicornPinned = requirements.some((r) => /^gunicorn(?![A-Za-z0-9._-])/i.test(r));
    if (!raw.systemSitePackages && !gunicornPinned) {
      throw new ConfigError(`${id}: with systemSitePackages false the venv cannot see Debian's gunicorn: list gunicorn in the requirements (seed 001: gunicorn==21.2.0)`);
    }
    return { ...raw, requirements, environment: environmentOf(id, raw.environment) };
  },

  packages: (p) => ['python3', 'python3-venv', ...(p.systemSitePackages ? ['python3-gunicorn'] : [])],

  facts: (p) => [userFact(p.name), coresFact, moduleFact(p), fileFact(layout(p).pyvenvCfg), fileFact(layout(p).installed)],

  resources(facts, p, { templates }) {
    const l = layout(p);
    const ready = deployed(p, facts);
    const restart = ready ? { notify: [{ unit: l.unit, op: 'restart' as const }] } : {};
    const cfg = facts.get(fileFact(l.pyvenvCfg));
    const siteFlag = /^include-system-site-packages\s*=\s*(\S+)/m.exec(cfg.content ?? '')?.[1];
    const venvWhy = !cfg.exists ? `the virtual environment ${l.venv} does not exist`
      : siteFlag !== String(p.systemSitePackages) ? `${l.venv} was made ${siteFlag === 'true' ? 'with' : 'without'} the system's site packages, not ${p.systemSitePackages ? 'with' : 'without'} (it is made anew; the requirements are installed again)` : null;
    const requirementsText = p.requirements.length
      ? templates.render('python-app/requirements.txt', {
        venv: l.venv, indexUrl: p.indexUrl, trustedHost: p.indexUrl?.startsWith('http://') ? (/^http:\/\/([^/:]+)/.exec(p.indexUrl)?.[1] ?? null) : null,
        requirements: p.requirements,
      })
      : null;
    const wantedRecord = requirementsText ? String(requirementsText.text) : null;
    const installed = facts.get(fileFact(l.installed));
    const pipWhy = wantedRecord === null ? null
      : venvWhy ? 'the requirements go into the new virtual environment'
        : installed.content === null ? `the requirements are not installed in ${l.venv} yet`
          : installed.content !== wantedRecord ? `the requirements differ from those installed in ${l.venv}` : null;
    const envFile = p.environment ? file(l.env, templates.render('python-app/app.env', { environment: p.environment }), {
      mode: 0o640, owner: 'root', group: p.name, ...restart,
      whyMissing: `the application's environment ${l.env} does not exist`, whyDiffers: `${l.env} differs from the environment given (not shown)`,
    }) : null;
    const unitFile = file(l.unitPath, templates.render('python-app/gunicorn.service', {
      name: p.name, wsgiApp: p.wsgiApp, app: l.app, venv: l.venv, logs: l.logs, media: l.media, port: p.port,
      workers: workersOf(p, facts), envFile: p.environment ? l.env : null,
    }), { ...restart, whyMissing: `the unit ${l.unit} does not exist`, whyDiffers: `${l.unitPath} differs from the wanted gunicorn service` });
    return [
      appUser(id, p.name, facts),
      directory(p.dir, { mode: 0o755 }),
      directory(l.app, { mode: 0o750, owner: 'root', group: p.name }),
      directory(l.logs, { mode: 0o750, owner: p.name, group: p.name }),
      directory(l.media, { mode: 0o750, owner: p.name, group: p.name }),
      command('python-venv', venvWhy, {
        argv: ['timeout', '300', 'python3', '-m', 'venv', ...(p.systemSitePackages ? ['--system-site-packages'] : []), '--clear', '--', l.venv],
      }, { display: `python3 -m venv${p.systemSitePackages ? ' --system-site-packages' : ''} ${l.venv}`, checkpoint: true }),
      directory(l.venv, { mode: 0o750, owner: 'root', group: p.name }),
      ...(requirementsText ? [
        file(l.requirements, requirementsText, { mode: 0o640, owner: 'root', group: p.name, whyDiffers: `${l.requirements} differs from the requirements given` }),
        command('pip-install', pipWhy, { argv: ['sh', '-c', pipScript, 'zanuri-pip', l.venv, l.requirements, l.installed] }, {
          display: `pip install -r ${l.requirements} into ${l.venv}${p.indexUrl ? ` from ${p.indexUrl}` : ''}`, checkpoint: true, ...restart,
        }),
      ] : []),
      ...(envFile ? [envFile] : []),
      unitFile,
      daemonReload(id, [unitFile], facts, `unit ${l.unit}`),
      service(l.unit, { enabled: ready, running: ready }),
    ];
  },

  converged: (p, facts) => {
    const l = layout(p);
    return deployed(p, facts)
      ? `gunicorn serves ${p.wsgiApp} on 127.0.0.1:${p.port} with ${workersOf(p, facts)} workers as ${p.name} (${l.unit}, venv ${l.venv})`
      : `the Python runtime is ready (venv ${l.venv}, unit ${l.unit}), but ${p.wsgiApp.split(/[.:]/)[0]} is not deployed yet: put it in ${l.app} or list it in the requirements, then run again to start gunicorn`;
  },

  /** The app answers HTTP on its port; before the app is deployed, the venv's python imports gunicorn. */
  async verify(ctx, p) {
    const l = layout(p);
    const found = await ctx.run(moduleCheck(p));
    if (!found.ok) {
      const gunicorn = await ctx.run({ argv: ['timeout', '20', 'runuser', '-u', p.name, '--', `${l.venv}/bin/python`, '-I', '-c', 'import gunicorn; print(gunicorn.__version__)'] });
      if (!gunicorn.ok) throw new CommandError(gunicorn, `the venv ${l.venv} cannot import gunicorn`);
      return;
    }
    const active = await ctx.run(activeWithin(l.unit));
    const answer = await ctx.run(localHttpCmd(p.port, '/', 'HTTP/1.'));
    if (!active.ok || !answer.ok) {
      const journal = await ctx.run({ argv: ['journalctl', '-u', l.unit, '-n', '15', '--no-pager', '-o', 'cat'] });
      throw new CommandError(answer.ok ? active : answer, `gunicorn (${l.unit}) does not answer on 127.0.0.1:${p.port}; its last log lines:\n${journal.stdout.trim().slice(-1500)}`);
    }
  },
});
