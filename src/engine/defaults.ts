/**
 * Numbers the engine and the CLI's flags share. Nothing is imported here, so cli/main.ts can read
 * them for its --help text without loading any of the engine.
 */

/** Hosts checked or provisioned at once when the operator does not say. */
export const defaultConcurrency = 16;

/** The model server as the host itself sees it (Ollama's default port). */
export const defaultBenchEndpoint = 'http://127.0.0.1:11434';

/** What each request and each load level of a benchmark asks of the model server. */
const load = {
  maxTokens: 128,
  promptWords: 64,
  requestsPerLevel: 20,
  levelMaxMs: 120_000,
  timeoutMs: 300_000,
  /** A measured request with no token this long failed (queueing at high concurrency included). */
  firstTokenMs: 60_000,
  /** Tokens that stop this long mean a stalled server: reported in seconds, not minutes. */
  stallMs: 10_000,
  /** A closed load level measures at least this many times its concurrency, so it holds it. */
  roundsPerLevel: 3,
} as const;

/** `zanuri bench`, unless flags say otherwise. Concurrency 1 is the single-stream run. */
export const benchDefaults = { ...load, warmup: 2, singleStreamRequests: 5, concurrency: [1, 4] } as const;

/** The benchmark after provisioning: a shorter start; its load levels come from the profile's targets. */
export const provisionBenchDefaults = { ...load, warmup: 1, singleStreamRequests: 3 } as const;
