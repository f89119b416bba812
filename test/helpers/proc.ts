/**
 * Process helpers for the test-target builders: argv only, never a shell string
 * with interpolated values. Where a shell is needed the script is a fixed
 * constant and the data goes in as $1..$n.
 */
import { execa } from 'execa';
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { constants as osConstants } from 'node:os';

export interface ExecResult { stdout: string; stderr: string; exitCode: number }

/** A clean environment for commands run inside targets (nothing leaks from the test runner). */
export const TARGET_ENV: Readonly<Record<string, string>> = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  TERM: 'dumb',
  DEBIAN_FRONTEND: 'noninteractive',
};

/** Runs argv; resolves for any exit code. A signal death reads as 128+signo, like a shell. */
export async function run(
  argv: readonly string[],
  opts: { stdin?: string; env?: Record<string, string>; timeoutMs?: number; cleanEnv?: boolean } = {},
): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('run: empty argv');
  const r = await execa(file, args, {
    reject: false,
    stripFinalNewline: false,
    input: opts.stdin ?? '',
    env: opts.env,
    extendEnv: !opts.cleanEnv,
    timeout: opts.timeoutMs ?? 120_000,
  });
  let exitCode = r.exitCode;
  if (exitCode === undefined) {
    const signo = r.signal ? (osConstants.signals as Record<string, number>)[r.signal] ?? 0 : 0;
    exitCode = 128 + signo;
  }
  return { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode };
}

export class CommandFailed extends Error {
  constructor(readonly argv: readonly string[], readonly result: ExecResult, context = '') {
    super(
      `command failed (exit ${result.exitCode}): ${argv.join(' ')}\n` +
        (result.stderr ? `stderr:\n${result.stderr.trimEnd()}\n` : '') +
        (result.stdout ? `stdout:\n${result.stdout.trimEnd().slice(-4000)}\n` : '') +
        context,
    );
    this.name = 'CommandFailed';
  }
}

/** Runs argv and throws CommandFailed (with stdout/stderr) unless it exits 0. */
export async function runOk(argv: readonly string[], opts: Parameters<typeof run>[1] = {}): Promise<ExecResult> {
  const r = await run(argv, opts);
  if (r.exitCode !== 0) throw new CommandFailed(argv, r);
  return r;
}

/**
 * Spawns a long-running process detached (own session), stdout+stderr to logPath,
 * no stdin, unref'd so vitest can exit. Returns its pid; teardown kills by cgroup/pid.
 */
export function spawnDetached(argv: readonly string[], logPath: string, env?: Record<string, string>): number {
  const [file, ...args] = argv;
  if (file === undefined) throw new Error('spawnDetached: empty argv');
  const fd = openSync(logPath, 'a');
  try {
    const child = spawn(file, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: env ?? process.env,
    });
    if (child.pid === undefined) throw new Error(`could not spawn ${file}`);
    child.on('error', () => undefined);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** True when pid exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Start time of pid in clock ticks since boot (to tell a reused pid apart), or null. */
export function pidStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin', '/bin'])) {
    if (dir && existsSync(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  }
  return null;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Last `max` characters of a file, or '' when it cannot be read. */
export function tailFile(path: string, max = 6000): string {
  try {
    const s = readFileSync(path, 'utf8');
    return s.length > max ? s.slice(-max) : s;
  } catch {
    return '';
  }
}

/** Does a TCP connection to host:port complete within the time? */
export function portOpen(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok); };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
