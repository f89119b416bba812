import { fileURLToPath } from 'node:url';

/** A name or file name an operator gave, as an error shows it: printable ASCII (anything else as ?), at most 120 characters. */
export function shownName(name: string): string {
  const printable = name.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 120 ? `${printable.slice(0, 120)}... (${name.length} characters)` : printable;
}

/**
 * A key of a file as an error quotes it: only a plain name is shown. A file named by mistake or by
 * an attacker (--profile /etc/shadow) has "keys" that are its lines, and those are never echoed.
 */
export function shownKey(key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(key) ? `"${key}"` : '(a key that is not a plain name; not shown, as the file may not be what it was named as)';
}

/** The profiles shipped with zanuri: <package root>/profiles, from both src/ and dist/. */
export const builtinProfilesDir = fileURLToPath(new URL('../../profiles/', import.meta.url));

/** Validated shipped profiles, written at build time next to dist/cli (absent when running from src/). */
export const bundlePath = fileURLToPath(new URL('../profiles.bundle.json', import.meta.url));
