import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { filesystemFor, parseDf } from '../../../src/facts/filesystems.js';
import { parseFirmware } from '../../../src/facts/firmware.js';
import { parseNics } from '../../../src/facts/network.js';
import { parseSoftware } from '../../../src/facts/software.js';
import { composeProbe, splitSections } from '../../../src/facts/probe.js';

const fixture = (path: string): string => readFileSync(new URL(`../../facts/${path}`, import.meta.url), 'utf8');

describe('parseDf', () => {
  const filesystems = parseDf(fixture('df/debian12-vm.txt'));

  it('keeps real filesystems and drops tmpfs and devtmpfs (captured on Debian 12)', () => {
    expect(filesystems).toEqual([{ source: '/dev/vda', fstype: 'ext4', sizeBytes: 270553174016, availableBytes: 85122191360, mountpoint: '/' }]);
  });

  it('finds the filesystem holding a path by the longest mount point', () => {
    const withData = [...filesystems, { source: '/dev/md0', fstype: 'xfs', sizeBytes: 1, availableBytes: 1, mountpoint: '/data' }];
    expect(filesystemFor(withData, '/data/models')?.source).toBe('/dev/md0');
    expect(filesystemFor(withData, '/database')?.source).toBe('/dev/vda');
  });

  it('keeps mount points that contain spaces', () => {
    const text = 'Filesystem Type 1-blocks Used Available Capacity Mounted on\n/dev/sdb1 ext4 1000 10 990 1% /mnt/my disk\n';
    expect(parseDf(text)[0]?.mountpoint).toBe('/mnt/my disk');
  });
});

describe('parseNics', () => {
  it('reads speeds and drops loopback; -1 and empty speed mean unknown', () => {
    const text = 'eth0\t-1\tup\tphysical\nens1f0\t25000\tup\tphysical\nifb0\t\tdown\tvirtual\nlo\t\tunknown\tvirtual\n';
    expect(parseNics(text)).toEqual([
      { name: 'eth0', speedMbps: null, operstate: 'up', physical: true },
      { name: 'ens1f0', speedMbps: 25000, operstate: 'up', physical: true },
      { name: 'ifb0', speedMbps: null, operstate: 'down', physical: false },
    ]);
  });
});

describe('parseFirmware', () => {
  it('reads Secure Boot from the last byte of the EFI variable', () => {
    expect(parseFirmware('uefi\n   6   0   0   0   1\n')).toEqual({ boot: 'uefi', secureBoot: true });
    expect(parseFirmware('uefi\n   6   0   0   0   0\n')).toEqual({ boot: 'uefi', secureBoot: false });
  });

  it('says unknown when UEFI hides the variable, and off on BIOS machines', () => {
    expect(parseFirmware('uefi\n')).toEqual({ boot: 'uefi', secureBoot: null });
    expect(parseFirmware('bios\n')).toEqual({ boot: 'bios', secureBoot: false });
    expect(parseFirmware('')).toEqual({ boot: null, secureBoot: null });
  });
});

describe('parseSoftware', () => {
  it('pulls versions out of each tool\'s own banner', () => {
    const text = [
      'docker\tDocker version 28.2.2, build e6534b4',
      'python3\tPython 3.11.7',
      'node\tv20.20.2',
      'postgresql\tpostgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)',
      'redis\tRedis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=c4780e4b3d5e2e0e',
      'nginx\tnginx version: nginx/1.22.1',
      'nvidia-container-toolkit\tNVIDIA Container Toolkit CLI version 1.14.3',
    ].join('\n');
    expect(parseSoftware(text)).toEqual({
      docker: '28.2.2', python3: '3.11.7', node: '20.20.2', postgresql: '15.18', redis: '7.0.15', nginx: '1.22.1', 'nvidia-container-toolkit': '1.14.3',
    });
  });
});

describe('the probe script', () => {
  it('splits into the sections it printed, in dash and bash alike', async () => {
    const { execFileSync } = await import('node:child_process');
    const script = composeProbe([
      { name: 'one', script: 'echo first' },
      { name: 'two', script: 'printf "a\\nb\\n"' },
      { name: 'missing-tool', script: 'has no-such-tool-zanuri && no-such-tool-zanuri' },
      { name: 'failing', script: 'false' },
    ]);
    for (const shell of ['dash', 'bash']) {
      const sections = splitSections(execFileSync(shell, ['-c', script]).toString());
      expect(Object.fromEntries(sections)).toEqual({ one: 'first', two: 'a\nb', 'missing-tool': '', failing: '' });
    }
  });

  it('drops a section whose output was cut off before its end', () => {
    const cut = '\n@@zanuri-section:one@@\nfirst\n\n@@zanuri-section:two@@\npartial';
    expect([...splitSections(cut).keys()]).toEqual(['one']);
  });
});
