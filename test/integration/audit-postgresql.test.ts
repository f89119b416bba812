/**
 * `zanuri audit` and PostgreSQL on a real systemd target (needs root): a cluster that provision
 * converged (listening on localhost and the target's address, TLS-only rows for one network) has no
 * PostgreSQL finding for its profile; rows an admin adds by hand (trust, md5 from 0.0.0.0/0, password,
 * a plain host row) and listen_addresses = '*' are each reported with the row as evidence; and the
 * postgresql-access resource, whose check those findings are, fixes them through the engine's own
 * actions, undoes its fix exactly, and the next run converges with nothing lost.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Handler } from '../../src/core/plan.js';
import { applyAction, dedupeHandlers, handlerCmd, undoAction } from '../../src/engine/actions.js';
import { gather } from '../../src/engine/gather.js';
import { RootRunner } from '../../src/engine/host.js';
import { postgresAccessFact } from '../../src/facts/postgresql-access.js';
import { postgresqlAccess } from '../../src/resources/postgresql-access.js';
import { SshTransport } from '../../src/transport/ssh.js';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { BRIDGE_IP } from '../helpers/network.js';
import { zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const playbook = 'test/integration/playbooks/data.yaml';
const hba = '/etc/postgresql/15/main/pg_hba.conf';
const planted = '/etc/postgresql/15/main/conf.d/zz-test-listen.conf';

interface Finding { rule: string; severity: string; title: string; evidence: string[]; fix: { step: string; parameter: string | null } | null; resource?: string }
interface HostAudit { host: string; ok: boolean; findings: Finding[]; roundTrips: number; notJudged: string[]; error?: { code: string; message: string } }

function zanuriAudit(target: TestTarget, args: string[]): Promise<{ code: number; stdout: string; stderr: string; host: HostAudit }> {
  const argv = [bin, 'audit', '--json', '-F', '/dev/null', '--known-hosts', target.knownHostsPath, '-i', target.privateKeyPath, '--host', `root@${target.host}`, ...args];
  return new Promise((resolve, reject) => {
    execFile('node', argv, { timeout: 300_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      try {
        const host = (JSON.parse(stdout) as { hosts: HostAudit[] }).hosts[0];
        if (!host) throw new Error('no host');
        resolve({ code, stdout, stderr, host });
      } catch {
        reject(new Error(`zanuri audit printed no JSON report (exit ${code}):\n${stdout}\n${stderr}`));
      }
    });
  });
}

const postgresFindings = (host: HostAudit): Finding[] => host.findings.filter((f) => f.resource === 'postgresql-access' || f.rule === 'step:postgresql');

describe.skipIf(!can.ok && !process.env['CI'])('zanuri audit: PostgreSQL listen scope and pg_hba on a real target (needs root)', () => {
  let target: TestTarget;
  let args: string[];

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [target] = (await startTargets(1)) as [TestTarget];
    await target.addUser('pgapp', { sudo: 'none' });
    args = ['--playbook', playbook, '--only', 'postgresql', '--set', 'postgresql.locale=C.UTF-8', '--set', 'postgresql.appUser=pgapp',
      '--set', `postgresql.listenAddresses=localhost,${target.host}`, '--set', `postgresql.allowFrom=${JSON.stringify([`${BRIDGE_IP}/32`])}`];
  }, 300_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  const sh = async (script: string): Promise<string> => {
    const r = await target.exec(['sh', '-c', script], { timeoutMs: 120_000 });
    expect(r.exitCode, `${script}\n${r.stderr}`).toBe(0);
    return r.stdout;
  };

  it('finds nothing about PostgreSQL on a cluster provision converged, though it listens beyond loopback for its profile', async () => {
    const apply = await zanuriProvision(target, args);
    expect(apply.code, apply.stdout).toBe(0);
    expect(await sh("cd / && runuser -u postgres -- psql -XAtq -c 'show listen_addresses'")).toBe(`localhost,${target.host}\n`);
    const audit = await zanuriAudit(target, args);
    expect(audit.host.error, audit.stderr).toBeUndefined();
    expect(audit.host.roundTrips).toBe(1);
    expect(postgresFindings(audit.host), JSON.stringify(audit.host.findings, null, 2)).toEqual([]);
  }, 900_000);

  it('reports rows added by hand (trust, md5 from any address, password, no TLS) and listen_addresses = \'*\', each row as evidence', async () => {
    await sh(`cp -p ${hba} /root/pg_hba.before && cat >> ${hba} <<'EOF'
local   sameuser        all                                     trust
host    all             all             0.0.0.0/0               md5
hostssl all             all             10.0.0.0 255.0.0.0      password
host    all             pgapp           192.168.7.0/24          scram-sha-256
EOF
printf "listen_addresses = '*'\\n" > ${planted} && systemctl restart postgresql@15-main`);
    const audit = await zanuriAudit(target, [...args, '--fail-on', 'high']);
    expect(audit.code, audit.stderr).toBe(3);
    // The resource's findings (the postgresql step may also see its listen_addresses overridden: that is its own finding).
    const byRule = Object.fromEntries(audit.host.findings.filter((f) => f.resource === 'postgresql-access').map((f) => [f.rule, f]));
    expect(Object.keys(byRule).sort()).toEqual(['audit:pg-hba-any-address', 'audit:pg-hba-md5', 'audit:pg-hba-no-ssl', 'audit:pg-hba-password', 'audit:pg-hba-trust', 'audit:postgresql-listen']);
    expect(byRule['audit:pg-hba-trust']?.severity).toBe('high');
    expect(byRule['audit:pg-hba-trust']?.evidence).toEqual([expect.stringMatching(/^15\/main pg_hba\.conf:\d+: local sameuser all trust \(trust: /)]);
    expect(byRule['audit:pg-hba-any-address']?.evidence.join('\n')).toContain('host all all 0.0.0.0/0 md5');
    expect(byRule['audit:pg-hba-no-ssl']?.evidence).toHaveLength(2);
    expect(byRule['audit:pg-hba-password']?.evidence.join('\n')).toContain('hostssl all all 10.0.0.0 255.0.0.0 password');
    expect(byRule['audit:postgresql-listen']?.evidence).toEqual(["15/main: listen_addresses = '*' (port 5432) (PostgreSQL 15/main listens on every address (*), beyond loopback)"]);
    for (const f of Object.values(byRule)) expect(f.fix?.step).toBe('postgresql');
  }, 300_000);

  it('fixes what it found through the engine\'s actions (the cluster keeps serving), undoes the fix byte for byte, and the next run converges', async () => {
    const transport = await SshTransport.connect(`root@${target.host}`, { knownHostsFile: target.knownHostsPath, identityFiles: [target.privateKeyPath] });
    const root = new RootRunner(transport, true);
    const fact = postgresAccessFact();
    const resource = postgresqlAccess({ listen: ['localhost', target.host], allowFrom: [`${BRIDGE_IP}/32`] });
    const before = await sh(`cat ${hba}`);
    try {
      const actions = resource.plan(await gather(root, [fact]));
      expect(actions).toHaveLength(5);
      const handlers: Handler[] = [];
      for (const action of actions) handlers.push(...(await applyAction(root, action)));
      for (const h of dedupeHandlers(handlers)) await root.must(handlerCmd(h), `systemctl ${h.op} ${h.unit}`);
      expect(resource.plan(await gather(root, [fact])), 'converged after the fix').toEqual([]);
      expect(await sh("cd / && runuser -u postgres -- psql -XAtq -c 'select 1'")).toBe('1\n');
      expect(await sh("cd / && runuser -u postgres -- psql -XAtq -c 'show listen_addresses'")).toBe('localhost\n');

      const undone: Handler[] = [];
      for (const action of [...actions].reverse()) undone.push(...(await undoAction(root, action)));
      for (const h of dedupeHandlers(undone)) await root.must(handlerCmd(h), `systemctl ${h.op} ${h.unit}`);
      expect(await sh(`cat ${hba}`), 'the undo puts every row back as it was').toBe(before);
      expect(await sh("cd / && runuser -u postgres -- psql -XAtq -c 'show listen_addresses'")).toBe('*\n');
    } finally {
      await transport.close();
    }
    // The rows added by hand go again; the next run converges, and audit is clean for the profile once more.
    await sh(`cp -p /root/pg_hba.before ${hba} && rm -f ${planted} && systemctl restart postgresql@15-main`);
    const dry = await zanuriProvision(target, [...args, '--dry-run']);
    expect(dry.host.steps.filter((s) => s.status !== 'unchanged'), 'nothing to do').toEqual([]);
    expect(postgresFindings((await zanuriAudit(target, args)).host)).toEqual([]);
  }, 300_000);
});
