import { ZanuriError, errorView } from '../core/errors.js';
import { connect, type ConnectOptions } from '../transport/connect.js';
import { gatherHostFacts } from '../facts/host.js';
import type { HostFacts } from '../facts/types.js';
import { judgeProfile, type ProfileVerdict } from '../profiles/judge.js';
import type { Profile } from '../profiles/types.js';
import { defaultConcurrency } from './defaults.js';
import { mapPool } from './pool.js';

export interface TierSummary {
  system: string;
  /** Profiles of this system whose required checks all pass, lowest tier first. */
  met: string[];
  /** The profile of the highest tier met, or null. */
  highest: string | null;
}

export type HostReport =
  | { host: string; target: string; ok: true; durationMs: number; roundTrips: number; facts: HostFacts; profiles: ProfileVerdict[]; tiers: TierSummary[] }
  | { host: string; ok: false; durationMs: number; error: { code: string; message: string; hint?: string; exitCode: number } };

export function summariseTiers(verdicts: readonly ProfileVerdict[]): TierSummary[] {
  const systems = new Map<string, ProfileVerdict[]>();
  for (const v of verdicts) systems.set(v.system, [...(systems.get(v.system) ?? []), v]);
  return [...systems].map(([system, list]) => {
    const met = list.filter((v) => v.status !== 'fail').sort((a, b) => a.rank - b.rank).map((v) => v.profile);
    return { system, met, highest: met.at(-1) ?? null };
  });
}

export function judgeAll(facts: HostFacts, profiles: readonly Profile[]): { profiles: ProfileVerdict[]; tiers: TierSummary[] } {
  const verdicts = profiles.map((p) => judgeProfile(facts, p));
  return { profiles: verdicts, tiers: summariseTiers(verdicts) };
}

/** Checks one host: connect, one probe round trip, judge. Failures become a report, not a throw. */
export async function checkHost(host: string | null, profiles: readonly Profile[], options: ConnectOptions): Promise<HostReport> {
  const started = performance.now();
  const name = host ?? 'local';
  try {
    const transport = await connect(host, options);
    try {
      const facts = await gatherHostFacts(transport);
      return { host: name, target: transport.target, ok: true, durationMs: Math.round(performance.now() - started), roundTrips: transport.roundTrips, facts, ...judgeAll(facts, profiles) };
    } finally {
      await transport.close();
    }
  } catch (error) {
    if (!(error instanceof ZanuriError)) throw error;
    return {
      host: name, ok: false, durationMs: Math.round(performance.now() - started),
      error: errorView(error),
    };
  }
}

/** Checks hosts in parallel, at most `concurrency` at a time, reports in the order given. */
export async function checkHosts(hosts: readonly (string | null)[], profiles: readonly Profile[], options: ConnectOptions & { concurrency?: number }): Promise<HostReport[]> {
  return mapPool(hosts, options.concurrency ?? defaultConcurrency, (host) => checkHost(host, profiles, options));
}
