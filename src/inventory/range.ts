import { ConfigError } from '../core/errors.js';

/**
 * Expands Ansible's host ranges: `web[01:10]` (zero padding kept), `db-[a:f]`, `node[0:20:5]` (a
 * stride), several per name. A name without brackets is itself. Bad ranges are ConfigErrors.
 */
export function expandHostRange(pattern: string): string[] {
  const match = /^(.*?)\[([^\]]*)\](.*)$/.exec(pattern);
  if (!match) return [pattern];
  const [, head = '', range = '', tail = ''] = match;
  const parts = range.split(':');
  if (parts.length < 2 || parts.length > 3) throw new ConfigError(`host range "[${range}]" in "${pattern}" must be [start:end] or [start:end:stride]`);
  const [start = '', end = '', strideText = '1'] = parts;
  const stride = Number(strideText);
  if (!Number.isInteger(stride) || stride < 1) throw new ConfigError(`host range stride "${strideText}" in "${pattern}" must be a positive whole number`);
  const tails = expandHostRange(tail);
  let items: string[];
  if (/^[a-zA-Z]$/.test(start) && /^[a-zA-Z]$/.test(end)) {
    const a = start.charCodeAt(0);
    const b = end.charCodeAt(0);
    if (b < a) throw new ConfigError(`host range "[${range}]" in "${pattern}" runs backwards`);
    items = [];
    for (let c = a; c <= b; c += stride) items.push(String.fromCharCode(c));
  } else if (/^\d*$/.test(start) && /^\d+$/.test(end)) {
    const a = Number(start || '0');
    const b = Number(end);
    if (b < a) throw new ConfigError(`host range "[${range}]" in "${pattern}" runs backwards`);
    // Zero padding only when the start is written with leading zeros, as Ansible does.
    const width = start.length > 1 && start.startsWith('0') ? start.length : 0;
    if ((b - a) / stride > 100_000) throw new ConfigError(`host range "[${range}]" in "${pattern}" names too many hosts`);
    items = [];
    for (let n = a; n <= b; n += stride) items.push(String(n).padStart(width, '0'));
  } else {
    throw new ConfigError(`host range "[${range}]" in "${pattern}" must run between two numbers or two letters`);
  }
  return items.flatMap((item) => tails.map((t) => `${head}${item}${t}`));
}
