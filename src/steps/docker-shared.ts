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

