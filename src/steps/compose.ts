import { CommandError, ConfigError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import type { Cmd } from '../core/types.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { packages } from '../resources/packages.js';
import { service } from '../resources/service.js';
import type { Resource } from '../resources/types.js';
import { params, port, Type, type Static } from './schema.js';
import { activeWithin, localHttpCmd } from './service-shared.js';
import { defineStep, type ServedPort } from './types.js';

const id = 'compose';
/** Runs `docker compose` (the CLI plugin) where it answers, else `docker-compose` (Debian 12 ships only v1). */
export const wrapperPath = '/usr/local/sbin/zanuri-compose';
const maxFileBytes = 256 * 1024;

const schema = params({
  source: Type.Union([Type.Literal('distribution'), Type.Literal('docker')], {
    default: 'distribution',
    description: 'Where Compose comes from: the distribution\'s docker-compose package (Debian 12: 1.29), or docker-compose-plugin from Docker\'s repository (use with docker.source docker, which adds that repository).',
  }),
  project: Type.String({
    pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', what: 'a project name (lower case letters, digits, _ and -)', default: 'app',
    description: 'The Compose project: its directory /opt/PROJECT (0750 root), its unit zanuri-compose-PROJECT.service and the name of its containers and networks.',
  }),
  file: Type.Union([
    Type.String({ maxLength: maxFileBytes, what: 'the Compose file\'s text' }),
    Type.Array(Type.String(), { what: 'the lines of a Compose file' }),
    Type.Record(Type.String(), Type.Unknown(), { what: 'a Compose definition as a mapping' }),
    Type.Null(),
  ], {
    default: null, fileAs: 'text',
    description: 'The operator\'s Compose file: its text (--set compose.file=@compose.yaml reads the file whole, or a YAML block in the playbook) or a mapping (written as JSON, which Compose reads as YAML). Checked with `compose config` on a staged copy before it replaces the live one. null: Compose is installed and no project is managed.',
  }),
  env: Type.Union([Type.Array(Type.String()), Type.Null()], {
    default: null, what: 'a file of KEY=VALUE lines (--set compose.env=@FILE)',
    description: 'Secrets for the project: a file of KEY=VALUE lines (--set compose.env=@secrets.env; # comments skipped), written to /opt/PROJECT/.env (0600 root). Compose substitutes them into the file (${KEY}); a service gets them all with env_file: [.env]. Never shown in a diff, the report or argv.',
  }),
  open: Type.Array(Type.Object({
    port: port(),
    protocol: Type.Union([Type.Literal('tcp'), Type.Literal('udp')], { default: 'tcp' }),
    access: Type.Union([Type.Literal('public'), Type.Literal('internal')], { default: 'internal' }),
  }, { additionalProperties: false }), {
    default: [],
    description: 'Published host ports (the HOST of "HOST:CONTAINER") that the firewall opens: public to everyone, internal to docker-ufw\'s internalFrom. Every other published port stays closed from outside (docker-ufw); verify checks that a container of the project publishes each.',
  }),
  check: Type.Union([Type.Null(), Type.Object({
    port: port(),
    path: Type.String({ pattern: '^/[A-Za-z0-9._~!$&\'()*+,;=:@%/?-]{0,200}$', what: 'a URL path starting with /', default: '/' }),
    expect: Type.String({ pattern: '^[\\x20-\\x7e]{1,200}$', what: 'printable text', default: '^HTTP/1\\.[01] [23]' }),
  }, { additionalProperties: false })], {
    default: null,
    description: 'An HTTP request that proves the project serves: GET http://127.0.0.1:PORT/PATH on the host until the answer matches expect (a grep pattern; default: a 2xx or 3xx status), for about 20 s.',
  }),
});

type Raw = Static<typeof schema>;
export interface ComposeParams {
  source: Raw['source'];
  project: string;
  /** The Compose file as it goes onto the host; null: install Compose only. */
  file: string | null;
  env: Secret | null;
  open: Raw['open'];
  check: Raw['check'];
}

export const projectDir = (p: Pick<ComposeParams, 'project'>): string => `/opt/${p.project}`;
export const composePath = (p: Pick<ComposeParams, 'project'>): string => `${projectDir(p)}/compose.yaml`;
export const envPath = (p: Pick<ComposeParams, 'project'>): string => `${projectDir(p)}/.env`;
export const unitOf = (p: Pick<ComposeParams, 'project'>): string => `zanuri-compose-${p.project}.service`;
const unitPath = (p: Pick<ComposeParams, 'project'>): string => `/etc/systemd/system/${unitOf(p)}`;

/** The wrapper's arguments that name the project, its directory, its secrets and its file. */
export const projectArgs = (p: Pick<ComposeParams, 'project'>, file = composePath(p)): string[] =>
  ['--project-name', p.project, '--project-directory', projectDir(p), '--env-file', envPath(p), '-f', file];

/** `compose config` on the staged copy ('{}'): the file must parse and resolve with the project's .env before it goes live. */
export const validateCompose = (p: Pick<ComposeParams, 'project'>): Cmd => ({ argv: [wrapperPath, ...projectArgs(p, '{}'), 'config', '--quiet'] });

const composePackages = (p: Pick<ComposeParams, 'source'>): string[] => (p.source === 'docker' ? ['docker-compose-plugin'] : ['docker-compose']);

/** The Compose file's text: as given, a mapping as JSON, or a list of lines (which must be JSON: trimmed lines lose YAML's indentation). */
export function composeText(value: Raw['file']): string | null {
  if (value === null) return null;
  let text: string;
  if (typeof value === 'string') text = value;
  else if (Array.isArray(value)) {
    text = value.join('\n');
    try {
      JSON.parse(text);
    } catch {
      throw new ConfigError(`${id}: file given as a list of lines must be JSON: trimmed lines lose YAML's indentation (the content is not shown)`, {
        hint: 'give the file itself (--set compose.file=@compose.yaml reads it whole) or its text as a YAML block in the playbook',
      });
    }
  } else text = JSON.stringify(value, null, 2);
  if (!text.trim()) throw new ConfigError(`${id}: file is empty`);
  if (Buffer.byteLength(text) > maxFileBytes) throw new ConfigError(`${id}: file is larger than ${maxFileBytes / 1024} KiB`);
  if (/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(text)) throw new ConfigError(`${id}: file holds control characters (the content is not shown)`);
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** KEY=VALUE lines as a Secret; a bad line is named by its number, never by its content. */
export function envSecret(lines: string[] | null): Secret | null {
  if (lines === null) return null;
  const kept = lines.filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  const seen = new Set<string>();
  kept.forEach((line, i) => {
    const match = /^([A-Za-z_][A-Za-z0-9_]{0,127})=([^\x00-\x1f\x7f]*)$/.exec(line);
    if (!match) throw new ConfigError(`${id}: env line ${i + 1} (not counting comments) is not KEY=VALUE with a name of letters, digits and _ and no control characters (the content is not shown)`);
    const key = match[1] as string;
    if (seen.has(key)) throw new ConfigError(`${id}: env sets ${key} twice`);
    seen.add(key);
  });
  return new Secret(kept.length ? `${kept.join('\n')}\n` : '');
}

/** Every service of the project has a running container, the opened ports are published by one of them. */
const servicesScript = `set -eu
w=$1 project=$2; shift 2
services=$(timeout 60 "$w" "$@" config --services)
running=$(timeout 60 docker ps --filter "label=com.docker.compose.project=$project" --filter status=running --format '{{.Label "com.docker.compose.service"}}')
missing=
for s in $services; do printf '%s\\n' "$running" | grep -qxF -- "$s" || missing="$missing $s"; done
[ -z "$missing" ] || { echo "not running:$missing" >&2; timeout 60 docker ps -a --filter "label=com.docker.compose.project=$project" >&2; exit 1; }
timeout 60 docker ps --filter "label=com.docker.compose.project=$project" --format '{{.Ports}}'`;

/**
 * A Docker Compose project from a file the operator gives (seed 004 runs Arshai's services this
 * way): Compose itself (Debian's docker-compose, or docker-compose-plugin from Docker's repository),
 * the project under /opt/PROJECT (0750 root), its secrets in /opt/PROJECT/.env (0600 root), the file
 * checked with `compose config` on a staged copy before it replaces the live one, and a systemd
 * unit that brings the project up at boot (up -d; reload: up -d again, which recreates what
 * changed; stop: down). Published ports stay behind docker-ufw: only those listed in `open` are
 * declared as served, so the firewall opens those and nothing else.
 */
export const compose = defineStep({
  id,
  title: 'Docker Compose project',
  after: ['docker', 'docker-ufw'],
  params: schema,

  check(raw): ComposeParams {
    const text = composeText(raw.file);
    const env = envSecret(raw.env);
    if (text === null && (env !== null || raw.open.length || raw.check)) throw new ConfigError(`${id}: env, open and check belong to a project: give its file too`);
    const twice = raw.open.find((o, i) => raw.open.findIndex((x) => x.port === o.port && x.protocol === o.protocol) !== i);
    if (twice) throw new ConfigError(`${id}: open lists ${twice.port}/${twice.protocol} twice`);
    return { source: raw.source, project: raw.project, file: text, env, open: raw.open, check: raw.check };
  },

  packages: (p) => (p.source === 'distribution' ? composePackages(p) : []),

  serves: (p): Omit<ServedPort, 'step'>[] => p.open.map((o) => ({ port: o.port, protocol: o.protocol, access: o.access, why: `published by the Compose project ${p.project}` })),

  resources(facts, p, { templates }) {
    const resources: Resource[] = [
      // Docker's repository (added by the docker step with source docker) must exist before this installs.
      ...(p.source === 'docker' ? [packages(composePackages(p))] : []),
      file(wrapperPath, templates.render('compose/zanuri-compose', {}), { mode: 0o755, validate: { argv: ['sh', '-n', '{}'] }, whyMissing: 'the Compose wrapper (plugin or docker-compose, whichever is installed) is not installed yet' }),
    ];
    if (p.file === null) return resources;
    const reload = [{ unit: unitOf(p), op: 'reload' as const }];
    const unitFile = file(unitPath(p), templates.render('compose/zanuri-compose.service', {
      project: p.project, dir: projectDir(p), wrapper: wrapperPath, args: projectArgs(p).join(' '), startSeconds: 600, stopSeconds: 300,
    }), { notify: [{ unit: unitOf(p), op: 'restart' }], whyMissing: `nothing brings the project ${p.project} up at boot yet` });
    resources.push(
      directory(projectDir(p), { mode: 0o750 }),
      file(envPath(p), { text: p.env ?? new Secret('') }, {
        mode: 0o600, notify: reload,
        whyMissing: `the project's secrets file ${envPath(p)} does not exist yet`, whyDiffers: `the project's secrets differ from those given (not shown)`,
      }),
      file(composePath(p), p.file, {
        mode: 0o640, validate: validateCompose(p), notify: reload,
        whyMissing: `the Compose project ${p.project} is not on the host yet`, whyDiffers: `the Compose file of ${p.project} differs from the one given`,
      }),
      unitFile,
      command(`compose-daemon-reload-${p.project}`, unitFile.plan(facts).length ? `systemd reads the changed ${unitOf(p)}` : null, { argv: ['systemctl', 'daemon-reload'] }),
      service(unitOf(p), { enabled: true, running: true }),
    );
    return resources;
  },

  converged(p) {
    const tool = p.source === 'docker' ? 'docker-compose-plugin' : 'docker-compose';
    if (p.file === null) return `Compose (${tool}) is installed; no project is managed here`;
    const open = p.open.length ? p.open.map((o) => `${o.port}/${o.protocol} ${o.access}`).join(', ') : 'none (docker-ufw keeps its published ports closed)';
    return `the Compose project ${p.project} (${tool}) runs from ${composePath(p)} under ${unitOf(p)}; ports opened: ${open}`;
  },

  /** The unit is up, every service runs, each opened port is published by the project, and the HTTP check answers. */
  async verify(ctx, p) {
    const tool = await ctx.run({ argv: ['timeout', '60', wrapperPath, 'version'] });
    if (!tool.ok) throw new CommandError(tool, `${wrapperPath} version (neither docker compose nor docker-compose answers)`);
    if (p.file === null) return;
    const active = await ctx.run(activeWithin(unitOf(p)));
    if (!active.ok) throw new CommandError(active, `${unitOf(p)} is not active`);
    const services = await ctx.run({ argv: ['sh', '-c', servicesScript, 'zanuri-compose-verify', wrapperPath, p.project, ...projectArgs(p)] });
    if (!services.ok) throw new CommandError(services, `the services of ${p.project} are not all running`);
    for (const o of p.open) {
      if (!new RegExp(`:${o.port}->\\d+/${o.protocol}\\b`).test(services.stdout)) {
        throw new ConfigError(`${id}: open lists ${o.port}/${o.protocol}, which no container of ${p.project} publishes (published: ${services.stdout.trim().replace(/\n/g, '; ') || 'none'})`, { hint: 'publish it in the Compose file (ports: ["HOST:CONTAINER"]) or leave it out of open' });
      }
    }
    if (p.check) {
      const http = await ctx.run(localHttpCmd(p.check.port, p.check.path, p.check.expect));
      if (!http.ok) throw new CommandError(http, `GET http://127.0.0.1:${p.check.port}${p.check.path} did not answer ${JSON.stringify(p.check.expect)}`);
    }
  },
});
