/**
 * The monitoring server's scrape jobs from the fleet itself: every host of the inventory, the
 * exporter steps its playbook runs and the ports they serve. An operator's own `prometheus.jobs`
 * (playbook, profile, zanuri_set or --set) always wins over these.
 */
import type { SelectedStep } from './provision.js';

/** The exporter steps, and the job their port is scraped under. */
export const exporterJobs: Readonly<Record<string, string>> = {
  'node-exporter': 'node', 'postgres-exporter': 'postgres', 'redis-exporter': 'redis', 'dcgm-exporter': 'dcgm',
};

export interface FleetHost {
  /** How the monitoring server reaches the host: the inventory's ansible_host, else its name. */
  address: string;
  selected: readonly Pick<SelectedStep, 'step' | 'params'>[];
  /** The host's profile requires a GPU: only then is the DCGM exporter scraped (it skips itself elsewhere, and a target that never answers is an alert). */
  gpu: boolean;
}

/** `[user@]host[:port]` or `[v6]:port` to the bare address, lower case (DNS names are). */
export function addressOf(spec: string): string {
  const host = spec.replace(/^[^@]*@/, '');
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(host);
  if (v6?.[1]) return v6[1].toLowerCase();
  return (host.split(':').length === 2 ? host.replace(/:\d+$/, '') : host).toLowerCase();
}

const target = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

export function fleetScrapeJobs(hosts: readonly FleetHost[]): Array<{ name: string; targets: string[] }> {
  const jobs = new Map<string, Set<string>>();
  for (const host of hosts) {
    for (const { step, params } of host.selected) {
      const job = exporterJobs[step.id];
      if (!job || (job === 'dcgm' && !host.gpu)) continue;
      const targets = jobs.get(job) ?? new Set<string>();
      for (const served of step.serves?.(params) ?? []) targets.add(target(host.address, served.port));
      jobs.set(job, targets);
    }
  }
  const order = Object.values(exporterJobs);
  return [...jobs].filter(([, t]) => t.size).sort(([a], [b]) => order.indexOf(a) - order.indexOf(b)).map(([name, t]) => ({ name, targets: [...t].sort() }));
}
