import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Secret } from '../../../src/core/secret.js';
import type { Cmd } from '../../../src/core/types.js';

describe('Secret', () => {
  const secret = new Secret('hunter2-very-secret');

  it('never shows its value in strings, template literals, JSON or inspection', () => {
    expect(String(secret)).toBe('[secret]');
    expect(`${secret}`).toBe('[secret]');
    expect(JSON.stringify({ password: secret })).toBe('{"password":"[secret]"}');
    expect(inspect({ secret })).not.toContain('hunter2');
  });

  it('gives the value only to an explicit reveal()', () => {
    expect(secret.reveal()).toBe('hunter2-very-secret');
  });

  it('cannot be put into argv, only into stdin', () => {
    // @ts-expect-error a Secret in argv is a type error: argv is visible in ps
    const leaky: Cmd = { argv: ['psql', secret] };
    const safe: Cmd = { argv: ['psql'], stdin: secret };
    expect(leaky.argv[1]).toBe(secret);
    expect(safe.stdin).toBe(secret);
  });
});
