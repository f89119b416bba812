import { execFileSync } from 'node:child_process';
import { mkdtempSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandFact, fileFact, linkFact, packagesFact, parseSshdPorts, userFact, type FactRequest } from '../../../src/facts/state.js';

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
    expect(read(fileFact(path))).toEqual({ exists: true, mode: '640', owner: 'root', group: 'root', content });
    expect(read(fileFact(join(dir, 'missing')))).toEqual({ exists: false, mode: null, owner: null, group: null, content: null });
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
