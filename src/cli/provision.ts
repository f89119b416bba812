import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { Templates } from '../core/content.js';
import { ConfigError, ExitCode, ParamsError, UsageError } from '../core/errors.js';
import { checkHostSpecs, type SshFlags } from './ssh-options.js';
import { worstExitCode } from './exit-code.js';
import type { HostProvisionReport, ProvisionEvent, SelectedStep, StepReport } from '../engine/provision.js';
import type { FleetEvent, RolloutReport } from '../engine/fleet.js';
import type { FleetFlags } from './fleet.js';
import type { BenchmarkTarget, Requirement } from '../profiles/types.js';

export interface ProvisionFlags extends SshFlags, FleetFlags {
  profile?: string;
  playbook?: string;
  forks?: number;
  serial?: string;
  maxFailPercent?: number;
  jsonEvents?: boolean;
  local?: boolean;
  dryRun?: boolean;
  yes?: boolean;
  only?: string[];
  skip?: string[];
  set?: string[];
  json?: boolean;
  concurrency?: number;
  /** false with --no-reboot. */
  reboot?: boolean;
  /** false with --no-bench. */
  bench?: boolean;
  benchEndpoint?: string;
  /** A directory of template overrides. */
  templates?: string;
  /** --host-timeout and --lock-wait, in seconds (else the ZANURI_HOST_TIMEOUT / ZANURI_HOST_LOCK_WAIT environment, else the defaults). */
  hostTimeout?: number;
  lockWait?: number;
}

/**
 * --set step.key=value: JSON when it parses (numbers, booleans, lists), "@file" for a file's non-empty
 * lines (or its whole text, for a parameter whose schema says `fileAs: 'text'`), else a string.
 */
export function parseSet(assignment: string): { step: string; key: string; value: unknown; file?: string; text?: string } {
  const match = /^([a-z0-9-]+)\.([A-Za-z][A-Za-z0-9]*)=(.*)$/s.exec(assignment);
  if (!match) throw new UsageError(`--set ${JSON.stringify(shortened(assignment))}: expected STEP.KEY=VALUE, e.g. deploy-user.name=deploy`);
  const [, step = '', key = '', raw = ''] = match;
  let value: unknown = raw;
  if (raw.startsWith('@')) {
    const file = raw.slice(1).replace(/^~(?=\/)/, homedir());
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      throw new UsageError(`--set ${step}.${key}: cannot read ${shortened(file)}`);
    }
    value = text.split('\n').map((l) => l.trim()).filter(Boolean);
    return { step, key, value, file, text };
  } else {
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
  }
  return { step, key, value };
}

/** A value as an error message may show it: printable, and never more than 200 characters of it. */
function shortened(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, '?');
  return printable.length > 200 ? `${printable.slice(0, 200)}... (${value.length} characters)` : printable;
}

/** Does the step's schema ask for a file's whole text (e.g. a Compose file, whose indentation matters)? */
function fileAsText(step: { params: unknown }, key: string): boolean {
  const properties = (step.params as { properties?: Record<string, { fileAs?: unknown }> }).properties;
  return properties?.[key]?.fileAs === 'text';
}

/** Does an error's message or hint quote any line of a value read from a file? */
function mentionsFile(error: unknown, value: unknown): boolean {
  if (!(error instanceof ConfigError)) return false;
  const text = `${error.message}\n${error.hint ?? ''}`;
  const lines = (Array.isArray(value) ? value : [value]).map(String).filter((l) => l.length >= 3);
  return lines.some((l) => text.includes(l) || text.includes(JSON.stringify(l).slice(1, -1)) || text.includes(l.slice(0, 40)));
}

/** Works out which steps run with which parameters; everything is validated before any connection. */
/**
 * `defaults`: parameters below everything else (the playbook's, the profile's, --set), e.g. the
 * monitoring server's scrape jobs worked out from the inventory.
 */
export async function selectSteps(flags: ProvisionFlags, defaults: Readonly<Record<string, Record<string, unknown>>> = {}): Promise<{ title: string; selected: SelectedStep[]; benchmarks: BenchmarkTarget[]; templates: Templates; gpu: boolean }> {
  const [{ loadProfiles }, { loadPlaybook, profileParams }, { stepById }, { loadTemplates }, { preflight, hostBoundsFrom }, { runBounds }] = await Promise.all([
    import('../profiles/load.js'), import('../profiles/playbook.js'), import('../steps/index.js'), import('../templates/load.js'), import('../engine/provision.js'), import('../engine/actions.js'),
  ]);
  const { gpuProfileParams } = await import('../engine/defaults.js');
  // Every parameter of the run is checked here, before any connection: the bounds from the environment
  // and the benchmark endpoint too (it is used only after the steps changed the hosts).
  runBounds();
  hostBoundsFrom();

  if (Boolean(flags.profile) === Boolean(flags.playbook)) throw new UsageError('name exactly one of --profile or --playbook');
  let playbookName = flags.playbook;
  let fromProfile: Record<string, Record<string, unknown>> = {};
  let title = '';
  let benchmarks: BenchmarkTarget[] = [];
  let siteTemplates: string | null = null;
  let requirements: Requirement[] = [];
  if (flags.profile) {
    const [profile] = await loadProfiles({ names: [flags.profile] });
    if (!profile?.playbook) throw new ConfigError(`profile "${flags.profile}" names no playbook to provision with`, { hint: 'pass --playbook, or add "playbook:" to the profile' });
    playbookName = profile.playbook;
    fromProfile = profileParams(profile);
    title = profile.title;
    benchmarks = profile.benchmarks ?? [];
    if (profile.templates) siteTemplates = resolve(dirname(profile.file), profile.templates);
    requirements = profile.requirements;
  }
  const templates = await loadTemplates({ overrideDir: flags.templates ?? siteTemplates });
  const playbook = await loadPlaybook(playbookName as string);
  title ||= playbook.title;
  // The profile's GPU minimums (driver branch, CUDA version) raise the GPU steps' parameters, never lower them.
  const gpu = gpuProfileParams(requirements, Object.fromEntries(playbook.steps.map((s) => [s.step, s.params])));
  for (const [id, values] of Object.entries(gpu)) fromProfile[id] = { ...values, ...fromProfile[id] };
  const known = new Set(playbook.steps.map((s) => s.step));
  for (const id of [...(flags.only ?? []), ...(flags.skip ?? [])]) {
    await stepById(id);
    if (!known.has(id)) throw new UsageError(`step "${id}" is not in playbook ${playbook.id}`, { hint: `its steps: ${[...known].join(', ')}` });
  }
  const sets = (flags.set ?? []).map(parseSet);
  for (const s of sets) {
    await stepById(s.step);
    if (!known.has(s.step)) throw new UsageError(`--set ${s.step}.${s.key}: step "${s.step}" is not in playbook ${playbook.id}`);
  }
  const selected: SelectedStep[] = [];
  for (const [index, { step: id, params }] of playbook.steps.entries()) {
    if (flags.only?.length && !flags.only.includes(id)) continue;
    if (flags.skip?.includes(id)) continue;
    const step = await stepById(id);
    const setHere = sets.filter((s) => s.step === id);
    const raw = { ...defaults[id], ...params, ...fromProfile[id], ...Object.fromEntries(setHere.map((s) => [s.key, s.file !== undefined && fileAsText(step, s.key) ? s.text : s.value])) };
    try {
      selected.push({ step, params: step.parseParams(raw) });
    } catch (error) {
      // A value read from @FILE is never echoed: the file may be anything (--set postgresql.role=@/etc/shadow).
      const secretFile = setHere.find((s) => s.file !== undefined && ((error instanceof ParamsError && error.path[0] === s.key) || mentionsFile(error, s.value)));
      if (secretFile && error instanceof ConfigError) {
        const what = error instanceof ParamsError && error.path[0] === secretFile.key ? error.message.replace(/, got [\s\S]*$/, '') : `${id}: ${secretFile.key} is not valid`;
        throw new ConfigError(`${what} (the value was read from --set ${id}.${secretFile.key}=@${secretFile.file}; its content is not shown)`);
      }
      // A bad value the playbook itself writes is reported where it is written; --set and profile values by their name.
      const key = error instanceof ParamsError ? error.path[0] : undefined;
      const fromPlaybook = typeof key === 'string' && key in params && !(key in (fromProfile[id] ?? {})) && !setHere.some((s) => s.key === key);
      const location = error instanceof ParamsError && fromPlaybook ? playbook.locate(index, error.path) : undefined;
      if (location && error instanceof ParamsError) throw new ParamsError(error.step, error.path, error.message, { location, ...(error.hint ? { hint: error.hint } : {}) });
      throw error;
    }
  }
  if (!selected.length) throw new UsageError('no step left to run after --only/--skip');
  // Every template is rendered against a blank host now: an unknown variable stops the run before any connection.
  preflight(selected, templates);
  const needsGpu = requirements.some((r) => r.level === 'required' && /^gpu(\.|$)/.test(r.check));
  return { title, selected, benchmarks, templates, gpu: needsGpu };
}

const symbols: Record<string, string> = {
  changed: 'changed', unchanged: 'ok', 'would-change': 'would change', failed: 'FAILED', 'rolled-back': 'ROLLED BACK', 'not-run': 'not run',
};

/** One short line per step: the first reason, and how many more changes the details list. */
export function shortWhy(report: StepReport): string {
  const more = report.actions.length - 1;
  if ((report.status !== 'changed' && report.status !== 'would-change') || more < 1) return report.why;
  return `${report.actions[0]?.why ?? report.why} (+${more} more change${more === 1 ? '' : 's'})${report.plannedBefore ? ' *' : ''}`;
}

export function eventLine(event: ProvisionEvent): string | null {
  if (event.type === 'host-wait') return `${event.host}  ${event.message}`;
  if (event.type !== 'step-end') return null;
  const r = event.report;
  return `${event.host}  ${r.id.padEnd(20)} ${symbols[r.status]?.padEnd(13)} ${String(r.durationMs).padStart(6)} ms  ${shortWhy(r)}`;
}

export function renderProvision(reports: readonly HostProvisionReport[], dryRun: boolean): string {
  const out: string[] = [];
  for (const r of reports) {
    if (r.error) out.push(`${r.host}  ${r.error.code}  ${r.error.message}${r.error.hint ? `\n  hint: ${r.error.hint}` : ''}`);
    if (dryRun) {
      for (const step of r.steps.filter((s) => s.status === 'would-change')) {
        out.push(`\n${r.host}: ${step.id} would change${step.plannedBefore ? ' *' : ''}`);
        for (const a of step.actions) {
          out.push(`  - ${a.summary}\n    why: ${a.why}`);
          if (a.diff) out.push(a.diff.replace(/^/gm, '    ').trimEnd());
        }
      }
    }
    const provisional = r.steps.find((s) => s.plannedBefore)?.plannedBefore;
    if (provisional) out.push(`\n* planned before ${provisional}: the real run reads the facts again after that and may do less`);
    if (r.hostLock) out.push(`${r.host}: waited ${r.hostLock.waitedSeconds} s for the host lock held by ${r.hostLock.waitedFor}`);
    if (r.rebootPending?.since === 'an earlier run') out.push(`${r.host}: a reboot was pending from an earlier run (${r.rebootPending.step}: ${r.rebootPending.why})${r.reboots.length ? '; this run rebooted' : ''}`);
    for (const b of r.reboots) out.push(`${r.host}: rebooted for ${b.step}: ${b.why}`);
    if (r.rebootPending?.since === 'this run') out.push(`${r.host}: REBOOT PENDING (--no-reboot) for ${r.rebootPending.step}: ${r.rebootPending.why}; the steps after it did not run: reboot, then run again`);
    out.push(`${r.host}: ${r.summary.changed} ${dryRun ? 'would change' : 'changed'}, ${r.summary.unchanged} unchanged, ${r.summary.failed} failed (${r.durationMs} ms, ${r.roundTrips} round trips)`);
  }
  return out.join('\n');
}

export function provisionExitCode(reports: readonly HostProvisionReport[]): number {
  return worstExitCode(reports.map((r) => r.error?.exitCode ?? (r.ok ? ExitCode.ok : ExitCode.provisionFailed)));
}

export function validateTargets(flags: ProvisionFlags): (string | null)[] {
  if (flags.local && flags.host?.length) throw new UsageError('--local and --host exclude each other');
  if (!flags.local && !flags.host?.length) throw new UsageError('name the hosts to provision with --host, or --local for this machine');
  checkHostSpecs(flags.host ?? []);
  return flags.local ? [null] : (flags.host as string[]);
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** One line per host as soon as it is done: how it went, in a form grep can use. */
export function hostLine(r: HostProvisionReport, dryRun: boolean): string {
  if (r.error) return `${r.host}  ${r.error.code === 'NOT_RUN' ? 'NOT RUN' : 'FAILED'}  ${r.error.code}: ${r.error.message}`;
  const verdict = r.ok ? 'ok' : 'FAILED';
  return `${r.host}  ${verdict}  ${r.summary.changed} ${dryRun ? 'would change' : 'changed'}, ${r.summary.unchanged} unchanged, ${r.summary.failed} failed  ${seconds(r.durationMs)}`;
}

/** The fleet's totals: hosts ok, failed and not run (naming the failed), and steps changed. */
export function fleetSummary(rollout: RolloutReport, dryRun: boolean): { line: string; counts: { ok: number; failed: number; notRun: number; changed: number } } {
  const notRun = rollout.reports.filter((r) => r.error?.code === 'NOT_RUN');
  const failed = rollout.reports.filter((r) => !r.ok && r.error?.code !== 'NOT_RUN');
  const ok = rollout.reports.filter((r) => r.ok);
  const changed = rollout.reports.reduce((n, r) => n + r.summary.changed, 0);
  const named = (list: readonly HostProvisionReport[]): string => (list.length ? ` (${list.slice(0, 10).map((r) => r.host).join(', ')}${list.length > 10 ? ', ...' : ''})` : '');
  const batches = rollout.batches.length > 1 ? ` in ${rollout.batches.length} batches` : '';
  const line = `fleet: ${rollout.reports.length} hosts${batches}: ${ok.length} ok, ${failed.length} failed${named(failed)}, ${notRun.length} not run${named(notRun)}; ${changed} steps ${dryRun ? 'would change' : 'changed'}${rollout.stopped ? `; ${rollout.stopped}` : ''}`;
  return { line, counts: { ok: ok.length, failed: failed.length, notRun: notRun.length, changed } };
}

/** A fleet event as one NDJSON object: what happened, never a diff or file content. */
export function eventJson(event: FleetEvent): object {
  if (event.type === 'step-end') {
    const r = event.report;
    return { type: 'step-end', host: event.host, step: r.id, status: r.status, why: r.why, changes: r.actions.length, durationMs: r.durationMs, ...(r.error ? { error: r.error } : {}) };
  }
  if (event.type === 'host-end') {
    const r = event.report;
    return { type: 'host-end', host: r.host, target: r.target, ok: r.ok, summary: r.summary, roundTrips: r.roundTrips, durationMs: r.durationMs, ...(r.error ? { error: r.error } : {}) };
  }
  return event;
}
