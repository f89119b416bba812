import { CommandError, UnreachableError } from '../core/errors.js';
import { underDeadline } from '../core/deadline.js';
import type { Cmd, RunOptions, RunResult, Transport } from '../core/types.js';

/** The deadline of a root command that names none: long enough for any check, short of a hung run. */
export const defaultCommandTimeoutMs = 300_000;

/** Bounds of a reboot: how long the host may take to go down, and to answer SSH again. */
export const rebootBounds = { downMs: 120_000, upMs: 600_000, pollMs: 1_000 };

/**
 * A connection that runs everything as root: directly when the login is root, else through
 * `sudo -n` (never a password prompt that would hang an unattended run). It can reboot the host
 * and carry on over a new connection.
 */
export class RootRunner {
  #transport: Transport;

  constructor(transport: Transport, readonly loginIsRoot: boolean, private readonly reconnect: (() => Promise<Transport>) | null = null) {
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
