/**
 * The host lock's script run for real on this machine with sh and flock(1), as it runs on a host
 * (a temp file stands in for /run/zanuri/provision.lock): a second holder refuses or waits naming
 * the first, and the lock is free as soon as the first holder's stdin ends (its connection died).
 * Also: the lock lines read back, and the per-host bounds from the environment.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import { HostLockedError, hostLockScript, lockOutcome } from '../../../src/engine/host.js';
import { defaultHostBounds, hostBoundsFrom, lockHolder } from '../../../src/engine/provision.js';

const dir = mkdtempSync(join(tmpdir(), 'zanuri-lock-'));

/** Starts the lock script; resolves once it printed a line starting with `until` (or exited), with what it printed so far. */
function holder(file: string, wait: number, me: string, facts = ''): { child: ChildProcessWithoutNullStreams; reached: (until: string) => Promise<string>; exited: Promise<number | null> } {
  const child = spawn('sh', ['-c', hostLockScript, 'zanuri-lock', file, String(wait), me, facts]);
  let out = '';
  const waiters: Array<() => void> = [];
  child.stdout.on('data', (c: Buffer) => { out += c.toString(); for (const w of waiters.splice(0)) w(); });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => { for (const w of waiters.splice(0)) w(); resolve(code); }));
  let done = false;
  void exited.then(() => { done = true; });
  const reached = async (until: string): Promise<string> => {
    while (!out.split('\n').some((l) => l.startsWith(until)) && !done) await new Promise<void>((r) => waiters.push(r));
    return out;
  };
  return { child, reached, exited };
}

describe('the host lock script', () => {
  it('holds the lock while its stdin is open, runs the facts after taking it, and names itself in the lock file', async () => {
    const file = join(dir, 'a.lock');
    const first = holder(file, 0, 'zanuri on ctl-1 (pid 11, started 2024-01-01T00:00:00.000Z)', 'echo facts-here');
    const out = await first.reached('@@zanuri-lock ready');
    expect(out).toMatch(/^@@zanuri-lock held 0\nfacts-here\n@@zanuri-lock ready\n$/);
    expect(readFileSync(file, 'utf8')).toBe('zanuri on ctl-1 (pid 11, started 2024-01-01T00:00:00.000Z)\n');

    // A second run that does not wait is refused, with the first one named.
    const refused = holder(file, 0, 'zanuri on ctl-2 (pid 22, started 2024-01-01T00:00:01.000Z)', 'echo never');
    expect(await refused.exited).toBe(3);
    expect(await refused.reached('@@zanuri-lock timeout')).toBe(
      '@@zanuri-lock waiting zanuri on ctl-1 (pid 11, started 2024-01-01T00:00:00.000Z)\n@@zanuri-lock timeout zanuri on ctl-1 (pid 11, started 2024-01-01T00:00:00.000Z)\n');

    // A second run that waits gets the lock once the first one's connection (its stdin) is gone.
    const waiting = holder(file, 30, 'zanuri on ctl-3 (pid 33, started 2024-01-01T00:00:02.000Z)', 'echo second-facts');
    expect(await waiting.reached('@@zanuri-lock waiting')).toBe('@@zanuri-lock waiting zanuri on ctl-1 (pid 11, started 2024-01-01T00:00:00.000Z)\n');
    first.child.stdin.end();
    expect(await first.exited).toBe(0);
    const second = await waiting.reached('@@zanuri-lock ready');
    expect(second).toMatch(/@@zanuri-lock held \d+\nsecond-facts\n@@zanuri-lock ready\n$/);
    expect(readFileSync(file, 'utf8')).toContain('pid 33');
    waiting.child.stdin.end();
    expect(await waiting.exited).toBe(0);
  }, 60_000);

  it('frees the lock when its holder is killed, as when the host ends the session of a dead connection', async () => {
    const file = join(dir, 'b.lock');
    const first = holder(file, 0, 'first');
    await first.reached('@@zanuri-lock ready');
    first.child.kill('SIGKILL');
    await first.exited;
    // The shell's cat child reads the same stdin, which closed with the killed shell's pipes.
    const next = holder(file, 10, 'next');
    expect(await next.reached('@@zanuri-lock ready')).toMatch(/^(@@zanuri-lock waiting first\n)?@@zanuri-lock held \d+\n@@zanuri-lock ready\n$/);
    next.child.stdin.end();
    await next.exited;
  }, 60_000);

  it('never prints control characters of a holder line it reads back', async () => {
    const file = join(dir, 'c.lock');
    const first = holder(file, 0, 'evil \u001b[2J holder');
    await first.reached('@@zanuri-lock ready');
    const refused = holder(file, 0, 'x');
    await refused.exited;
    expect(await refused.reached('@@zanuri-lock timeout')).toContain('@@zanuri-lock timeout evil [2J holder\n');
    first.child.stdin.end();
    await first.exited;
  }, 30_000);
});

describe('lockOutcome', () => {
  it('reads how long a run waited and for whom', () => {
    expect(lockOutcome('@@zanuri-lock waiting zanuri on a (pid 1, started x)\n@@zanuri-lock held 12\n@@zanuri-lock ready\n', 'root@h', 300))
      .toEqual({ held: true, waitedSeconds: 12, waitedFor: 'zanuri on a (pid 1, started x)' });
    expect(lockOutcome('@@zanuri-lock held 0\n', 'root@h', 300)).toEqual({ held: true, waitedSeconds: 0, waitedFor: null });
    expect(lockOutcome('@@zanuri-lock none\n@@zanuri-lock ready\n', 'root@h', 300)).toEqual({ held: false, waitedSeconds: 0, waitedFor: null });
  });

  it('throws HostLockedError (exit 6) naming the holder when the run gave up', () => {
    const error = (() => {
      try {
        lockOutcome('@@zanuri-lock waiting zanuri on a (pid 1, started x)\n@@zanuri-lock timeout zanuri on a (pid 1, started x)\n', 'root@h', 5);
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(HostLockedError);
    expect((error as HostLockedError).exitCode).toBe(6);
    expect((error as HostLockedError).code).toBe('HOST_LOCKED');
    expect((error as HostLockedError).message).toBe('root@h: another zanuri run holds the host lock (zanuri on a (pid 1, started x)); gave up after 5 s, nothing was changed');
  });
});

describe('hostBoundsFrom and lockHolder', () => {
  it('takes the defaults, or whole seconds in range from ZANURI_HOST_TIMEOUT and ZANURI_HOST_LOCK_WAIT', () => {
    expect(hostBoundsFrom({})).toEqual(defaultHostBounds);
    expect(hostBoundsFrom({ ZANURI_HOST_TIMEOUT: '60', ZANURI_HOST_LOCK_WAIT: '0' })).toEqual({ hostTimeoutSeconds: 60, lockWaitSeconds: 0 });
  });

  it('refuses anything else with a ConfigError naming the variable', () => {
    for (const [name, value] of [['ZANURI_HOST_TIMEOUT', '0'], ['ZANURI_HOST_TIMEOUT', '1e3'], ['ZANURI_HOST_LOCK_WAIT', '-1'], ['ZANURI_HOST_LOCK_WAIT', '90000'], ['ZANURI_HOST_LOCK_WAIT', '5; reboot']] as const) {
      expect(() => hostBoundsFrom({ [name]: value }), `${name}=${value}`).toThrow(ConfigError);
      expect(() => hostBoundsFrom({ [name]: value })).toThrow(new RegExp(`^${name} must be a whole number of seconds`));
    }
  });

  it('names the controller host, its pid and the start time', () => {
    expect(lockHolder(new Date('2024-05-01T10:00:00Z'))).toMatch(new RegExp(`^zanuri on \\S+ \\(pid ${process.pid}, started 2024-05-01T10:00:00.000Z\\)$`));
  });
});
