/**
 * Disk facts: pure parsers for `lsblk -J -b -o NAME,KNAME,PKNAME,TYPE,SIZE,ROTA,TRAN,MODEL` and `/proc/mdstat`, and
 * their merge. No I/O. Empty input, garbage and a missing tool give an empty result, never a throw.
 *
 * lsblk JSON differs by util-linux version: before 2.33 every value is a string ("size": "500107862016",
 * "rota": "0"); later versions print numbers and booleans. Both are read.
 */
import type { DiskDevice, DiskFacts, RaidArray } from './types.js';

export interface LsblkNode {
  /** NAME without a leading "/dev/" (lsblk -p prints full paths). */
  name: string;
  /** KNAME (kernel name, what /proc/mdstat uses) without "/dev/"; falls back to name. */
  kname: string;
  type: string;
  sizeBytes: number | null;
  rotational: boolean | null;
  transport: string | null;
  model: string | null;
  children: LsblkNode[];
}

function stripDev(value: string): string {
  return value.startsWith('/dev/') ? value.slice('/dev/'.length) : value;
}

function asString(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const trimmed = value.trim();
  return trimmed === '' ? null : trimmed;
}

function asNumber(value: unknown): number | null {
  if (typeof value === 'number' && Number.isFinite(value)) return value;
  if (typeof value === 'string' && /^\d+$/.test(value.trim())) return Number(value.trim());
  return null;
}

function asBoolean(value: unknown): boolean | null {
  if (typeof value === 'boolean') return value;
  if (value === 1 || value === '1') return true;
  if (value === 0 || value === '0') return false;
  return null;
}

function toNode(raw: unknown): LsblkNode | null {
  if (typeof raw !== 'object' || raw === null) return null;
  const record = raw as Record<string, unknown>;
  const name = asString(record['name']);
  if (name === null) return null;
  const children = Array.isArray(record['children']) ? record['children'] : [];
  return {
    name: stripDev(name),
    kname: stripDev(asString(record['kname']) ?? name),
    type: (asString(record['type']) ?? '').toLowerCase(),
    sizeBytes: asNumber(record['size']),
    rotational: asBoolean(record['rota']),
    transport: asString(record['tran'])?.toLowerCase() ?? null,
    model: asString(record['model']),
    children: children.map(toNode).filter((n): n is LsblkNode => n !== null),
  };
}

/** Parse lsblk JSON into its device tree (partitions, md arrays, LVM nested under `children`). */
export function parseLsblk(json: string): LsblkNode[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return [];
  }
  if (typeof parsed !== 'object' || parsed === null) return [];
  const devices = (parsed as Record<string, unknown>)['blockdevices'];
  if (!Array.isArray(devices)) return [];
  return devices.map(toNode).filter((n): n is LsblkNode => n !== null);
}

const ARRAY_LINE = /^(md[\w/.-]*)\s*:\s*(active|inactive)\b(.*)$/;
const LEVELS = /^(raid\d+|linear|multipath|faulty|container)$/;

/**
 * Parse /proc/mdstat: one RaidArray per "mdN : active ..." line. Members are named as mdstat names them (usually
 * partitions, "nvme0n1p2"), without the "[n]" slot and "(S)/(F)/(W)" flags. Size comes from the "N blocks" line
 * (1 KiB blocks).
 */
export function parseMdstat(text: string): RaidArray[] {
  const arrays: RaidArray[] = [];
  let current: RaidArray | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const header = ARRAY_LINE.exec(raw.trim());
    if (header) {
      // Tokens after the state: optional "(auto-read-only)" / "(read-only)", then the level, then members.
      const tokens = (header[3] ?? '').trim().split(/\s+/).filter((t) => t !== '' && !/^\(.*\)$/.test(t));
      const level = tokens[0] !== undefined && LEVELS.test(tokens[0]) ? tokens.shift() ?? 'unknown' : 'unknown';
      const members = tokens.map((t) => t.replace(/\[\d+\].*$/, '')).filter((m) => /^[\w.-]+$/.test(m));
      current = { name: header[1] ?? '', level, members, sizeBytes: null };
      arrays.push(current);
      continue;
    }
    const blocks = /^\s+(\d+) blocks\b/.exec(raw);
    if (blocks && current !== null && current.sizeBytes === null) {
      current.sizeBytes = Number(blocks[1]) * 1024;
      continue;
    }
    if (raw.trim() === '') current = null;
  }
  return arrays;
}

/** Whole-disk devices that are not real disks: loop, RAM disks, zram, optical. */
const VIRTUAL_NAME = /^(loop|ram|zram|sr)\d+$/;

function transportFor(node: LsblkNode): string | null {
  if (node.transport !== null) return node.transport;
  if (/^nvme\d+n\d+$/.test(node.kname)) return 'nvme';
  if (/^vd[a-z]+$/.test(node.kname)) return 'virtio';
  return null;
}

function descendants(node: LsblkNode): LsblkNode[] {
  return node.children.flatMap((child) => [child, ...descendants(child)]);
}

/**
 * Disk facts: whole disks from lsblk (loop/ram/zram/sr devices left out), each with the md arrays it or one of its
 * partitions belongs to, and the arrays themselves from /proc/mdstat.
 */
export function diskFacts(lsblkJson: string, mdstat: string): DiskFacts {
  const raids = parseMdstat(mdstat);
  const devices: DiskDevice[] = [];
  for (const node of parseLsblk(lsblkJson)) {
    if (node.type !== 'disk' || VIRTUAL_NAME.test(node.kname) || VIRTUAL_NAME.test(node.name)) continue;
    if (node.sizeBytes === null) continue; // DiskDevice.sizeBytes is not nullable; a disk without a size is unknown
    const below = descendants(node);
    const ownNames = new Set([node.name, node.kname, ...below.flatMap((d) => [d.name, d.kname])]);
    const memberOf = new Set<string>();
    for (const raid of raids) {
      if (raid.members.some((m) => ownNames.has(m))) memberOf.add(raid.name);
    }
    // lsblk nests an md array under each member partition; that holds even when /proc/mdstat was not readable.
    for (const d of below) if (/^raid\d+$/.test(d.type) || d.type === 'md') memberOf.add(d.kname);
    devices.push({
      name: node.name,
      sizeBytes: node.sizeBytes,
      transport: transportFor(node),
      rotational: node.rotational,
      model: node.model,
      raidMemberOf: [...memberOf].sort(),
    });
  }
  return { devices, raids };
}
