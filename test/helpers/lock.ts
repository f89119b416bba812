/**
 * Cross-process exclusive lock built on flock(1): a child `flock -x FILE` holds the
 * kernel lock while `fn` runs. If the test process dies, the child's stdin closes,
 * it exits and the kernel drops the lock: no stale lock files to clean up.
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const HOLD = 'echo locked; exec cat >/dev/null';

export async function withLock<T>(lockPath: string, fn: () => Promise<T>, timeoutMs = 15 * 60_000): Promise<T> {
  mkdirSync(dirname(lockPath), { recursive: true });
  const child = spawn('flock', ['-x', '-w', String(Math.ceil(timeoutMs / 1000)), lockPath, 'sh', '-c', HOLD], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('locked')) resolve();
    });
    child.on('error', reject);
    child.on('exit', (code) => reject(new Error(`flock ${lockPath} exited ${code} before locking: ${stderr}`)));
  });
  try {
    return await fn();
  } finally {
    child.stdin.end();
    await new Promise<void>((r) => {
      if (child.exitCode !== null) r();
      else child.on('exit', () => r());
    });
  }
}
