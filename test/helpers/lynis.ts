/**
 * Lynis (Debian's `lynis` package) run inside a test target, its report parsed: the hardening index,
 * the warnings and the suggestions. Used by the baseline integration test and by `npm run bench`.
 * Lynis runs through nsenter (target.exec), not over SSH, so it measures the host and not the
 * connection; `--quick` skips its interactive pauses, and every run has a deadline.
 */
import type { TestTarget } from './targets.js';

export interface LynisFinding {
  /** Lynis's test id, e.g. SSH-7408. */
  test: string;
  text: string;
  /** The detail field (often "-"), e.g. the sshd option a suggestion is about. */
  detail: string;
}

export interface LynisReport {
  hardeningIndex: number;
  warnings: LynisFinding[];
  suggestions: LynisFinding[];
}

/** Reads /var/log/lynis-report.dat: `key=value` lines, `warning[]=TEST|text|detail|solution|`. */
export function parseLynisReport(dat: string): LynisReport {
  const finding = (value: string): LynisFinding => {
    const [test = '', text = '', detail = ''] = value.split('|');
    return { test, text, detail };
  };
  let hardeningIndex = Number.NaN;
  const warnings: LynisFinding[] = [];
  const suggestions: LynisFinding[] = [];
  for (const line of dat.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'hardening_index') hardeningIndex = Number(value);
    else if (key === 'warning[]') warnings.push(finding(value));
    else if (key === 'suggestion[]') suggestions.push(finding(value));
  }
  if (!Number.isFinite(hardeningIndex)) throw new Error('lynis-report.dat has no hardening_index');
  return { hardeningIndex, warnings, suggestions };
}

/** Installs lynis in the target (through the test apt proxy; call ensureAptProxy first), once. */
export async function installLynis(target: TestTarget): Promise<void> {
  const have = await target.exec(['sh', '-c', 'command -v lynis']);
  if (have.exitCode === 0) return;
  const r = await target.exec(['sh', '-c', 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lynis'], { timeoutMs: 300_000 });
  if (r.exitCode !== 0) throw new Error(`installing lynis failed:\n${r.stdout}\n${r.stderr}`);
}

/** One full `lynis audit system` in the target; the parsed report. */
export async function runLynis(target: TestTarget): Promise<LynisReport> {
  await installLynis(target);
  const r = await target.exec(['sh', '-c', 'rm -f /var/log/lynis-report.dat && lynis audit system --quick --no-colors >/dev/null 2>&1; cat /var/log/lynis-report.dat'], { timeoutMs: 600_000 });
  return parseLynisReport(r.stdout);
}

/** A report as lines for people: the index, then each warning and suggestion with its test id. */
export function formatLynis(label: string, report: LynisReport): string {
  const lines = [`${label}: Lynis hardening index ${report.hardeningIndex}, ${report.warnings.length} warning(s), ${report.suggestions.length} suggestion(s)`];
  for (const w of report.warnings) lines.push(`  warning    ${w.test}: ${w.text}${w.detail && w.detail !== '-' ? ` (${w.detail})` : ''}`);
  for (const s of report.suggestions) lines.push(`  suggestion ${s.test}: ${s.text}${s.detail && s.detail !== '-' ? ` (${s.detail})` : ''}`);
  return lines.join('\n');
}
