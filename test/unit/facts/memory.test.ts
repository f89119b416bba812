import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { memoryFacts, parseDmidecodeEcc, parseMemTotal } from '../../../src/facts/memory.js';

const fixture = (name: string): string => readFileSync(new URL(`../../facts/dmidecode/${name}`, import.meta.url), 'utf8');

describe('memoryFacts', () => {
  it('reads MemTotal in bytes', () => {
    expect(parseMemTotal('MemTotal:       24683124 kB\n')).toBe(24683124 * 1024);
    expect(parseMemTotal('')).toBeNull();
  });

  it('finds ECC in a captured dmidecode -t 16 of a Dell PowerEdge C6100', () => {
    expect(parseDmidecodeEcc(fixture('dell-poweredge-c6100-ecc.t16.txt'))).toBe(true);
  });

  it('finds ECC in a captured dmidecode -t memory of a DDR5 server', () => {
    expect(parseDmidecodeEcc(fixture('ddr5-server-ecc.t-memory.txt'))).toBe(true);
  });

  it('is not fooled by a memory controller that can detect errors when the array has no ECC (captured desktop)', () => {
    expect(fixture('desktop-no-ecc.t-memory.txt')).toContain('Error Detecting Method: 64-bit ECC');
    expect(parseDmidecodeEcc(fixture('desktop-no-ecc.t-memory.txt'))).toBe(false);
  });

  it('reports ECC unknown when dmidecode could not run (no root, no passwordless sudo)', () => {
    expect(memoryFacts('MemTotal: 1024 kB', '', '')).toEqual({ totalBytes: 1024 * 1024, ecc: null, eccSource: null });
  });

  it('trusts a bound EDAC memory controller over SMBIOS', () => {
    expect(memoryFacts('', fixture('desktop-no-ecc.t-memory.txt'), 'mc0\n')).toMatchObject({ ecc: true, eccSource: 'edac' });
  });
});
