/**
 * ansible_ssh_common_args / ansible_ssh_extra_args, ansible_become and ansible_become_user as
 * zanuri reads them: the options it can apply are applied, every other one is refused with the
 * inventory file and the host named, before anything connects.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import { parseIni } from '../../../src/inventory/ini.js';
import { parseSshArgs } from '../../../src/inventory/ssh-args.js';
import { inventoryConnect, inventoryTarget } from '../../../src/inventory/target.js';

const target = (line: string, file = 'site/hosts.ini') => inventoryTarget(parseIni(`[x]\n${line}\n`, file), 'h');
const args = (value: string) => parseSshArgs(value, 'ansible_ssh_common_args', 'h', 'hosts');

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('ssh arguments from an inventory', () => {
  it('apply -o options zanuri knows, in either spelling, the first value of each winning as in ssh', () => {
    expect(args('-o Port=2222 -oUser=ops -o "IdentityFile ~/.ssh/a" -i /k/b -o ConnectTimeout=7 -o ServerAliveInterval=20 -o Port=9 -l other')).toEqual({
      port: '2222', user: 'ops', identityFiles: [`${homedir()}/.ssh/a`, '/k/b'], connectTimeoutMs: 7000, serverAliveIntervalMs: 20_000, knownHostsFile: null, acceptNewHostKey: false,
    });
    expect(args('-p2200 -o UserKnownHostsFile=/etc/zanuri/known_hosts -o StrictHostKeyChecking=accept-new')).toMatchObject({ port: '2200', knownHostsFile: '/etc/zanuri/known_hosts', acceptNewHostKey: true });
  });

  it('accept what zanuri already does and connection sharing it has no use for', () => {
    expect(args('-C -q -o BatchMode=yes -o PasswordAuthentication=no -o ControlMaster=auto -o ControlPersist=60s -o StrictHostKeyChecking=yes')).toEqual({
      port: null, user: null, identityFiles: [], connectTimeoutMs: null, serverAliveIntervalMs: null, knownHostsFile: null, acceptNewHostKey: false,
    });
  });

  it('refuse ProxyCommand, jumps, unchecked host keys and anything unknown, naming the variable, the host and the file', () => {
    const proxy = refusal(() => target(`h ansible_ssh_common_args='-o ProxyCommand="ssh -W %h:%p bastion"'`));
    expect(proxy.message).toMatch(/^site\/hosts.ini: host h: ansible_ssh_common_args has -o ProxyCommand=.*which zanuri does not honour/);
    expect(proxy.location).toBe('site/hosts.ini');
    expect(proxy.hint).toMatch(/ProxyJump .*ssh config/);
    expect(() => target("h ansible_ssh_extra_args='-J bastion'")).toThrow(/ansible_ssh_extra_args has -J/);
    expect(() => target("h ansible_ssh_common_args='-o StrictHostKeyChecking=no'")).toThrow(/StrictHostKeyChecking=no/);
    expect(refusal(() => target("h ansible_ssh_common_args='-o BatchMode=no'")).hint).toBe('zanuri always connects with BatchMode=yes');
    expect(() => target("h ansible_ssh_common_args='-o LocalCommand=touch /tmp/x'")).toThrow(/LocalCommand/);
    expect(() => target("h ansible_ssh_common_args='-F /tmp/cfg'")).toThrow(/has -F/);
    expect(() => target("h ansible_ssh_common_args='-o Port=22;reboot'")).toThrow(/Port=22;reboot/);
    expect(() => target("h ansible_ssh_common_args='-o'")).toThrow(/-o without a value/);
    expect(() => target("h ansible_ssh_common_args='--foo'")).toThrow(/does not honour/);
    expect(() => target("h ansible_ssh_common_args='-o Foo=bar'")).toThrow(/-o Foo=bar/);
    // A `#` is no comment on ssh's command line (shlex.split's default): what follows it is still read, and refused.
    expect(() => target("h ansible_ssh_common_args='-o Port=22 #x -o ProxyCommand=nc'")).toThrow(/"#x"/);
  });

  it('go after ansible_port, ansible_user and the key file, which win as on Ansible\'s ssh command line', () => {
    const t = target("h ansible_host=10.0.0.5 ansible_user=ops ansible_port=2201 ansible_ssh_private_key_file=/k/own ansible_ssh_common_args='-o Port=2222 -o User=x -i /k/args' ansible_ssh_extra_args='-o ConnectTimeout=3 -i /k/extra'");
    expect(t).toMatchObject({ spec: 'ops@10.0.0.5:2201', identityFile: '/k/own' });
    expect(t.ssh).toMatchObject({ identityFiles: ['/k/args', '/k/extra'], connectTimeoutMs: 3000 });
    expect(target("h ansible_host=10.0.0.5 ansible_ssh_common_args='-p 2222 -l ops -i /k/args'")).toMatchObject({ spec: 'ops@10.0.0.5:2222', identityFile: '/k/args' });
  });

  it('become the transport\'s options, the host\'s on top of the command line\'s, with every key file checked', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zanuri-inv-keys-'));
    for (const k of ['own', 'args']) writeFileSync(join(dir, k), 'key\n', { mode: 0o600 });
    const t = target(`h ansible_ssh_private_key_file=${dir}/own ansible_ssh_common_args='-i ${dir}/args -o ConnectTimeout=4 -o UserKnownHostsFile=/kh -o StrictHostKeyChecking=accept-new'`);
    expect(inventoryConnect({ identityFiles: ['/cli/key'], connectTimeoutMs: 10_000, acceptNewHostKey: false }, t, 'hosts')).toEqual({
      identityFiles: [`${dir}/own`, `${dir}/args`, '/cli/key'], connectTimeoutMs: 4000, knownHostsFile: '/kh', acceptNewHostKey: true,
    });
    expect(inventoryConnect({ identityFiles: [] }, target('h'), 'hosts')).toEqual({ identityFiles: [] });
    expect(() => inventoryConnect({}, target(`h ansible_ssh_common_args='-i ${dir}/missing'`), 'site/hosts.ini')).toThrow(/host h: cannot read its key file .*missing/);
  });
});

describe('ansible_become and ansible_become_user', () => {
  it('false: zanuri logs in as root and never runs sudo', () => {
    expect(target('h ansible_host=10.0.0.5 ansible_become=false')).toMatchObject({ spec: 'root@10.0.0.5', become: false, loginIsRoot: true });
    expect(target('h ansible_host=10.0.0.5 ansible_user=root ansible_become=no')).toMatchObject({ spec: 'root@10.0.0.5', loginIsRoot: true });
    const e = refusal(() => target('h ansible_host=10.0.0.5 ansible_user=deploy ansible_become=false'));
    expect(e.message).toBe('site/hosts.ini: host h: ansible_become is false, so zanuri logs in as root and never runs sudo, but the login user is deploy');
    expect(e.location).toBe('site/hosts.ini');
    expect(() => target("h ansible_become=false ansible_ssh_common_args='-l deploy'")).toThrow(/login user is deploy/);
  });

  it('true or unset: the login user as written, sudo -n to root when it is not root', () => {
    expect(target('h ansible_host=10.0.0.5 ansible_user=deploy ansible_become=true')).toMatchObject({ spec: 'deploy@10.0.0.5', become: true, loginIsRoot: false });
    expect(target('h ansible_host=10.0.0.5')).toMatchObject({ spec: '10.0.0.5', become: true, loginIsRoot: false });
  });

  it('refuses a become user other than root, naming the host and the file', () => {
    const e = refusal(() => target('h ansible_become_user=postgres'));
    expect(e.message).toBe('site/hosts.ini: host h: ansible_become_user postgres: zanuri only becomes root');
    expect(e.location).toBe('site/hosts.ini');
    expect(target('h ansible_become_user=root').become).toBe(true);
  });
});
