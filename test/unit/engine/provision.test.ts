import { describe, expect, it } from 'vitest';
import { dedupeHandlers } from '../../../src/engine/actions.js';
import { orderSteps, preflight } from '../../../src/engine/provision.js';
import { file } from '../../../src/resources/file.js';
import { params } from '../../../src/steps/schema.js';
import { defineStep, type AnyStep } from '../../../src/steps/types.js';
import type { Templates } from '../../../src/core/content.js';
import { ConfigError } from '../../../src/core/errors.js';

const step = (id: string, after: string[] = []): { step: AnyStep; params: unknown } =>
  ({ step: defineStep({ id, title: id, after, params: params({}), resources: () => [], converged: () => '' }), params: {} });

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

describe('preflight', () => {
  const failing: Templates = { render: () => { throw new ConfigError('template x: unknown variable "y"', { location: 'templates/x:3:1' }); } };
  const templated = defineStep({ id: 'templated', title: 't', params: params({}), resources: (_f, _p, ctx) => [file('/etc/x', ctx.templates.render('x', {}))], converged: () => '' });

  it('renders every step\'s templates before any connection, so a bad template stops the run with its file:line', () => {
    expect(() => preflight([{ step: templated, params: {} }], failing)).toThrow(/templates\/x:3:1: template x: unknown variable "y"/);
  });

  it('refuses a step that declares the same resource twice', () => {
    const twice = defineStep({ id: 'twice', title: 't', params: params({}), resources: () => [file('/etc/x', 'a'), file('/etc/x', 'b')], converged: () => '' });
    expect(() => preflight([{ step: twice, params: {} }], failing)).toThrow(/declares file:\/etc\/x twice/);
  });
});
