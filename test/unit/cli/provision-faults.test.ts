import { describe, expect, it } from 'vitest';
import { UsageError } from '../../../src/core/errors.js';
import { eventLine, hostLine, renderProvision } from '../../../src/cli/provision.js';
import { checkEndpoint } from '../../../src/cli/ssh-options.js';

const checkBenchEndpoint = (value: string): void => checkEndpoint('--bench-endpoint', value);
import type { HostProvisionReport } from '../../../src/engine/provision.js';

describe('checkBenchEndpoint', () => {
  it('accepts http and https URLs with a host', () => {
    for (const ok of ['http://127.0.0.1:11434', 'https://models.internal/v1', 'http://[::1]:8000']) expect(() => checkBenchEndpoint(ok), ok).not.toThrow();
  });

  it('refuses anything else with a usage error (exit 2) that shows no control characters', () => {
    for (const bad of ['ftp://127.0.0.1', 'not a url', 'http://', '127.0.0.1:11434', 'file:///etc/passwd', 'http://x\u001b[2J']) {
      expect(() => checkBenchEndpoint(bad), bad).toThrow(UsageError);
    }
    expect(() => checkBenchEndpoint('ftp://\u001b[2Jx')).toThrow(/^--bench-endpoint "ftp:\/\/\\u001b\[2Jx" is not an http\(s\) URL of a host and port$/);
  });
});

const report = (over: Partial<HostProvisionReport>): HostProvisionReport => ({
  host: 'web03', target: 'root@web03', ok: false, dryRun: false, steps: [], summary: { changed: 0, unchanged: 0, failed: 1 }, roundTrips: 2, durationMs: 8000, reboots: [], ...over,
});

describe('reporting the host lock and a lost host', () => {
  it('prints the wait for the host lock as a line of its own', () => {
    expect(eventLine({ type: 'host-wait', host: 'web03', message: 'waiting for the host lock held by zanuri on ctl (pid 7, started 2024-01-01T00:00:00.000Z), up to 300 s' }))
      .toBe('web03  waiting for the host lock held by zanuri on ctl (pid 7, started 2024-01-01T00:00:00.000Z), up to 300 s');
  });

  it('names a hung host with its reason in the per-host line and in the report', () => {
    const hung = report({ error: { code: 'CONNECTION_LOST', message: 'root@web03 stopped answering: no reply to 3 SSH keepalives 15 s apart during packages', exitCode: 4 } });
    expect(hostLine(hung, false)).toBe('web03  FAILED  CONNECTION_LOST: root@web03 stopped answering: no reply to 3 SSH keepalives 15 s apart during packages');
    expect(renderProvision([hung], false)).toContain('web03  CONNECTION_LOST  root@web03 stopped answering');
  });

  it('says in the report whom a run waited for', () => {
    const waited = report({ ok: true, summary: { changed: 0, unchanged: 2, failed: 0 }, hostLock: { waitedSeconds: 12, waitedFor: 'zanuri on ctl (pid 7, started x)' } });
    expect(renderProvision([waited], false)).toContain('web03: waited 12 s for the host lock held by zanuri on ctl (pid 7, started x)');
  });
});
