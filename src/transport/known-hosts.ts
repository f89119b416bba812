import { createHash, createHmac } from 'node:crypto';
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * known_hosts(5) lookup, because ssh2 accepts any host key unless told otherwise. Supports plain
 * and hashed (|1|salt|hash) host names, [host]:port, wildcard patterns with negation, and the
 * @revoked marker; @cert-authority lines are skipped (certificates are not supported yet).
 */
export interface KnownHostKey {
  type: string;
  blob: Buffer;
  revoked: boolean;
  file: string;
  line: number;
}

export type HostKeyVerdict =
  | { kind: 'match' }
  | { kind: 'unknown'; otherTypes: string[] }
  | { kind: 'changed'; known: KnownHostKey }
  | { kind: 'revoked'; known: KnownHostKey };

/** The name known_hosts uses for a host: plain on port 22, `[host]:port` elsewhere. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type is the first string of the SSH wire-format public key blob. */
export function keyType(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString('latin1');
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

function hashedMatches(entry: string, name: string): boolean {
  const [, magic, salt, hash] = entry.split('|');
  if (magic !== '1' || !salt || !hash) return false;
  return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
}

/** Host field matching: any positive pattern matches and no negated pattern does. */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|')) return hashedMatches(field, name);
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (globToRegExp(pattern.slice(1)).test(name)) return false;
    } else if (globToRegExp(pattern).test(name)) matched = true;
  }
  return matched;
}

export function parseKnownHosts(text: string, file: string, name: string): KnownHostKey[] {
  const keys: KnownHostKey[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: string | null = null;
    if (fields[0]?.startsWith('@')) marker = fields.shift() ?? null;
    const [hosts, type, base64] = fields;
    if (!hosts || !type || !base64 || marker === '@cert-authority') return;
    if (!hostFieldMatches(hosts, name)) return;
    keys.push({ type, blob: Buffer.from(base64, 'base64'), revoked: marker === '@revoked', file, line: index + 1 });
  });
  return keys;
}

export async function readKnownHosts(files: readonly string[], name: string): Promise<KnownHostKey[]> {
  const keys: KnownHostKey[] = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '');
    keys.push(...parseKnownHosts(text, file, name));
  }
  return keys;
}

export function judgeHostKey(known: readonly KnownHostKey[], presented: Buffer): HostKeyVerdict {
  const type = keyType(presented);
  const revoked = known.find((k) => k.revoked && k.blob.equals(presented));
  if (revoked) return { kind: 'revoked', known: revoked };
  if (known.some((k) => !k.revoked && k.blob.equals(presented))) return { kind: 'match' };
  const sameType = known.find((k) => !k.revoked && k.type === type);
  if (sameType) return { kind: 'changed', known: sameType };
  return { kind: 'unknown', otherTypes: [...new Set(known.filter((k) => !k.revoked).map((k) => k.type))] };
}

export async function recordHostKey(file: string, name: string, blob: Buffer): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await appendFile(file, `${name} ${keyType(blob)} ${blob.toString('base64')}\n`, { mode: 0o600 });
}

/** ssh2 host key algorithm names for a known_hosts key type, so the server offers a key we know. */
export function hostKeyAlgorithmsFor(types: readonly string[]): string[] {
  const algorithms: string[] = [];
  for (const type of types) {
    if (type === 'ssh-rsa') algorithms.push('rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa');
    else algorithms.push(type);
  }
  return [...new Set(algorithms)];
}
