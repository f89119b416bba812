/**
 * The resource layer on real systemd targets (needs root): a step written only as resources
 * (timesync) converges in four cells and switches daemons through a package checkpoint; a file
 * that fails validation, or a step that fails verification, is put back with its exact bytes
 * (not UTF-8 here), mode and owner; an operator's template override shows in the dry run.
 */
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { fourCells, operatorKeyArgs, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const dropIn = '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf';
const playbook = fileURLToPath(new URL('./playbooks/timesync.yaml', import.meta.url));

/** A comment sshd accepts, with a Latin-1 byte that is not UTF-8 (é as 0xe9). */
async function seedForeignFile(target: TestTarget): Promise<string> {
  const seeded = await target.exec(['sh', '-c', `printf '# caf\\351 (latin-1)\\n' > ${dropIn} && chown nobody:nogroup ${dropIn} && chmod 600 ${dropIn} && sha256sum < ${dropIn}`]);
  expect(seeded.exitCode, seeded.stderr).toBe(0);
  return seeded.stdout.split(' ')[0] ?? '';
}

async function fileIdentity(target: TestTarget): Promise<string> {
  const r = await target.exec(['sh', '-c', `stat -c '%a %U %G' ${dropIn} && sha256sum < ${dropIn}`]);
  return r.stdout.replace(/ +-\n$/, '').replace(/\n/g, ' ').trim();
}

describe.skipIf(!can.ok && !process.env['CI'])('provision: resources on real targets (needs root)', () => {
  let clock: TestTarget;
  let files: TestTarget;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [clock, files] = (await startTargets(2)) as [TestTarget, TestTarget];
  });

  afterAll(async () => {
    await stopAllTargets();
  });

  it('converges timesync in four cells: timezone UTC, systemd-timesyncd installed and enabled (not started in a container)', async () => {
    await clock.exec(['sh', '-c', 'ln -sfn /usr/share/zoneinfo/Europe/Berlin /etc/localtime && echo Europe/Berlin > /etc/timezone']);
    const [dry1, apply1] = await fourCells(clock, ['--playbook', playbook], ['timesync']);
    const planned = dry1.host.steps.find((s) => s.id === 'timesync');
    expect(planned?.actions.map((a) => a.summary)).toContain('link /etc/localtime -> /usr/share/zoneinfo/Etc/UTC (was -> /usr/share/zoneinfo/Europe/Berlin)');
    // Planned before the package existed: said once, on the step, not repeated in every reason.
    expect((planned as { plannedBefore?: string }).plannedBefore).toMatch(/systemd-timesyncd.*installed/);
    expect(apply1.host.steps.find((s) => s.id === 'packages')?.why).toMatch(/systemd-timesyncd/);
    expect((await clock.exec(['readlink', '/etc/localtime'])).stdout.trim()).toBe('/usr/share/zoneinfo/Etc/UTC');
    expect((await clock.exec(['cat', '/etc/timezone'])).stdout).toBe('Etc/UTC\n');
    expect((await clock.exec(['date', '+%Z'])).stdout.trim()).toBe('UTC');
    expect((await clock.exec(['stat', '-c', '%a %U %G', '/etc/systemd/timesyncd.conf.d/50-zanuri.conf'])).stdout.trim()).toBe('644 root root');
    expect((await clock.exec(['systemctl', 'is-enabled', 'systemd-timesyncd.service'])).stdout.trim()).toBe('enabled');
  });

  it('switches to chrony (apt removes systemd-timesyncd, which conflicts), configures it, and a second run changes nothing', async () => {
    const args = ['--playbook', playbook, '--set', 'timesync.daemon=chrony', '--set', 'timesync.servers=["ntp1.example.net"]'];
    const apply = await zanuriProvision(clock, args);
    expect(apply.code, apply.stderr).toBe(0);
    expect(apply.host.steps.find((s) => s.id === 'packages')?.why).toBe('chrony not installed');
    const actions = apply.host.steps.find((s) => s.id === 'timesync')?.actions.map((a) => a.summary) ?? [];
    expect(actions).toContain('create /etc/chrony/conf.d/50-zanuri.conf (root:root 0644)');
    expect((await clock.exec(['dpkg-query', '-W', '-f', '${db:Status-Abbrev}', 'systemd-timesyncd'])).stdout.trim()).not.toBe('ii');
    expect((await clock.exec(['cat', '/etc/chrony/conf.d/50-zanuri.conf'])).stdout).toContain('server ntp1.example.net iburst\n');
    const again = await zanuriProvision(clock, args);
    expect(again.host.summary.changed, JSON.stringify(again.host.steps)).toBe(0);
  });

  it('puts a file back byte for byte, with its mode and owner, when the new one fails validation in place (an operator\'s override)', async () => {
    const before = await seedForeignFile(files);
    const overrides = mkdtempSync(join(tmpdir(), 'zanuri-override-'));
    mkdirSync(join(overrides, 'ssh'));
    writeFileSync(join(overrides, 'ssh', 'hardening.conf'), '# an operator override with a typo\nPasswordAuthentication no\nPermitRootLogn {{permitRootLogin}}\n');
    const args = ['--playbook', 'base', ...operatorKeyArgs(files), '--templates', overrides];

    const dry = await zanuriProvision(files, [...args, '--dry-run']);
    const put = dry.host.steps.find((s) => s.id === 'ssh-harden')?.actions[0];
    expect(put?.summary).toBe(`update ${dropIn} (root:root 0644) from ${join(overrides, 'ssh', 'hardening.conf')} (overrides template ssh/hardening.conf)`);
    expect(put?.diff).toContain('+PermitRootLogn no');

    const run = await zanuriProvision(files, args);
    const step = run.host.steps.find((s) => s.id === 'ssh-harden');
    expect(step?.status).toBe('rolled-back');
    expect(step?.why).toMatch(/validating .*00-zanuri-hardening.conf in place/);
    expect(await fileIdentity(files)).toBe(`600 nobody nogroup ${before}`);
  });

  it('undoes an applied file exactly when the step fails its verification afterwards (a lockout), and the host stays reachable', async () => {
    const before = await seedForeignFile(files);
    const run = await zanuriProvision(files, ['--playbook', 'base', ...operatorKeyArgs(files), '--set', 'ssh-harden.deployUser=null', '--set', 'ssh-harden.allowUsers=["nobody"]']);
    expect(run.host.steps.find((s) => s.id === 'ssh-harden')?.status).toBe('rolled-back');
    expect(await fileIdentity(files)).toBe(`600 nobody nogroup ${before}`);
    const again = await zanuriProvision(files, ['--playbook', 'base', ...operatorKeyArgs(files), '--dry-run']);
    expect(again.host.error).toBeUndefined();
  });
});
