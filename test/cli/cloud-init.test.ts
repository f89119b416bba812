import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadTemplates } from '../../src/templates/load.js';
// @ts-expect-error: a plain ESM build script without types
import { bundle } from '../../scripts/bundle.mjs';

const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'zanuri-cloud-init-cli-'));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'operator@example', '-f', join(dir, 'id')]);
const sha = 'ab'.repeat(32);
const node = ['--node-url', 'https://mirror.example/node-v20.19.5-linux-x64.tar.xz', '--node-sha256', sha];
const keyArgs = ['--ssh-key', join(dir, 'id.pub')];

interface Run { code: number; stdout: string; stderr: string }

function zanuri(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [bin, 'cloud-init', ...args], { env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const script = (userData: string): string => (parse(userData) as { write_files: Array<{ path: string; content: string }> }).write_files.find((f) => f.path === '/opt/zanuri/first-boot.sh')?.content ?? '';

beforeAll(async () => {
  await bundle();
}, 60_000);

describe('zanuri cloud-init refuses bad input and writes nothing (exit 2)', () => {
  it('fails on a broken profile file before writing anything, not even the archive', async () => {
    writeFileSync(join(dir, 'broken.yaml'), 'id: broken\nplaybook: hardened\nrequirements: [\n');
    const archive = join(dir, 'broken.tar.gz');
    const run = await zanuri('--profile', join(dir, 'broken.yaml'), ...node, '--archive', archive);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/broken\.yaml:\d+:\d+/);
    expect(existsSync(archive)).toBe(false);
  });

  it('fails on an unknown profile and on a bad --set value with nothing on stdout', async () => {
    const unknown = await zanuri('--profile', 'no-such-profile', ...node);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe('');
    const badSet = await zanuri('--profile', 'arshai-core-min', ...node, ...keyArgs, '--set', 'ssh-harden.maxAuthTries="three"');
    expect(badSet.code).toBe(2);
    expect(badSet.stdout).toBe('');
    expect(badSet.stderr).toMatch(/maxAuthTries must be a whole number/);
  });

  it('names the Node runtime flags when they are missing, and refuses an unpinned or odd URL', async () => {
    const missing = await zanuri('--profile', 'arshai-core-min');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--node-url and --node-sha256/);
    const notHex = await zanuri('--profile', 'arshai-core-min', '--node-url', 'https://x.example/node', '--node-sha256', 'latest');
    expect(notHex.code).toBe(2);
    expect(notHex.stderr).toMatch(/--node-sha256 must be a sha256/);
    const ftp = await zanuri('--profile', 'arshai-core-min', '--node-url', 'ftp://x.example/node', '--node-sha256', sha);
    expect(ftp.code).toBe(2);
    expect(ftp.stdout).toBe('');
  });

  it('refuses a private key as --ssh-key (user-data is readable by the metadata service)', async () => {
    const run = await zanuri('--profile', 'arshai-core-min', ...node, '--ssh-key', join(dir, 'id'));
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/is a private key/);
    expect(run.stdout).toBe('');
  });
});

describe('zanuri cloud-init writes #cloud-config that pins everything it runs', () => {
  it('embeds the zanuri archive, pinned by its sha256, with the bundle, profiles, playbooks and templates', async () => {
    const run = await zanuri('--profile', 'arshai-core-min', ...node, '--ssh-key', join(dir, 'id.pub'));
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout.startsWith('#cloud-config\n')).toBe(true);
    const doc = parse(run.stdout) as { write_files: Array<{ path: string; encoding?: string; content: string }>; runcmd: unknown[] };
    const archiveEntry = doc.write_files.find((f) => f.path === '/opt/zanuri/zanuri.tar.gz');
    expect(archiveEntry?.encoding).toBe('b64');
    const archive = Buffer.from(archiveEntry?.content ?? '', 'base64');
    const text = script(run.stdout);
    expect(text).toContain(`archive_sha256=${sha256(archive)}`);
    expect(text).toContain(`node_sha256=${sha}`);
    expect(text).toContain('node_kind=tarball');
    writeFileSync(join(dir, 'embedded.tar.gz'), archive);
    const names = execFileSync('tar', ['-tzf', join(dir, 'embedded.tar.gz')]).toString().split('\n');
    expect(names).toEqual(expect.arrayContaining(['package.json', 'dist/bundle/zanuri.mjs', 'profiles/arshai-core-min.yaml', 'profiles/schema.json', 'playbooks/hardened.yaml', 'templates/ssh/hardening.conf']));
    expect(doc.runcmd).toEqual([['/bin/sh', '/opt/zanuri/first-boot.sh']]);
    // The operator's key goes to the deploy user, and the header says what the user-data carries.
    const key = readFileSync(join(dir, 'id.pub'), 'utf8').trim();
    expect(text).toContain(`'deploy-user.authorizedKeys=${JSON.stringify([key])}'`);
    expect(run.stdout).toMatch(/never put a password or a private key here\. It carries: --set deploy-user\.authorizedKeys/);
    // The first-boot script is valid sh.
    writeFileSync(join(dir, 'first-boot.sh'), text);
    execFileSync('sh', ['-n', join(dir, 'first-boot.sh')]);
  });

  it('gives the same bytes twice, so a pinned archive stays valid', async () => {
    const [a, b] = await Promise.all([zanuri('--profile', 'arshai-core-min', ...node, ...keyArgs), zanuri('--profile', 'arshai-core-min', ...node, ...keyArgs)]);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
  });

  it('with --zanuri-url, writes the archive to upload and pins its sha256 in a user-data that fits EC2\'s 16 KiB', async () => {
    const archive = join(dir, 'zanuri.tar.gz');
    const run = await zanuri('--profile', 'arshai-core-min', ...node, ...keyArgs, '--zanuri-url', 'https://files.example/zanuri.tar.gz', '--archive', archive);
    expect(run.code, run.stderr).toBe(0);
    expect(Buffer.byteLength(run.stdout)).toBeLessThan(16 * 1024);
    expect(run.stdout).not.toContain('/opt/zanuri/zanuri.tar.gz\n    owner');
    const text = script(run.stdout);
    expect(text).toContain(`archive_sha256=${sha256(readFileSync(archive))}`);
    expect(text).toContain('archive_url=https://files.example/zanuri.tar.gz');
    const noArchive = await zanuri('--profile', 'arshai-core-min', ...node, '--zanuri-url', 'https://files.example/zanuri.tar.gz');
    expect(noArchive.code).toBe(2);
    expect(noArchive.stderr).toMatch(/--zanuri-url needs --archive/);
  });

  it('calls out what the user-data carries: it is readable through the metadata service', async () => {
    const run = await zanuri('--profile', 'arshai-core-min', ...node, ...keyArgs, '--set', 'ssh-harden.maxAuthTries=3');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/user-data is readable through the machine's metadata service and kept in \/var\/lib\/cloud; it carries --set ssh-harden\.maxAuthTries, --set deploy-user\.authorizedKeys/);
    expect(run.stderr).toMatch(/user-data is \d+ KiB \(zanuri archive \d+ KiB inside it\)/);
  });

  it('ships a site profile\'s overriding templates in the user-data, and the renderer takes them from where first boot writes them', async () => {
    const site = join(dir, 'site-tpl');
    mkdirSync(join(site, 'overrides', 'timesync'), { recursive: true });
    const override = '# Our site (overrides timesync/timesyncd.conf)\n[Time]\nNTP=ntp1.site.example ntp2.site.example\n';
    writeFileSync(join(site, 'overrides', 'timesync', 'timesyncd.conf'), override);
    writeFileSync(join(site, 'site-timesync.yaml'), [
      'id: site-timesync', 'system: Site', 'tier: production', 'rank: 1', 'title: Our hosts', "source: 'our own'",
      'playbook: hardened', 'templates: ./overrides', 'requirements:', '  - { id: cores, check: cpu.cores, level: required, min: 1, source: ours }', '',
    ].join('\n'));
    const run = await zanuri('--profile', join(site, 'site-timesync.yaml'), ...node, ...keyArgs);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/it carries .*its overriding templates \(timesync\/timesyncd\.conf\)/);
    const doc = parse(run.stdout) as { write_files: Array<{ path: string; encoding?: string; content: string; permissions: string }> };
    const entry = doc.write_files.find((f) => f.path === '/opt/zanuri/site-templates/timesync/timesyncd.conf');
    expect(entry).toMatchObject({ encoding: 'b64', permissions: '0644' });
    expect(Buffer.from(entry?.content ?? '', 'base64').toString('utf8')).toBe(override);
    // Only the overrides travel; the shipped templates are in the archive.
    expect(doc.write_files.filter((f) => f.path.startsWith('/opt/zanuri/site-templates/')).map((f) => f.path)).toEqual(['/opt/zanuri/site-templates/timesync/timesyncd.conf']);
    const text = script(run.stdout);
    expect(text).toContain("--profile /opt/zanuri/app/site/site-timesync.yaml --templates /opt/zanuri/site-templates --set 'deploy-user.authorizedKeys=");

    // What first boot renders from: cloud-init's files laid out under a root and the archive unpacked as first-boot.sh
    // does; the renderer loads the shipped templates with the shipped overrides, as provision --templates does there.
    const root = mkdtempSync(join(tmpdir(), 'zanuri-first-boot-root-'));
    for (const f of doc.write_files) {
      const path = join(root, f.path);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, f.encoding === 'b64' ? Buffer.from(f.content, 'base64') : f.content);
    }
    mkdirSync(join(root, 'opt/zanuri/app'));
    execFileSync('tar', ['-xzf', join(root, 'opt/zanuri/zanuri.tar.gz'), '-C', join(root, 'opt/zanuri/app')]);
    const templates = await loadTemplates({ builtinDir: join(root, 'opt/zanuri/app/templates'), overrideDir: join(root, 'opt/zanuri/site-templates') });
    expect(templates.overridden).toEqual(['timesync/timesyncd.conf']);
    const rendered = templates.render('timesync/timesyncd.conf', { servers: [] });
    expect(rendered.text).toBe(override);
    expect(rendered.source).toBe(`${join(root, 'opt/zanuri/site-templates/timesync/timesyncd.conf')} (overrides template timesync/timesyncd.conf)`);
    // The shipped profile still names its own overrides; on the machine --templates points at the written ones instead.
    expect(readFileSync(join(root, 'opt/zanuri/app/site/site-timesync.yaml'), 'utf8')).toContain('templates: ./overrides');
    rmSync(root, { recursive: true, force: true });
  }, 180_000);
});

