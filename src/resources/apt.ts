import type { Cmd } from '../core/types.js';

/**
 * apt commands with their waits bounded: the dpkg frontend lock for DPkg::Lock::Timeout seconds
 * (apt-daily and cloud-init hold it on a fresh machine).
 */
export const lockTimeoutSeconds = 300;

export const aptUpdateCmd: Cmd = {
  argv: ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'update', '-q', '-o', `DPkg::Lock::Timeout=${lockTimeoutSeconds}`],
};

export function aptInstallCmd(packages: readonly string[]): Cmd {
  return {
    argv: ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'install', '-y', '-q', '--no-install-recommends',
      '-o', `DPkg::Lock::Timeout=${lockTimeoutSeconds}`, '-o', 'Dpkg::Options::=--force-confdef', '-o', 'Dpkg::Options::=--force-confold', '--', ...packages],
  };
}

export function aptRemoveCmd(packages: readonly string[]): Cmd {
  return { argv: ['env', 'DEBIAN_FRONTEND=noninteractive', 'apt-get', 'remove', '-y', '-q', '-o', `DPkg::Lock::Timeout=${lockTimeoutSeconds}`, '--', ...packages] };
}
