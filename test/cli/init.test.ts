/**
 * `zanuri init` on a real pseudo-terminal (util-linux script(1)), answering its prompts with keys as
 * an operator types them, against a real SSH target it checks (needs root for the target); and
 * without a terminal, where it must refuse and name the flags.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const can = canRunTargets();

interface Run { code: number; stdout: string; stderr: string }

function zanuri(cwd: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, ...args], { cwd, env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

const plain = (s: string): string => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
const quote = (s: string): string => `'${s.replaceAll("'", `'\\''`)}'`;

/** zanuri on a pseudo-terminal: `waitFor` text on the screen, `type` keys into it. */
function onTerminal(cwd: string, args: string[]) {
  const command = ['stty cols 200 rows 50;', 'cd', quote(cwd), '&&', 'NO_COLOR=1 node', quote(bin), ...args.map(quote)].join(' ');
  const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  let seen = 0;
  child.stdout.on('data', (d: Buffer) => { screen += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { screen += d.toString(); });
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  return {
    get screen() { return plain(screen); },
    /** Resolves once `pattern` shows after what earlier waits consumed. */
    async waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<string> {
      const t0 = Date.now();
      while (Date.now() - t0 < timeoutMs) {
        const rest = plain(screen).slice(seen);
        const m = pattern.exec(rest);
        if (m) {
          seen += m.index + m[0].length;
          return rest;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no ${pattern} on the terminal within ${timeoutMs} ms; it shows:\n${plain(screen).slice(-3000)}`);
    },
    type(keys: string): void { child.stdin.write(keys); },
    exited,
  };
}

describe('zanuri init without a terminal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'zanuri-init-'));

  it('refuses and names the flags of the questions it cannot ask', async () => {
    const run = await zanuri(dir, 'init');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/asks its questions on a terminal, and there is none: give --host or --inventory, --profile, --ssh-key/);
    expect(existsSync(join(dir, 'zanuri.yaml'))).toBe(false);
  });

  it('asks for --domain and --email when the profile gets a certificate, and writes nothing', async () => {
    writeFileSync(join(dir, 'op.pub'), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG5vdCBhIHJlYWwga2V5IGJ1dCB3ZWxsIGZvcm1lZA op@example\n');
    const run = await zanuri(dir, 'init', '--host', 'root@198.51.100.7', '--profile', 'aikovrr-minimum', '--ssh-key', join(dir, 'op.pub'), '--no-check');
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/give --domain, --email/);
    expect(existsSync(join(dir, 'zanuri.yaml'))).toBe(false);
  });

  it('writes the config from flags alone, and refuses to replace it without --force', async () => {
    const args = ['init', '--host', 'root@198.51.100.7', '--profile', 'aikovrr-minimum', '--ssh-key', join(dir, 'op.pub'), '--domain', 'app.example.com', '--email', 'ops@example.com', '--no-check'];
    const run = await zanuri(dir, ...args);
    expect(run.code, run.stderr).toBe(0);
    expect(parse(readFileSync(join(dir, 'zanuri.yaml'), 'utf8'))).toEqual({
      hosts: ['root@198.51.100.7'], profile: 'aikovrr-minimum', sshKey: join(dir, 'op.pub'),
      set: { 'certbot.domain': 'app.example.com', 'certbot.email': 'ops@example.com' },
    });
    const again = await zanuri(dir, ...args);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/exists: pass --force/);
  });
});

describe.skipIf(!can.ok && !process.env['CI'])('zanuri init on a pseudo-terminal, checking a real host (needs root)', () => {
  let target: TestTarget;
  const dir = mkdtempSync(join(tmpdir(), 'zanuri-init-tty-'));

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    [target] = (await startTargets(1, { kind: 'light' })) as [TestTarget];
    writeFileSync(join(dir, 'operator.pub'), `${target.publicKey}\n`);
  }, 120_000);

  afterAll(async () => {
    await stopAllTargets();
  });

  it('asks for hosts, checks them, offers profiles, asks for the certificate and the key, and writes zanuri.yaml', async () => {
    const tty = onTerminal(dir, ['init', '-F', '/dev/null', '--known-hosts', target.knownHostsPath, '-i', target.privateKeyPath]);
    await tty.waitFor(/Hosts to set up/);
    tty.type(`root@${target.host}\r`);
    // The check ran against the host before the profiles are offered.
    await tty.waitFor(new RegExp(`root@${target.host.replaceAll('.', '\\.')}: meets`));
    let menu = await tty.waitFor(/Profile to converge them to/);
    for (let i = 0; i < 40 && !/❯ aikovrr-minimum\b/.test(menu); i += 1) {
      tty.type('\x1b[B');
      menu = await tty.waitFor(/❯ [a-z0-9-]+.*/);
    }
    expect(menu).toMatch(/❯ aikovrr-minimum/);
    tty.type('\r');
    await tty.waitFor(/Domain of the certificate/);
    tty.type('not a domain\r');
    await tty.waitFor(/a DNS name, e\.g\. app\.example\.com/);
    tty.type('\x15app.example.com\r'); // ^U clears the line, as in a shell
    await tty.waitFor(/E-mail for the certificate authority/);
    tty.type('ops@example.com\r');
    await tty.waitFor(/Your public key/);
    tty.type(`\x15${join(dir, 'operator.pub')}\r`);
    await tty.waitFor(/wrote .*zanuri\.yaml/);
    expect(await tty.exited, tty.screen).toBe(0);

    const text = readFileSync(join(dir, 'zanuri.yaml'), 'utf8');
    expect(text).toMatch(/^# zanuri\.yaml, written by `zanuri init`/);
    expect(parse(text)).toEqual({
      hosts: [`root@${target.host}`], profile: 'aikovrr-minimum', sshKey: join(dir, 'operator.pub'),
      set: { 'certbot.domain': 'app.example.com', 'certbot.email': 'ops@example.com' },
    });

    // check reads it: the host from zanuri.yaml, judged against its profile, with no --host or --profile.
    const check = await zanuri(dir, 'check', '--json', '-F', '/dev/null', '--known-hosts', target.knownHostsPath, '-i', target.privateKeyPath);
    const report = JSON.parse(check.stdout) as { hosts: Array<{ host: string; profiles: Array<{ profile: string }> }> };
    expect(report.hosts.map((h) => h.host)).toEqual([`root@${target.host}`]);
    expect(report.hosts[0]?.profiles.map((p) => p.profile)).toEqual(['aikovrr-minimum']);
    // cloud-init reads it too: the profile, the certificate's names and the operator's key.
    const userData = await zanuri(dir, 'cloud-init', '--node-url', 'https://mirror.example/node', '--node-sha256', 'ab'.repeat(32));
    expect(userData.code, userData.stderr).toBe(0);
    expect(userData.stdout).toContain("'certbot.domain=\"app.example.com\"'");
    expect(userData.stdout).toContain(`'deploy-user.authorizedKeys=${JSON.stringify([target.publicKey])}'`);
    expect(userData.stdout).toMatch(/converges itself to\n# profile aikovrr-minimum/);
  }, 180_000);
});
