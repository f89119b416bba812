/**
 * The link to a real systemd target is cut (its host-side veth goes down) at the worst moments, and
 * its disk fills while a package installs (needs root). Each case ends with "the next run converges,
 * nothing lost":
 * - in the middle of a file write: the moment is the staged temp file appearing on the target while
 *   the content is still arriving (the link is slowed with tc so there is a middle to cut in). The
 *   run fails naming the step; the old file stays in place, the partial temp file goes once the link
 *   is back, and the next run writes the file whole.
 * - in the middle of a package install: the moment is dpkg unpacking (held there by a diverted
 *   dpkg-deb while the link goes down, then let go). The run fails naming the packages step; apt finishes on the
 *   host without its connection, so `dpkg --audit` is clean and the next run converges.
 * - a full disk while dpkg unpacks (a small tmpfs filled to the last block where the package writes):
 *   the run fails with dpkg's own "No space left on device" and a hint to free space; once space is
 *   freed the next run finishes what dpkg left pending (dbus's triggers), installs the package, and
 *   `dpkg --audit` is clean.
 * The keepalives are 2 s x 3 here (ssh config / serverAliveIntervalMs), so a cut link is noticed in
 * seconds rather than zanuri's default 15 s x 3.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { provisionHost, type HostProvisionReport } from '../../src/engine/provision.js';
import { file } from '../../src/resources/file.js';
import { params } from '../../src/steps/schema.js';
import { defineStep } from '../../src/steps/types.js';
import { loadTemplates } from '../../src/templates/load.js';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { zanuriProvision, type ProvisionRun, nextRunConverges as nextRunConvergesOn, uninstallTimesyncd as uninstallTimesyncdOn } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const run = promisify(execFile);
const playbook = fileURLToPath(new URL('./playbooks/timesync.yaml', import.meta.url));
const dir = '/etc/zanuri-io';
const path = `${dir}/big.conf`;
/** 3 MB: about 6 s through the slowed link, so the write has a middle. */
const big = `${'zanuri io fault test line\n'.repeat(120_000)}`;

const bigFile = defineStep({
  id: 'io-write',
  title: 'A large file (fault test)',
  params: params({}),
  resources: () => [file(path, big, { mode: 0o644, whyDiffers: `${path} is not the large file`, whyMissing: `${path} does not exist` })],
  converged: () => `${path} is the large file`,
});

describe.skipIf(!can.ok && !process.env['CI'])('provision: the link cut and the disk full in the middle of a change (needs root)', () => {
  let t: TestTarget;
  let veth: string;
  let sshConfig: string;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [t] = (await startTargets(1)) as [TestTarget];
    veth = `zt${/(\d+)$/.exec(t.name)?.[1] ?? 'x'}h`;
    await run('ip', ['link', 'show', veth]);
    sshConfig = join(mkdtempSync(join(tmpdir(), 'zanuri-io-')), 'ssh_config');
    writeFileSync(sshConfig, 'Host *\n  ServerAliveInterval 2\n  ServerAliveCountMax 3\n');
  }, 300_000);

  afterAll(async () => {
    await run('tc', ['qdisc', 'del', 'dev', veth, 'root']).catch(() => undefined);
    await run('ip', ['link', 'set', veth, 'up']).catch(() => undefined);
    await stopAllTargets();
  });

  const sh = async (script: string, timeoutMs = 120_000): Promise<string> => {
    const r = await t.exec(['sh', '-c', script], { timeoutMs });
    expect(r.exitCode, `${script}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };
  /** Command lines of the target's processes that match `pattern` (written so it does not match itself). */
  const processes = async (pattern: string): Promise<string[]> =>
    (await sh(`for p in /proc/[0-9]*; do tr "\\0" " " < "$p/cmdline" 2>/dev/null; echo; done | grep -e ${JSON.stringify(pattern)} || true`)).split('\n').filter(Boolean);
  const until = async (what: string, check: () => Promise<boolean>, seconds: number): Promise<void> => {
    for (let i = 0; i < seconds * 4; i += 1) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${what} did not happen within ${seconds} s`);
  };
  const linkDown = (): Promise<unknown> => run('ip', ['link', 'set', veth, 'down']);
  const linkUp = async (): Promise<void> => {
    await run('ip', ['link', 'set', veth, 'up']);
    await until('the target answering SSH again', async () => (await run('ssh', [...t.sshArgs(), '-o', 'ConnectTimeout=2', 'true']).then(() => true, () => false)), 60);
  };
  const engine = async (): Promise<HostProvisionReport> => provisionHost(`root@${t.host}`, [{ step: bigFile, params: bigFile.parseParams({}) }], {
    dryRun: false, templates: await loadTemplates(),
    connect: { configFile: '/dev/null', knownHostsFile: t.knownHostsPath, identityFiles: [t.privateKeyPath], serverAliveIntervalMs: 2000 },
  });
  /** Everything the report says about why the host failed. */
  const failure = (r: { error?: { message: string }; steps: { id: string; status: string; why: string }[] }): string =>
    [r.error?.message ?? '', ...r.steps.map((s) => `${s.id} ${s.status}: ${s.why}`)].join('\n');
  const uninstallTimesyncd = (): Promise<void> => uninstallTimesyncdOn(t);
  async function nextRunConverges(): Promise<ProvisionRun> {
    const apply = await nextRunConvergesOn(t, playbook);
    expect((await sh('dpkg-query -W -f "\\${db:Status-Abbrev}" systemd-timesyncd')).trim()).toBe('ii');
    return apply;
  }

  it('keeps the old file in place when the link drops in the middle of writing the new one; the run fails naming the step, and the next run writes it whole', async () => {
    await sh(`rm -rf ${dir} && mkdir -p ${dir} && printf 'old\\n' > ${path} && chown nobody:nogroup ${path} && chmod 600 ${path}`);
    await run('tc', ['qdisc', 'replace', 'dev', veth, 'root', 'tbf', 'rate', '4mbit', 'burst', '32kbit', 'latency', '400ms']);
    let report: HostProvisionReport;
    try {
      const applying = engine();
      // The moment: the staged copy exists and is still growing.
      await until('the staged temp file appearing', async () => (await sh(`ls -A ${dir}`)).includes('big.conf.zanuri-'), 60);
      await linkDown();
      const partial = Number((await sh(`stat -c %s ${dir}/big.conf.zanuri-*`)).trim());
      expect(partial, 'cut in the middle of the write').toBeLessThan(big.length);
      report = await applying;
      expect(await sh(`stat -c '%a %U' ${path}; cat ${path}`), 'the old file, in place and whole, while the link is down').toBe('600 nobody\nold\n');
    } finally {
      await run('tc', ['qdisc', 'del', 'dev', veth, 'root']).catch(() => undefined);
      await linkUp();
    }
    expect(report.ok).toBe(false);
    const said = failure(report);
    expect(said, said).toMatch(/io-write/);
    expect(said, said).toMatch(/stopped answering|keepalive|lost|closed/i);
    // Once the link is back the host learns the connection is gone: the half-sent temp file is removed, nothing else changed.
    await until('the interrupted write ending on the target', async () => (await processes('zanuri-pu[t]')).length === 0, 60);
    expect(await sh(`ls -A ${dir}; stat -c '%a %U' ${path}; cat ${path}`)).toBe('big.conf\n600 nobody\nold\n');

    const next = await engine();
    expect(next.ok, failure(next)).toBe(true);
    expect(next.steps.find((s) => s.id === 'io-write')?.status).toBe('changed');
    expect(await sh(`ls -A ${dir}; stat -c '%a %U %s' ${path}; sha256sum < ${path}`)).toBe(
      `big.conf\n644 root ${big.length}\n${(await import('node:crypto')).createHash('sha256').update(big).digest('hex')}  -\n`);
    const again = await engine();
    expect(again.steps.map((s) => s.status)).toEqual(['unchanged']);
  }, 600_000);

  it('lets dpkg finish on the host when the link drops while it unpacks; the run fails naming the packages step, dpkg --audit is clean, and the next run converges', async () => {
    await uninstallTimesyncd();
    // The moment: dpkg has begun unpacking (it reads the package through dpkg-deb --fsys-tarfile). A
    // diverted dpkg-deb says so and waits there while the hold file exists, so the link goes down
    // with dpkg mid-unpack; then the hold goes and dpkg carries on.
    await sh(`dpkg-divert --local --rename --add /usr/bin/dpkg-deb >/dev/null && cat > /usr/bin/dpkg-deb <<'WRAP'
#!/bin/sh
case " $* " in *" --fsys-tarfile "*) if [ -e /run/zanuri-hold ]; then touch /run/zanuri-unpacking; while [ -e /run/zanuri-hold ]; do sleep 0.1; done; fi ;; esac
exec /usr/bin/dpkg-deb.distrib "$@"
WRAP
chmod 755 /usr/bin/dpkg-deb && touch /run/zanuri-hold && rm -f /run/zanuri-unpacking`);
    let result: ProvisionRun;
    try {
      const provisioning = zanuriProvision(t, ['--playbook', playbook, '-F', sshConfig]);
      try {
        await until('dpkg unpacking', async () => (await t.exec(['test', '-e', '/run/zanuri-unpacking'])).exitCode === 0, 300);
        await linkDown();
        await sh('rm -f /run/zanuri-hold');
        result = await provisioning;
        // apt carried on without its connection: it is done, and dpkg's database is consistent.
        await until('apt finishing on the host', async () => (await processes('apt-ge[t]')).length === 0 && (await processes('/usr/bin/dpk[g]')).length === 0, 300);
        expect(await sh('dpkg --audit'), 'dpkg --audit while the link is still down').toBe('');
      } finally {
        await linkUp();
      }
    } finally {
      await sh('rm -f /run/zanuri-hold /run/zanuri-unpacking /usr/bin/dpkg-deb && dpkg-divert --local --rename --remove /usr/bin/dpkg-deb >/dev/null');
    }
    expect(result.code, result.stdout).not.toBe(0);
    expect(result.host.ok).toBe(false);
    const said = failure(result.host);
    expect(said, said).toMatch(/packages/);
    expect(said, said).toMatch(/stopped answering|keepalive|lost|closed/i);
    const next = await nextRunConverges();
    expect(next.host.steps.find((s) => s.id === 'packages')?.status, 'apt had finished: nothing left to install').toBe('unchanged');
  }, 900_000);

  it('fails the install with dpkg\'s "No space left on device" and a hint when the disk fills while it unpacks; once space is freed the next run finishes dpkg\'s leftovers and converges', async () => {
    await uninstallTimesyncd();
    // Where the package writes: a small filesystem, filled to the last block.
    const mount = '/usr/share/doc/systemd-timesyncd';
    await sh(`mkdir -p ${mount} && mount -t tmpfs -o size=256k zanuri-full ${mount} && (dd if=/dev/zero of=${mount}/.zanuri-filler bs=4k 2>/dev/null; true) && [ "$(df --output=avail ${mount} | tail -n 1 | tr -d ' ')" = 0 ]`);
    try {
      const full = await zanuriProvision(t, ['--playbook', playbook]);
      expect(full.code, full.stdout).toBe(6);
      expect(full.host.ok).toBe(false);
      expect(failure(full.host), full.stdout).toMatch(/installing systemd-timesyncd failed .*No space left on device/s);
      expect(full.stdout, 'the hint says what to do').toContain('free space on the host');
      // What the failed unpack left behind (dbus's triggers pending) is for the next run to finish.
      expect(await sh('dpkg --audit')).toMatch(/triggered, but the trigger processing/);
      expect(full.host.steps.filter((s) => s.status === 'changed'), 'nothing after the packages ran').toEqual([]);
      expect(full.host.steps.find((s) => s.id === 'packages')?.status, 'the packages step is the one reported failed').toBe('failed');
      expect(full.host.steps.filter((s) => s.id !== 'packages').map((s) => s.status)).toEqual(full.host.steps.filter((s) => s.id !== 'packages').map(() => 'not-run'));

      // Space freed: the next run installs the package, and dpkg has nothing half-done.
      await sh(`rm -f ${mount}/.zanuri-filler`);
      await nextRunConverges();
      expect(await sh(`ls ${mount}`)).toContain('copyright');
    } finally {
      await t.exec(['sh', '-c', `umount ${mount} 2>/dev/null; rm -f ${mount}/.zanuri-filler`]);
    }
  }, 900_000);
});
