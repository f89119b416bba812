import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { diskFacts, parseLsblk, parseMdstat } from '../../../src/facts/disks.js';

// Captured inputs live under test/facts/ with a .source.md beside each. Inputs written inline below are CONSTRUCTED
// (no public raw capture with those columns was found) and are labelled as such where they are used.
function fixture(path: string): string {
  return readFileSync(fileURLToPath(new URL(`../../facts/${path}`, import.meta.url)), 'utf8');
}

const vboxLsblk = fixture('lsblk/rescuezilla-vbox-md-raid1.lsblk.json');
const vagrantMdstat = fixture('mdstat/vagrant-raid0-raid1.mdstat.txt');

describe('parseMdstat', () => {
  it('reads level, members and size of a captured /proc/mdstat with a raid1 and a raid0', () => {
    expect(parseMdstat(vagrantMdstat)).toEqual([
      { name: 'md126', level: 'raid0', members: ['sdb2', 'sdc2'], sizeBytes: 1042432 * 1024 },
      { name: 'md127', level: 'raid1', members: ['sdc1', 'sdb1'], sizeBytes: 2094080 * 1024 },
    ]);
  });

  it('strips slot numbers and spare/failed/write-mostly flags from members', () => {
    // Constructed from the shapes seen in public captures ("vde[2](S)", "md60[1](W)", "sdc1[1](F)").
    const text = 'Personalities : [raid1]\nmd0 : active raid1 vde[2](S) vdd[1] vdc[0](F)\n      5237760 blocks super 1.2 [2/1] [U_]\n\nunused devices: <none>\n';
    expect(parseMdstat(text)).toEqual([{ name: 'md0', level: 'raid1', members: ['vde', 'vdd', 'vdc'], sizeBytes: 5237760 * 1024 }]);
  });

  it('returns no arrays for an mdstat without arrays, an unreadable file and garbage', () => {
    expect(parseMdstat('Personalities : \nunused devices: <none>\n')).toEqual([]);
    expect(parseMdstat('')).toEqual([]);
    expect(parseMdstat('cat: /proc/mdstat: No such file or directory\n')).toEqual([]);
    expect(parseMdstat('md : : :\n   blocks')).toEqual([]);
  });
});

describe('parseLsblk', () => {
  it('reads the nested tree of a captured lsblk JSON with full /dev paths', () => {
    const tree = parseLsblk(vboxLsblk);
    expect(tree).toHaveLength(17);
    const sdk = tree.find((n) => n.name === 'sdk');
    expect(sdk).toMatchObject({ kname: 'sdk', type: 'disk', sizeBytes: 1073741824, model: 'VBOX_HARDDISK' });
    expect(sdk?.children[0]?.children[0]).toMatchObject({ name: 'md127', type: 'raid1', sizeBytes: 1071644672 });
  });

  it('reads old util-linux string values and new number/boolean values alike', () => {
    // CONSTRUCTED: the two value styles of lsblk JSON (util-linux < 2.33 prints every value as a string).
    const old = '{"blockdevices": [{"name": "sda", "kname": "sda", "type": "disk", "size": "500107862016", "rota": "0", "tran": "sata", "model": "CT500MX500SSD1  "}]}';
    const current = '{"blockdevices": [{"name": "sda", "kname": "sda", "type": "disk", "size": 500107862016, "rota": false, "tran": "sata", "model": "CT500MX500SSD1  "}]}';
    const expected = { name: 'sda', kname: 'sda', type: 'disk', sizeBytes: 500107862016, rotational: false, transport: 'sata', model: 'CT500MX500SSD1', children: [] };
    expect(parseLsblk(old)).toEqual([expected]);
    expect(parseLsblk(current)).toEqual([expected]);
    expect(parseLsblk(old.replace('"rota": "0"', '"rota": "1"'))[0]?.rotational).toBe(true);
  });

  it('returns nothing for empty output, a missing tool and garbage, without throwing', () => {
    expect(parseLsblk('')).toEqual([]);
    expect(parseLsblk('sh: 1: lsblk: not found')).toEqual([]);
    expect(parseLsblk('{"blockdevices": "nope"}')).toEqual([]);
    expect(parseLsblk('[1, 2, 3]')).toEqual([]);
    expect(parseLsblk('{"blockdevices": [null, 7, {"type": "disk"}]}')).toEqual([]);
  });
});

describe('diskFacts', () => {
  it('lists the 15 disks of a captured VM and leaves out its loop device and CD-ROM', () => {
    const facts = diskFacts(vboxLsblk, '');
    expect(facts.devices.map((d) => d.name)).toEqual([
      'sda', 'sdb', 'sdc', 'sdd', 'sde', 'sdf', 'sdg', 'sdh', 'sdi', 'sdj', 'sdk', 'sdl', 'sdm', 'sdn', 'sdo',
    ]);
    expect(facts.devices[0]).toEqual({
      name: 'sda',
      sizeBytes: 34359738368,
      transport: null,
      rotational: null,
      model: 'VBOX_HARDDISK',
      raidMemberOf: [],
    });
    expect(facts.raids).toEqual([]);
  });

  it('marks the captured disks whose partitions hold md raid1 arrays, from lsblk alone', () => {
    const byName = new Map(diskFacts(vboxLsblk, '').devices.map((d) => [d.name, d.raidMemberOf]));
    expect(byName.get('sdk')).toEqual(['md127']);
    expect(byName.get('sdl')).toEqual(['md127']);
    expect(byName.get('sdm')).toEqual(['md0']);
    expect(byName.get('sdn')).toEqual(['md0']);
    expect(byName.get('sdh')).toEqual([]);
  });

  it('marks a disk as a member when one of its partitions is listed in /proc/mdstat', () => {
    // CONSTRUCTED lsblk for the disks of the captured vagrant mdstat (sdb/sdc, partitions 1 and 2), with no md
    // children so that membership can only come from mdstat.
    const lsblk = JSON.stringify({
      blockdevices: [
        { name: 'sdb', kname: 'sdb', type: 'disk', size: 2684354560, rota: true, tran: 'sata', model: 'VBOX HARDDISK',
          children: [{ name: 'sdb1', kname: 'sdb1', type: 'part', size: 2147483648 }, { name: 'sdb2', kname: 'sdb2', type: 'part', size: 535822336 }] },
        { name: 'sdc', kname: 'sdc', type: 'disk', size: 2684354560, rota: true, tran: 'sata', model: 'VBOX HARDDISK',
          children: [{ name: 'sdc1', kname: 'sdc1', type: 'part', size: 2147483648 }] },
      ],
    });
    const facts = diskFacts(lsblk, vagrantMdstat);
    expect(facts.devices.map((d) => [d.name, d.raidMemberOf])).toEqual([
      ['sdb', ['md126', 'md127']],
      ['sdc', ['md127']],
    ]);
    expect(facts.raids.map((r) => r.level)).toEqual(['raid0', 'raid1']);
  });

  it('derives transport from the name when TRAN is empty, and skips ram, zram and loop devices', () => {
    // CONSTRUCTED: a virtio VM disk has no TRAN; an NVMe disk behind some controllers neither.
    const lsblk = JSON.stringify({
      blockdevices: [
        { name: 'vda', kname: 'vda', type: 'disk', size: 53687091200, rota: true, tran: null, model: null },
        { name: 'nvme0n1', kname: 'nvme0n1', type: 'disk', size: 1000204886016, rota: false, tran: null, model: 'Samsung SSD 980 PRO 1TB' },
        { name: 'zram0', kname: 'zram0', type: 'disk', size: 4294967296, rota: false, tran: null, model: null },
        { name: 'ram0', kname: 'ram0', type: 'disk', size: 16777216, rota: false, tran: null, model: null },
        { name: 'loop0', kname: 'loop0', type: 'loop', size: 67108864, rota: false, tran: null, model: null },
      ],
    });
    expect(diskFacts(lsblk, '').devices.map((d) => [d.name, d.transport])).toEqual([
      ['vda', 'virtio'],
      ['nvme0n1', 'nvme'],
    ]);
  });

  it('gives an empty result for empty and garbage input', () => {
    expect(diskFacts('', '')).toEqual({ devices: [], raids: [] });
    expect(diskFacts('not json', 'not mdstat')).toEqual({ devices: [], raids: [] });
  });
});
