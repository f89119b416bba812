import type { FactRequest, FactValues } from '../../../src/facts/state.js';

/** Fact values for plan() tests: each request's captured output, parsed by the request's own parser. */
export function factsOf(entries: Array<[FactRequest<unknown>, string]>): FactValues {
  const values = new Map(entries.map(([request, output]) => [request.key, request.parse(output)]));
  return {
    get<T>(request: FactRequest<T>): T {
      if (!values.has(request.key)) throw new Error(`test gave no output for ${request.key}`);
      return values.get(request.key) as T;
    },
  };
}

export const b64 = (text: string): string => Buffer.from(text).toString('base64');
