import { CommandError } from '../core/errors.js';
import type { Cmd, RunOptions, RunResult, Transport } from '../core/types.js';

/**
 * A connection that runs everything as root: directly when the login is root, else through
 * `sudo -n` (never a password prompt that would hang an unattended run).
 */
export class RootRunner {
  constructor(readonly transport: Transport, readonly loginIsRoot: boolean) {}

  wrap(cmd: Cmd): Cmd {
    return this.loginIsRoot ? cmd : { ...cmd, argv: ['sudo', '-n', '--', ...cmd.argv] };
  }

  run(cmd: Cmd, options?: RunOptions): Promise<RunResult> {
    return this.transport.run(this.wrap(cmd), options);
  }

  async must(cmd: Cmd, what: string, options?: RunOptions): Promise<RunResult> {
    const result = await this.run(cmd, options);
    if (!result.ok) throw new CommandError(result, what);
    return result;
  }
}
