import { describe, expect, it } from 'vitest';
import { dedupeHandlers } from '../../../src/engine/apply.js';
import { orderSteps } from '../../../src/engine/provision.js';
import type { AnyStep } from '../../../src/steps/types.js';

const step = (id: string, after: string[] = []): { step: AnyStep; params: unknown } =>
  ({ step: { id, title: id, after, parseParams: () => ({}), facts: () => [], plan: () => ({ actions: [], noop: '' }) }, params: {} });

describe('orderSteps', () => {
  it('keeps the playbook order unless a step must come after another', () => {
    expect(orderSteps([step('a'), step('b'), step('c')]).map((s) => s.step.id)).toEqual(['a', 'b', 'c']);
    expect(orderSteps([step('ssh-harden', ['deploy-user']), step('deploy-user')]).map((s) => s.step.id)).toEqual(['deploy-user', 'ssh-harden']);
  });

  it('ignores dependencies on steps that were not selected, and refuses cycles', () => {
    expect(orderSteps([step('certbot', ['nginx'])]).map((s) => s.step.id)).toEqual(['certbot']);
    expect(() => orderSteps([step('a', ['b']), step('b', ['a'])])).toThrow(/cycle/);
  });
});

describe('dedupeHandlers', () => {
  it('runs each service once, a restart replacing a reload', () => {
    expect(dedupeHandlers([{ unit: 'nginx', op: 'reload' }, { unit: 'nginx', op: 'reload' }, { unit: 'postgresql', op: 'reload' }, { unit: 'postgresql', op: 'restart' }]))
      .toEqual([{ unit: 'nginx', op: 'reload' }, { unit: 'postgresql', op: 'restart' }]);
  });
});
