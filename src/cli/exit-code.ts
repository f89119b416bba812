import { ExitCode } from '../core/errors.js';
import type { HostReport } from '../engine/check.js';

/** How bad each exit code is when hosts disagree: a changed host key outranks everything. */
const severity: Readonly<Record<number, number>> = {
  [ExitCode.ok]: 0, [ExitCode.requirementFailed]: 1, [ExitCode.usage]: 2, [ExitCode.internal]: 2, [ExitCode.unreachable]: 3, [ExitCode.hostKey]: 4,
};

/** A requirement fails -> 3 (only when profiles were named); unreachable or refused -> 4; host key changed -> 5. */
export function exitCodeFor(reports: readonly HostReport[], judged: boolean): number {
  const codes = reports.map((r) => (!r.ok ? r.error.exitCode : judged && r.profiles.some((p) => p.status === 'fail') ? ExitCode.requirementFailed : ExitCode.ok));
  return codes.reduce((worst, c) => ((severity[c] ?? 2) > (severity[worst] ?? 2) ? c : worst), ExitCode.ok);
}
