/**
 * Incremental parsers for streamed inference responses. They take raw byte chunks as they arrive
 * (a chunk may end mid-line or mid-UTF-8 character) and emit one event per token chunk, so the
 * client timestamps tokens when they arrive, not when the response ends.
 */
export interface TokenEvent {
  kind: 'token';
  /** Text of this chunk (may be empty for a role-only delta). */
  text: string;
  /**
   * reasoning: a thinking model's reasoning text (OpenAI-compatible `reasoning_content` from vLLM,
   * llama.cpp and DeepSeek, `reasoning` from newer vLLM and Ollama's /v1, Ollama's native `thinking`).
   * It is generated and timed like any token; absent means answer text.
   */
  channel?: 'reasoning';
}

/** Ollama's final line: server-side timings in nanoseconds. */
export interface OllamaDone {
  kind: 'done';
  totalDurationNs: number | null;
  loadDurationNs: number | null;
  promptEvalCount: number | null;
  promptEvalDurationNs: number | null;
  evalCount: number | null;
  evalDurationNs: number | null;
}

/** OpenAI-style usage chunk (stream_options.include_usage) or the [DONE] sentinel. */
export interface UsageEvent {
  kind: 'usage';
  promptTokens: number | null;
  completionTokens: number | null;
}

export interface EndEvent {
  kind: 'end';
}

export interface ErrorEvent {
  kind: 'error';
  message: string;
}

export type StreamEvent = TokenEvent | OllamaDone | UsageEvent | EndEvent | ErrorEvent;

/** Splits a byte stream into lines without copying more than the unfinished tail. */
class LineSplitter {
  readonly #decoder = new TextDecoder('utf-8');
  #tail = '';

  push(chunk: Uint8Array, onLine: (line: string) => void): void {
    const text = this.#tail + this.#decoder.decode(chunk, { stream: true });
    let start = 0;
    for (let nl = text.indexOf('\n', start); nl >= 0; nl = text.indexOf('\n', start)) {
      onLine(text.charCodeAt(nl - 1) === 13 ? text.slice(start, nl - 1) : text.slice(start, nl));
      start = nl + 1;
    }
    this.#tail = text.slice(start);
  }

  flush(onLine: (line: string) => void): void {
    const rest = this.#tail + this.#decoder.decode();
    this.#tail = '';
    if (rest.trim()) onLine(rest);
  }
}

/**
 * The message of an error body, whatever the server's shape: Ollama `{"error":"..."}`, OpenAI and
 * llama.cpp `{"error":{"message":"..."}}`, vLLM `{"object":"error","message":"...","type":...,"code":400}`,
 * FastAPI `{"detail":"..."}` or `{"detail":[{"msg":"..."}]}`. null when the object is not an error.
 */
export function errorMessage(data: unknown): string | null {
  if (typeof data !== 'object' || data === null) return null;
  const d = data as Record<string, unknown>;
  const error = d['error'];
  if (typeof error === 'string' && error) return error;
  if (typeof error === 'object' && error !== null) {
    const m = (error as Record<string, unknown>)['message'];
    return typeof m === 'string' && m ? m : JSON.stringify(error).slice(0, 300);
  }
  if (d['object'] === 'error' && typeof d['message'] === 'string') return d['message'];
  const detail = d['detail'];
  if (typeof detail === 'string' && detail) return detail;
  if (Array.isArray(detail) && detail.length) {
    return detail.map((x) => (typeof x === 'object' && x !== null && typeof (x as { msg?: unknown }).msg === 'string' ? (x as { msg: string }).msg : JSON.stringify(x))).join('; ').slice(0, 300);
  }
  return null;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** A streaming format made of lines: each parser says what one complete line means. */
abstract class LineParser {
  readonly #lines = new LineSplitter();

  push(chunk: Uint8Array, emit: (event: StreamEvent) => void): void {
    this.#lines.push(chunk, (line) => this.line(line, emit));
  }

  end(emit: (event: StreamEvent) => void): void {
    this.#lines.flush((line) => this.line(line, emit));
  }

  protected abstract line(line: string, emit: (event: StreamEvent) => void): void;
}

/** Ollama /api/generate and /api/chat: one JSON object per line. */
export class NdjsonParser extends LineParser {
  protected line(line: string, emit: (event: StreamEvent) => void): void {
    if (!line.trim()) return;
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(line) as Record<string, unknown>;
    } catch {
      emit({ kind: 'error', message: `unparseable line from the server: ${line.slice(0, 120)}` });
      return;
    }
    const error = errorMessage(data);
    if (error !== null) {
      emit({ kind: 'error', message: error });
      return;
    }
    const message = data['message'] as { content?: unknown; thinking?: unknown } | undefined;
    const text = typeof data['response'] === 'string' ? data['response'] : typeof message?.content === 'string' ? message.content : '';
    const thinking = typeof data['thinking'] === 'string' ? data['thinking'] : typeof message?.thinking === 'string' ? message.thinking : '';
    if (thinking) emit({ kind: 'token', text: thinking, channel: 'reasoning' });
    if (data['done'] === true) {
      if (text) emit({ kind: 'token', text });
      emit({
        kind: 'done',
        totalDurationNs: num(data['total_duration']), loadDurationNs: num(data['load_duration']),
        promptEvalCount: num(data['prompt_eval_count']), promptEvalDurationNs: num(data['prompt_eval_duration']),
        evalCount: num(data['eval_count']), evalDurationNs: num(data['eval_duration']),
      });
      emit({ kind: 'end' });
      return;
    }
    if (text || !thinking) emit({ kind: 'token', text });
  }
}

/** OpenAI-compatible streaming: server-sent events, `data: {json}` lines, `data: [DONE]` at the end. */
export class SseParser extends LineParser {
  protected line(line: string, emit: (event: StreamEvent) => void): void {
    if (!line.startsWith('data:')) return; // comments (": keep-alive"), event:, id:, blank separators
    const payload = line.slice(line.charCodeAt(5) === 32 ? 6 : 5);
    if (payload === '[DONE]') {
      emit({ kind: 'end' });
      return;
    }
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(payload) as Record<string, unknown>;
    } catch {
      emit({ kind: 'error', message: `unparseable event from the server: ${payload.slice(0, 120)}` });
      return;
    }
    const error = errorMessage(data);
    if (error !== null) {
      emit({ kind: 'error', message: error });
      return;
    }
    const choice = (data['choices'] as Array<Record<string, unknown>> | undefined)?.[0];
    if (choice) {
      const delta = choice['delta'] as { content?: unknown; reasoning_content?: unknown; reasoning?: unknown } | undefined;
      const reasoning = typeof delta?.reasoning_content === 'string' ? delta.reasoning_content : typeof delta?.reasoning === 'string' ? delta.reasoning : '';
      if (reasoning) emit({ kind: 'token', text: reasoning, channel: 'reasoning' });
      const text = typeof delta?.content === 'string' ? delta.content : typeof choice['text'] === 'string' ? choice['text'] : '';
      if (text) emit({ kind: 'token', text });
    }
    const usage = data['usage'] as { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined;
    if (usage) emit({ kind: 'usage', promptTokens: num(usage.prompt_tokens), completionTokens: num(usage.completion_tokens) });
  }
}
