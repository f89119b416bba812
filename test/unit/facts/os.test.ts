import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { osFacts, parseOsRelease } from '../../../src/facts/os.js';

const fixture = (name: string): string => readFileSync(new URL(`../../facts/os/${name}`, import.meta.url), 'utf8');

const ubuntu2204 = `PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
UBUNTU_CODENAME=jammy
`;

const rocky89 = `NAME="Rocky Linux"
VERSION="8.9 (Green Obsidian)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="8.9"
PLATFORM_ID="platform:el8"
PRETTY_NAME="Rocky Linux 8.9 (Green Obsidian)"
`;

describe('osFacts', () => {
  it('reads id, version, kernel, architecture and init from a captured Debian 12 machine', () => {
    expect(osFacts(fixture('debian12.os-release'), '6.1.0-18-amd64\nx86_64\n', 'systemd\n')).toEqual({
      id: 'debian', idLike: [], versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)',
      kernel: '6.1.0-18-amd64', arch: 'x86_64', initSystem: 'systemd',
    });
  });

  it('keeps ID_LIKE words so RHEL rebuilds can be recognised', () => {
    const facts = osFacts(rocky89, '', '');
    expect(facts.id).toBe('rocky');
    expect(facts.idLike).toEqual(['rhel', 'centos', 'fedora']);
    expect(facts.versionId).toBe('8.9');
  });

  it('reads Ubuntu version ids with their dot', () => {
    expect(osFacts(ubuntu2204, '', '').versionId).toBe('22.04');
  });

  it('reports unknown rather than guessing when nothing was readable', () => {
    expect(osFacts('', '', '')).toEqual({ id: null, idLike: [], versionId: null, prettyName: null, kernel: null, arch: null, initSystem: null });
  });

  it('unescapes quoted os-release values', () => {
    expect(parseOsRelease('NAME="A \\"quoted\\" name"\nID=\'single\'\n')).toEqual({ NAME: 'A "quoted" name', ID: 'single' });
  });
});
