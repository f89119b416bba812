/**
 * The apt guard on this machine, with real fcntl locks held by real processes (perl, as apt and dpkg
 * lock: flock(1) takes a different kind of lock that apt never sees) on lock files of the test's own,
 * and a plain command standing in for apt-get. The guard is the same script the engine sends to hosts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  aptBoundsFrom, aptGetIndex, aptGuardScript, aptGuarded, aptSubcommand, aptInstallCmd, aptLocks, aptUpdateCmd, defaultAptBounds, lockGaveUpExit,
} from '../../../src/resources/apt.js';

const holders: ChildProcess[] = [];
afterEach(() => { for (const h of holders.splice(0)) h.kill('SIGKILL'); });

/** A process named apt.systemd.daily holding a write lock on `file` for `seconds`, as apt-daily does on first boot. */
async function holdLock(file: string, seconds: number): Promise<number> {
  const child = spawn('perl', ['-MFcntl', '-e',
    'open(my $f, ">>", $ARGV[0]) or die; fcntl($f, F_SETLK, pack("s s", F_WRLCK, SEEK_SET) . ("\\0" x 60)) or die "lock: $!"; $0 = "apt.systemd.daily"; print "locked\\n"; $| = 1; sleep $ARGV[1]',
    file, String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  holders.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)));
  });
  return child.pid ?? 0;
}

interface Ran { code: number | null; stdout: string; stderr: string; ms: number }

function guard(shell: string, bound: number, locks: string[], argv: string[]): Promise<Ran> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(shell, ['-c', aptGuardScript, 'zanuri-apt', String(bound), '0', String(locks.length), ...locks, ...argv]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
}

function lockFiles(): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'zanuri-apt-locks-'));
  return ['lock-frontend', 'lists-lock'].map((name) => {
    const path = join(dir, name);
    writeFileSync(path, '');
    return path;
  });
}

describe('aptGuarded', () => {
  it('puts the lock, network timeout and retry options right after apt-get, where they win over the command\'s own', () => {
    const { argv } = aptGuarded(aptUpdateCmd, { lockWaitSeconds: 42, netTimeoutSeconds: 7 });
    expect(argv.slice(0, 2)).toEqual(['sh', '-c']);
    const apt = argv.indexOf('apt-get');
    expect(argv.slice(apt, apt + 11)).toEqual(['apt-get', '-o', 'DPkg::Lock::Timeout=42', '-o', 'Acquire::http::Timeout=7', '-o', 'Acquire::https::Timeout=7', '-o', 'Acquire::ftp::Timeout=7', '-o', 'Acquire::Retries=2']);
    expect(argv.slice(apt + 11, apt + 13)).toEqual(['update', '-q']);
    // bound, repair flag, the lock files, then the command
    expect(argv.slice(4, 7 + aptLocks.length)).toEqual(['42', '0', String(aptLocks.length), ...aptLocks]);
  });

  it('finishes an interrupted dpkg before an install, never before an update', () => {
    expect(aptGuarded(aptInstallCmd(['nginx']), defaultAptBounds).argv[5]).toBe('1');
    expect(aptGuarded(aptUpdateCmd, defaultAptBounds).argv[5]).toBe('0');
  });

  it('finds the subcommand past options and their values', () => {
    expect(aptSubcommand(aptUpdateCmd)).toBe('update');
    expect(aptSubcommand(aptInstallCmd(['update']))).toBe('install');
    expect(aptSubcommand({ argv: ['apt-get', '-o', 'update', 'remove', 'x'] })).toBe('remove');
    expect(aptSubcommand({ argv: ['apt-mark', 'hold'] })).toBeNull();
  });

  it('recognises apt-get behind env assignments and nothing else', () => {
    expect(aptGetIndex(aptUpdateCmd)).toBe(2);
    expect(aptGetIndex({ argv: ['apt-get', 'update'] })).toBe(0);
    expect(aptGetIndex({ argv: ['apt-mark', 'hold', 'x'] })).toBe(-1);
    expect(aptGetIndex({ argv: ['env', 'apt-get'] })).toBe(1);
    expect(() => aptGuarded({ argv: ['apt-mark', 'hold'] }, defaultAptBounds)).toThrow(/not an apt-get command/);
  });
});

describe('aptBoundsFrom', () => {
  it('waits 300 s for a lock and 30 s for a network read unless the environment says otherwise', () => {
    expect(aptBoundsFrom({})).toEqual({ lockWaitSeconds: 300, netTimeoutSeconds: 30 });
    expect(aptBoundsFrom({ ZANURI_APT_LOCK_TIMEOUT: '5', ZANURI_APT_NET_TIMEOUT: '3' })).toEqual({ lockWaitSeconds: 5, netTimeoutSeconds: 3 });
  });

  it('refuses a bound that is not a whole number of seconds, naming the variable', () => {
    expect(() => aptBoundsFrom({ ZANURI_APT_LOCK_TIMEOUT: '5m' })).toThrow(/ZANURI_APT_LOCK_TIMEOUT must be a whole number of seconds from 1 to 86400, not "5m"/);
    expect(() => aptBoundsFrom({ ZANURI_APT_NET_TIMEOUT: '0' })).toThrow(/ZANURI_APT_NET_TIMEOUT/);
    expect(() => aptBoundsFrom({ ZANURI_APT_NET_TIMEOUT: '$(reboot)' })).toThrow(/not "\$\(reboot\)"/);
  });
});

describe.each(['dash', 'bash'])('the apt guard under %s', (shell) => {
  it('runs the command at once when no lock is held, passing its output and exit code through', async () => {
    const ran = await guard(shell, 10, lockFiles(), ['sh', '-c', 'echo out; echo err >&2; exit 3']);
    expect(ran).toMatchObject({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('waits for a lock held by another process, names the holder and the bound, and runs the command once it is free', async () => {
    const locks = lockFiles();
    const pid = await holdLock(locks[1] ?? '', 2);
    const ran = await guard(shell, 20, locks, ['echo', 'apt ran']);
    expect(ran.code, ran.stderr).toBe(0);
    expect(ran.stdout).toBe('apt ran\n');
    expect(ran.stderr).toContain(`zanuri: waiting for the dpkg lock held by apt.systemd.dai (pid ${pid}), up to 20s\n`);
    expect(ran.stderr).toMatch(new RegExp(`zanuri: waited \\d+s for the dpkg lock held by apt.systemd.dai \\(pid ${pid}\\)\\n`));
    expect(ran.ms).toBeGreaterThanOrEqual(1500);
  });

  it('gives up when the lock is still held at the bound, naming the lock file and its holder, without running the command', async () => {
    const locks = lockFiles();
    const pid = await holdLock(locks[0] ?? '', 60);
    const ran = await guard(shell, 2, locks, ['echo', 'apt ran']);
    expect(ran.code).toBe(lockGaveUpExit);
    expect(ran.stdout).toBe('');
    expect(ran.stderr).toContain(`zanuri: gave up after 2s: the dpkg frontend lock (${locks[0]}) is still held by apt.systemd.dai (pid ${pid})`);
    expect(ran.ms).toBeLessThan(6000);
  });

  it('goes back to waiting when apt itself reports a lock it could not get (apt-get update does not wait for the lists lock)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-apt-race-'));
    const marker = join(dir, 'tried');
    // Fails like apt the first time, succeeds the second.
    const flaky = `if [ -e ${marker} ]; then echo fetched; else : > ${marker}; echo 'E: Could not get lock /var/lib/apt/lists/lock. It is held by process 1 (apt-get)' >&2; exit 100; fi`;
    const ran = await guard(shell, 10, lockFiles(), ['sh', '-c', flaky]);
    expect(ran).toMatchObject({ code: 0, stdout: 'fetched\n', stderr: '' });
  });
});
