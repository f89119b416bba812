import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { Secret } from '../../../src/core/secret.js';

describe('Secret', () => {
  const secret = new Secret('hunter2-very-secret');

  it('never shows its value in strings, JSON or inspection', () => {
    expect(String(secret)).toBe('***');
    expect(`${secret}`).toBe('***');
    expect(JSON.stringify({ password: secret })).toBe('{"password":"***"}');
    expect(inspect({ secret })).not.toContain('hunter2');
  });

  it('gives the value only to an explicit reveal()', () => {
    expect(secret.reveal()).toBe('hunter2-very-secret');
  });
});
