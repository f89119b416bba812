import type { Templates } from '../core/content.js';
import type { BenchmarkTarget } from '../profiles/types.js';
import type { ConnectOptions } from '../transport/connect.js';
import { bench, type BenchReport } from './bench.js';
import { defaultBenchEndpoint, defaultConcurrency, provisionBenchDefaults } from './defaults.js';
import { mapPool } from './pool.js';
import { orderSteps, provisionHost, type HostProvisionReport, type ProvisionEvent, type SelectedStep } from './provision.js';

export interface FleetOptions {
  dryRun: boolean;
  templates: Templates;
  connect: ConnectOptions;
  /** Hosts provisioned at once. */
  concurrency?: number;
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
