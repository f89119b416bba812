/**
 * The hardware probe: one read-only POSIX sh script with delimited sections, so that reading every
 * fact of a host costs one round trip. Each domain module contributes fixed script text (no
 * interpolated values) and parses its own section; the same script runs locally and over SSH.
 */
export interface ProbeSection {
  readonly name: string;
  /** Fixed POSIX sh text. It may use the helpers defined in `prelude`. */
  readonly script: string;
}

const mark = '@@zanuri-section:';

const prelude = [
  'LC_ALL=C; export LC_ALL',
  'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH',
  'has() { command -v "$1" >/dev/null 2>&1; }',
  // Facts that need root: as root directly, else through sudo only when it needs no password.
  'asroot() { if [ "$(id -u)" = 0 ]; then "$@"; elif has sudo; then sudo -n "$@"; else return 1; fi; }',
].join('\n');

export function composeProbe(sections: readonly ProbeSection[]): string {
  const body = sections.map((s) => `printf '\\n${mark}%s@@\\n' '${s.name}'\n{\n${s.script}\n} 2>/dev/null`);
  return `${prelude}\n${body.join('\n')}\nprintf '\\n${mark}end@@\\n'\n`;
}

/** Splits probe output into sections. A section that never printed its end marker is absent. */
export function splitSections(stdout: string): Map<string, string> {
  const sections = new Map<string, string>();
  const pattern = new RegExp(`^${mark}([a-z0-9-]+)@@$`, 'gm');
  let name: string | null = null;
  let start = 0;
  for (const match of stdout.matchAll(pattern)) {
    // Drop the newline the marker line starts with, then the section's own final newline.
    if (name !== null) sections.set(name, stdout.slice(start, match.index).replace(/\n$/, '').replace(/\n$/, ''));
    name = match[1] ?? null;
    start = match.index + match[0].length + 1;
  }
  return sections;
}
