import { CommandError, UsageError } from '../core/errors.js';
import type { Transport } from '../core/types.js';
import { composeProbe, splitSections } from '../facts/probe.js';
import type { FactRequest, FactValues } from '../facts/state.js';
import type { RootRunner } from './host.js';

/** Facts looked up by key; asking for one that was never gathered is a bug in the step. */
export class Values implements FactValues {
  constructor(private readonly values: ReadonlyMap<string, unknown>) {}

  get<T>(request: FactRequest<T>): T {
    if (!this.values.has(request.key)) throw new Error(`fact ${request.key} was read but never declared`);
    return this.values.get(request.key) as T;
  }

  has(request: FactRequest<unknown>): boolean {
    return this.values.has(request.key);
  }

  /** These values with `newer` on top. */
  with(newer: Values): Values {
    return new Values(new Map([...this.values, ...newer.values]));
  }
}

/**
 * What each fact looks like on a host where nothing exists yet: every parser given empty output.
 * Used to find out, without a connection, which resources a step declares and so which facts they read.
 */
export const blankFacts: FactValues = { get: <T>(request: FactRequest<T>): T => request.parse('') };

/** Reads every requested fact in one round trip: one script, one section per distinct fact. */
export async function gather(root: RootRunner, requests: readonly FactRequest<unknown>[]): Promise<Values> {
  const unique = [...new Map(requests.map((r) => [r.key, r])).values()];
  if (!unique.length) return new Values(new Map());
  const script = composeProbe(unique.map((r, i) => ({ name: `f${i}`, script: r.script })));
  const result = await root.run({ argv: ['sh', '-c', script] }, { timeoutMs: 120_000 });
  if (!result.stdout.includes('@@zanuri-section:end@@')) throw new CommandError(result, 'reading facts');
  const sections = splitSections(result.stdout);
  return new Values(new Map(unique.map((r, i) => [r.key, r.parse(sections.get(`f${i}`) ?? '')])));
}

/**
 * The first round trip of a run: find out who we are, become root (directly or by sudo -n, never
 * a password prompt), check that systemd runs the host, and read every fact, all in one script.
 */
const asRootScript = `u=$(id -un)
if [ "$(id -u)" = 0 ]; then r=root; elif sudo -n true 2>/dev/null; then r=sudo; else r=none; fi
printf '@@zanuri-login %s %s %s\\n' "$u" "$r" "$(cat /proc/1/comm 2>/dev/null || echo unknown)"
case $r in root) exec sh -c "$1" ;; sudo) exec sudo -n sh -c "$1" ;; esac`;

export interface FirstGather {
  loginUser: string;
  loginIsRoot: boolean;
  values: Values;
}

export async function gatherAsRoot(transport: Transport, requests: readonly FactRequest<unknown>[]): Promise<FirstGather> {
  const unique = [...new Map(requests.map((r) => [r.key, r])).values()];
  const script = composeProbe(unique.map((r, i) => ({ name: `f${i}`, script: r.script })));
  const result = await transport.run({ argv: ['sh', '-c', asRootScript, 'zanuri-gather', script] }, { timeoutMs: 120_000 });
  const login = /^@@zanuri-login (\S+) (\S+) (\S+)$/m.exec(result.stdout);
  if (!login) throw new CommandError(result, 'reading facts');
  const [, loginUser = '?', access, init] = login;
  if (access === 'none') {
    throw new UsageError(`${transport.target}: ${loginUser} is not root and sudo asks for a password`, {
      hint: `give ${loginUser} passwordless sudo (e.g. "${loginUser} ALL=(ALL) NOPASSWD:ALL" in /etc/sudoers.d/) or log in as root`,
    });
  }
  if (init !== 'systemd') {
    throw new UsageError(`${transport.target}: provisioning needs systemd as the init system, found "${init}"`, {
      hint: 'zanuri provision manages services with systemctl; a host or container without systemd cannot be provisioned',
    });
  }
  if (!result.stdout.includes('@@zanuri-section:end@@')) throw new CommandError(result, 'reading facts');
  const sections = splitSections(result.stdout);
  return {
    loginUser,
    loginIsRoot: access === 'root',
    values: new Values(new Map(unique.map((r, i) => [r.key, r.parse(sections.get(`f${i}`) ?? '')]))),
  };
}
