import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { NdjsonParser, SseParser, type OllamaDone, type StreamEvent } from './stream.js';

export type Api = 'ollama' | 'openai';

export interface RequestSpec {
  api: Api;
  /** e.g. http://127.0.0.1:11434 (Ollama) or http://127.0.0.1:8000 (vLLM); no trailing path. */
  baseUrl: string;
  model: string;
  prompt: string;
  maxTokens: number;
  /** Whole request, connection to last byte. */
  timeoutMs: number;
  /** No byte for this long means the server stalled. */
  stallMs: number;
  apiKey?: string;
}

/** One request as the client saw it. Times are milliseconds from the moment the request was sent. */
export interface RequestResult {
  ok: boolean;
  error?: string;
  /** performance.now() at send, to place the request on the run's timeline. */
  startedAt: number;
  ttftMs: number | null;
  e2eMs: number;
  /** Arrival time of each token chunk. */
  tokenTimes: number[];
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
      stream: true, stream_options: { include_usage: true },
    },
  };
}

/** Sends one streaming request and measures it; never throws and never hangs past its timeouts. */
export function runRequest(spec: RequestSpec): Promise<RequestResult> {
  const { path, json } = body(spec);
  const url = new URL(path, spec.baseUrl);
  const payload = JSON.stringify(json);
  const startedAt = performance.now();
  const tokenTimes: number[] = [];
  let server: OllamaDone | null = null;
  let usageTokens: number | null = null;
  let promptTokens: number | null = null;
  let ended = false;
  let error: string | undefined;

  return new Promise((resolve) => {
    let settled = false;
    const finish = (failure?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(overall);
      clearTimeout(stall);
      if (failure && !error) error = failure;
      if (!error && !ended) error = 'the stream ended before the server said it was done';
      const ttft = tokenTimes[0] ?? null;
      resolve({
        ok: error === undefined, ...(error === undefined ? {} : { error }), startedAt,
        ttftMs: ttft, e2eMs: performance.now() - startedAt, tokenTimes,
        outputTokens: server?.evalCount ?? usageTokens ?? tokenTimes.length,
        promptTokens: server?.promptEvalCount ?? promptTokens, server,
      });
      req.destroy();
    };
    const overall = setTimeout(() => finish(`timed out after ${spec.timeoutMs} ms`), spec.timeoutMs);
    let stall = setTimeout(() => finish(`no data for ${spec.stallMs} ms: the server stalled`), spec.stallMs);
    const alive = (): void => {
      clearTimeout(stall);
      stall = setTimeout(() => finish(`no data for ${spec.stallMs} ms: the server stalled`), spec.stallMs);
    };
    const emit = (event: StreamEvent): void => {
      switch (event.kind) {
        case 'token':
          if (event.text) tokenTimes.push(performance.now() - startedAt);
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
          error = event.message;
          break;
      }
    };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), accept: spec.api === 'ollama' ? 'application/x-ndjson' : 'text/event-stream',
        ...(spec.apiKey ? { authorization: `Bearer ${spec.apiKey}` } : {}),
      },
    }, (res: IncomingMessage) => {
      alive();
      if ((res.statusCode ?? 0) >= 400) {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => { text += c; });
        res.on('end', () => {
          let message = text.trim().slice(0, 300);
          try {
            const parsed = JSON.parse(text) as { error?: string | { message?: string } };
            message = typeof parsed.error === 'string' ? parsed.error : parsed.error?.message ?? message;
          } catch { /* keep the raw text */ }
          finish(`HTTP ${res.statusCode}: ${message}`);
        });
        return;
      }
      const parser = spec.api === 'ollama' ? new NdjsonParser() : new SseParser();
      res.on('data', (chunk: Buffer) => {
        alive();
        parser.push(chunk, emit);
        if (error) finish();
      });
      res.on('end', () => {
        parser.end(emit);
        finish();
      });
      res.on('error', (e) => finish(`the stream broke: ${e.message}`));
      res.on('aborted', () => finish('the server closed the stream mid-response'));
    });
    req.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNREFUSED' ? `cannot connect to ${spec.baseUrl}: connection refused` : `request failed: ${e.message}`));
    req.end(payload);
  });
}

/** A small JSON request (model lists, model details), with a timeout; rejects with a readable message. */
export function jsonRequest(method: 'GET' | 'POST', url: URL, payload: unknown, timeoutMs: number, apiKey?: string): Promise<unknown> {
  const body = payload === undefined ? undefined : JSON.stringify(payload);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, {
      method, timeout: timeoutMs,
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
        if ((res.statusCode ?? 0) >= 400) {
          const error = (data as { error?: string | { message?: string } })?.error;
          reject(new Error(`HTTP ${res.statusCode} from ${url.pathname}: ${typeof error === 'string' ? error : error?.message ?? String(text).slice(0, 200)}`));
        } else resolve(data);
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => reject(new Error(e.code === 'ECONNREFUSED' ? `cannot connect to ${url.origin}: connection refused` : e.message)));
    req.end(body);
  });
}
