import { execFileSync } from 'node:child_process';
import { mkdtempSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandFact, computedFileFact, directoryFact, familyOf, fileFact, groupFact, linkFact, osReleaseFact, packagesFact, parseSshdPorts, sysctlFact, userFact, type FactRequest } from '../../../src/facts/state.js';

/** Runs a fact's own script with dash on this machine, as the engine would on a host, and parses it. */
function read<T>(request: FactRequest<T>): T {
  return request.parse(execFileSync('dash', ['-c', request.script]).toString().replace(/\n$/, ''));
}

const dir = mkdtempSync(join(tmpdir(), 'zanuri-state-'));

describe('state facts, read on this machine', () => {
  it('reads a file exactly, with its mode and owner, through base64', () => {
    const path = join(dir, "odd name 'quoted'.conf");
    const content = 'line one\n\n@@zanuri-section:forged@@\ntrailing spaces   \n\n';
    writeFileSync(path, content);
    chmodSync(path, 0o640);
    expect(read(fileFact(path))).toEqual({ exists: true, mode: 0o640, owner: 'root', group: 'root', bytes: Buffer.from(content), content });
    expect(read(fileFact(join(dir, 'missing')))).toEqual({ exists: false, mode: null, owner: null, group: null, bytes: null, content: null });
  });

  it('keeps bytes that are not UTF-8 exactly, and the owner of a file root does not own', () => {
    const path = join(dir, 'latin1.conf');
    const bytes = Buffer.from([0x23, 0x20, 0x63, 0x61, 0x66, 0xe9, 0x0a, 0xff, 0x00]);
    writeFileSync(path, bytes);
    chmodSync(path, 0o600);
    execFileSync('chown', ['nobody:nogroup', path]);
    const state = read(fileFact(path));
    expect(state.bytes?.equals(bytes)).toBe(true);
    expect(state).toMatchObject({ mode: 0o600, owner: 'nobody', group: 'nogroup' });
  });

  it('reads a file whose path the host works out, and a directory with its mode and owner', () => {
    const path = join(dir, 'computed.conf');
    writeFileSync(path, 'x = 1\n');
    expect(read(computedFileFact('computed', `echo ${path}`))).toMatchObject({ exists: true, content: 'x = 1\n' });
    expect(read(computedFileFact('nothing', 'true')).exists).toBe(false);
    expect(read(directoryFact(dir))).toEqual({ exists: true, mode: 0o700, owner: 'root', group: 'root' });
    expect(read(directoryFact(join(dir, 'missing'))).exists).toBe(false);
  });

  it('reads kernel parameters, groups and os-release with the probe\'s own parser', () => {
    expect(read(sysctlFact('kernel.ostype'))).toBe('Linux');
    expect(read(sysctlFact('zanuri.no.such.key'))).toBeNull();
    expect(read(groupFact('root'))).toMatchObject({ exists: true, gid: 0 });
    expect(read(groupFact('zanuri-no-such-group')).exists).toBe(false);
    const release = read(osReleaseFact());
    // The test machines are Debian or Ubuntu (README): the family is the ID itself there.
    expect(['debian', 'ubuntu']).toContain(release['ID']);
    expect(familyOf(release)).toBe(release['ID']);
    expect(familyOf({ ID: 'pop', ID_LIKE: 'ubuntu debian' })).toBe('ubuntu');
    expect(familyOf({ ID: 'rocky', ID_LIKE: 'rhel centos fedora' })).toBe('unknown');
  });

  it('tells where a symbolic link points, and no link from a plain file', () => {
    const link = join(dir, 'site-link');
    symlinkSync('/etc/nginx/sites-available/zanuri', link);
    expect(read(linkFact(link))).toBe('/etc/nginx/sites-available/zanuri');
    expect(read(linkFact(join(dir, "odd name 'quoted'.conf")))).toBeNull();
    expect(read(linkFact(join(dir, 'missing')))).toBeNull();
  });

  it('reports installed Debian packages with versions and missing ones as null', () => {
    const versions = read(packagesFact(['dash', 'zanuri-no-such-package']));
    expect(versions['dash']).toMatch(/^\d/);
    expect(versions['zanuri-no-such-package']).toBeNull();
  });

  it('reads a user with groups and no authorized_keys', () => {
    const root = read(userFact('root'));
    expect(root).toMatchObject({ exists: true, uid: 0, home: '/root', groups: expect.arrayContaining(['root']) });
    expect(read(userFact('zanuri-nobody-here')).exists).toBe(false);
  });

  it('keeps a command\'s output and exit code apart', () => {
    expect(read(commandFact(['sh', '-c', 'echo out; echo err >&2; exit 3']))).toEqual({ exitCode: 3, stdout: 'out\nerr\n' });
    expect(read(commandFact(['zanuri-no-such-command'])).exitCode).toBe(127);
  });

  it('reads the SSH ports sshd reports, once each', () => {
    expect(parseSshdPorts({ exitCode: 0, stdout: 'port 22\nport 2222\nport 22\naddressfamily any' })).toEqual([22, 2222]);
    expect(parseSshdPorts({ exitCode: 255, stdout: 'port 22' })).toEqual([]);
  });
});
