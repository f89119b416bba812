import { CommandError, ConfigError } from '../core/errors.js';
import type { Cmd } from '../core/types.js';
import { familyOf, osReleaseFact, userFact, type FactValues } from '../facts/state.js';
import { aptRepository, keyringPath } from '../resources/apt-repository.js';
import { command } from '../resources/command.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { packages } from '../resources/packages.js';
import { service } from '../resources/service.js';
import type { Resource } from '../resources/types.js';
import { archFact, armoredKey, checkArmoredKey, daemonJsonPath, nvidiaRuntimeFact, wantsNvidiaRuntime } from './docker-shared.js';
import { params, Type, url, userName, type Static } from './schema.js';
import { defineStep, type PlanContext } from './types.js';

const schema = params({
  source: Type.Union([Type.Literal('distribution'), Type.Literal('docker')], {
    default: 'distribution',
    description: 'Where the engine comes from: the distribution\'s docker.io package, or Docker\'s own repository (docker-ce, trusted with Docker\'s shipped key or repositoryKey).',
  }),
  repositoryUrl: Type.Union([url(), Type.Null()], { default: null, description: 'Docker\'s repository; default https://download.docker.com/linux/debian (or /ubuntu on Ubuntu). Only with source docker.' }),
  repositoryKey: armoredKey('Docker\'s signing key, ASCII-armored, with source docker; null: the shipped copy of download.docker.com/linux/debian/gpg (templates/docker/docker-archive-key.asc, fingerprint 9DC8 5822 9FC7 DD38 854A E2D8 8D81 803C 0EBF CD88). E.g. --set docker.repositoryKey=@docker.asc.'),
  logMaxSize: Type.String({ pattern: '^[1-9][0-9]{0,5}[kmg]$', what: 'a size like 10m (k, m or g)', default: '10m', description: 'json-file log driver: the size at which a container\'s log is rotated.' }),
  logMaxFile: Type.Integer({ minimum: 1, maximum: 100, default: 3, description: 'json-file log driver: rotated log files kept per container.' }),
  liveRestore: Type.Boolean({ default: true, description: 'Containers keep running while dockerd restarts or upgrades (live-restore).' }),
  groupMembers: Type.Array(userName(), {
    default: [],
    description: 'Users added to the docker group, e.g. [deploy]. Membership is root-equivalent (a member can mount / into a container as root); empty: only root runs docker.',
  }),
});

type DockerParams = Static<typeof schema> & { repositoryKey: string | null };

const enginePackages = (p: DockerParams): string[] => (p.source === 'docker' ? ['docker-ce', 'docker-ce-cli', 'containerd.io'] : ['docker.io']);

/** daemon.json as the template renders it; a template override that is not JSON is refused before any change. */
function daemonJson(p: DockerParams, nvidiaRuntime: boolean, ctx: PlanContext) {
  const content = ctx.templates.render('docker/daemon.json', { logMaxSize: p.logMaxSize, logMaxFile: String(p.logMaxFile), liveRestore: p.liveRestore, nvidiaRuntime });
  try {
    JSON.parse(String(content.text));
  } catch (error) {
    throw new ConfigError(`docker: the daemon.json template (${content.source ?? 'docker/daemon.json'}) does not render valid JSON: ${(error as Error).message}`);
  }
  return content;
}

/**
 * dockerd checks a configuration file itself since Docker 23 (`--validate`); older engines (Debian
 * 12's 20.10) have no such flag, and the JSON was already parsed when the plan was made.
 */
const validateDaemonJson: Cmd = {
  argv: ['sh', '-c', 'if dockerd --help 2>/dev/null | grep -q -- "--validate"; then dockerd --validate --config-file "$1"; fi', 'zanuri-dockerd-validate', '{}'],
};

function groupResources(facts: FactValues, p: DockerParams): Resource[] {
  return p.groupMembers.map((name) => {
    const state = facts.get(userFact(name));
    const needed = state.groups.includes('docker') ? null
      : `${name} is to run docker without sudo: membership of the docker group is root-equivalent (a member can start a container that mounts / as root)`;
    return command(`docker group member ${name}`, needed, { argv: ['usermod', '--append', '--groups', 'docker', '--', name] }, {
      describe: `${name} is in the docker group (root-equivalent)`,
      undo: { argv: ['gpasswd', '--delete', name, 'docker'] },
    });
  });
}

/**
 * The Docker engine: the distribution's docker.io by default, or docker-ce from Docker's own
 * repository (deb822, its own keyring); /etc/docker/daemon.json from a template (log rotation,
 * live-restore and, when the container toolkit is selected or installed, the NVIDIA runtime), the
 * service enabled and running. Users join the docker group only when groupMembers names them.
 */
export const docker = defineStep({
  id: 'docker',
  title: 'Docker engine',
  after: ['deploy-user'],
  params: schema,

  check(raw): DockerParams {
    const repositoryKey = checkArmoredKey('docker', 'repositoryKey', raw.repositoryKey);
    if (raw.source !== 'docker' && (raw.repositoryUrl !== null || repositoryKey !== null)) throw new ConfigError('docker: repositoryUrl and repositoryKey go with source docker');
    return { ...raw, repositoryKey, groupMembers: [...new Set(raw.groupMembers)] };
  },

  packages: (p) => (p.source === 'distribution' ? enginePackages(p) : []),

  facts: (p) => [osReleaseFact(), archFact(), nvidiaRuntimeFact(), ...p.groupMembers.map((n) => userFact(n))],

  resources(facts, p, ctx) {
    const resources: Resource[] = [];
    if (p.source === 'docker') {
      const release = facts.get(osReleaseFact());
      const family = familyOf(release);
      resources.push(aptRepository('docker', {
        key: p.repositoryKey === null ? ctx.templates.render('docker/docker-archive-key.asc', {}) : ctx.templates.render('docker/repository-key.asc', { key: p.repositoryKey }),
        sources: ctx.templates.render('docker/docker.sources', {
          url: p.repositoryUrl ?? `https://download.docker.com/linux/${family === 'ubuntu' ? 'ubuntu' : 'debian'}`,
          suite: release['VERSION_CODENAME'] ?? 'stable',
          arch: facts.get(archFact()).stdout.trim() || 'amd64',
          keyring: keyringPath('docker'),
        }),
      }));
      resources.push(packages(enginePackages(p)));
    }
    const nvidiaRuntime = wantsNvidiaRuntime(facts, ctx);
    resources.push(
      directory('/etc/docker'),
      file(daemonJsonPath, daemonJson(p, nvidiaRuntime, ctx), {
        validate: validateDaemonJson,
        notify: [{ unit: 'docker.service', op: 'restart' }],
        whyMissing: `${daemonJsonPath} does not exist: no log rotation (logs grow without bound)${nvidiaRuntime ? ' and no NVIDIA runtime' : ''}`,
        whyDiffers: `${daemonJsonPath} differs from the wanted settings`,
      }),
      service('docker.service'),
      ...groupResources(facts, p),
    );
    return resources;
  },

  converged(p, facts, ctx) {
    const members = p.groupMembers.length ? `; ${p.groupMembers.join(', ')} in the docker group (root-equivalent)` : '';
    return `docker (${enginePackages(p).join(', ')}) is running with log rotation (${p.logMaxSize} x ${p.logMaxFile})${p.liveRestore ? ', live-restore' : ''}${wantsNvidiaRuntime(facts, ctx) ? ' and the NVIDIA runtime' : ''}${members}`;
  },

  /** A docker group member who does not exist stops the step before anything changes (deploy-user runs earlier). */
  async beforeApply(ctx, p) {
    for (const name of p.groupMembers) {
      const id = await ctx.run({ argv: ['id', '-u', '--', name] });
      if (!id.ok) throw new ConfigError(`docker: groupMembers names ${name}, who does not exist on the host`, { hint: 'create the user first (the deploy-user step), or leave it out' });
    }
  },

  /** dockerd must answer and run with the file as written. */
  async verify(ctx, p) {
    const info = await ctx.run({ argv: ['timeout', '60', 'docker', 'info', '--format', '{{json .}}'] });
    if (!info.ok) throw new CommandError(info, 'docker info (dockerd does not answer)');
    const parsed = JSON.parse(info.stdout) as { LoggingDriver?: string; LiveRestoreEnabled?: boolean };
    if (parsed.LoggingDriver !== 'json-file' || parsed.LiveRestoreEnabled !== p.liveRestore) {
      throw new ConfigError(`docker: dockerd runs with log driver ${parsed.LoggingDriver} and live-restore ${String(parsed.LiveRestoreEnabled)}, not as ${daemonJsonPath} says`);
    }
  },
});
