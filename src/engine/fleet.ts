import type { Templates } from '../core/content.js';
import type { BenchmarkTarget } from '../profiles/types.js';
import type { ConnectOptions } from '../transport/connect.js';
import { bench, type BenchReport } from './bench.js';
import { defaultBenchEndpoint, defaultConcurrency, provisionBenchDefaults } from './defaults.js';
import { batchSizes, mapPool } from './pool.js';
import { orderSteps, provisionHost, type HostBounds, type HostProvisionReport, type ProvisionEvent, type SelectedStep } from './provision.js';
import { checkHost, type HostReport } from './check.js';
import type { Profile } from '../profiles/types.js';
import { ExitCode } from '../core/errors.js';

export interface FleetOptions {
  dryRun: boolean;
  templates: Templates;
  connect: ConnectOptions;
  /** Hosts provisioned at once. */
  concurrency?: number;
  /** --no-reboot: stop at the first step that needs a reboot and say it is pending. */
  noReboot?: boolean;
  /** Per-host deadline and host-lock wait, over ZANURI_HOST_TIMEOUT and ZANURI_HOST_LOCK_WAIT. */
  bounds?: Partial<HostBounds>;
  onEvent?: (event: ProvisionEvent) => void;
  /** Each host's report as soon as that host is done, before the others may be. */
  onHostDone?: (report: HostProvisionReport) => void;
}

/** The step lines every host reports, in order: the shared packages step first when any step needs packages. */
export function reportedStepIds(selected: readonly SelectedStep[]): string[] {
  return [...(selected.some((s) => s.step.packages) ? ['packages'] : []), ...orderSteps(selected).map((s) => s.step.id)];
}

/** Provisions hosts (null: this machine) in parallel, bounded; reports in the order given. */
export function provisionHosts(hosts: readonly (string | null)[], selected: readonly SelectedStep[], options: FleetOptions): Promise<HostProvisionReport[]> {
  return mapPool(hosts, options.concurrency ?? defaultConcurrency, async (host) => {
    const report = await provisionHost(host, selected, {
      dryRun: options.dryRun,
      connect: options.connect,
      templates: options.templates,
      ...(options.noReboot ? { noReboot: true } : {}),
      ...(options.bounds ? { bounds: options.bounds } : {}),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
    });
    options.onHostDone?.(report);
    return report;
  });
}

export interface HostBench {
  host: string;
  report: BenchReport;
  /** Why the benchmark did not run: no model server answers yet, which is normal right after provisioning. */
  skipped: string | null;
}

export interface HostBenchOptions {
  /** The model server as each host sees it. */
  endpoint?: string;
  connect: ConnectOptions;
  onProgress?: (message: string) => void;
  /** Each host's outcome as soon as it is measured. */
  onBench?: (result: HostBench) => void;
}

/**
 * The last act of provisioning when the profile has benchmark targets: benchmarks the model server of
 * each host that converged, one host at a time so the measurements do not share this machine's
 * network and CPU. Load levels are the concurrencies the targets name.
 */
export function benchProvisioned(reports: readonly HostProvisionReport[], hosts: readonly (string | null)[], targets: readonly BenchmarkTarget[], options: HostBenchOptions): Promise<HostBench[]> {
  const concurrency = [...new Set(targets.flatMap((b) => (b.concurrency && b.concurrency > 1 ? [b.concurrency] : [])))].sort((a, b) => a - b);
  const converged = hosts.filter((_, index) => reports[index]?.ok);
  return mapPool(converged, 1, async (host) => {
    const report = await bench({
      ...provisionBenchDefaults, host, endpoint: options.endpoint ?? defaultBenchEndpoint, api: 'ollama',
      concurrency, latencyTargets: {}, targets: [...targets], connect: options.connect,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
    const result = { host: host ?? 'local', report, skipped: report.error?.code === 'UNREACHABLE' ? report.error.message : null };
    options.onBench?.(result);
    return result;
  });
}

/** One host of a fleet: the name reports show, how to reach it, and (for provision) its own steps. */
export interface FleetTarget {
  name: string;
  /** `[user@]host[:port]`, or null for this machine. */
  spec: string | null;
  connect: ConnectOptions;
}

export interface ProvisionTarget extends FleetTarget {
  selected: readonly SelectedStep[];
  templates: Templates;
}

export type FleetEvent =
  | { type: 'run-start'; hosts: string[]; batches: number[] }
  | { type: 'batch-start'; batch: number; hosts: string[] }
  | { type: 'host-start'; host: string; batch: number }
  | ProvisionEvent
  | { type: 'host-end'; host: string; report: HostProvisionReport }
  | { type: 'batch-end'; batch: number; size: number; failed: number; stop: string | null };

export interface RolloutOptions {
  dryRun: boolean;
  /** Hosts worked on at once. */
  forks: number;
  /** Rolling batches (Ansible's serial): a size or a percentage of all hosts. */
  serial?: string | number;
  /** Stop the rollout when more than this share of a batch fails (Ansible's max_fail_percentage). */
  maxFailPercent?: number;
  /** --no-reboot: each host stops at the first step that needs a reboot and says it is pending. */
  noReboot?: boolean;
  /** Per-host deadline and host-lock wait, over ZANURI_HOST_TIMEOUT and ZANURI_HOST_LOCK_WAIT. */
  bounds?: Partial<HostBounds>;
  onEvent?: (event: FleetEvent) => void;
}

export interface RolloutReport {
  reports: HostProvisionReport[];
  batches: number[];
  /** Why the rollout stopped before its last batch, or null. */
  stopped: string | null;
}

/** A host the rollout never reached because an earlier batch failed too much. */
function notRun(target: ProvisionTarget, dryRun: boolean, why: string): HostProvisionReport {
  return {
    host: target.name, target: target.spec ?? 'local', ok: false, dryRun, steps: [], summary: { changed: 0, unchanged: 0, failed: 0 }, roundTrips: 0, durationMs: 0, reboots: [],
    error: { code: 'NOT_RUN', message: why, exitCode: ExitCode.provisionFailed },
  };
}

/**
 * Provisions a fleet: batch after batch (all hosts in one batch without serial), each batch with at
 * most `forks` hosts at once. A host that fails never stops the others of its batch; the rollout
 * stops after a batch in which more than maxFailPercent of the hosts failed (with serial and no
 * maxFailPercent: when every host of a batch failed, as Ansible does).
 */
export async function provisionFleet(targets: readonly ProvisionTarget[], options: RolloutOptions): Promise<RolloutReport> {
  const batches = batchSizes(targets.length, options.serial);
  const emit = options.onEvent ?? (() => undefined);
  emit({ type: 'run-start', hosts: targets.map((t) => t.name), batches });
  const reports: HostProvisionReport[] = [];
  let stopped: string | null = null;
  let offset = 0;
  for (const [index, size] of batches.entries()) {
    const batch = targets.slice(offset, offset + size);
    offset += size;
    if (stopped) {
      reports.push(...batch.map((t) => notRun(t, options.dryRun, `not run: ${stopped}`)));
      continue;
    }
    emit({ type: 'batch-start', batch: index + 1, hosts: batch.map((t) => t.name) });
    const done = await mapPool(batch, options.forks, async (target) => {
      emit({ type: 'host-start', host: target.name, batch: index + 1 });
      const raw = await provisionHost(target.spec, target.selected, {
        dryRun: options.dryRun, connect: target.connect, templates: target.templates,
        ...(options.noReboot ? { noReboot: true } : {}),
        ...(options.bounds ? { bounds: options.bounds } : {}),
        onEvent: (event) => emit(event.type === 'step-end' ? { ...event, host: target.name } : { ...event, host: target.name }),
      });
      const report = { ...raw, host: target.name };
      emit({ type: 'host-end', host: target.name, report });
      return report;
    });
    reports.push(...done);
    const failed = done.filter((r) => !r.ok).length;
    const limit = options.maxFailPercent;
    const tooMany = limit !== undefined ? (failed / size) * 100 > limit : options.serial !== undefined && failed === size;
    if (tooMany && index < batches.length - 1) {
      stopped = `the rollout stopped after batch ${index + 1}: ${failed} of its ${size} hosts failed${limit !== undefined ? ` (more than ${limit}%)` : ''}`;
    }
    emit({ type: 'batch-end', batch: index + 1, size, failed, stop: tooMany && index < batches.length - 1 ? stopped : null });
  }
  return { reports, batches, stopped };
}

export interface CheckTarget extends FleetTarget {
  profiles: readonly Profile[];
}

/** Checks a fleet, at most `forks` hosts at once, each against its own profiles; reports in the order given. */
export function checkFleet(targets: readonly CheckTarget[], forks: number, onHostDone?: (report: HostReport) => void): Promise<HostReport[]> {
  return mapPool(targets, forks, async (target) => {
    const report = { ...(await checkHost(target.spec, target.profiles, target.connect)), host: target.name };
    onHostDone?.(report);
    return report;
  });
}
