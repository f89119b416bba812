import { isIP } from 'node:net';
import { FormatRegistry, Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { ParamsError } from '../core/errors.js';

/**
 * One definition per step's parameters (TypeBox): the TypeScript type (Static), the validation
 * here, the JSON Schema of playbooks and the README's parameter table all come from it. Every
 * value that could reach a shell or a config file is held to a strict pattern before any
 * connection: quoting protects the shell, but a user name with a newline would still corrupt
 * /etc/passwd or a config line. `what` says in words what a pattern wants, for the error message.
 */
export { Type, type Static, type TSchema };

declare module '@sinclair/typebox' {
  interface SchemaOptions {
    /** The expected value in words, for error messages: "a user name", "an IPv4 or IPv6 CIDR". */
    what?: string;
  }
}

/**
 * A bad value as the error shows it: JSON, at most 80 characters, and anything outside printable
 * ASCII as a \u escape, so a look-alike letter ("dеploy" with a Cyrillic е), a right-to-left
 * override or a terminal escape is visible for what it is and never acts on the terminal.
 */
export const showValue = (value: unknown): string =>
  (JSON.stringify(value) ?? String(value)).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).slice(0, 80);

export const pattern = {
  /** POSIX-portable user and group names as useradd accepts them by default on Debian. */
  userName: '^[a-z_][a-z0-9_-]{0,31}$',
  /** A DNS name (RFC 1123 labels), at least two labels; no wildcard. */
  domainName: '^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$',
  /** An IPv4 or IPv6 address or CIDR. */
  cidr: '^(?:(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)(?:\\.(?:25[0-5]|2[0-4]\\d|1?\\d?\\d)){3}(?:/(?:3[0-2]|[12]?\\d))?|[0-9a-fA-F:]+(?:/(?:12[0-8]|1[01]\\d|\\d?\\d))?)$',
  /** An absolute path whose every segment starts with a letter, digit or underscore: no "..", no spaces, no quotes; segments of at most 255 (NAME_MAX). */
  absolutePath: '^(?:/[A-Za-z0-9_][A-Za-z0-9._-]{0,254})+$',
  /** An SSH public key line: type, base64, optional comment without control characters. */
  sshPublicKey: '^(?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\\.com) [A-Za-z0-9+/]+={0,3}(?: [\\x20-\\x7e]*)?$',
  /** An http(s) URL without spaces, quotes or control characters. */
  url: '^https?://[A-Za-z0-9.-]+(?::\\d{1,5})?(?:/[A-Za-z0-9._~+,=:@%/-]*)?$',
  /** An email address of the plain kind ACME accounts use. */
  email: '^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}$',
} as const;

type Options = { description?: string; default?: unknown };

export const userName = (o: Options = {}) => Type.String({ pattern: pattern.userName, what: 'a user name (lower case letters, digits, _ and -)', ...o });
export const domainName = (o: Options = {}) => Type.String({ pattern: pattern.domainName, what: 'a DNS name (lower case, no wildcard)', ...o });
/**
 * An IPv4 or IPv6 address, or a network as address/prefix, read by node's own address parser (the
 * pattern alone took hex words such as "cafe" for IPv6): no zone index (%eth0), a prefix of at most
 * 32 or 128 bits without leading zeros. fail2ban's ignoreip, PostgreSQL's allowFrom and ufw's sources
 * all use this one validator.
 */
export function isIpNetwork(value: string): boolean {
  const match = /^([0-9A-Fa-f.:]{2,45})(?:\/(0|[1-9]\d{0,2}))?$/.exec(value);
  const family = match ? isIP(match[1] ?? '') : 0;
  if (!match || !family) return false;
  return match[2] === undefined || Number(match[2]) <= (family === 4 ? 32 : 128);
}
FormatRegistry.Set('ip-network', isIpNetwork);

export const ipNetwork = (o: Options = {}) => Type.String({ pattern: pattern.cidr, format: 'ip-network', maxLength: 49, what: 'an IPv4 or IPv6 address or CIDR', ...o });
/** The name the steps import: the same validator. */
export const cidr = ipNetwork;
export const absolutePath = (o: Options = {}) => Type.String({ pattern: pattern.absolutePath, maxLength: 4095, what: 'an absolute path', ...o });
export const url = (o: Options = {}) => Type.String({ pattern: pattern.url, what: 'an http(s) URL', ...o });
export const email = (o: Options = {}) => Type.String({ pattern: pattern.email, what: 'an email address', ...o });
export const sshPublicKey = (o: Options = {}) => Type.String({ pattern: pattern.sshPublicKey, what: 'an SSH public key line', ...o });
export const port = (o: Options = {}) => Type.Integer({ minimum: 1, maximum: 65535, what: 'a port number from 1 to 65535', ...o });

/** A step's parameters: a closed object (unknown keys are refused, with the known ones listed). */
export function params<P extends Record<string, TSchema>>(properties: P) {
  return Type.Object(properties, { additionalProperties: false });
}

function expectation(schema: TSchema): string {
  if (schema['what']) return schema['what'] as string;
  if (schema['enum']) return (schema['enum'] as unknown[]).map((v) => JSON.stringify(v)).join(' or ');
  if (schema['anyOf']) return (schema['anyOf'] as TSchema[]).map(expectation).join(' or ');
  if (schema['const'] !== undefined) return JSON.stringify(schema['const']);
  switch (schema['type']) {
    case 'integer': {
      const min = schema['minimum'] as number | undefined;
      const max = schema['maximum'] as number | undefined;
      return min !== undefined && max !== undefined ? `a whole number from ${min} to ${max}` : 'a whole number';
    }
    case 'boolean': return 'true or false';
    case 'array': return schema['minItems'] ? `a list of at least ${schema['minItems']}` : 'a list';
    case 'object': return 'a mapping';
    case 'string': return schema['pattern'] ? `text matching ${schema['pattern']}` : 'text';
    default: return `a ${String(schema['type'] ?? 'value')}`;
  }
}

/** Validates raw playbook/--set parameters, filling in defaults; throws ParamsError naming the bad value and where it is. */
export function parseWith<S extends TSchema>(schema: S, raw: unknown, step: string): Static<S> {
  if (raw !== undefined && raw !== null && (typeof raw !== 'object' || Array.isArray(raw))) throw new ParamsError(step, [], `${step}: parameters must be a mapping`);
  const value = Value.Default(schema, Value.Clone(raw ?? {}));
  const first = Value.Errors(schema, value).First();
  if (!first) return value as Static<S>;
  const path = first.path.split('/').slice(1).map((s) => (/^\d+$/.test(s) ? Number(s) : s.replace(/~1/g, '/').replace(/~0/g, '~')));
  if (first.type === ValueErrorType.ObjectAdditionalProperties) {
    const properties = Object.keys((first.schema['properties'] as Record<string, unknown> | undefined) ?? {});
    const where = path.length > 1 ? ` in ${path.slice(0, -1).join('.')}` : '';
    throw new ParamsError(step, path, `${step}: unknown parameter "${String(path.at(-1))}"${where}`, { hint: `known: ${properties.join(', ')}` });
  }
  if (first.type === ValueErrorType.ObjectRequiredProperty) throw new ParamsError(step, path, `${step}: ${path.join('.')} is required`);
  const name = path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i ? `.${p}` : p)).join('') || 'parameters';
  throw new ParamsError(step, path, `${step}: ${name} must be ${expectation(first.schema)}, got ${showValue(first.value)}`);
}
