/**
 * A bad day on a real systemd target (needs root), each fault ending with "the next run converges":
 * a command past its deadline is killed on the host (as root and through sudo), a check in place that
 * hangs or whose connection drops leaves the old file or the checked new one, the dpkg and apt locks
 * held by another process (real fcntl locks, as apt takes them: flock(1) takes a kind apt never sees)
 * are waited for with the holder named, and a mirror that accepts and never answers fails the host
 * within a known bound. The lock holder and the silent mirror are real processes and sockets.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandError } from '../../src/core/errors.js';
import type { Action } from '../../src/core/plan.js';
import { applyAction } from '../../src/engine/actions.js';
import { RootRunner } from '../../src/engine/host.js';
import { SshTransport } from '../../src/transport/ssh.js';
import { APT_PROXY_CONF, ensureAptProxy } from '../helpers/aptproxy.js';
import { BRIDGE_IP } from '../helpers/network.js';
import { zanuriProvision, type ProvisionRun, nextRunConverges as nextRunConvergesOn, uninstallTimesyncd as uninstallTimesyncdOn } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = fileURLToPath(new URL('./playbooks/timesync.yaml', import.meta.url));
const dir = '/etc/zanuri-fault';
const path = `${dir}/app.conf`;

describe.skipIf(!can.ok && !process.env['CI'])('provision: faults on a real target (needs root)', () => {
  let t: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [t] = (await startTargets(1)) as [TestTarget];
    await t.addUser('opsfault', { sudo: 'nopasswd' });
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  const connect = (user = 'root'): Promise<SshTransport> =>
    SshTransport.connect(`${user}@${t.host}`, { knownHostsFile: t.knownHostsPath, identityFiles: [t.privateKeyPath] });

  /** Command lines of the target's processes that match `pattern` (write it so it does not match itself, e.g. 'sleep 30[1]'). */
  async function processes(pattern: string): Promise<string[]> {
    const r = await t.exec(['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < "$p/cmdline" 2>/dev/null; echo; done | grep -e "$1" || true', 'sh', pattern]);
    return r.stdout.split('\n').filter(Boolean);
  }

  async function withEnv<T>(vars: Record<string, string>, work: () => Promise<T>): Promise<T> {
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    try {
      return await work();
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  }

  /**
   * A service named like apt's daily job that holds `lock` with fcntl for `seconds`, as apt-daily does
   * on first boot; returns its pid as the target sees it.
   */
  async function holdLock(unit: string, lock: string, seconds: number): Promise<number> {
    const perl = 'open(my $f, ">>", $ARGV[0]) or die; fcntl($f, F_SETLK, pack("s s", F_WRLCK, SEEK_SET) . ("\\0" x 60)) or die "lock: $!"; $0 = "apt.systemd.daily"; sleep $ARGV[1]';
    const r = await t.exec(['systemd-run', `--unit=${unit}`, '--collect', '--quiet', 'perl', '-MFcntl', '-e', perl, lock, String(seconds)]);
    expect(r.exitCode, r.stderr).toBe(0);
    for (let i = 0; i < 50; i += 1) {
      const pid = Number((await t.exec(['systemctl', 'show', '-p', 'MainPID', '--value', unit])).stdout.trim());
      const comm = pid > 0 ? (await t.exec(['cat', `/proc/${pid}/comm`])).stdout.trim() : '';
      if (comm === 'apt.systemd.dai') return pid;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`the lock holder ${unit} did not start`);
  }

  const uninstallTimesyncd = (): Promise<void> => uninstallTimesyncdOn(t);
  const nextRunConverges = async (): Promise<void> => { await nextRunConvergesOn(t, playbook); };

  const errorOf = (run: ProvisionRun): string => `${run.host.error?.message ?? ''} ${run.host.steps.map((s) => s.why).join(' ')}`;

  it('kills a command that sleeps past its deadline on the target, with its children, as root and through sudo', async () => {
    for (const [user, tag] of [['root', '301'], ['opsfault', '302']] as const) {
      const transport = await connect(user);
      try {
        const runner = new RootRunner(transport, user === 'root');
        // The shell ignores TERM, and so does its sleep: only the KILL that follows ends them.
        const result = await runner.run({ argv: ['sh', '-c', `trap "" TERM; sleep ${tag}; true`] }, { timeoutMs: 2000 });
        expect(result.exitCode, `${user}: ${result.stderr}`).toBeNull();
        expect(result.stderr).toContain('timed out after 2 s: the command was killed on the host');
        expect(result.durationMs).toBeLessThan(11_000);
      } finally {
        await transport.close();
      }
      expect(await processes(`sleep ${tag.slice(0, 2)}[${tag.slice(2)}]`), `${user}: left running on the target`).toEqual([]);
    }
    await nextRunConverges();
  }, 180_000);

  async function seed(): Promise<Extract<Action, { kind: 'put' }>['before']> {
    const r = await t.exec(['sh', '-c', `rm -rf ${dir} && mkdir -p ${dir} && printf 'old\\n' > ${path} && chown nobody:nogroup ${path} && chmod 600 ${path}`]);
    expect(r.exitCode, r.stderr).toBe(0);
    return { content: Buffer.from('old\n'), mode: 0o600, owner: 'nobody', group: 'nogroup' };
  }

  const putAction = (before: Awaited<ReturnType<typeof seed>>, check: string): Action => ({
    kind: 'put', path, content: 'new\n', mode: 0o644, owner: 'root', group: 'root', before, validateInPlace: { argv: ['sh', '-c', check] }, why: 'a fault test',
  });

  /** The file as it is, and every file beside it (no temp file may be left). */
  const state = async (): Promise<string> => (await t.exec(['sh', '-c', `stat -c '%a %U' ${path}; cat ${path}; ls -A ${dir}`])).stdout;

  it('puts the previous file back when its check in place hangs past the validation deadline, and kills the check', async () => {
    const before = await seed();
    const transport = await connect();
    try {
      const error = await withEnv({ ZANURI_VALIDATE_TIMEOUT: '2' }, () => applyAction(new RootRunner(transport, true), putAction(before, 'sleep 303; true')).then(() => null, (e: unknown) => e));
      expect(error).toBeInstanceOf(CommandError);
      expect((error as CommandError).message).toMatch(/validating \/etc\/zanuri-fault\/app.conf in place \(the previous version was put back\)/);
      expect((error as CommandError).stderr).toContain('was refused in place (or its check did not finish within 2s); the previous version is back');
    } finally {
      await transport.close();
    }
    expect(await state()).toBe('600 nobody\nold\napp.conf\n');
    expect(await processes('sleep 30[3]')).toEqual([]);
  }, 120_000);

  it('finishes a check in place on the host when the connection drops during it: the old file back, or the checked new one, never a half state', async () => {
    for (const [check, expected] of [['sleep 3; exit 1', '600 nobody\nold\napp.conf\n'], ['sleep 3; exit 0', '644 root\nnew\napp.conf\n']] as const) {
      const before = await seed();
      const transport = await connect();
      const applying = applyAction(new RootRunner(transport, true), putAction(before, check)).then(() => 'finished', () => 'failed');
      await new Promise((res) => setTimeout(res, 1000));
      await transport.close();
      await applying;
      // The script goes on without its connection: wait until it is done.
      for (let i = 0; i < 100 && (await processes('zanuri-pu[t]')).length; i += 1) await new Promise((res) => setTimeout(res, 100));
      expect(await state(), check).toBe(expected);
    }
    // The next run converges: the same change with a passing check goes through on a fresh connection.
    const transport = await connect();
    try {
      await applyAction(new RootRunner(transport, true), putAction({ content: Buffer.from('new\n'), mode: 0o644, owner: 'root', group: 'root' }, 'true'));
    } finally {
      await transport.close();
    }
    expect(await state()).toBe('644 root\nnew\napp.conf\n');
  }, 120_000);

  it('waits for the apt lists lock held by apt\'s daily job, says so in the report, and succeeds once it is released', async () => {
    await uninstallTimesyncd();
    const pid = await holdLock('zanuri-test-lists-lock', '/var/lib/apt/lists/lock', 6);
    const run = await withEnv({ ZANURI_APT_LOCK_TIMEOUT: '60' }, () => zanuriProvision(t, ['--playbook', playbook]));
    expect(run.code, run.stdout).toBe(0);
    const packages = run.host.steps.find((s) => s.id === 'packages');
    expect(packages?.status).toBe('changed');
    expect(packages?.why).toMatch(new RegExp(`waited \\d+s for the apt lists lock held by apt.systemd.dai \\(pid ${pid}\\)`));
    const again = await zanuriProvision(t, ['--playbook', playbook]);
    expect(again.code).toBe(0);
    expect(again.host.summary.changed, 'the next run changes nothing').toBe(0);
  }, 600_000);

  it('gives up on a dpkg lock held past a short bound: exit 6, the holder named; once it is released the next run converges', async () => {
    await uninstallTimesyncd();
    const pid = await holdLock('zanuri-test-dpkg-lock', '/var/lib/dpkg/lock-frontend', 600);
    try {
      const started = Date.now();
      const run = await withEnv({ ZANURI_APT_LOCK_TIMEOUT: '5' }, () => zanuriProvision(t, ['--playbook', playbook]));
      expect(run.code, run.stdout).toBe(6);
      expect(run.host.ok).toBe(false);
      expect(errorOf(run)).toContain(`gave up after 5s: the dpkg frontend lock (/var/lib/dpkg/lock-frontend) is still held by apt.systemd.dai (pid ${pid})`);
      expect(Date.now() - started).toBeLessThan(60_000);
    } finally {
      await t.exec(['systemctl', 'stop', 'zanuri-test-dpkg-lock']);
    }
    await nextRunConverges();
  }, 600_000);

  it('fails the host within its bound when the apt proxy accepts connections and never answers, and leaves no apt running; the next run converges', async () => {
    await uninstallTimesyncd();
    // No .deb left in apt's cache: the install must reach the mirror.
    expect((await t.exec(['apt-get', 'clean'])).exitCode).toBe(0);
    const sockets: Socket[] = [];
    const silent: Server = createServer((socket) => { sockets.push(socket); socket.on('error', () => undefined); });
    await new Promise<void>((res) => silent.listen(0, BRIDGE_IP, () => res()));
    const port = (silent.address() as { port: number }).port;
    const proxy = await t.exec(['sh', '-c', 'printf \'Acquire::http::Proxy "%s";\\n\' "$1" > /etc/apt/apt.conf.d/01proxy', 'sh', `http://${BRIDGE_IP}:${port}`]);
    expect(proxy.exitCode).toBe(0);
    try {
      const started = Date.now();
      // Bound: 10 x 2 s for apt-get update (all attempts), 60 x 2 s for the install.
      const run = await withEnv({ ZANURI_APT_NET_TIMEOUT: '2' }, () => zanuriProvision(t, ['--playbook', playbook]));
      const took = Date.now() - started;
      expect(run.code, run.stdout).toBe(6);
      expect(sockets.length, 'apt reached the silent proxy').toBeGreaterThan(0);
      expect(errorOf(run), run.stdout).toMatch(/apt-get update failed|installing systemd-timesyncd failed/);
      expect(errorOf(run)).toMatch(new RegExp(`${BRIDGE_IP.replace(/\./g, '\\.')}|timed out|Connection timed out|Could not connect`, 'i'));
      expect(took).toBeLessThan((20 + 120 + 30) * 1000);
      expect(await processes('apt-ge[t]'), 'apt left running on the target').toEqual([]);
    } finally {
      await t.exec(['sh', '-c', 'printf "%s" "$1" > /etc/apt/apt.conf.d/01proxy', 'sh', APT_PROXY_CONF]);
      for (const s of sockets) s.destroy();
      silent.close();
    }
    await nextRunConverges();
  }, 600_000);
});
