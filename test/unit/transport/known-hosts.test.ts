import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  fingerprint, hostFieldMatches, judgeHostKey, keyType, knownHostsName, parseKnownHosts, readKnownHosts, recordHostKey,
} from '../../../src/transport/known-hosts.js';

const dir = mkdtempSync(join(tmpdir(), 'zanuri-kh-'));

/** A real host key made by ssh-keygen: [public key line, wire blob]. */
function hostKey(name: string, type = 'ed25519'): { line: string; blob: Buffer } {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', path]);
  const line = readFileSync(`${path}.pub`, 'utf8').trim();
  return { line, blob: Buffer.from(line.split(' ')[1] ?? '', 'base64') };
}

describe('known_hosts', () => {
  const a = hostKey('a');
  const b = hostKey('b');
  const rsa = hostKey('r', 'rsa');
  const [typeA, dataA] = a.line.split(' ');

  it('names non-standard ports the way OpenSSH does', () => {
    expect(knownHostsName('10.0.0.5', 22)).toBe('10.0.0.5');
    expect(knownHostsName('10.0.0.5', 2222)).toBe('[10.0.0.5]:2222');
  });

  it('matches a known key and reports its type', () => {
    const known = parseKnownHosts(`10.0.0.5 ${typeA} ${dataA}\n`, 'kh', '10.0.0.5');
    expect(judgeHostKey(known, a.blob)).toEqual({ kind: 'match' });
    expect(keyType(a.blob)).toBe('ssh-ed25519');
  });

  it('calls a different key of the same type a change, and names the line it contradicts', () => {
    const known = parseKnownHosts(`# comment\n10.0.0.5 ${typeA} ${dataA}\n`, 'kh', '10.0.0.5');
    const verdict = judgeHostKey(known, b.blob);
    expect(verdict.kind).toBe('changed');
    expect(verdict.kind === 'changed' && verdict.known.line).toBe(2);
  });

  it('calls a key of a type not on file unknown, not changed', () => {
    const known = parseKnownHosts(`10.0.0.5 ${typeA} ${dataA}\n`, 'kh', '10.0.0.5');
    expect(judgeHostKey(known, rsa.blob)).toEqual({ kind: 'unknown', otherTypes: ['ssh-ed25519'] });
  });

  it('reads hashed host names written by ssh-keygen -H', () => {
    const file = join(dir, 'hashed');
    writeFileSync(file, `[10.0.0.5]:2222 ${typeA} ${dataA}\n`);
    execFileSync('ssh-keygen', ['-q', '-H', '-f', file]);
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith('|1|')).toBe(true);
    expect(judgeHostKey(parseKnownHosts(text, file, '[10.0.0.5]:2222'), a.blob)).toEqual({ kind: 'match' });
    expect(parseKnownHosts(text, file, '10.0.0.5')).toEqual([]);
  });

  it('honours wildcards and negated patterns', () => {
    expect(hostFieldMatches('*.example.com,!bad.example.com', 'gpu1.example.com')).toBe(true);
    expect(hostFieldMatches('*.example.com,!bad.example.com', 'bad.example.com')).toBe(false);
    expect(hostFieldMatches('gpu?', 'gpu2')).toBe(true);
    expect(hostFieldMatches('gpu1,gpu2', 'gpu3')).toBe(false);
  });

  it('refuses a revoked key even when it is also listed as valid', () => {
    const known = parseKnownHosts(`@revoked * ${typeA} ${dataA}\nhost ${typeA} ${dataA}\n`, 'kh', 'host');
    expect(judgeHostKey(known, a.blob).kind).toBe('revoked');
  });

  it('records a new key in a form OpenSSH itself accepts', async () => {
    const file = join(dir, 'sub', 'known_hosts');
    await recordHostKey(file, '[127.0.0.1]:2200', a.blob);
    expect((await readKnownHosts([file], '[127.0.0.1]:2200'))[0]?.blob.equals(a.blob)).toBe(true);
    const found = execFileSync('ssh-keygen', ['-F', '[127.0.0.1]:2200', '-f', file]).toString();
    expect(found).toContain(dataA);
  });

  it('prints fingerprints as ssh-keygen -l does', () => {
    const expected = execFileSync('ssh-keygen', ['-l', '-f', join(dir, 'a.pub')]).toString().split(' ')[1];
    expect(fingerprint(a.blob)).toBe(expected);
  });
});
