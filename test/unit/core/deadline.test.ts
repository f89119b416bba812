import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { controllerWaitMs, deadlineSeconds, hitDeadline, underDeadline } from '../../../src/core/deadline.js';

function sh(shell: string, argv: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; ms: number }> {
  const started = Date.now();
  const [file, ...args] = argv;
  return new Promise((resolve) => {
    execFile(file ?? shell, args, { env }, (error, stdout) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? -1) : 0, stdout, ms: Date.now() - started });
    });
  });
}

describe('underDeadline', () => {
  it('rounds a deadline up to whole seconds, never below one', () => {
    expect(deadlineSeconds(1)).toBe(1);
    expect(deadlineSeconds(1500)).toBe(2);
    expect(controllerWaitMs(2000)).toBe(12_000);
  });

  it.each(['dash', 'bash'])('ends a command that outlives its deadline with exit 124 (%s as the login shell)', async (shell) => {
    const ran = await sh(shell, [shell, '-c', '"$@"', 'sh', ...underDeadline(['sleep', '30'], 1000)]);
    expect(ran.code).toBe(124);
    expect(ran.ms).toBeLessThan(3000);
    expect(hitDeadline(124, ran.ms, 1000)).toBe(true);
  });

  it('passes argv through untouched: quotes, $() and newlines are data', async () => {
    const ran = await sh('sh', underDeadline(['printf', '%s|', "it's", '$(reboot)', 'a\nb'], 5000));
    expect(ran).toMatchObject({ code: 0, stdout: "it's|$(reboot)|a\nb|" });
  });

  it('runs the command as it is on a host without timeout(1)', async () => {
    const ran = await sh('sh', ['/bin/sh', ...underDeadline(['/bin/echo', 'plain'], 5000).slice(1)], { PATH: '/nonexistent' });
    expect(ran).toMatchObject({ code: 0, stdout: 'plain\n' });
  });

  it('does not take a command\'s own exit 124 before its deadline for a timeout', () => {
    expect(hitDeadline(124, 200, 5000)).toBe(false);
    expect(hitDeadline(1, 9000, 5000)).toBe(false);
    expect(hitDeadline(null, 9000, 5000)).toBe(true);
    expect(hitDeadline(null, 100, 5000)).toBe(false);
  });
});
