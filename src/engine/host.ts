import { CommandError, ExitCode, UnreachableError, ZanuriError } from '../core/errors.js';
import { underDeadline } from '../core/deadline.js';
import type { Cmd, RunOptions, RunResult, Transport } from '../core/types.js';

/** The deadline of a root command that names none: long enough for any check, short of a hung run. */
export const defaultCommandTimeoutMs = 300_000;

/** Another zanuri run held the host lock past this run's bound: nothing was changed. Exit 6. */
export class HostLockedError extends ZanuriError {
  readonly code = 'HOST_LOCKED';
  readonly exitCode = ExitCode.provisionFailed;
}

/** The host's run passed its per-host deadline: its connection was closed, the others went on. Exit 4. */
export class HostTimeoutError extends ZanuriError {
  readonly code = 'HOST_TIMEOUT';
  readonly exitCode = ExitCode.unreachable;
}

/**
 * The host lock: one file in a root-only directory of /run (a tmpfs: a boot empties it), held with
 * flock(1) by a root process that lives exactly as long as the run's SSH connection. Not /run/lock,
 * which anyone may write: a local user could plant the file there and keep every run out.
 */
export const hostLockPath = '/run/zanuri/provision.lock';

/**
 * Run as root: $1 lock file, $2 seconds to wait for it, $3 this run's holder line, $4 a facts script
 * to run once the lock is held (may be empty). Prints "@@zanuri-lock waiting <holder>" when another
 * run holds it, "@@zanuri-lock timeout <holder>" (exit 3) when it stays held past the bound,
 * "@@zanuri-lock held <seconds waited>", then the facts, then "@@zanuri-lock ready", and reads stdin
 * to its end: the controller closing the connection, or losing it, ends it and frees the lock. It
 * stays a shell named zanuri-lock, with the holder line in its argv, so `ps` on the host shows it.
 * Without flock(1) (util-linux) it says "none" and runs unlocked.
 */
export const hostLockScript = `f=$1 w=$2 me=$3
holder() { h=$(head -c 300 -- "$f" 2>/dev/null | head -n 1 | tr -cd '[:print:]'); printf '%s' "\${h:-an unnamed run}"; }
if command -v flock >/dev/null 2>&1; then
  mkdir -p -m 0755 -- "\${f%/*}" || exit 4
  exec 9>>"$f" || exit 4
  t0=$(date +%s)
  if ! flock -n 9; then
    printf '@@zanuri-lock waiting %s\n' "$(holder)"
    flock -w "$w" 9 || { printf '@@zanuri-lock timeout %s\n' "$(holder)"; exit 3; }
  fi
  printf '%s\n' "$me" > "$f"
  printf '@@zanuri-lock held %s\n' "$(( $(date +%s) - t0 ))"
else
  echo '@@zanuri-lock none'
fi
if [ -n "$4" ]; then
  if command -v timeout >/dev/null 2>&1; then timeout -k 5 120 sh -c "$4" </dev/null; else sh -c "$4" </dev/null; fi
fi
echo '@@zanuri-lock ready'
cat >/dev/null`;

/** What a run that took the host lock learned: how long it waited, and for whom. */
export interface LockOutcome {
  held: boolean;
  waitedSeconds: number;
  /** The run it waited for, as that run named itself. */
  waitedFor: string | null;
}

/** Reads the lock lines of a held command's output; throws HostLockedError when it gave up. */
export function lockOutcome(stdout: string, target: string, waitSeconds: number): LockOutcome {
  const timeout = /^@@zanuri-lock timeout (.*)$/m.exec(stdout);
  if (timeout) {
    throw new HostLockedError(`${target}: another zanuri run holds the host lock (${timeout[1]}); ${waitSeconds ? `gave up after ${waitSeconds} s` : 'not waiting for it (ZANURI_HOST_LOCK_WAIT=0)'}, nothing was changed`, {
      hint: `let that run finish (or end it), then run again; ZANURI_HOST_LOCK_WAIT sets how long to wait (now ${waitSeconds} s)`,
    });
  }
  const waiting = /^@@zanuri-lock waiting (.*)$/m.exec(stdout);
  const held = /^@@zanuri-lock held (\d+)$/m.exec(stdout);
  return { held: held !== null, waitedSeconds: held ? Number(held[1]) : 0, waitedFor: waiting ? waiting[1] ?? null : null };
}

/** Bounds of a reboot: how long the host may take to go down, and to answer SSH again. */
export const rebootBounds = { downMs: 120_000, upMs: 600_000, pollMs: 1_000 };

/**
 * A connection that runs everything as root: directly when the login is root, else through
 * `sudo -n` (never a password prompt that would hang an unattended run). It can reboot the host
 * and carry on over a new connection.
 */
export class RootRunner {
  #transport: Transport;

  constructor(transport: Transport, readonly loginIsRoot: boolean, private readonly reconnect: (() => Promise<Transport>) | null = null,
    /** Aborted when the host's run passed its deadline: nothing more is sent, a reboot wait stops. */
    private readonly signal: AbortSignal | null = null) {
    this.#transport = transport;
  }

  /** What the host made this run wait for (a lock), for the report of the step that waited. */
  readonly #notes: string[] = [];

  note(line: string): void {
    this.#notes.push(line);
  }

  /** The notes since the last call, emptied. */
  takeNotes(): string[] {
    return this.#notes.splice(0);
  }

  get transport(): Transport {
    return this.#transport;
  }

  wrap(cmd: Cmd): Cmd {
    return this.loginIsRoot ? cmd : { ...cmd, argv: ['sudo', '-n', '--', ...cmd.argv] };
  }

  /**
   * Every command has a deadline (defaultCommandTimeoutMs unless the caller gives one), enforced on
   * the host by the transport. Through sudo a second `timeout` runs as root inside it: the login
   * user's `timeout` may not send KILL to root's processes, and sudo relays TERM only.
   */
  run(cmd: Cmd, options?: RunOptions): Promise<RunResult> {
    if (this.signal?.aborted) return Promise.reject(this.signal.reason);
    const timeoutMs = options?.timeoutMs ?? defaultCommandTimeoutMs;
    const inner = this.loginIsRoot ? cmd : { ...cmd, argv: underDeadline(cmd.argv, timeoutMs) };
    return this.#transport.run(this.wrap(inner), { ...options, timeoutMs });
  }

  async must(cmd: Cmd, what: string, options?: RunOptions): Promise<RunResult> {
    const result = await this.run(cmd, options);
    if (!result.ok) throw new CommandError(result, what);
    return result;
  }

  /**
   * Reboots the host and waits, bounded, until it has booted anew (its boot_id changed) and answers
   * over a new connection. Uptime cannot tell: in a container it is the host's.
   */
  async reboot(bounds = rebootBounds): Promise<void> {
    if (!this.reconnect) throw new UnreachableError(`${this.#transport.target}: a reboot needs a host to reconnect to; this run cannot reboot the machine it runs on`);
    const bootId = async (transport: Transport): Promise<string> => (await transport.run({ argv: ['cat', '/proc/sys/kernel/random/boot_id'] }, { timeoutMs: 10_000 })).stdout.trim();
    const before = await bootId(this.#transport);
    // Detached, so the command returns before the connection goes down with the host.
    await this.run({ argv: ['sh', '-c', '(sleep 1; systemctl reboot) >/dev/null 2>&1 </dev/null &'] }, { timeoutMs: 10_000 });
    await this.#transport.close().catch(() => undefined);
    const started = Date.now();
    let last = 'no answer yet';
    while (Date.now() - started < bounds.downMs + bounds.upMs) {
      await new Promise((r) => setTimeout(r, bounds.pollMs));
      if (this.signal?.aborted) throw this.signal.reason;
      try {
        const next = await this.reconnect();
        const id = await bootId(next).catch(() => '');
        if (id && id !== before) {
          this.#transport = next;
          return;
        }
        last = id ? 'the host has not gone down yet' : 'the host answered but could not read its boot id';
        await next.close();
      } catch (error) {
        last = error instanceof Error ? error.message : String(error);
      }
    }
    throw new UnreachableError(`${this.#transport.target}: the host did not come back from the reboot within ${Math.round((bounds.downMs + bounds.upMs) / 1000)} s (${last})`, {
      hint: 'check the console: a kernel or driver that fails to boot needs a person there',
    });
  }
}
