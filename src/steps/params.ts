import { ConfigError } from '../core/errors.js';

/**
 * Parameter checks shared by steps. Every value that could reach a shell or a config file is
 * checked against a strict pattern here, before any connection: quoting protects the shell, but a
 * user name with a newline would still corrupt /etc/passwd or a config line.
 */
export type Raw = Record<string, unknown>;

export function object(raw: unknown, step: string, allowed: readonly string[]): Raw {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(`${step}: parameters must be a mapping`);
  const unknown = Object.keys(raw).filter((k) => !allowed.includes(k));
  if (unknown.length) {
    throw new ConfigError(`${step}: unknown parameter ${unknown.map((k) => `"${k}"`).join(', ')}`, { hint: `known: ${allowed.join(', ')}` });
  }
  return raw as Raw;
}

function show(value: unknown): string {
  return JSON.stringify(value)?.slice(0, 80) ?? String(value);
}

export function string(raw: Raw, step: string, key: string, pattern: RegExp, what: string, fallback?: string): string {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new ConfigError(`${step}: ${key} must be ${what}, got ${show(value)}`);
  }
  return value;
}

export function optionalString(raw: Raw, step: string, key: string, pattern: RegExp, what: string): string | undefined {
  return raw[key] === undefined ? undefined : string(raw, step, key, pattern, what);
}

export function integer(raw: Raw, step: string, key: string, min: number, max: number, fallback?: number): number {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${step}: ${key} must be a whole number from ${min} to ${max}, got ${show(value)}`);
  }
  return value;
}

export function boolean(raw: Raw, step: string, key: string, fallback: boolean): boolean {
  const value = raw[key] ?? fallback;
  if (typeof value !== 'boolean') throw new ConfigError(`${step}: ${key} must be true or false, got ${show(value)}`);
  return value;
}

export function list<T>(raw: Raw, step: string, key: string, item: (value: unknown, index: number) => T, fallback: T[] = []): T[] {
  const value = raw[key];
  if (value === undefined) return fallback;
  if (!Array.isArray(value)) throw new ConfigError(`${step}: ${key} must be a list, got ${show(value)}`);
  return value.map(item);
}

/** POSIX-portable user and group names as useradd accepts them by default on Debian. */
export const userName = /^[a-z_][a-z0-9_-]{0,31}$/;
/** A DNS name (RFC 1123 labels), at least two labels; no wildcard. */
export const domainName = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/;
/** An IPv4 or IPv6 CIDR or address. */
export const cidr = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?:\/(?:3[0-2]|[12]?\d))?|[0-9a-fA-F:]+(?:\/(?:12[0-8]|1[01]\d|\d?\d))?)$/;
/** An SSH public key line: type, base64, optional comment without control characters. */
export const sshPublicKey = /^(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}(?: [\x20-\x7e]*)?$/;
/** An http(s) URL without spaces, quotes or control characters. */
export const url = /^https?:\/\/[A-Za-z0-9.-]+(?::\d{1,5})?(?:\/[A-Za-z0-9._~+,=:@%/-]*)?$/;
/** An email address of the plain kind ACME accounts use. */
export const email = /^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$/;
