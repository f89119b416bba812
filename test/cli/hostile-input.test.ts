/**
 * Hostile input found by trying values as an attacker would: each is refused with exit 2 and a clear
 * message before any connection, never a stack trace, never a file's content echoed, never a command
 * run on this machine (a marker file proves it).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startLlmServer } from '../helpers/llm/server.js';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'zanuri-hostile-'));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'id')]);
const key = execFileSync('cat', [join(dir, 'id.pub')]).toString().trim();

interface Run { code: number; stdout: string; stderr: string }

function zanuri(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

// Port 1 on loopback refuses at once: a run that got as far as connecting would exit 4, not 2.
const unreachable = ['--host', 'root@127.0.0.1:1', '-i', join(dir, 'id'), '--yes'];
const keys = ['--set', `deploy-user.authorizedKeys=${JSON.stringify([key])}`];

const bomb = [
  'id: bomb', 'title: a billion laughs',
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
  'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]', 'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]', 'steps: [*f]', '',
].join('\n');

describe('hostile input is refused before any connection (exit 2)', () => {
  it('refuses a YAML alias bomb in a playbook with file:line, as JSON with --json, without a stack trace', async () => {
    const file = join(dir, 'bomb.yaml');
    writeFileSync(file, bomb);
    const run = await zanuri('provision', '--playbook', file, '--json', ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(new RegExp(`${file}:4:\\d+: too many YAML alias expansions`));
    expect(run.stderr).not.toMatch(/internal error|at .*\.js:\d+/);
    const json = JSON.parse(run.stdout) as { exitCode: number; error: { code: string; message: string } };
    expect(json.exitCode).toBe(2);
    expect(json.error.code).toBe('CONFIG');
  });

  it('refuses a YAML alias bomb in a profile and in an inventory the same way', async () => {
    const profile = join(dir, 'bomb-profile.yaml');
    writeFileSync(profile, bomb.replace('steps: [*f]', 'extends: zanuri-dev\nrequirements: [*f]'));
    const checked = await zanuri('check', '--profile', profile, '--host', 'root@127.0.0.1:1');
    expect(checked.code).toBe(2);
    expect(checked.stderr).toMatch(/bomb-profile\.yaml:\d+:\d+: too many YAML alias expansions/);
    const inventory = join(dir, 'bomb-inventory.yaml');
    writeFileSync(inventory, `all:\n  hosts:\n    h1: {}\n  vars:\n${bomb.split('\n').slice(2, 8).map((l) => `    ${l}`).join('\n')}\n    g: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n    h: [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n`);
    const listed = await zanuri('check', '--inventory', inventory, '--list-hosts');
    expect(listed.code).toBe(2);
    expect(listed.stderr).toMatch(/bomb-inventory\.yaml:\d+:\d+: too many YAML alias expansions/);
  });

  it('refuses an unknown YAML tag in a playbook', async () => {
    const file = join(dir, 'tag.yaml');
    writeFileSync(file, 'id: tag\nsteps:\n  - step: !!js/function "function () { return 1 }"\n');
    const run = await zanuri('provision', '--playbook', file, ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`${file}:3:11: unknown YAML tag`);
  });

  it('refuses an ssh config with Match exec without running its command, as ProxyCommand is refused', async () => {
    const marker = join(dir, 'match-exec-ran');
    const config = join(dir, 'match-exec.conf');
    writeFileSync(config, `Host *\n  User root\n\nMatch exec "touch ${marker}"\n  Port 2222\n`);
    for (const command of ['check', 'audit']) {
      const run = await zanuri(command, '-F', config, '--host', 'somewhere');
      expect(run.code, command).toBe(2);
      // A host that cannot be resolved is that host's error in the report (stdout), the run's exit code 2.
      expect(run.stdout + run.stderr).toContain(`${config}:4: the ssh config has a "Match exec" line`);
      expect(existsSync(marker), 'the Match exec command must never run').toBe(false);
    }
    const included = join(dir, 'includes.conf');
    writeFileSync(included, `Include ${join(dir, 'match-*.conf')}\n`);
    const viaInclude = await zanuri('check', '-F', included, '--host', 'somewhere');
    expect(viaInclude.code).toBe(2);
    expect(existsSync(marker)).toBe(false);
  });

  it('never passes the lines of a file given as -F into the output or the JSON (-F /etc/shadow)', async () => {
    const shadow = join(dir, 'shadow');
    writeFileSync(shadow, 'root:$y$j9T$Zanuri.Secret.Hash$abcdefghijklmnop:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n');
    const run = await zanuri('check', '-F', shadow, '--host', 'somewhere', '--json');
    expect(run.code).toBe(2);
    expect(run.stdout + run.stderr).not.toContain('Zanuri.Secret.Hash');
    expect(run.stdout + run.stderr).not.toContain('root:$y$');
    expect(run.stdout).toContain(`${shadow}:1: `);
  });

  it('never echoes the content of an @file in an error (--set postgresql.role=@FILE)', async () => {
    const secret = join(dir, 'secret-lines');
    writeFileSync(secret, 'root:$y$j9T$Another.Secret.Hash:19000:0:99999:7:::\n');
    const run = await zanuri('provision', '--playbook', 'web-app', ...keys, '--set', `postgresql.role=@${secret}`, ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('postgresql: role must be');
    expect(run.stderr).toContain('its content is not shown');
    expect(run.stderr).not.toContain('Another.Secret.Hash');
  });

  it('refuses --host "" instead of checking this machine', async () => {
    for (const command of ['check', 'audit', 'provision']) {
      const run = await zanuri(command, '--host', '', '--json');
      expect(run.code, command).toBe(2);
      expect(run.stderr).toContain('an empty host name');
    }
  });

  it('refuses hex words and zone indexes as addresses in fail2ban.ignoreip, postgresql.allowFrom and ufw sources', async () => {
    for (const [set, name] of [['fail2ban.ignoreip', 'ignoreip[0]'], ['ufw.adminFrom', 'adminFrom[0]'], ['ufw.internalFrom', 'internalFrom[0]']] as const) {
      for (const bad of ['cafe', 'beef', 'fe80::1%eth0', '10.0.0.0/33', '1.2.3.4/08']) {
        const run = await zanuri('provision', '--playbook', 'hardened', ...keys, '--set', `${set}=${JSON.stringify([bad])}`, ...unreachable);
        expect(run.code, `${set}=${bad}`).toBe(2);
        expect(run.stderr).toContain(`${name} must be an IPv4 or IPv6 address or CIDR`);
      }
    }
    const pg = await zanuri('provision', '--playbook', 'web-app', ...keys, '--set', 'postgresql.listenAddresses="localhost,10.0.0.5"', '--set', 'postgresql.allowFrom=["cafe"]', ...unreachable);
    expect(pg.code).toBe(2);
    expect(pg.stderr).toContain('allowFrom[0] must be an IPv4 or IPv6 address or CIDR');
  });

  it('refuses a system account as the deploy user and a system directory as the nginx root, unless explicitly allowed', async () => {
    for (const name of ['www-data', 'postgres', 'nobody', 'systemd-network']) {
      const run = await zanuri('provision', '--playbook', 'base', ...keys, '--set', `deploy-user.name=${name}`, ...unreachable);
      expect(run.code, name).toBe(2);
      expect(run.stderr).toContain(`"${name}" is a system account`);
    }
    for (const root of ['/etc', '/root', '/proc/self', '/var/lib/postgresql', '/home', '/usr/share']) {
      const run = await zanuri('provision', '--playbook', 'web-app', ...keys, '--skip', 'certbot', '--set', 'nginx.upstream=null', '--set', `nginx.root=${JSON.stringify(root)}`, ...unreachable);
      expect(run.code, root).toBe(2);
      expect(run.stderr).toContain(`nginx: root ${root} is a system directory`);
    }
    // Allowed on purpose: the run gets as far as connecting (exit 4 at port 1), so the value passed every check.
    const allowed = await zanuri('provision', '--playbook', 'web-app', ...keys, '--skip', 'certbot', '--set', 'nginx.upstream=null', '--set', 'nginx.root="/etc"', '--set', 'nginx.systemRoot=true', ...unreachable);
    expect(allowed.code).toBe(4);
    const site = await zanuri('provision', '--playbook', 'web-app', ...keys, '--skip', 'certbot', '--set', 'nginx.upstream=null', '--set', 'nginx.root="/var/www/site"', ...unreachable);
    expect(site.code).toBe(4);
  });

  it('refuses command-valued PostgreSQL settings and absurdly long setting names', async () => {
    for (const name of ['archive_command', 'restore_command', 'ssl_passphrase_command', 'local_preload_libraries']) {
      const run = await zanuri('provision', '--playbook', 'web-app', ...keys, '--set', `postgresql.settings=${JSON.stringify({ [name]: "'touch /tmp/x'" })}`, ...unreachable);
      expect(run.code, name).toBe(2);
      expect(run.stderr).toContain(`settings.${name} runs a command or loads code`);
    }
    const long = await zanuri('provision', '--playbook', 'web-app', ...keys, '--set', `postgresql.settings=${JSON.stringify({ ['a'.repeat(100_000)]: 1 })}`, ...unreachable);
    expect(long.code).toBe(2);
    expect(long.stderr).toContain('is not a postgresql.conf parameter name');
    expect(long.stderr.length).toBeLessThan(2000);
  });

  it('refuses a bad --bench-endpoint before the first connection, not after ufw and fail2ban changed the host', async () => {
    for (const endpoint of ['http://x;touch /tmp/zanuri-endpoint', 'file:///etc/passwd', 'http://127.0.0.1:99999', 'http://user:pw@127.0.0.1:11434', '-oProxyCommand=x']) {
      const run = await zanuri('provision', '--playbook', 'hardened', ...keys, '--bench-endpoint', endpoint, '--json', ...unreachable);
      expect(run.code, endpoint).toBe(2);
      expect(run.stderr).toContain('--bench-endpoint');
      expect(run.stderr).toContain('is not an http(s) URL of a host and port');
      // No host was reached: the report is the usage error's, with no hosts in it.
      expect((JSON.parse(run.stdout) as { hosts?: unknown }).hosts).toBeUndefined();
    }
    const bench = await zanuri('bench', '--endpoint', 'gopher://127.0.0.1:70', '--host', 'root@127.0.0.1:1');
    expect(bench.code).toBe(2);
    expect(bench.stderr).toContain('--endpoint "gopher://127.0.0.1:70" is not an http(s) URL');
  });

  it('never echoes the content of a --dataset file that is not JSON (--dataset /etc/shadow)', async () => {
    const shadow = join(dir, 'dataset-shadow');
    writeFileSync(shadow, 'root:$y$j9T$Dataset.Secret.Hash:19000:0:99999:7:::\n');
    const run = await zanuri('bench', '--dataset', shadow, '--endpoint', 'http://127.0.0.1:1', '--json');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('is not JSON');
    expect(run.stdout + run.stderr).not.toContain('Dataset.Secret.Hash');
    expect(run.stdout + run.stderr).not.toContain('root:');
  });

  it('shows a look-alike letter, a right-to-left override or an escape in a bad value as \\u escapes', async () => {
    const run = await zanuri('provision', '--playbook', 'base', ...keys, '--set', 'deploy-user.name=d\u0435ploy\u202e\u001b[2J', ...unreachable);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('got "d\\u0435ploy\\u202e\\u001b[2J"');
    expect(run.stderr).not.toMatch(/[\u0435\u202e\x1b]/);
  });

  it('never prints a model name\'s terminal escape sequences raw: a server named its model to retitle the window and clear the screen', async () => {
    const hostileName = 'tiny\x1b]0;owned\x07\x1b[2J\x1b[1A\rnot-a-warning\u202e';
    const server = await startLlmServer({ modelName: hostileName });
    try {
      const run = await zanuri('bench', '--endpoint', server.url, '--max-tokens', '8', '--prompt-words', '8', '--warmup', '0', '--requests', '1', '--concurrency', '1', '--timeout', '60');
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).toContain('model tiny');
      expect(run.stdout + run.stderr).not.toMatch(/\x1b\]|\x07|\x1b\[2J|\x1b\[1A|\r/);
      // --json keeps the name exactly, escaped as JSON escapes control characters.
      const json = await zanuri('bench', '--endpoint', server.url, '--max-tokens', '8', '--prompt-words', '8', '--warmup', '0', '--requests', '1', '--concurrency', '1', '--timeout', '60', '--json');
      expect(json.stdout).not.toMatch(/\x1b|\x07/);
      expect((JSON.parse(json.stdout) as { model: string }).model).toBe(hostileName);
    } finally {
      await server.close();
    }
  }, 180_000);

  it('refuses an unknown --fail-on severity for audit', async () => {
    const run = await zanuri('audit', '--fail-on', 'severe', '--host', 'root@127.0.0.1:1');
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--fail-on must be one of info, low, medium, high, critical or none');
  });
});

process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
