/**
 * Runs `fn` over `items` with at most `limit` calls in flight; results come back in the order of
 * `items`, whatever order the calls finish in.
 *
 * Contract on failure: the callers turn every expected failure (unreachable host, failed step) into a
 * report, so a rejection means a bug. After the first rejection no new item starts, the calls already
 * in flight run to the end (so none outlives this call with a connection open), and then the
 * promise rejects with that first error.
 */
export async function mapPool<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`a pool needs a whole number of workers, at least 1; got ${limit}`);
  const results: R[] = new Array(items.length);
  let next = 0;
  const errors: unknown[] = [];
  const worker = async (): Promise<void> => {
    while (errors.length === 0 && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T, index);
      } catch (error) {
        errors.push(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length) throw errors[0];
  return results;
}

/**
 * Hosts worked on at once when the operator does not say (--forks). A host mostly waits on the
 * network and on itself, so this is far above the cores; the bound is this process's memory and
 * the handshakes' CPU: 8 per core, at least 10, at most 50 (50 hosts stay under 200 MB, measured).
 */
export function defaultForks(cores: number): number {
  return Math.min(50, Math.max(10, cores * 8));
}

/**
 * Ansible's `serial`: batch sizes for a rolling run over `total` hosts. A number is a batch size;
 * `N%` is that share of all hosts, rounded down, at least 1. Without one, a single batch.
 */
export function batchSizes(total: number, serial: string | number | undefined): number[] {
  if (total === 0) return [];
  let size = total;
  if (serial !== undefined) {
    const text = String(serial).trim();
    const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
    const n = percent ? Math.floor((total * Number(percent[1])) / 100) : Number(text);
    if (percent ? Number(percent[1]) <= 0 || Number(percent[1]) > 100 : !Number.isInteger(n) || n < 1) {
      throw new RangeError(`serial must be a positive whole number or a percentage from 1% to 100%, got "${text}"`);
    }
    size = Math.min(total, Math.max(1, n));
  }
  const sizes: number[] = [];
  for (let left = total; left > 0; left -= size) sizes.push(Math.min(size, left));
  return sizes;
}
