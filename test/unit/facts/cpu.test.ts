import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cpuFacts, parseCpuinfo, parseLscpuJson } from '../../../src/facts/cpu.js';

const fixture = (path: string): string => readFileSync(new URL(`../../facts/${path}`, import.meta.url), 'utf8');

describe('cpuFacts', () => {
  it('reads the flat lscpu -J that a pipe gets (captured on Debian 12)', () => {
    expect(cpuFacts(fixture('lscpu/debian12-amd-epyc-vm.piped.json'), '', null)).toEqual({
      model: 'AMD EPYC', arch: 'x86_64', sockets: 1, cores: 2, threads: 2,
    });
  });

  it('reads the nested lscpu -J that a TTY gets the same way', () => {
    const nested = fixture('lscpu/debian12-amd-epyc-vm.tty.json');
    expect(nested).toContain('"children"');
    expect(parseLscpuJson(nested).get('Core(s) per socket')).toBe('2');
    expect(cpuFacts(nested, '', null)).toEqual(cpuFacts(fixture('lscpu/debian12-amd-epyc-vm.piped.json'), '', null));
  });

  it('multiplies cores per socket by sockets and counts threads from CPU(s)', () => {
    const twoSockets = JSON.stringify({ lscpu: [
      { field: 'Architecture:', data: 'x86_64' }, { field: 'CPU(s):', data: '128' }, { field: 'Model name:', data: 'AMD EPYC 7543 32-Core Processor' },
      { field: 'Thread(s) per core:', data: '2' }, { field: 'Core(s) per socket:', data: '32' }, { field: 'Socket(s):', data: '2' },
    ] });
    expect(cpuFacts(twoSockets, '', null)).toMatchObject({ cores: 64, threads: 128, sockets: 2 });
  });

  it('falls back to /proc/cpuinfo when lscpu is missing (captured on Debian 12)', () => {
    expect(cpuFacts('', fixture('cpuinfo/debian12-amd-epyc-vm.txt'), 'x86_64')).toEqual({
      model: 'AMD EPYC', arch: 'x86_64', sockets: 1, cores: 2, threads: 2,
    });
  });

  it('counts hyperthreads once per core in /proc/cpuinfo', () => {
    const ht = ['processor\t: 0', 'physical id\t: 0', 'core id\t\t: 0', 'processor\t: 1', 'physical id\t: 0', 'core id\t\t: 0'].join('\n');
    expect(parseCpuinfo(ht)).toMatchObject({ cores: 1, threads: 2 });
  });

  it('gives unknown for garbage instead of throwing', () => {
    expect(cpuFacts('not json', '', null)).toEqual({ model: null, arch: null, sockets: null, cores: null, threads: null });
  });
});
