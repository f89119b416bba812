import { CommandError, UsageError } from '../core/errors.js';
import type { Transport } from '../core/types.js';
import { composeProbe, splitSections } from '../facts/probe.js';
import type { FactRequest, FactValues } from '../facts/state.js';
import { canHold, type HeldCommand } from '../transport/connect.js';
import { hostLockScript, lockOutcome, type LockOutcome, type RootRunner } from './host.js';

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
case $r in root) exec sh -c "$@" ;; sudo) exec sudo -n sh -c "$@" ;; esac`;

export interface FirstGather {
  loginUser: string;
  loginIsRoot: boolean;
  values: Values;
  /** With a lock request: how the lock was taken (it is held until the connection closes). */
  lock?: LockOutcome;
}

/** Take the host lock in the same round trip, before the facts are read, and hold it for the connection's life. */
export interface HostLockRequest {
  path: string;
  /** How long to wait for another run's lock; 0 refuses at once. */
  waitSeconds: number;
  /** This run, as a waiting run will name it: controller host, pid, start time. */
  holder: string;
  /** Called when another run holds the lock and this one starts waiting. */
  onWaiting?: (holder: string) => void;
}

/** The facts' deadline on the host; the controller allows a little more. */
const gatherTimeoutMs = 120_000;

export async function gatherAsRoot(transport: Transport, requests: readonly FactRequest<unknown>[], lock?: HostLockRequest): Promise<FirstGather> {
  const unique = [...new Map(requests.map((r) => [r.key, r])).values()];
  const script = composeProbe(unique.map((r, i) => ({ name: `f${i}`, script: r.script })));
  let result;
  let held: HeldCommand | null = null;
  if (lock && canHold(transport)) {
    // One round trip: become root, take the lock (waiting, bounded), read the facts, then hold the lock.
    const argv: [string, ...string[]] = ['sh', '-c', asRootScript, 'zanuri-gather', hostLockScript, 'zanuri-lock', lock.path, String(lock.waitSeconds), lock.holder, script];
    held = transport.hold({ argv }, {
      until: '@@zanuri-lock ready',
      timeoutMs: lock.waitSeconds * 1000 + gatherTimeoutMs + 15_000,
      onLine: (line) => {
        const waiting = /^@@zanuri-lock waiting (.*)$/.exec(line);
        if (waiting) lock.onWaiting?.(waiting[1] ?? '');
      },
    });
    result = await held.started;
  } else {
    result = await transport.run({ argv: ['sh', '-c', asRootScript, 'zanuri-gather', script] }, { timeoutMs: gatherTimeoutMs });
  }
  const outcome = lock && held ? lockOutcome(result.stdout, transport.target, lock.waitSeconds) : undefined;
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
  if (held && !result.stdout.includes('@@zanuri-lock ready')) throw new CommandError(result, 'taking the host lock and reading facts');
  return {
    loginUser,
    loginIsRoot: access === 'root',
    values: new Values(new Map(unique.map((r, i) => [r.key, r.parse(sections.get(`f${i}`) ?? '')]))),
    ...(outcome ? { lock: outcome } : {}),
  };
}
