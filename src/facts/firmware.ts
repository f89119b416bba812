import type { FirmwareFacts } from './types.js';
import type { ProbeSection } from './probe.js';

export const firmwareProbe: ProbeSection[] = [
  {
    name: 'firmware',
    // The SecureBoot EFI variable is 4 bytes of attributes then one byte: 1 enabled, 0 disabled.
    script: [
      'if [ -d /sys/firmware/efi ]; then',
      '  echo uefi',
      '  for v in /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c; do',
      '    [ -r "$v" ] && od -An -tu1 "$v"',
      '  done',
      'else echo bios; fi',
    ].join('\n'),
  },
];

export function parseFirmware(text: string): FirmwareFacts {
  const [mode, ...rest] = text.trim().split('\n');
  if (mode !== 'uefi' && mode !== 'bios') return { boot: null, secureBoot: null };
  if (mode === 'bios') return { boot: 'bios', secureBoot: false };
  const bytes = rest.join(' ').trim().split(/\s+/).filter(Boolean);
  const last = bytes.at(-1);
  return { boot: 'uefi', secureBoot: bytes.length >= 5 ? last === '1' : null };
}
