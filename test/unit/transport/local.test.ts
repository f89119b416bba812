/**
 * LocalTransport's deadline on this machine, with real processes: a timed-out command is gone
 * afterwards together with the children it started, even one that ignores TERM.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalTransport } from '../../../src/transport/local.js';

/** Running, as opposed to gone or a zombie waiting for a parent that reaps late (killed all the same). */
const alive = (pid: number): boolean => {
  try {
    return !/^\d+ \([^)]*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

/** A shell that starts `sleep` as its child, writes the child's pid, and waits for it. */
function sleeper(ignoreTerm: boolean): { argv: [string, ...string[]]; pidFile: string } {
  const pidFile = join(mkdtempSync(join(tmpdir(), 'zanuri-local-')), 'pid');
  return { argv: ['sh', '-c', `${ignoreTerm ? 'trap "" TERM; ' : ''}sleep 300 & echo $! > "$1"; wait`, 'sh', pidFile], pidFile };
}

describe('LocalTransport.run with a timeout', () => {
  it('kills the command and the children it started when the deadline passes, and says so', async () => {
    const { argv, pidFile } = sleeper(false);
    const result = await new LocalTransport().run({ argv }, { timeoutMs: 1000 });
    expect(result.exitCode).toBeNull();
    expect(result.ok).toBe(false);
    expect(result.stderr).toContain('timed out after 1 s: the command and its process group were killed');
    expect(result.durationMs).toBeLessThan(4000);
    const child = Number(readFileSync(pidFile, 'utf8'));
    expect(child).toBeGreaterThan(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(alive(child)).toBe(false);
  });

  it('kills with KILL a few seconds later what ignored TERM', async () => {
    const { argv, pidFile } = sleeper(true);
    const result = await new LocalTransport().run({ argv }, { timeoutMs: 1000 });
    expect(result.exitCode).toBeNull();
    expect(result.durationMs).toBeGreaterThanOrEqual(5500);
    expect(result.durationMs).toBeLessThan(9000);
    const child = Number(readFileSync(pidFile, 'utf8'));
    await new Promise((r) => setTimeout(r, 200));
    expect(alive(child)).toBe(false);
  }, 15_000);

  it('leaves a command that ends in time alone: its exit code and output as they were', async () => {
    const result = await new LocalTransport().run({ argv: ['sh', '-c', 'echo hi; exit 7'] }, { timeoutMs: 5000 });
    expect(result).toMatchObject({ exitCode: 7, stdout: 'hi\n', ok: false });
    expect(result.stderr).toBe('');
  });
});
