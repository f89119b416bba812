import { ConfigError } from '../core/errors.js';
import { commandFact, type FactValues } from '../facts/state.js';
import { Type } from './schema.js';
import type { PlanContext } from './types.js';

/**
 * What the docker and nvidia-container-toolkit steps share (a step never imports another step):
 * daemon.json has one owner, the docker step, which declares the NVIDIA runtime entry for the
 * toolkit step; the repository key parameter; the architecture fact.
 */
export const daemonJsonPath = '/etc/docker/daemon.json';
/** The step that adds the NVIDIA runtime to daemon.json; docker declares the entry for it (one owner per file). */
export const toolkitStepId = 'nvidia-container-toolkit';
export const nvidiaRuntimePath = '/usr/bin/nvidia-container-runtime';
/** Exit 0 when the NVIDIA runtime is installed (an earlier run of the toolkit step). */
export const nvidiaRuntimeFact = () => commandFact(['test', '-x', nvidiaRuntimePath]);
export const archFact = () => commandFact(['dpkg', '--print-architecture']);

/** The primary fingerprints of the shipped keys (templates/docker/KEYS.md says where each comes from). */
export const dockerKeyFingerprint = '9DC858229FC7DD38854AE2D88D81803C0EBFCD88';
export const toolkitKeyFingerprint = 'C95B321B61E88C1809C4F759DDCAE044F796ECB0';

const armor = { begin: '-----BEGIN PGP PUBLIC KEY BLOCK-----', end: '-----END PGP PUBLIC KEY BLOCK-----' };

/**
 * An ASCII-armored public key given as text or as a file's lines (--set x.repositoryKey=@key.asc):
 * one key block of armor characters only, so it can neither break the keyring file nor smuggle text.
 */
export const armoredKey = (description: string) => Type.Union([
  Type.String({ what: 'an ASCII-armored PGP public key' }),
  Type.Array(Type.String({ what: 'a line of an ASCII-armored PGP public key' })),
  Type.Null(),
], { default: null, description });

export function checkArmoredKey(step: string, name: string, value: string | string[] | null): string | null {
  if (value === null) return null;
  const text = (Array.isArray(value) ? value.join('\n') : value).trim();
  const lines = text.split('\n').map((l) => l.trimEnd());
  const ok = lines[0] === armor.begin && lines.at(-1) === armor.end &&
    lines.slice(1, -1).every((l) => l === '' || /^[A-Za-z0-9+/=]{1,100}$/.test(l) || /^[A-Za-z]+: [\x20-\x7e]{0,200}$/.test(l));
  if (!ok) throw new ConfigError(`${step}: ${name} must be one ASCII-armored PGP public key (${armor.begin} ... ${armor.end})`);
  // Canonical armor: headers, then the blank line apt's own dearmoring (apt-key's awk) waits for,
  // which a key given as a file's lines (--set ...=@key.asc) has lost.
  const inner = lines.slice(1, -1).filter((l) => l !== '');
  const headers = inner.filter((l) => l.includes(': '));
  const body = inner.filter((l) => !l.includes(': '));
  return [armor.begin, ...headers, '', ...body, armor.end].join('\n');
}

/** Is the NVIDIA runtime to be in daemon.json: the toolkit step is selected in this run, or an earlier run installed it. */
export function wantsNvidiaRuntime(facts: FactValues, ctx: Pick<PlanContext, 'selected'>): boolean {
  return (ctx.selected ?? []).includes(toolkitStepId) || facts.get(nvidiaRuntimeFact()).exitCode === 0;
}


/** The engine's version line (`Docker version 20.10.24+dfsg1, build 297e128`); not installed: exit 127. */
export const dockerdVersionFact = () => commandFact(['dockerd', '--version']);

/** Docker's IPv6 packet filtering, as its configuration decides it. */
export type DockerIpv6 =
  | { state: 'absent'; why: string }
  | { state: 'off' | 'on'; why: string; major: number; version: string };

/**
 * Does dockerd write ip6tables rules (IPv6 DNAT for published ports of IPv6 networks)? daemon.json's
 * `ip6tables` says so; unset, it is on from Docker 27 and off before, where it also needed
 * `experimental` (Debian 12's docker.io 20.10 refuses to start with ip6tables alone). With it off,
 * IPv6 clients reach published ports only through docker-proxy, a host process.
 */
export function dockerIpv6(dockerd: { exitCode: number; stdout: string }, daemonJson: string | null): DockerIpv6 {
  const m = dockerd.exitCode === 0 ? /^Docker version (\d+)\.(\d+)/m.exec(dockerd.stdout) : null;
  if (!m) return { state: 'absent', why: 'Docker is not installed yet' };
  const major = Number(m[1]);
  const version = `${m[1]}.${m[2]}`;
  let config: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(daemonJson ?? '{}');
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed as Record<string, unknown>;
  } catch {
    // the docker step owns daemon.json and refuses one that is not JSON; dockerd would not start with it
  }
  const set = typeof config['ip6tables'] === 'boolean' ? config['ip6tables'] : null;
  if (major >= 27) {
    return set === false
      ? { state: 'off', major, version, why: `Docker ${version} has ip6tables turned off in ${daemonJsonPath}` }
      : { state: 'on', major, version, why: `Docker ${version} writes ip6tables rules (${set === true ? `ip6tables in ${daemonJsonPath}` : 'its default since Docker 27'})` };
  }
  if (set === true && config['experimental'] === true) {
    return { state: 'on', major, version, why: `Docker ${version} writes ip6tables rules (experimental ip6tables in ${daemonJsonPath})` };
  }
  return { state: 'off', major, version, why: `Docker ${version} writes no ip6tables rules (before Docker 27 that takes ip6tables and experimental in ${daemonJsonPath})` };
}
