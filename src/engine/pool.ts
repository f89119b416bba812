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
