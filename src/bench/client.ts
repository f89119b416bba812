import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Agent } from 'node:http';
import { errorMessage, NdjsonParser, SseParser, type OllamaDone, type StreamEvent } from './stream.js';

export type Api = 'ollama' | 'openai';

export interface RequestSpec {
  api: Api;
  /** e.g. http://127.0.0.1:11434 (Ollama) or http://127.0.0.1:8000 (vLLM); no trailing path. */
  baseUrl: string;
  model: string;
  prompt: string;
  maxTokens: number;
  /** Ask the server to generate exactly maxTokens (vLLM, SGLang and llama-server honour `ignore_eos`). */
  ignoreEos?: boolean;
  /** Whole request, connection to last byte. */
  timeoutMs: number;
  /** No token this long after sending: the server accepted the request and produced nothing. */
  firstTokenMs: number;
  /** No byte this long once tokens flow: the server stalled. */
  stallMs: number;
  apiKey?: string;
  /** Keep-alive connections opened (and warmed) before the measured window; without it, a fresh connection. */
  agent?: Agent;
  /** Cancels the request (it then fails as `cut`, "cancelled"). */
  signal?: AbortSignal;
}

/**
 * Why a request failed, as an operator needs to act on it: `connect` (no answer at all: refused,
 * reset, unreachable), `http` (the server answered with an error status), `first-token` (accepted,
 * then no token in time), `stall` (tokens stopped), `timeout` (the whole request ran too long),
 * `cut` (the stream ended before the server said it was done), `stream-error` (an error event inside
 * the stream), `protocol` (bytes that are not the API's format).
 */
export type FailureKind = 'connect' | 'http' | 'first-token' | 'stall' | 'timeout' | 'cut' | 'stream-error' | 'protocol';

/** One request as the client saw it. Times are milliseconds from the moment the request was sent. */
export interface RequestResult {
  ok: boolean;
  error?: string;
  failure?: FailureKind;
  /** The HTTP status when the server answered with one. */
  status?: number;
  /** performance.now() at send, to place the request on the run's timeline. */
  startedAt: number;
  /** Time to the first generated token of any kind (reasoning included). */
  ttftMs: number | null;
  /** Time to the first token of the answer itself (equals ttftMs for a model that does not reason). */
  ttfatMs: number | null;
  e2eMs: number;
  /** Arrival time of each token chunk, reasoning and answer alike. */
  tokenTimes: number[];
  /** Chunks of reasoning text among tokenTimes. */
  reasoningChunks: number;
  /** Generated tokens, reasoning included: the server's count when it sends one, else the chunks. */
  outputTokens: number;
  promptTokens: number | null;
  /** Ollama's own timings, when the server sent them. */
  server: OllamaDone | null;
}

function body(spec: RequestSpec): { path: string; json: unknown } {
  if (spec.api === 'ollama') {
    return {
      path: '/api/generate',
      // raw: no chat template, so prompt length is what we sent; seed/temperature keep runs comparable.
      json: { model: spec.model, prompt: spec.prompt, stream: true, raw: true, options: { num_predict: spec.maxTokens, temperature: 0, seed: 1 } },
    };
  }
  return {
    path: '/v1/chat/completions',
    json: {
      model: spec.model, messages: [{ role: 'user', content: spec.prompt }], max_tokens: spec.maxTokens, temperature: 0,
      stream: true, stream_options: { include_usage: true }, ...(spec.ignoreEos ? { ignore_eos: true } : {}),
    },
  };
}

/** Node's error codes that mean no server answered at all. */
const noAnswer = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE']);

/** The message of an HTTP error body: JSON error shapes of every supported server, else its text. */
export function httpErrorMessage(status: number, text: string): string {
  let message = text.trim().replace(/\s+/g, ' ').slice(0, 300) || '(empty body)';
  try {
    message = errorMessage(JSON.parse(text)) ?? message;
  } catch { /* keep the raw text */ }
  return `HTTP ${status}: ${message}`;
}

/** Sends one streaming request and measures it; never throws and never hangs past its timeouts. */
export function runRequest(spec: RequestSpec): Promise<RequestResult> {
  const { path, json } = body(spec);
  const url = new URL(path, spec.baseUrl);
  const payload = JSON.stringify(json);
  const startedAt = performance.now();
  const tokenTimes: number[] = [];
  let reasoningChunks = 0;
  let ttfat: number | null = null;
  let server: OllamaDone | null = null;
  let usageTokens: number | null = null;
  let promptTokens: number | null = null;
  let ended = false;
  let responded = false;
  let status: number | undefined;
  let error: { kind: FailureKind; message: string } | undefined;

  return new Promise((resolve) => {
    let settled = false;
    const finish = (failure?: { kind: FailureKind; message: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(overall);
      clearTimeout(silence);
      if (failure && !error) error = failure;
      if (!error && !ended) error = { kind: 'cut', message: 'the stream ended before the server said it was done' };
      resolve({
        ok: error === undefined, ...(error ? { error: error.message, failure: error.kind } : {}), ...(status !== undefined ? { status } : {}), startedAt,
        ttftMs: tokenTimes[0] ?? null, ttfatMs: ttfat, e2eMs: performance.now() - startedAt, tokenTimes, reasoningChunks,
        outputTokens: server?.evalCount ?? usageTokens ?? tokenTimes.length,
        promptTokens: server?.promptEvalCount ?? promptTokens, server,
      });
      // A complete response leaves its keep-alive connection to the next request; anything else closes it.
      if (error) req.destroy();
    };
    const overall = setTimeout(() => finish({ kind: 'timeout', message: `timed out after ${spec.timeoutMs} ms` }), spec.timeoutMs);
    const firstTokenLimit = (): void => finish({ kind: 'first-token', message: `no token within ${spec.firstTokenMs} ms of sending the request (the server ${responded ? 'answered with headers, then' : 'accepted the connection but'} produced nothing)` });
    const stalled = (): void => finish({ kind: 'stall', message: `no data for ${spec.stallMs} ms after the tokens started: the server stalled` });
    let silence = setTimeout(firstTokenLimit, spec.firstTokenMs);
    const alive = (): void => {
      if (!tokenTimes.length) return; // before the first token, only the first-token limit applies
      clearTimeout(silence);
      silence = setTimeout(stalled, spec.stallMs);
    };
    const emit = (event: StreamEvent): void => {
      switch (event.kind) {
        case 'token':
          if (event.text) {
            const at = performance.now() - startedAt;
            tokenTimes.push(at);
            if (event.channel === 'reasoning') reasoningChunks += 1;
            else ttfat ??= at;
          }
          break;
        case 'done':
          server = event;
          break;
        case 'usage':
          usageTokens = event.completionTokens;
          promptTokens = event.promptTokens;
          break;
        case 'end':
          ended = true;
          break;
        case 'error':
          error ??= { kind: event.message.startsWith('unparseable') ? 'protocol' : 'stream-error', message: event.message };
          break;
      }
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, {
      method: 'POST',
      ...(spec.agent ? { agent: spec.agent } : {}),
      headers: {
        'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), accept: spec.api === 'ollama' ? 'application/x-ndjson' : 'text/event-stream',
        ...(spec.apiKey ? { authorization: `Bearer ${spec.apiKey}` } : {}),
      },
    }, (res: IncomingMessage) => {
      responded = true;
      status = res.statusCode ?? 0;
      if (status >= 400) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { if (text.length < 65536) text += c; });
        res.on('end', () => finish({ kind: 'http', message: httpErrorMessage(status as number, text) }));
        res.on('error', () => finish({ kind: 'http', message: httpErrorMessage(status as number, text) }));
        return;
      }
      const parser = spec.api === 'ollama' ? new NdjsonParser() : new SseParser();
      res.on('data', (chunk: Buffer) => {
        const before = tokenTimes.length;
        parser.push(chunk, emit);
        if (before === 0 && tokenTimes.length > 0) {
          clearTimeout(silence);
          silence = setTimeout(stalled, spec.stallMs);
        } else alive();
        if (error) finish();
      });
      res.on('end', () => {
        parser.end(emit);
        finish();
      });
      res.on('error', (e) => finish({ kind: 'cut', message: `the stream broke: ${e.message}` }));
      res.on('aborted', () => finish({ kind: 'cut', message: 'the server closed the stream mid-response' }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (responded) finish({ kind: 'cut', message: `the server closed the stream mid-response (${e.code ?? e.message})` });
      else if (e.code === 'ECONNREFUSED') finish({ kind: 'connect', message: `cannot connect to ${spec.baseUrl}: connection refused` });
      else finish({ kind: noAnswer.has(e.code ?? '') || e.message === 'socket hang up' ? 'connect' : 'protocol', message: `no answer from ${spec.baseUrl}: ${e.message}` });
    });
    if (spec.signal) {
      if (spec.signal.aborted) finish({ kind: 'cut', message: 'cancelled by the benchmark' });
      else spec.signal.addEventListener('abort', () => finish({ kind: 'cut', message: 'cancelled by the benchmark' }), { once: true });
    }
    req.end(payload);
  });
}

/** A small JSON request (model lists, model details), with a timeout; rejects with a readable message. */
export function jsonRequest(method: 'GET' | 'POST', url: URL, payload: unknown, timeoutMs: number, apiKey?: string, agent?: Agent): Promise<unknown> {
  const body = payload === undefined ? undefined : JSON.stringify(payload);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, {
      method, timeout: timeoutMs, ...(agent ? { agent } : {}),
      headers: { accept: 'application/json', ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}), ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => {
        let data: unknown = text;
        try {
          data = JSON.parse(text);
        } catch { /* not JSON */ }
        if ((res.statusCode ?? 0) >= 400) reject(new HttpStatusError(res.statusCode ?? 0, `${httpErrorMessage(res.statusCode ?? 0, text)} (${method} ${url.pathname})`));
        else resolve(data);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => reject(new Error(e.code === 'ECONNREFUSED' ? `cannot connect to ${url.origin}: connection refused` : e.message)));
    req.end(body);
  });
}

/** The server answered, with an error status: it is running, so this is not "unreachable". */
export class HttpStatusError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}
