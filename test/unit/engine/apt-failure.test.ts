import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { aptFailureHint, aptFailureReason } from '../../../src/engine/actions.js';

const capture = (name: string): string => readFileSync(new URL(`../../facts/apt/${name}`, import.meta.url), 'utf8');
const enospc = { stdout: capture('install-enospc.debian12.stdout'), stderr: capture('install-enospc.debian12.stderr'), exitCode: 100 };

describe('why apt failed, in apt\'s and dpkg\'s words (captured on a Debian 12 target)', () => {
  it('names the full disk from dpkg\'s own line on stdout, which apt\'s "Sub-process ... error code (1)" on stderr does not say', () => {
    const reason = aptFailureReason(enospc);
    expect(reason).toMatch(/^dpkg: error processing archive \/var\/cache\/apt\/archives\/systemd-timesyncd_.*\(--unpack\): \| cannot copy extracted data for .*failed to write \(No space left on device\)/);
    expect(reason).toContain('E: Sub-process /usr/bin/dpkg returned an error code (1)');
    expect(reason, 'debconf\'s note is noise').not.toContain('debconf');
    expect(aptFailureHint(enospc)).toMatch(/^free space on the host/);
  });

  it('keeps apt\'s own last error lines when dpkg said nothing, with the mirror hint', () => {
    const r = { stdout: 'Reading package lists...\n', stderr: 'W: Some index files failed to download.\nE: Failed to fetch http://deb.debian.org/x  Connection timed out\n', exitCode: 100 };
    expect(aptFailureReason(r)).toBe('W: Some index files failed to download. | E: Failed to fetch http://deb.debian.org/x  Connection timed out');
    expect(aptFailureHint(r)).toMatch(/apt sources and its mirror or proxy/);
  });

  it('falls back to apt\'s output, then to the exit status, when there is no error line at all', () => {
    expect(aptFailureReason({ stdout: 'a\nb\n', stderr: '', exitCode: 1 })).toBe('a | b');
    expect(aptFailureReason({ stdout: '', stderr: '', exitCode: null })).toBe('exit killed');
  });

  it('adds what apt was still fetching when it was killed at its deadline (a hung mirror or proxy)', () => {
    const killed = {
      stdout: 'Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]\nIgn:2 http://deb.debian.org/debian bookworm-updates InRelease\n',
      stderr: 'timed out after 600 s: the command was killed on the host\n',
      exitCode: null,
    };
    expect(aptFailureReason(killed)).toBe('timed out after 600 s: the command was killed on the host | apt\'s last output: Ign:2 http://deb.debian.org/debian bookworm-updates InRelease');
    expect(aptFailureReason({ ...killed, exitCode: 100 }), 'only a killed apt').not.toContain('last output');
  });
});
