import { ConfigError } from '../core/errors.js';
import { deployUser } from './deploy-user.js';
import { sshHarden } from './ssh-harden.js';
import type { AnyStep } from './types.js';

/** Every step zanuri knows, by id. */
export const steps: ReadonlyMap<string, AnyStep> = new Map<string, AnyStep>(
  [deployUser, sshHarden].map((s) => [s.id, s]),
);

export function stepById(id: string): AnyStep {
  const step = steps.get(id);
  if (!step) throw new ConfigError(`unknown step "${id}"`, { hint: `known steps: ${[...steps.keys()].join(', ')}` });
  return step;
}
