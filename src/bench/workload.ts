/**
 * What the benchmark asks: prompts and output lengths, fixed, random (uniform, seeded) or taken from a
 * dataset in the ShareGPT JSON layout that vLLM's and SGLang's serving benchmarks read. The same seed
 * gives the same sequence of requests, so two runs (or zanuri and those tools) measure the same work.
 */
import { UsageError } from '../core/errors.js';

/** A length in tokens: always n, or uniform in [min, max]. */
export type LengthSpec = { kind: 'fixed'; n: number } | { kind: 'range'; min: number; max: number };

export interface WorkItem {
  prompt: string;
  maxTokens: number;
}

/** One prompt and its reference completion's length from a dataset. */
export interface DatasetEntry {
  prompt: string;
  /** Tokens of the reference completion (estimated: 4 characters a token, there is no tokenizer here). */
  outputTokens: number;
  inputTokens: number;
}

export interface WorkloadSpec {
  /** Prompt length in tokens (approximate: see promptOf). Ignored with a dataset. */
  input: LengthSpec;
  /** Output tokens per request; with a dataset, null means the dataset's own completion lengths. */
  output: LengthSpec | null;
  seed: number;
  dataset?: { name: string; entries: DatasetEntry[] };
}

/** "512" or "256-1024"; flag names the option in the error. */
export function parseLength(text: string, flag: string, max = 1_000_000): LengthSpec {
  const fixed = /^\s*(\d+)\s*$/.exec(text);
  const range = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(text);
  const bad = (): never => {
    throw new UsageError(`${flag} takes a token count (512) or a range for random lengths (256-1024), from 1 to ${max}; got "${text.replace(/[^\x20-\x7e]/g, '?').slice(0, 40)}"`);
  };
  if (fixed) {
    const n = Number(fixed[1]);
    return n >= 1 && n <= max ? { kind: 'fixed', n } : bad();
  }
  if (range) {
    const min = Number(range[1]);
    const hi = Number(range[2]);
    return min >= 1 && hi >= min && hi <= max ? (min === hi ? { kind: 'fixed', n: min } : { kind: 'range', min, max: hi }) : bad();
  }
  return bad();
}

export function describeLength(l: LengthSpec): string {
  return l.kind === 'fixed' ? `${l.n}` : `${l.min}-${l.max} (uniform)`;
}

/** A small seeded generator (LCG, Numerical Recipes constants): the same seed, the same run. */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state + 1) / 4294967297;
  };
}

const estimateTokens = (text: string): number => Math.max(1, Math.round(text.length / 4));

/**
 * Reads a ShareGPT file: an array of { conversations: [{ from: 'human', value }, { from: 'gpt', value }, ...] }.
 * As vLLM's benchmark does: the first two turns are the prompt and its reference completion; pairs
 * with fewer than 4 tokens on either side, a prompt over 1024 tokens or a total over 2048 are skipped.
 */
export function parseShareGpt(text: string, name: string): DatasetEntry[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    // JSON.parse's message quotes the text around the error: the file may be anything (--dataset /etc/shadow), so only the position is said.
    const at = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new UsageError(`--dataset ${name} is not JSON${at ? ` (at byte ${at})` : ''}; its content is not shown`, { hint: 'the ShareGPT layout is a JSON array of {"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}' });
  }
  if (!Array.isArray(data)) throw new UsageError(`--dataset ${name}: expected a JSON array of conversations (the ShareGPT layout), got ${typeof data}`);
  const entries: DatasetEntry[] = [];
  for (const item of data) {
    const turns = (item as { conversations?: unknown })?.conversations;
    if (!Array.isArray(turns) || turns.length < 2) continue;
    const [ask, answer] = turns as Array<{ from?: unknown; value?: unknown }>;
    if (typeof ask?.value !== 'string' || typeof answer?.value !== 'string') continue;
    if (ask.from !== undefined && !['human', 'user'].includes(String(ask.from))) continue;
    const inputTokens = estimateTokens(ask.value);
    const outputTokens = estimateTokens(answer.value);
    if (inputTokens < 4 || outputTokens < 4 || inputTokens > 1024 || inputTokens + outputTokens > 2048) continue;
    entries.push({ prompt: ask.value, inputTokens, outputTokens });
  }
  if (!entries.length) throw new UsageError(`--dataset ${name} has no usable conversation`, { hint: 'each entry needs "conversations" with a human turn then a gpt turn, 4 to 1024 tokens of prompt' });
  return entries;
}

/**
 * Words that are one token each in the common tokenizers (Llama, Mistral, Qwen, GPT), so a prompt of
 * n of them is about n tokens; the report shows the server's own count of prompt tokens.
 */
const vocabulary = ['the', 'of', 'and', 'to', 'in', 'is', 'that', 'for', 'it', 'as', 'with', 'on', 'be', 'at', 'by', 'this', 'from', 'or',
  'have', 'an', 'not', 'are', 'but', 'was', 'all', 'can', 'one', 'time', 'new', 'data', 'model', 'system', 'server', 'memory', 'network',
  'disk', 'request', 'stream', 'kernel', 'driver', 'queue', 'cache', 'thread', 'packet'];

/** The sequence of requests of a run; next() never repeats a generated prompt's opening words. */
export class Workload {
  readonly #spec: WorkloadSpec;
  readonly #random: () => number;
  readonly #order: number[] = [];
  #count = 0;

  constructor(spec: WorkloadSpec) {
    this.#spec = spec;
    this.#random = seeded(spec.seed ^ 0x5eed);
    const entries = spec.dataset?.entries;
    if (entries) {
      this.#order = entries.map((_, i) => i);
      // Fisher-Yates with the seeded generator: a seeded sample of the dataset, as vLLM's benchmark takes.
      for (let i = this.#order.length - 1; i > 0; i -= 1) {
        const j = Math.floor(this.#random() * (i + 1));
        [this.#order[i], this.#order[j]] = [this.#order[j] as number, this.#order[i] as number];
      }
    }
  }

  #length(l: LengthSpec): number {
    return l.kind === 'fixed' ? l.n : l.min + Math.floor(this.#random() * (l.max - l.min + 1));
  }

  next(): WorkItem {
    const i = this.#count++;
    const entries = this.#spec.dataset?.entries;
    if (entries) {
      const entry = entries[this.#order[i % entries.length] as number] as DatasetEntry;
      return { prompt: entry.prompt, maxTokens: this.#spec.output ? this.#length(this.#spec.output) : entry.outputTokens };
    }
    const words = this.#length(this.#spec.input);
    // A distinct opening (request number and a random tag), so a prefix cache cannot hide prefill.
    const head = `Request ${i} ${Math.floor(this.#random() * 1e9).toString(36)}:`;
    const body = Array.from({ length: Math.max(0, words - 3) }, () => vocabulary[Math.floor(this.#random() * vocabulary.length)]).join(' ');
    return { prompt: `${head} ${body}`.trim(), maxTokens: this.#length(this.#spec.output ?? { kind: 'fixed', n: 128 }) };
  }

  /** "input 64 tokens, output 128 tokens, seed 0" or "dataset sharegpt.json (812 conversations), ..." */
  describe(): string {
    const out = this.#spec.output ? `output ${describeLength(this.#spec.output)} tokens` : 'output lengths of the dataset\'s answers';
    const input = this.#spec.dataset ? `dataset ${this.#spec.dataset.name} (${this.#spec.dataset.entries.length} conversations)` : `input about ${describeLength(this.#spec.input)} tokens`;
    return `${input}, ${out}, seed ${this.#spec.seed}`;
  }
}
