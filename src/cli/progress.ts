import { Listr } from 'listr2';
import type { HostProvisionReport, ProvisionEvent, StepReport } from '../engine/provision.js';
import { shortWhy } from './provision.js';

const label: Record<StepReport['status'], string> = {
  changed: 'changed', unchanged: 'unchanged', 'would-change': 'would change', failed: 'failed', 'rolled-back': 'rolled back', 'not-run': 'not run',
};

/**
 * Live progress on a terminal: one listr2 line per step of each host, showing its status and time.
 * The engine reports through events; each line waits for its step's event, or for the host's
 * final report when the step never ran.
 */
export class TtyProgress {
  readonly #waiters = new Map<string, (report: StepReport) => void>();
  readonly #pending = new Map<string, Promise<StepReport>>();
  readonly #done: Promise<unknown>;

  constructor(hosts: readonly string[], stepIds: readonly string[]) {
    for (const host of hosts) {
      for (const id of stepIds) {
        this.#pending.set(`${host}\0${id}`, new Promise((resolve) => this.#waiters.set(`${host}\0${id}`, resolve)));
      }
    }
    const list = new Listr(hosts.map((host) => ({
      title: host,
      task: (_: unknown, task) => task.newListr(stepIds.map((id) => ({
        title: id,
        task: async (_ctx: unknown, line) => {
          const report = await (this.#pending.get(`${host}\0${id}`) as Promise<StepReport>);
          line.title = `${id}: ${label[report.status]} (${report.durationMs} ms) — ${shortWhy(report)}`;
          if (report.status === 'failed' || report.status === 'rolled-back') throw new Error(line.title);
        },
      })), { concurrent: false, exitOnError: false }),
    })), { concurrent: true, exitOnError: false, rendererOptions: { collapseSubtasks: false, collapseErrors: false } });
    this.#done = list.run().catch(() => undefined);
  }

  onEvent(event: ProvisionEvent): void {
    if (event.type === 'step-end') this.#waiters.get(`${event.host}\0${event.report.id}`)?.(event.report);
  }

  /** Settles every line the host's run never reached (connection failures, steps not run). */
  finishHost(report: HostProvisionReport): void {
    for (const [key, resolve] of this.#waiters) {
      if (!key.startsWith(`${report.host}\0`)) continue;
      const id = key.slice(report.host.length + 1);
      const step = report.steps.find((s) => s.id === id);
      resolve(step ?? { id, title: id, status: 'not-run', why: report.error?.message ?? 'not run', actions: [], durationMs: 0 });
    }
  }

  done(): Promise<unknown> {
    return this.#done;
  }
}
