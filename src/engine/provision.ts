import { ConfigError, UsageError, ZanuriError } from '../core/errors.js';
import type { Action, Handler, Plan } from '../core/plan.js';
import type { Transport } from '../core/types.js';
import { packagesFact, type FactRequest, type FactValues } from '../facts/state.js';
import type { AnyStep, HostContext, HostInfo } from '../steps/types.js';
import { connect, type ConnectOptions } from '../transport/connect.js';
import { applyAction, dedupeHandlers, handlerCmd, restoreFile, restoreLink } from './apply.js';
import { viewAction, type ActionView } from './describe.js';
import { gather, gatherAsRoot } from './gather.js';
import { RootRunner } from './host.js';

export interface SelectedStep {
  step: AnyStep;
  params: unknown;
}

export type StepStatus = 'changed' | 'unchanged' | 'would-change' | 'failed' | 'rolled-back' | 'not-run';

export interface StepReport {
  id: string;
  title: string;
  status: StepStatus;
  /** Why it changed, why it did not, or why it failed. */
  why: string;
  actions: ActionView[];
  durationMs: number;
  error?: { code: string; message: string; hint?: string };
}

export interface HostProvisionReport {
  host: string;
  target: string;
  ok: boolean;
  dryRun: boolean;
  steps: StepReport[];
  summary: { changed: number; unchanged: number; failed: number };
  roundTrips: number;
  durationMs: number;
  error?: { code: string; message: string; hint?: string; exitCode: number };
}

export type ProvisionEvent =
  | { type: 'step-start'; host: string; step: string; title: string }
  | { type: 'step-end'; host: string; report: StepReport };

export interface ProvisionOptions {
  dryRun: boolean;
  connect: ConnectOptions;
  onEvent?: (event: ProvisionEvent) => void;
}

/** Orders steps so each runs after the selected steps it names in `after`; otherwise keeps the given order. */
export function orderSteps(selected: readonly SelectedStep[]): SelectedStep[] {
  const ids = new Set(selected.map((s) => s.step.id));
  const done = new Set<string>();
  const ordered: SelectedStep[] = [];
  const pending = [...selected];
  while (pending.length) {
    const index = pending.findIndex((s) => (s.step.after ?? []).every((dep) => !ids.has(dep) || done.has(dep)));
    if (index < 0) throw new ConfigError(`steps depend on each other in a cycle: ${pending.map((s) => s.step.id).join(', ')}`);
    const [next] = pending.splice(index, 1) as [SelectedStep];
    ordered.push(next);
    done.add(next.step.id);
  }
  return ordered;
}

const errorView = (error: unknown): { code: string; message: string; hint?: string } =>
  error instanceof ZanuriError
    ? { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) }
    : { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };

function reasonOf(plan: Plan): string {
  return 'noop' in plan ? plan.noop : plan.actions.map((a) => a.why).join('; ');
}

/** Converges one host: one gather round trip when nothing needs doing. */
export async function provisionHost(host: string | null, selected: readonly SelectedStep[], options: ProvisionOptions): Promise<HostProvisionReport> {
  const started = performance.now();
  const name = host ?? 'local';
  const steps = orderSteps(selected);
  const reports: StepReport[] = [];
  let transport: Transport | null = null;
  const finish = (error?: unknown): HostProvisionReport => {
    const summary = {
      changed: reports.filter((r) => r.status === 'changed').length,
      unchanged: reports.filter((r) => r.status === 'unchanged').length,
      failed: reports.filter((r) => r.status === 'failed' || r.status === 'rolled-back').length,
    };
    const failure = error === undefined ? undefined : { ...errorView(error), exitCode: error instanceof ZanuriError ? error.exitCode : 1 };
    return {
      host: name, target: transport?.target ?? name, ok: failure === undefined && summary.failed === 0, dryRun: options.dryRun,
      steps: reports, summary, roundTrips: transport?.roundTrips ?? 0, durationMs: Math.round(performance.now() - started),
      ...(failure ? { error: failure } : {}),
    };
  };

  try {
    transport = await connect(host, options.connect);
    const sshPort = 'endpoint' in transport ? (transport as { endpoint: { port: number } }).endpoint.port : null;
    const requests = (remaining: readonly SelectedStep[], info: HostInfo): FactRequest<unknown>[] =>
      remaining.flatMap((s) => s.step.facts(s.params, info));
    const packages = [...new Set(steps.flatMap((s) => s.step.packages?.(s.params) ?? []))].sort();
    const pkgFact = packagesFact(packages);

    // First round trip: who we are (root or sudo -n), systemd, installed packages and every step's facts.
    const provisional: HostInfo = { loginUser: '', sshPort, local: host === null };
    const first = await gatherAsRoot(transport, [pkgFact, ...requests(steps, provisional)]);
    const root = new RootRunner(transport, first.loginIsRoot);
    const info: HostInfo = { ...provisional, loginUser: first.loginUser };
    let values: FactValues = first.values;

    const context: HostContext = {
      ...info,
      target: transport.target,
      run: (cmd) => root.run(cmd),
      connectFresh: () => connect(host, options.connect),
      connectAs: (user) => {
        if (host === null) throw new UsageError('a login as another user cannot be tested in a --local run');
        return connect(`${user}@${host.replace(/^[^@]*@/, '')}`, options.connect);
      },
    };

    const missing = packages.filter((p) => values.get(pkgFact)[p] === null);
    if (packages.length) {
      const stepStarted = performance.now();
      options.onEvent?.({ type: 'step-start', host: name, step: 'packages', title: 'Packages' });
      let report: StepReport;
      if (!missing.length) {
        report = { id: 'packages', title: 'Packages', status: 'unchanged', why: `all ${packages.length} packages the steps need are installed`, actions: [], durationMs: 0 };
      } else {
        const action: Action = { kind: 'packages', install: missing, why: `${missing.join(', ')} not installed` };
        if (!options.dryRun) {
          await applyAction(root, action);
          values = await gather(root, [pkgFact, ...requests(steps, info)]);
        }
        report = { id: 'packages', title: 'Packages', status: options.dryRun ? 'would-change' : 'changed', why: action.why, actions: [viewAction(action)], durationMs: 0 };
      }
      report.durationMs = Math.round(performance.now() - stepStarted);
      reports.push(report);
      options.onEvent?.({ type: 'step-end', host: name, report });
    }

    for (const [index, { step, params }] of steps.entries()) {
      const stepStarted = performance.now();
      options.onEvent?.({ type: 'step-start', host: name, step: step.id, title: step.title });
      const plan = step.plan(values, params, info);
      const base = { id: step.id, title: step.title, actions: plan.actions.map(viewAction) };
      let report: StepReport;
      if ('noop' in plan) {
        report = { ...base, status: 'unchanged', why: plan.noop, durationMs: 0 };
      } else if (options.dryRun) {
        // Without the packages a real run installs first, a step sees a blanker host than it will.
        const caveat = missing.length ? ` (planned before ${missing.join(', ')} ${missing.length === 1 ? 'was' : 'were'} installed: the real run may do less)` : '';
        report = { ...base, status: 'would-change', why: `${reasonOf(plan)}${caveat}`, durationMs: 0 };
      } else {
        report = await applyStep(root, context, step, params, plan);
        if (report.status === 'changed') {
          // Re-read the facts of this step and the ones still to come: a step whose re-plan is not empty is a bug.
          values = await gather(root, requests(steps.slice(index), info));
          const replan = step.plan(values, params, info);
          if (replan.actions.length) {
            report = { ...report, status: 'failed', why: `bug: after applying, ${step.id} still plans: ${reasonOf(replan)}`, error: { code: 'NOT_CONVERGED', message: `step ${step.id} did not converge` } };
          }
        }
      }
      report.durationMs = Math.round(performance.now() - stepStarted);
      reports.push(report);
      options.onEvent?.({ type: 'step-end', host: name, report });
      if (report.status === 'failed' || report.status === 'rolled-back') {
        for (const rest of steps.slice(index + 1)) {
          reports.push({ id: rest.step.id, title: rest.step.title, status: 'not-run', why: `not run: ${step.id} failed`, actions: [], durationMs: 0 });
        }
        break;
      }
    }
    return finish();
  } catch (error) {
    if (!(error instanceof ZanuriError)) throw error;
    return finish(error);
  } finally {
    await transport?.close();
  }
}

async function applyStep(root: RootRunner, context: HostContext, step: AnyStep, params: unknown, plan: Plan): Promise<StepReport> {
  const base = { id: step.id, title: step.title, actions: plan.actions.map(viewAction), durationMs: 0 };
  try {
    await step.beforeApply?.(context, params);
  } catch (error) {
    return { ...base, status: 'failed', why: `nothing changed: ${errorView(error).message}`, error: errorView(error) };
  }
  const applied: Action[] = [];
  try {
    const handlers: Handler[] = [];
    for (const action of plan.actions) {
      handlers.push(...(await applyAction(root, action)));
      applied.push(action);
    }
    for (const handler of dedupeHandlers(handlers)) await root.must(handlerCmd(handler), `systemctl ${handler.op} ${handler.unit}`);
    await step.verify?.(context, params);
    return { ...base, status: 'changed', why: reasonOf(plan) };
  } catch (error) {
    const cause = errorView(error);
    try {
      const warnings = await rollback(root, step, params, applied);
      const also = warnings.length ? `; after restoring the files, ${warnings.join('; ')}` : '';
      return { ...base, status: 'rolled-back', why: `rolled back: ${cause.message}${also}`, error: cause };
    } catch (rollbackError) {
      return { ...base, status: 'failed', why: `failed, and the rollback failed too: ${errorView(rollbackError).message}`, error: cause };
    }
  }
}

/**
 * Undo in reverse: files and links back as they were, the step's own undo actions, then the handlers
 * once. Handlers are best effort: the old configuration may not start either (Debian's stock fail2ban
 * does not), and that must not hide that the files are back; their failures come back as warnings.
 */
async function rollback(root: RootRunner, step: AnyStep, params: unknown, applied: readonly Action[]): Promise<string[]> {
  const handlers: Handler[] = [];
  for (const action of [...applied].reverse()) {
    if (action.kind === 'put') {
      await restoreFile(root, action.path, action.before, action.mode, action.owner, action.group);
      handlers.push(...(action.notify ?? []));
    } else if (action.kind === 'remove') {
      await restoreFile(root, action.path, action.before, 0o644, 'root', 'root');
      handlers.push(...(action.notify ?? []));
    } else if (action.kind === 'link') {
      await restoreLink(root, action.path, action.before);
      handlers.push(...(action.notify ?? []));
    }
  }
  for (const action of step.rollback?.(applied, params) ?? []) handlers.push(...(await applyAction(root, action)));
  const warnings: string[] = [];
  for (const handler of dedupeHandlers(handlers)) {
    const result = await root.run(handlerCmd(handler));
    if (!result.ok) warnings.push(`systemctl ${handler.op} ${handler.unit} failed: ${result.stderr.trim().split('\n').at(-1) ?? `exit ${result.exitCode}`}`);
  }
  return warnings;
}
