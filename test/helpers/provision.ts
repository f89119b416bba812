/**
 * Drives `zanuri provision` against a test target exactly as an operator would (the built CLI,
 * --json), and the four cells every provisioning test runs: dry run (would change) -> apply
 * (changed) -> dry run (unchanged) -> apply (unchanged).
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { TestTarget } from './targets.js';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));

export interface StepResult { id: string; status: string; why: string; actions: Array<{ kind: string; summary: string; why: string; diff?: string }> }
export interface HostResult { host: string; ok: boolean; steps: StepResult[]; summary: { changed: number; unchanged: number; failed: number }; roundTrips: number; error?: { code: string; message: string } }
export interface ProvisionRun { code: number; stdout: string; stderr: string; host: HostResult }

/** The operator's key, as a --set value for deploy-user.authorizedKeys. */
export const operatorKeyArgs = (t: TestTarget): string[] => ['--set', `deploy-user.authorizedKeys=${JSON.stringify([t.publicKey])}`];

export function zanuriProvision(target: TestTarget, args: string[], user = 'root'): Promise<ProvisionRun> {
  const argv = [bin, 'provision', '--json', '--yes', '-F', '/dev/null', '--known-hosts', target.knownHostsPath, '-i', target.privateKeyPath, '--host', `${user}@${target.host}`, ...args];
  return new Promise((resolve, reject) => {
    execFile('node', argv, { timeout: 900_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      let host: HostResult;
      try {
        const parsed = JSON.parse(stdout) as { hosts?: HostResult[]; error?: { code: string; message: string } };
        // A usage error stops before any host: its report has an error and no hosts.
        host = parsed.hosts?.[0] ?? { host: '', ok: false, steps: [], summary: { changed: 0, unchanged: 0, failed: 0 }, roundTrips: 0, ...(parsed.error ? { error: parsed.error } : {}) };
      } catch {
        // Rejected, not thrown: a throw in this callback would leave the promise (and the test) hanging.
        reject(new Error(`zanuri provision printed no JSON report (exit ${code}):\n${stdout}\n${stderr}`));
        return;
      }
      resolve({ code, stdout, stderr, host });
    });
  });
}

const statuses = (run: ProvisionRun): Record<string, string> => Object.fromEntries(run.host.steps.map((s) => [s.id, s.status]));

/**
 * The four cells; returns the runs so the test can look closer. `steps` are the ids that must converge.
 * `login`: the user of the first two runs (before) and of the last two (after): the first apply may close root's (PermitRootLogin no).
 */
export async function fourCells(target: TestTarget, args: string[], steps: string[], login: { before?: string; after?: string } = {}): Promise<[ProvisionRun, ProvisionRun, ProvisionRun, ProvisionRun]> {
  const [userBefore, userAfter] = [login.before ?? 'root', login.after ?? login.before ?? 'root'];
  const dry1 = await zanuriProvision(target, [...args, '--dry-run'], userBefore);
  expect(dry1.host.error, dry1.stderr).toBeUndefined();
  for (const id of steps) expect(statuses(dry1)[id], `dry run 1: ${id}`).toBe('would-change');

  const apply1 = await zanuriProvision(target, args, userBefore);
  expect(apply1.host.steps.filter((s) => s.status === 'failed' || s.status === 'rolled-back'), apply1.stderr).toEqual([]);
  expect(apply1.code, apply1.stderr).toBe(0);
  for (const id of steps) expect(statuses(apply1)[id], `apply 1: ${id}`).toBe('changed');

  const dry2 = await zanuriProvision(target, [...args, '--dry-run'], userAfter);
  expect(dry2.host.steps.filter((s) => s.status !== 'unchanged'), 'dry run 2 must find nothing to do').toEqual([]);

  const apply2 = await zanuriProvision(target, args, userAfter);
  expect(apply2.code).toBe(0);
  expect(apply2.host.summary.changed, 'the second run must change nothing').toBe(0);
  expect(apply2.host.steps.every((s) => s.status === 'unchanged')).toBe(true);
  return [dry1, apply1, dry2, apply2];
}

/** systemd-timesyncd purged, so the timesync playbook has a package to install (a run that takes a while). */
export async function uninstallTimesyncd(t: TestTarget): Promise<void> {
  const r = await t.exec(['sh', '-c', 'dpkg-query -W -f "\\${db:Status-Abbrev}" systemd-timesyncd 2>/dev/null | grep -q "^ii" || exit 0; DEBIAN_FRONTEND=noninteractive apt-get purge -y -q systemd-timesyncd >/dev/null'], { timeoutMs: 300_000 });
  expect(r.exitCode, r.stderr).toBe(0);
}

/** After a fault, the next run converges: a real run succeeds, a dry run after it finds nothing to do, dpkg has nothing half done. */
export async function nextRunConverges(t: TestTarget, playbook: string): Promise<ProvisionRun> {
  const apply = await zanuriProvision(t, ['--playbook', playbook]);
  expect(apply.code, apply.stdout).toBe(0);
  const dry = await zanuriProvision(t, ['--playbook', playbook, '--dry-run']);
  expect(dry.host.steps.filter((s) => s.status !== 'unchanged'), 'the dry run after must find nothing to do').toEqual([]);
  expect((await t.exec(['dpkg', '--audit'])).stdout, 'dpkg --audit').toBe('');
  return apply;
}
