import { ExitCode } from '../core/errors.js';
import type { HostReport } from '../engine/check.js';

/** How bad each exit code is when hosts disagree: a changed host key outranks everything (README: exit codes). */
const severity: Readonly<Record<number, number>> = {
  [ExitCode.ok]: 0, [ExitCode.requirementFailed]: 1, [ExitCode.benchIncomplete]: 2, [ExitCode.provisionFailed]: 2,
  [ExitCode.usage]: 3, [ExitCode.internal]: 3, [ExitCode.unreachable]: 4, [ExitCode.hostKey]: 5,
};

/** The most serious of several hosts' exit codes. */
export function worstExitCode(codes: readonly number[]): number {
  return codes.reduce((worst, c) => ((severity[c] ?? 3) > (severity[worst] ?? 3) ? c : worst), ExitCode.ok as number);
}

/** A requirement fails -> 3 (only when profiles were named); unreachable or refused -> 4; host key changed -> 5. */
export function exitCodeFor(reports: readonly HostReport[], judged: boolean): number {
  return worstExitCode(reports.map((r) => (!r.ok ? r.error.exitCode : judged && r.profiles.some((p) => p.status === 'fail') ? ExitCode.requirementFailed : ExitCode.ok)));
}
