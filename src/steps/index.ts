import { readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../core/errors.js';
import type { AnyStep } from './types.js';

/**
 * The step catalogue is this folder: a step lives in the module named after its id
 * (ssh-harden.ts exports the step "ssh-harden"), so adding a step is adding its file, its
 * templates and its tests, and a run loads only the steps it uses. Modules that export no step
 * of their own name (types, schema, shared helpers) are not steps.
 */
const folder = new URL('./', import.meta.url);
/** .ts under the test runner, .js when built. */
const extension = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const idPattern = /^[a-z][a-z0-9-]{0,63}$/;

function isStep(value: unknown, id: string): value is AnyStep {
  return typeof value === 'object' && value !== null && (value as AnyStep).id === id &&
    typeof (value as AnyStep).parseParams === 'function' && typeof (value as AnyStep).resources === 'function';
}

async function load(id: string): Promise<AnyStep | null> {
  const url = new URL(`${id}${extension}`, folder);
  let module: Record<string, unknown>;
  try {
    module = (await import(url.href)) as Record<string, unknown>;
  } catch (error) {
    // Only this module missing means "no such step"; a module it imports missing is a bug to report.
    if ((error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(`'${fileURLToPath(url)}'`)) return null;
    if ((error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' && !String((error as Error).message).includes('imported from')) return null;
    throw error;
  }
  return Object.values(module).find((value): value is AnyStep => isStep(value, id)) ?? null;
}

/** Every step zanuri knows, sorted by id. */
export async function allSteps(): Promise<AnyStep[]> {
  const names = (await readdir(folder)).filter((f) => f.endsWith(extension) && !f.endsWith('.d.ts')).map((f) => f.slice(0, -extension.length)).filter((n) => idPattern.test(n));
  const loaded = await Promise.all(names.map(load));
  return loaded.filter((s): s is AnyStep => s !== null).sort((a, b) => a.id.localeCompare(b.id));
}

export async function stepById(id: string): Promise<AnyStep> {
  const step = idPattern.test(id) ? await load(id) : null;
  if (step) return step;
  throw new ConfigError(`unknown step "${JSON.stringify(id).slice(1, -1)}"`, { hint: `known steps: ${(await allSteps()).map((s) => s.id).join(', ')}` });
}
