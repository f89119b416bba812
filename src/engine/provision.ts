import type { Templates } from '../core/content.js';
import { ConfigError, ExitCode, ZanuriError, errorView } from '../core/errors.js';
import type { Action, Handler, Plan } from '../core/plan.js';
import type { Transport } from '../core/types.js';
import { fileFact, packagesFact, type FactRequest, type FactValues } from '../facts/state.js';
import type { Resource } from '../resources/types.js';
import { planStep, resourceFacts, servedPorts, stepFacts } from '../steps/plan.js';
import type { AnyStep, HostContext, HostInfo, PlanContext } from '../steps/types.js';
import { hostname } from 'node:os';
import { connect, ConnectionLostError, type ConnectOptions } from '../transport/connect.js';
import { applyAction, dedupeHandlers, handlerCmd, undoAction, viewAction, type ActionView } from './actions.js';
import { blankFacts, gather, gatherAsRoot, type Values } from './gather.js';
import { HostTimeoutError, hostLockPath, RootRunner } from './host.js';

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
  /**
   * Dry run only: what this step was planned before (packages, a repository, a reboot that the run
   * does first); the real run reads the facts again after it and may do less. Said once per host.
   */
  plannedBefore?: string;
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
  /** The reboots this run made, each with the step that needed it and why. */
  reboots: { step: string; why: string }[];
  /**
   * A reboot still owed: found at the start (an earlier --no-reboot run left it), or left by this
   * run's --no-reboot, which then stops before the steps that would need the rebooted host.
   */
  rebootPending?: { step: string; why: string; since: 'an earlier run' | 'this run' };
  /** A real run holds the host lock; when another run held it first, whom this one waited for and how long. */
  hostLock?: { waitedSeconds: number; waitedFor: string };
  error?: { code: string; message: string; hint?: string; exitCode: number };
}

/** Per-host bounds of a run, in seconds: the whole run on one host, and the wait for another run's host lock. */
export interface HostBounds {
  hostTimeoutSeconds: number;
  lockWaitSeconds: number;
}

/**
 * A host's whole run: long enough for a driver, a CUDA download and a reboot on a slow mirror; a host
 * that stops answering is found much sooner by the SSH keepalives (ServerAliveInterval, 15 s x 3).
 */
export const defaultHostBounds: HostBounds = { hostTimeoutSeconds: 7200, lockWaitSeconds: 300 };
export const hostBoundsEnv = { hostTimeoutSeconds: 'ZANURI_HOST_TIMEOUT', lockWaitSeconds: 'ZANURI_HOST_LOCK_WAIT' } as const;

/** The bounds from the environment; a value that is not a whole number of seconds in range is a ConfigError naming it (checked before any connection). */
export function hostBoundsFrom(env: Readonly<Record<string, string | undefined>> = process.env): HostBounds {
  const read = (key: keyof HostBounds, min: number, max: number): number => {
    const name = hostBoundsEnv[key];
    const raw = env[name];
    if (raw === undefined || raw === '') return defaultHostBounds[key];
    if (!/^[0-9]{1,6}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      throw new ConfigError(`${name} must be a whole number of seconds from ${min} to ${max}, not ${JSON.stringify(raw.replace(/[^\x20-\x7e]/g, '?').slice(0, 40))}`);
    }
    return Number(raw);
  };
  return { hostTimeoutSeconds: read('hostTimeoutSeconds', 1, 604_800), lockWaitSeconds: read('lockWaitSeconds', 0, 86_400) };
}

/** Who holds the host lock, as a run that waits for it names the holder: controller host, pid, start time. */
export function lockHolder(now: Date = new Date()): string {
  return `zanuri on ${hostname().replace(/[^\x21-\x7e]/g, '?').slice(0, 64)} (pid ${process.pid}, started ${now.toISOString()})`;
}

/** The boot's id: a reboot changes it (uptime cannot tell: in a container it is the machine's). */
const bootIdFact: FactRequest<string> = { key: 'boot-id', script: 'cat /proc/sys/kernel/random/boot_id 2>/dev/null', parse: (out) => out.trim() };

/** How long a run whose connection closed looks for the host again, to tell a reboot from a dropped link. */
export const lostProbeMs = 90_000;

/** Where a run that was told not to reboot records that the host owes one; /run is emptied by the boot that pays it. */
export const rebootMarkerPath = '/run/zanuri/reboot-required';

/** The marker's one line: "<step>: <why>". */
function parseMarker(content: string | null): { step: string; why: string } | null {
  const match = /^([a-z0-9-]+): (.+)$/m.exec(content ?? '');
  return match ? { step: match[1] ?? '', why: match[2] ?? '' } : null;
}

export type ProvisionEvent =
  | { type: 'host-wait'; host: string; message: string }
  | { type: 'step-start'; host: string; step: string; title: string }
  | { type: 'step-end'; host: string; report: StepReport };

export interface ProvisionOptions {
  dryRun: boolean;
  connect: ConnectOptions;
  templates: Templates;
  /** --no-reboot: a step that needs a reboot stops the run there, and the host is left saying a reboot is pending. */
  noReboot?: boolean;
  onEvent?: (event: ProvisionEvent) => void;
  /** More facts read in the first round trip (zanuri audit's own observations), handed to onFacts with every value read there. */
  extraFacts?: readonly FactRequest<unknown>[];
  onFacts?: (values: FactValues, loginUser: string) => void;
  /** Overrides of ZANURI_HOST_TIMEOUT and ZANURI_HOST_LOCK_WAIT. */
  bounds?: Partial<HostBounds>;
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

/**
 * Every step's resources declared against a blank host, before any connection: a template that
 * names a variable its step does not give, or a step that declares one resource twice, fails
 * here with the template's file:line, and nothing has been touched.
 */
export function preflight(selected: readonly SelectedStep[], templates: Templates): void {
  const ctx: PlanContext = { loginUser: 'root', sshPort: 22, local: false, templates, served: servedPorts(selected), selected: selected.map((s) => s.step.id) };
  for (const { step, params } of selected) planStep(step, blankFacts, params, ctx);
}

function reasonOf(plan: Plan): string {
  return 'noop' in plan ? plan.noop : plan.actions.map((a) => a.why).join('; ');
}

/** Is this a change after which the facts of what follows must be read again? */
const checkpointOf = (resource: Resource, actions: readonly Action[]): string | null =>
  resource.checkpoint && actions.length ? resource.describe : null;

/** Converges one host: one gather round trip when nothing needs doing. */
export async function provisionHost(host: string | null, selected: readonly SelectedStep[], options: ProvisionOptions): Promise<HostProvisionReport> {
  const started = performance.now();
  const name = host ?? 'local';
  const steps = orderSteps(selected);
  const reports: StepReport[] = [];
  const reboots: { step: string; why: string }[] = [];
  let rebootPending: HostProvisionReport['rebootPending'];
  let transport: Transport | null = null;
  let root: RootRunner | null = null;
  let hostLock: HostProvisionReport['hostLock'];
  const finish = (error?: unknown): HostProvisionReport => {
    const summary = {
      changed: reports.filter((r) => r.status === 'changed').length,
      unchanged: reports.filter((r) => r.status === 'unchanged').length,
      failed: reports.filter((r) => r.status === 'failed' || r.status === 'rolled-back').length,
    };
    const failure = error === undefined ? undefined : errorView(error);
    const current = root?.transport ?? transport;
    return {
      host: name, target: current?.target ?? name, ok: failure === undefined && summary.failed === 0, dryRun: options.dryRun,
      steps: reports, summary, roundTrips: current?.roundTrips ?? 0, durationMs: Math.round(performance.now() - started),
      reboots, ...(rebootPending ? { rebootPending } : {}), ...(hostLock ? { hostLock } : {}),
      ...(failure ? { error: failure } : {}),
    };
  };
  const emit = (report: StepReport, stepStarted: number): void => {
    report.durationMs = Math.round(performance.now() - stepStarted);
    reports.push(report);
    options.onEvent?.({ type: 'step-end', host: name, report });
  };
  const bounds = { ...hostBoundsFrom(), ...options.bounds };
  // The per-host deadline: the connection is closed under whatever runs, and nothing more is sent.
  const abort = new AbortController();
  const timer = setTimeout(() => {
    abort.abort(new HostTimeoutError(`${name} did not finish within ${bounds.hostTimeoutSeconds} s${currentStep ? ` (it was at ${currentStep})` : ''}: its connection was closed and the run on it stopped there`, {
      hint: `the other hosts went on; a command still running there ends at its own deadline. Run again to converge it; ${hostBoundsEnv.hostTimeoutSeconds} sets this bound`,
    }));
    void (root?.transport ?? transport)?.close();
  }, bounds.hostTimeoutSeconds * 1000);
  const stopIfAborted = (): void => {
    if (abort.signal.aborted) throw abort.signal.reason;
  };
  /** The step the run is in (its report not yet emitted), for a connection lost under it. */
  let currentStep: string | null = null;
  let bootId = '';
  const stepIds = (): string[] => [...(steps.some((s) => s.step.packages) ? ['packages'] : []), ...steps.map((s) => s.step.id)];
  /** After a lost connection or the deadline: the step it happened in failed, the ones after it did not run. */
  const stopHere = (why: string, error: unknown): void => {
    const done = new Set(reports.map((r) => r.id));
    const at = currentStep && !done.has(currentStep) ? currentStep : null;
    for (const id of stepIds().filter((i) => !done.has(i))) {
      const title = steps.find((s) => s.step.id === id)?.step.title ?? 'Packages';
      if (id === at) reports.push({ id, title, status: 'failed', why, actions: [], durationMs: 0, error: errorView(error) });
      else reports.push({ id, title, status: 'not-run', why: `not run: ${why}`, actions: [], durationMs: 0 });
    }
  };

  try {
    transport = await connect(host, options.connect);
    stopIfAborted();
    const connection = transport;
    const packages = [...new Set(steps.flatMap((s) => s.step.packages?.(s.params) ?? []))].sort();
    const pkgFact = packagesFact(packages);

    let info: HostInfo = { loginUser: '', sshPort: connection.sshPort, local: host === null };
    const served = servedPorts(steps);
    const selectedIds = steps.map((s) => s.step.id);
    let ctx: PlanContext = { ...info, templates: options.templates, served, selected: selectedIds };
    /** The facts of these steps: their own, and those of the resources they declare on `values`. */
    const requests = (remaining: readonly SelectedStep[], values: FactValues): FactRequest<unknown>[] =>
      remaining.flatMap((s) => [...stepFacts(s.step, s.params, info), ...resourceFacts(s.step.resources(values, s.params, ctx))]);
    // Step facts are read twice over in this first request list: once to discover the resources on a blank host.
    const discover = (remaining: readonly SelectedStep[]): FactRequest<unknown>[] => requests(remaining, blankFacts);

    // First round trip: who we are (root or sudo -n), systemd, installed packages and every step's facts.
    const marker = fileFact(rebootMarkerPath);
    // A real run takes the host lock in that same round trip, before it reads anything: two runs never interleave.
    const lock = options.dryRun || host === null ? undefined : {
      path: hostLockPath, waitSeconds: bounds.lockWaitSeconds, holder: lockHolder(),
      onWaiting: (holder: string) => options.onEvent?.({ type: 'host-wait', host: name, message: `waiting for the host lock held by ${holder}, up to ${bounds.lockWaitSeconds} s` }),
    };
    const first = await gatherAsRoot(connection, [pkgFact, marker, bootIdFact, ...discover(steps), ...(options.extraFacts ?? [])], lock);
    if (first.lock?.waitedFor) hostLock = { waitedSeconds: first.lock.waitedSeconds, waitedFor: first.lock.waitedFor };
    bootId = first.values.get(bootIdFact);
    options.onFacts?.(first.values, first.loginUser);
    const owed = parseMarker(first.values.get(marker).content);
    if (owed) rebootPending = { ...owed, since: 'an earlier run' };
    // After a reboot the new connection takes the lock again: the boot emptied /run, and another run may have started.
    const reconnect = async (): Promise<Transport> => {
      const next = await connect(host, options.connect);
      if (!lock) return next;
      try {
        await gatherAsRoot(next, [], lock);
        return next;
      } catch (error) {
        await next.close();
        throw error;
      }
    };
    root = new RootRunner(connection, first.loginIsRoot, host === null ? null : reconnect, abort.signal);
    const runner = root;
    info = { ...info, loginUser: first.loginUser };
    ctx = { ...info, templates: options.templates, served, selected: selectedIds };
    let values: Values = first.values;
    // A step that refuses what these facts show (a firewall that would shut this connection out, an
    // sshd configuration it cannot harden) stops the host here, before any step changes anything.
    const known: FactValues = { get: <T>(r: FactRequest<T>): T => (values.has(r) ? values.get(r) : r.parse('')) };
    for (const s of steps) {
      try {
        planStep(s.step, known, s.params, ctx);
      } catch (error) {
        if (error instanceof ZanuriError) throw error;
      }
    }

    /** Reads any fact a step's resources need that is not known yet (resources whose paths depend on facts). */
    const complete = async (step: SelectedStep): Promise<void> => {
      const missing = requests([step], values).filter((r) => !values.has(r));
      if (missing.length) values = values.with(await gather(runner, missing));
    };
    /**
     * Reads the facts of these steps again after a change. Resources are declared from facts, so the
     * new values may declare resources whose facts were never read, or were read before the change:
     * those are read too, until the declarations settle (bounded: a declaration that keeps moving is a bug).
     */
    const regather = async (remaining: readonly SelectedStep[]): Promise<void> => {
      const fresh = new Set<string>();
      for (let round = 0; round < 4; round += 1) {
        const stale = requests(remaining, values).filter((r) => !fresh.has(r.key));
        if (!stale.length) return;
        values = values.with(await gather(runner, stale));
        for (const r of stale) fresh.add(r.key);
      }
      throw new Error(`bug: the resources of ${remaining.map((s) => s.step.id).join(', ')} keep changing with their own facts`);
    };

    const context: HostContext = {
      ...info,
      get target() { return runner.transport.target; },
      run: (cmd) => runner.run(cmd),
      connectFresh: () => connect(host, options.connect),
      connectAs: (user) => runner.transport.connectAs(user),
    };

    /** In a dry run, the first change the real run makes before reading the facts again. */
    let plannedBefore: string | null = null;
    const missing = packages.filter((p) => values.get(pkgFact)[p] === null);
    if (packages.length) {
      const stepStarted = performance.now();
      stopIfAborted();
      currentStep = 'packages';
      options.onEvent?.({ type: 'step-start', host: name, step: 'packages', title: 'Packages' });
      let report: StepReport;
      if (!missing.length) {
        report = { id: 'packages', title: 'Packages', status: 'unchanged', why: `all ${packages.length} packages the steps need are installed`, actions: [], durationMs: 0 };
      } else {
        const action: Action = { kind: 'packages', install: missing, why: `${missing.join(', ')} not installed` };
        if (options.dryRun) plannedBefore = `${missing.join(', ')} ${missing.length === 1 ? 'was' : 'were'} installed`;
        else {
          await applyAction(runner, action);
          values = await gather(runner, [pkgFact, ...discover(steps)]);
        }
        report = { id: 'packages', title: 'Packages', status: options.dryRun ? 'would-change' : 'changed', why: [action.why, ...runner.takeNotes()].join('; '), actions: [viewAction(action)], durationMs: 0 };
      }
      emit(report, stepStarted);
    }

    for (const [index, selectedStep] of steps.entries()) {
      const { step, params } = selectedStep;
      const stepStarted = performance.now();
      stopIfAborted();
      currentStep = step.id;
      options.onEvent?.({ type: 'step-start', host: name, step: step.id, title: step.title });
      let plan: Plan;
      try {
        await complete(selectedStep);
        plan = planStep(step, values, params, ctx);
      } catch (error) {
        // A step that refuses (Secure Boot, a CUDA the driver cannot run) stops here, before any change of its own.
        if (!(error instanceof ZanuriError) || error.exitCode !== ExitCode.provisionFailed) throw error;
        const view = errorView(error);
        emit({ id: step.id, title: step.title, status: 'failed', why: view.hint ? `${view.message}\n${view.hint}` : view.message, actions: [], durationMs: 0, error: view }, stepStarted);
        for (const rest of steps.slice(index + 1)) {
          reports.push({ id: rest.step.id, title: rest.step.title, status: 'not-run', why: `not run: ${step.id} failed`, actions: [], durationMs: 0 });
        }
        break;
      }
      const base = { id: step.id, title: step.title, actions: plan.actions.map(viewAction) };
      let report: StepReport;
      if ('noop' in plan) {
        report = { ...base, status: 'unchanged', why: plan.noop, durationMs: 0 };
      } else if (options.dryRun) {
        report = { ...base, status: 'would-change', why: reasonOf(plan), durationMs: 0, ...(plannedBefore ? { plannedBefore } : {}) };
        if (!plannedBefore) {
          const checkpoint = step.resources(values, params, ctx).map((r) => checkpointOf(r, r.plan(values))).find((c) => c !== null);
          if (checkpoint) plannedBefore = `${step.id} made sure that ${checkpoint}`;
        }
      } else {
        let deferred: string | null = null;
        report = await applyStep(runner, context, selectedStep, ctx, () => values, async () => {
          await regather(steps.slice(index));
          return values;
        }, options.noReboot ? async (why) => {
          deferred = why;
          await runner.must({ argv: ['sh', '-c', 'mkdir -p -- "${1%/*}" && printf \'%s\\n\' "$2" > "$1"', 'zanuri-reboot-marker', rebootMarkerPath, `${step.id}: ${why}`] }, 'recording the pending reboot');
        } : null);
        reboots.push(...report.actions.filter((a) => a.kind === 'reboot').map((a) => ({ step: step.id, why: a.why })));
        if (deferred !== null && report.status === 'changed') {
          rebootPending = { step: step.id, why: deferred, since: 'this run' };
          emit({ ...report, why: `${report.why}; a reboot is pending (--no-reboot): ${deferred}` }, stepStarted);
          for (const rest of steps.slice(index + 1)) {
            reports.push({ id: rest.step.id, title: rest.step.title, status: 'not-run', why: `not run: a reboot is pending (--no-reboot): ${deferred}`, actions: [], durationMs: 0 });
          }
          break;
        }
        if (report.status === 'changed') {
          // Re-read the facts of this step and the ones still to come: a step whose re-plan is not empty is a bug.
          await regather(steps.slice(index));
          const replan = planStep(step, values, params, ctx);
          if (replan.actions.length) {
            report = { ...report, status: 'failed', why: `bug: after applying, ${step.id} still plans: ${reasonOf(replan)}`, error: { code: 'NOT_CONVERGED', message: `step ${step.id} did not converge` } };
          }
        }
      }
      emit(report, stepStarted);
      if (report.status === 'failed' || report.status === 'rolled-back') {
        for (const rest of steps.slice(index + 1)) {
          reports.push({ id: rest.step.id, title: rest.step.title, status: 'not-run', why: `not run: ${step.id} failed`, actions: [], durationMs: 0 });
        }
        break;
      }
    }
    return finish();
  } catch (caught) {
    let error = caught;
    if (abort.signal.aborted) error = abort.signal.reason;
    else if (error instanceof ConnectionLostError && host !== null) error = await explainLoss(error, host, options.connect, bootId, currentStep, abort.signal);
    if (!(error instanceof ZanuriError)) throw error;
    // The packages transaction failing (a full disk, dpkg, the mirror) is that step's failure too, with the steps after it not run.
    if (error instanceof HostTimeoutError || error instanceof ConnectionLostError || currentStep === 'packages') stopHere(error.message, error);
    return finish(error);
  } finally {
    clearTimeout(timer);
    await (root?.transport ?? transport)?.close();
  }
}

/**
 * Says what became of a host whose connection went away under a run. A host that stopped answering
 * keepalives is not waited for (that is the hang the keepalives are there to bound). A closed
 * connection is a reboot, a restarted sshd or a cut link: the host is looked for again, bounded, and
 * its boot id tells a reboot from the rest.
 */
async function explainLoss(error: ConnectionLostError, host: string, connectOptions: ConnectOptions, bootId: string, step: string | null, signal: AbortSignal): Promise<ConnectionLostError> {
  const during = step ? ` during ${step}` : '';
  const converge = 'the run on it stopped there; run again: it converges from where the host is';
  if (error.reason === 'unresponsive') {
    return new ConnectionLostError(error.target, 'unresponsive', `${error.message}${during}; ${converge.replace('; run again', ' (the other hosts went on); once it answers, run again')}`, {
      hint: 'ServerAliveInterval and ServerAliveCountMax in ssh config set how soon a silent host counts as gone (zanuri\'s default: 15 s x 3)', cause: error,
    });
  }
  if (error.reason === 'aborted') return error;
  const started = Date.now();
  let seen = 'it did not answer again';
  while (Date.now() - started < lostProbeMs && !signal.aborted) {
    await new Promise((r) => setTimeout(r, 2000));
    let next: Transport | null = null;
    try {
      next = await connect(host, connectOptions);
      const now = (await next.run({ argv: ['cat', '/proc/sys/kernel/random/boot_id'] }, { timeoutMs: 10_000 })).stdout.trim();
      if (now && bootId && now !== bootId) {
        return new ConnectionLostError(error.target, 'closed', `${error.target} rebooted${during} (its boot id changed from ${bootId.slice(0, 8)} to ${now.slice(0, 8)}): the connection was lost and ${converge}`, {
          hint: 'something other than this run rebooted the host; a package install it interrupted is finished by the next run (dpkg --configure -a)', cause: error,
        });
      }
      if (now) {
        return new ConnectionLostError(error.target, 'closed', `${error.message}${during}; the host is up again without a reboot (same boot id): ${converge}`, { cause: error });
      }
    } catch (probe) {
      seen = `it did not answer again within ${Math.round(lostProbeMs / 1000)} s (${probe instanceof Error ? probe.message : String(probe)})`;
    } finally {
      await next?.close();
    }
  }
  return new ConnectionLostError(error.target, 'closed', `${error.message}${during}, and ${seen}: rebooting or down; ${converge}`, {
    hint: 'check the host (console, power); once it answers, run again', cause: error,
  });
}

/**
 * Applies a step resource by resource. After a checkpoint resource changed something (packages, a
 * repository, a reboot), the facts are read again and the rest of the step is declared anew from them.
 */
async function applyStep(
  root: RootRunner, context: HostContext, { step, params }: SelectedStep, ctx: PlanContext,
  current: () => FactValues, reread: () => Promise<FactValues>,
  /** Given with --no-reboot: called instead of rebooting, and the step ends there. */
  deferReboot: ((why: string) => Promise<void>) | null = null,
): Promise<StepReport> {
  const base = { id: step.id, title: step.title, durationMs: 0 };
  try {
    await step.beforeApply?.(context, params);
  } catch (error) {
    if (error instanceof ConnectionLostError) throw error;
    const plan = planStep(step, current(), params, ctx);
    return { ...base, actions: plan.actions.map(viewAction), status: 'failed', why: `nothing changed: ${errorView(error).message}`, error: errorView(error) };
  }
  const applied: Action[] = [];
  try {
    const handlers: Handler[] = [];
    const done = new Set<string>();
    let facts = current();
    let resources = step.resources(facts, params, ctx);
    for (let next = resources[0]; next; next = resources.find((r) => !done.has(r.id))) {
      done.add(next.id);
      const actions = next.plan(facts);
      let stop = false;
      for (const action of actions) {
        if (action.kind === 'reboot' && deferReboot) {
          await deferReboot(action.why);
          stop = true;
          break;
        }
        // A unit this step starts reads its new configuration as it starts: a restart queued before
        // would only race its start-up (fail2ban hangs when stopped while it creates its jails).
        if (action.kind === 'service' && (action.op === 'start' || action.op === 'enable-now')) {
          for (let i = handlers.length - 1; i >= 0; i -= 1) if (handlers[i]?.unit === action.unit) handlers.splice(i, 1);
        }
        handlers.push(...(await applyAction(root, action)));
        applied.push(action);
      }
      if (stop) {
        for (const handler of dedupeHandlers(handlers)) await root.must(handlerCmd(handler), `systemctl ${handler.op} ${handler.unit}`, { timeoutMs: 300_000 });
        return { ...base, actions: applied.map(viewAction), status: 'changed', why: applied.map((a) => a.why).join('; ') || 'nothing but the reboot' };
      }
      if (checkpointOf(next, actions)) {
        facts = await reread();
        resources = step.resources(facts, params, ctx);
      }
    }
    for (const handler of dedupeHandlers(handlers)) await root.must(handlerCmd(handler), `systemctl ${handler.op} ${handler.unit}`, { timeoutMs: 300_000 });
    await step.verify?.(context, params);
    return { ...base, actions: applied.map(viewAction), status: 'changed', why: [...applied.map((a) => a.why), ...root.takeNotes()].join('; ') };
  } catch (error) {
    // Over a lost connection nothing can be undone: the run stops here and says so.
    if (error instanceof ConnectionLostError) throw error;
    const cause = errorView(error);
    const actions = applied.map(viewAction);
    try {
      const warnings = await rollback(root, step, params, applied);
      const also = warnings.length ? `; after restoring the files, ${warnings.join('; ')}` : '';
      return { ...base, actions, status: 'rolled-back', why: `rolled back: ${cause.message}${also}`, error: cause };
    } catch (rollbackError) {
      if (rollbackError instanceof ConnectionLostError) throw rollbackError;
      return { ...base, actions, status: 'failed', why: `failed, and the rollback failed too: ${errorView(rollbackError).message}`, error: cause };
    }
  }
}

/**
 * Undo in reverse: every applied action its kind can undo (files back with their bytes, mode and
 * owner; links; directories; commands with an undo), the step's own undo actions, then the handlers
 * once. Handlers are best effort: the old configuration may not start either (Debian's stock
 * fail2ban does not), and that must not hide that the files are back; their failures come back as warnings.
 */
async function rollback(root: RootRunner, step: AnyStep, params: unknown, applied: readonly Action[]): Promise<string[]> {
  const handlers: Handler[] = [];
  for (const action of [...applied].reverse()) handlers.push(...(await undoAction(root, action)));
  for (const action of step.rollback?.(applied, params) ?? []) handlers.push(...(await applyAction(root, action)));
  const warnings: string[] = [];
  for (const handler of dedupeHandlers(handlers)) {
    const result = await root.run(handlerCmd(handler));
    if (!result.ok) warnings.push(`systemctl ${handler.op} ${handler.unit} failed: ${result.stderr.trim().split('\n').at(-1) ?? `exit ${result.exitCode}`}`);
  }
  return warnings;
}
