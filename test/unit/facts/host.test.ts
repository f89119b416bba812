import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseHostFacts } from '../../../src/facts/host.js';

const capture = readFileSync(new URL('../../facts/probe/debian12-kvm-vm.txt', import.meta.url), 'utf8');

describe('parseHostFacts', () => {
  const facts = parseHostFacts(capture);

  it('reads every domain from one captured probe of a Debian 12 VM', () => {
    expect(facts.os).toMatchObject({ id: 'debian', versionId: '12', arch: 'x86_64' });
    expect(facts.cpu).toMatchObject({ model: 'AMD EPYC', cores: 2, threads: 2 });
    expect(facts.memory.totalBytes).toBeGreaterThan(20 * 1024 ** 3);
    expect(facts.memory.ecc).toBeNull();
    expect(facts.gpus).toEqual({ driverVersion: null, cudaVersion: null, devices: [] });
    expect(facts.disks.devices.map((d) => [d.name, d.transport, d.sizeBytes, d.rotational])).toEqual([['vda', 'virtio', 274877906944, true]]);
    expect(facts.filesystems.map((f) => f.mountpoint)).toContain('/');
    expect(facts.nics.find((n) => n.name === 'eth0')).toMatchObject({ speedMbps: null, physical: true });
    expect(facts.firmware).toEqual({ boot: 'bios', secureBoot: false });
    expect(facts.software['node']).toBe('20.20.2');
  });

  it('gives all-unknown facts, not an exception, for empty output', () => {
    const empty = parseHostFacts('');
    expect(empty.cpu.cores).toBeNull();
    expect(empty.os.id).toBeNull();
    expect(empty.disks.devices).toEqual([]);
  });
});
