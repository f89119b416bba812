import { Chalk, type ChalkInstance } from 'chalk';
import type { HostReport } from '../engine/check.js';
import type { HostFacts } from '../facts/types.js';
import type { Finding, ProfileVerdict, Status } from '../profiles/judge.js';

/** Colour only on a TTY and only when NO_COLOR is unset (https://no-color.org). */
export function makeChalk(stream: NodeJS.WriteStream): ChalkInstance {
  const plain = !stream.isTTY || (process.env['NO_COLOR'] ?? '') !== '';
  return new Chalk({ level: plain ? 0 : 1 });
}

const GiB = 1024 ** 3;
const size = (bytes: number): string => (bytes >= 1e12 ? `${(bytes / 1e12).toFixed(2)} TB` : `${(bytes / 1e9).toFixed(0)} GB`);

function symbol(c: ChalkInstance, status: Status | 'pass' | 'warn' | 'fail'): string {
  switch (status) {
    case 'pass': return c.green('pass');
    case 'warn': return c.yellow('warn');
    case 'fail': return c.red('FAIL');
    case 'unknown': return c.cyan('?   ');
  }
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

export function renderFacts(f: HostFacts): string[] {
  const gpu = f.gpus.devices.length
    ? f.gpus.devices.map((d) => `${d.name ?? d.pciId}${d.vramBytes === null ? ' (no driver)' : ` ${(d.vramBytes / GiB).toFixed(0)} GiB`}`).join(', ') +
      (f.gpus.driverVersion ? `; driver ${f.gpus.driverVersion}, CUDA ${f.gpus.cudaVersion ?? '?'}` : '')
    : 'none';
  const disks = f.disks.devices.map((d) => `${d.name} ${d.transport ?? '?'} ${size(d.sizeBytes)}${d.rotational ? ' HDD' : ''}${d.raidMemberOf.length ? ` [${d.raidMemberOf.join(',')}]` : ''}`).join(', ') || 'none visible';
  const root = f.filesystems.find((fs) => fs.mountpoint === '/');
  const nics = f.nics.map((n) => `${n.name} ${n.speedMbps === null ? '?' : n.speedMbps >= 1000 ? `${n.speedMbps / 1000}G` : `${n.speedMbps}M`}`).join(', ') || 'none';
  const rows: Array<[string, string]> = [
    ['OS', `${f.os.prettyName ?? f.os.id ?? '?'}, kernel ${f.os.kernel ?? '?'}, init ${f.os.initSystem ?? '?'}`],
    ['CPU', `${f.cpu.model ?? '?'} (${f.cpu.arch ?? '?'}), ${f.cpu.cores ?? '?'} cores / ${f.cpu.threads ?? '?'} threads`],
    ['Memory', `${f.memory.totalBytes === null ? '?' : `${(f.memory.totalBytes / GiB).toFixed(1)} GiB`}, ECC ${f.memory.ecc === null ? 'unknown' : f.memory.ecc ? 'yes' : 'no'}`],
    ['GPU', gpu],
    ['Disks', disks + (f.disks.raids.length ? `; RAID ${f.disks.raids.map((r) => `${r.name} ${r.level}`).join(', ')}` : '')],
    ['Root fs', root ? `${size(root.availableBytes)} free of ${size(root.sizeBytes)}` : '?'],
    ['NICs', nics],
    ['Firmware', `${f.firmware.boot ?? '?'}, Secure Boot ${f.firmware.secureBoot === null ? 'unknown' : f.firmware.secureBoot ? 'on' : 'off'}`],
    ...(f.reboot?.required ? [['Reboot', `required by ${f.reboot.packages.join(', ') || 'an upgrade'} (/var/run/reboot-required)`] as [string, string]] : []),
  ];
  return rows.map(([k, v]) => `  ${pad(k, 9)}${v}`);
}

function renderFinding(c: ChalkInstance, f: Finding): string {
  const line = `    ${symbol(c, f.status)}  ${pad(f.requirement, 22)} ${pad(f.expected, 34)} ${f.actual}`;
  return f.reason && f.status !== 'pass' ? `${line}\n${c.dim(`          ${f.reason}`)}` : line;
}

function renderVerdict(c: ChalkInstance, v: ProfileVerdict, detailed: boolean): string[] {
  const counts = (['fail', 'warn', 'unknown'] as const).map((s) => [s, v.findings.filter((f) => f.status === s).length] as const).filter(([, n]) => n > 0);
  const summary = counts.length ? ` (${counts.map(([s, n]) => `${n} ${s}`).join(', ')})` : '';
  const lines = [`  ${symbol(c, v.status)}  ${c.bold(v.profile)} ${c.dim(`— ${v.title}`)}${summary}`];
  const shown = detailed ? v.findings : v.findings.filter((f) => f.status === 'fail');
  lines.push(...shown.map((f) => renderFinding(c, f)));
  return lines;
}

export function renderReport(c: ChalkInstance, reports: readonly HostReport[], detailed: boolean): string {
  const out: string[] = [];
  for (const r of reports) {
    if (!r.ok) {
      out.push(`${c.bold(r.host)}  ${c.red(r.error.code)}  ${r.error.message}`);
      if (r.error.hint) out.push(c.dim(`  hint: ${r.error.hint}`));
      out.push('');
      continue;
    }
    out.push(`${c.bold(r.host === 'local' ? 'this machine' : r.target)} ${c.dim(`(${r.durationMs} ms, ${r.roundTrips} round trip${r.roundTrips === 1 ? '' : 's'})`)}`);
    out.push(...renderFacts(r.facts), '');
    out.push(c.bold('  Tiers met'));
    for (const t of r.tiers) out.push(`    ${pad(t.system, 20)}${t.met.length ? c.green(t.met.join(', ')) : c.dim('none')}`);
    out.push('', c.bold('  Profiles'));
    for (const v of r.profiles) out.push(...renderVerdict(c, v, detailed));
    out.push('');
  }
  return out.join('\n');
}
