import { availableParallelism } from 'node:os';
import type { ChalkInstance } from 'chalk';
import { ExitCode, UsageError } from '../core/errors.js';
import { terminalSafe } from '../core/terminal.js';
import type { AuditOptions, HostAuditReport, Severity } from '../engine/audit.js';
import { defaultForks, mapPool } from '../engine/pool.js';
import type { SelectedStep } from '../engine/provision.js';
import { worstExitCode } from './exit-code.js';
import type { FleetFlags } from './fleet.js';
import { connectOptions, type SshFlags } from './ssh-options.js';

export interface AuditFlags extends SshFlags, FleetFlags {
  profile?: string;
  playbook?: string;
  set?: string[];
  only?: string[];
  skip?: string[];
  json?: boolean;
  failOn?: Severity | 'none';
  templates?: string;
  forks?: number;
  concurrency?: number;
}

/** The playbook audit judges when neither --profile nor --playbook is given: the profiles' default. */
export const defaultAuditPlaybook = 'hardened';

const levels = ['info', 'low', 'medium', 'high', 'critical'] as const;

/**
 * A key line that no agent holds: the deploy user's keys are a parameter audit cannot know unless
 * it is given, so without one the authorized_keys file is not judged (and the report says so).
 */
const placeholderKey = 'ssh-ed25519 AAAAzanuriAuditNoOperatorKeyGiven zanuri-audit';

/** The steps to judge, parsed exactly as provision parses them (before any connection). */
async function selectionFor(flags: AuditFlags, profile: string | undefined, sets: readonly string[]): Promise<{ selected: SelectedStep[]; ignore: NonNullable<AuditOptions['ignore']>; templates: AuditOptions['templates'] }> {
  const { selectSteps } = await import('./provision.js');
  const { loadPlaybook } = await import('../profiles/playbook.js');
  const playbook = flags.playbook ?? (profile ? undefined : defaultAuditPlaybook);
  const all = [...sets, ...(flags.set ?? [])];
  const keysGiven = all.some((s) => s.startsWith('deploy-user.authorizedKeys='));
  let hasDeployUser = false;
  if (playbook) hasDeployUser = (await loadPlaybook(playbook)).steps.some((s) => s.step === 'deploy-user');
  else hasDeployUser = true; // a profile's playbook: the placeholder is harmless where there is no deploy-user step
  const skipKeys = hasDeployUser && !keysGiven && !(flags.skip ?? []).includes('deploy-user') && (!flags.only?.length || flags.only.includes('deploy-user'));
  const withKeys = skipKeys ? [...all, `deploy-user.authorizedKeys=${JSON.stringify([placeholderKey])}`] : all;
  let sel;
  try {
    sel = await selectSteps({ ...(profile ? { profile } : {}), ...(playbook ? { playbook } : {}), set: withKeys, ...(flags.only ? { only: flags.only } : {}), ...(flags.skip ? { skip: flags.skip } : {}), ...(flags.templates ? { templates: flags.templates } : {}) });
  } catch (error) {
    // A profile whose playbook has no deploy-user step: the placeholder named a step that is not there.
    if (skipKeys && !playbook && error instanceof UsageError && /deploy-user/.test(error.message)) {
      sel = await selectSteps({ ...(profile ? { profile } : {}), set: all, ...(flags.only ? { only: flags.only } : {}), ...(flags.skip ? { skip: flags.skip } : {}), ...(flags.templates ? { templates: flags.templates } : {}) });
      return { selected: sel.selected, ignore: [], templates: sel.templates };
    }
    throw error;
  }
  const ignore = skipKeys && sel.selected.some((s) => s.step.id === 'deploy-user')
    ? [{ rule: 'step:deploy-user', resource: /authorized_keys$/, why: 'deploy-user: the operator\'s keys were not given (--set deploy-user.authorizedKeys=@key.pub), so authorized_keys is not judged' }]
    : [];
  return { selected: sel.selected, ignore, templates: sel.templates };
}

/** Audits every named host; each host's profile (flag, inventory, or the default playbook) decides its rules. */
export async function runAudit(flags: AuditFlags, warn: (line: string) => void): Promise<{ reports: HostAuditReport[]; exitCode: number; listed?: string[] }> {
  if (flags.profile && flags.playbook) throw new UsageError('name at most one of --profile or --playbook');
  const failOn = flags.failOn ?? 'high';
  const { resolveHosts } = await import('./fleet.js');
  const options = connectOptions(flags);
  const resolved = await resolveHosts(flags, options, warn);
  const hosts = resolved ?? [{ name: 'local', spec: null, connect: options, profile: null, sets: [] as string[], become: true, loginIsRoot: true }];
  if (flags.listHosts) return { reports: [], exitCode: ExitCode.ok, listed: hosts.map((h) => h.name) };
  // Every selection is parsed before the first connection: a bad --set or profile stops the run here.
  const selections = new Map<string, Awaited<ReturnType<typeof selectionFor>>>();
  for (const h of hosts) {
    const profile = flags.profile ?? (flags.playbook ? undefined : h.profile ?? undefined);
    const key = JSON.stringify([profile ?? null, h.sets]);
    if (!selections.has(key)) selections.set(key, await selectionFor(flags, profile, h.sets));
  }
  const { auditHost, failsAt } = await import('../engine/audit.js');
  const reports = await mapPool(hosts, flags.concurrency ?? flags.forks ?? defaultForks(availableParallelism()), (h) => {
    const profile = flags.profile ?? (flags.playbook ? undefined : h.profile ?? undefined);
    const sel = selections.get(JSON.stringify([profile ?? null, h.sets]));
    if (!sel) throw new Error('bug: no selection for a host');
    return auditHost(h.spec, sel.selected, { connect: h.connect, templates: sel.templates, ignore: sel.ignore }).then((r) => (h.spec === null ? r : { ...r, host: h.name }));
  });
  const exitCode = worstExitCode(reports.map((r) => r.error?.exitCode ?? (failOn !== 'none' && failsAt(r.findings, failOn) ? ExitCode.requirementFailed : ExitCode.ok)));
  return { reports, exitCode };
}

const label: Record<Severity, string> = { critical: 'CRITICAL', high: 'HIGH', medium: 'MEDIUM', low: 'low', info: 'info' };

export function renderAudit(c: ChalkInstance, reports: readonly HostAuditReport[]): string {
  const colour: Record<Severity, (s: string) => string> = { critical: c.red.bold, high: c.red, medium: c.yellow, low: c.cyan, info: c.dim };
  const out: string[] = [];
  for (const r of reports) {
    if (r.error) {
      out.push(`${r.host}  ${r.error.code}  ${r.error.message}${r.error.hint ? `\n  hint: ${r.error.hint}` : ''}`);
      continue;
    }
    const counts = levels.slice().reverse().filter((s) => r.counts[s]).map((s) => `${r.counts[s]} ${s}`).join(', ') || 'no findings';
    out.push(`${c.bold(r.host)}  score ${r.score}/100  ${counts}  (${r.steps.join(', ')}; ${r.roundTrips} round trip${r.roundTrips === 1 ? '' : 's'}, ${r.durationMs} ms)`);
    for (const f of r.findings) {
      out.push(`  ${colour[f.severity](label[f.severity].padEnd(8))}  ${f.title}`);
      for (const e of f.evidence) out.push(`            ${c.dim(e)}`);
      if (f.fix) out.push(`            fix: ${f.fix.how}`);
    }
    for (const n of r.notJudged) out.push(`  ${c.dim(`not judged: ${n}`)}`);
  }
  return terminalSafe(out.join('\n'));
}
