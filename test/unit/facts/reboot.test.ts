import { describe, expect, it } from 'vitest';
import { parseHostFacts } from '../../../src/facts/host.js';
import { parseRebootRequired, rebootProbe } from '../../../src/facts/reboot.js';

describe('reboot-required', () => {
  it('reads a pending reboot and the packages that asked for it, each once and sorted', () => {
    expect(parseRebootRequired('required\nlinux-image-6.1.0-28-amd64\nlibc6\nlibc6\n')).toEqual({ required: true, packages: ['libc6', 'linux-image-6.1.0-28-amd64'] });
  });

  it('reads no pending reboot, and unknown when the section is missing or garbled', () => {
    expect(parseRebootRequired('none\n')).toEqual({ required: false, packages: [] });
    expect(parseRebootRequired('')).toEqual({ required: null, packages: [] });
    expect(parseRebootRequired('cat: permission denied')).toEqual({ required: null, packages: [] });
  });

  it('is part of the one-round-trip probe, which reports it among the host facts', () => {
    expect(rebootProbe[0]?.script).toContain('/var/run/reboot-required.pkgs');
    const facts = parseHostFacts('\n@@zanuri-section:reboot-required@@\nrequired\nopenssl\n\n@@zanuri-section:end@@\n');
    expect(facts.reboot).toEqual({ required: true, packages: ['openssl'] });
  });
});
