import { ConfigError } from '../core/errors.js';
import { certbot } from './certbot.js';
import { deployUser } from './deploy-user.js';
import { fail2ban } from './fail2ban.js';
import { nginx } from './nginx.js';
import { postgresql } from './postgresql.js';
import { sshHarden } from './ssh-harden.js';
import { ufw } from './ufw.js';
import { unattendedUpgrades } from './unattended-upgrades.js';
import type { AnyStep } from './types.js';

/** Every step zanuri knows, by id. */
export const steps: ReadonlyMap<string, AnyStep> = new Map<string, AnyStep>(
  [deployUser, sshHarden, postgresql, unattendedUpgrades, nginx, certbot, ufw, fail2ban].map((s) => [s.id, s]),
);

export function stepById(id: string): AnyStep {
  const step = steps.get(id);
  if (!step) throw new ConfigError(`unknown step "${id}"`, { hint: `known steps: ${[...steps.keys()].join(', ')}` });
  return step;
}
