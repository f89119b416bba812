/**
 * A model server with known timings, for checking what `zanuri bench` reports against the truth.
 * Not an engine (test/helpers/llm/server.ts is the real llama.cpp one): it streams placeholder tokens
 * on an exact schedule, so the true TTFT, inter-token delay and concurrency are known.
 *
 *   const srv = await startTimedServer({ ttftMs: 150, itlMs: 20, slowdownPerStream: 0.05 });
 *   srv.url; srv.model;                  // 'http://127.0.0.1:PORT', 'timed:latest'
 *   srv.truth(c)                         // { ttftMs, itlMs } the server applies with c streams in flight
 *   srv.concurrency(fromMs, toMs)        // the server's own count of simultaneous streams in a window
 *   srv.setFault({ kind: 'stall', afterTokens: 3 }); srv.generations  // requests seen
 *
 * Timing: a generation request's first token is due ttftMs after its body arrived; every next token
 * itlMs * (1 + slowdownPerStream * (streams in flight - 1)) after the previous token was due (an absolute
 * schedule: a late timer does not shift the tokens after it). Output: exactly the requested count of
 * tokens (max_tokens / num_predict), the first `reasoningTokens` of them as reasoning
 * (delta.reasoning_content; Ollama: "thinking"), counted in usage / eval_count like the rest.
 *
 * APIs: Ollama GET /api/version, /api/tags, POST /api/generate (NDJSON); OpenAI GET /v1/models,
 * POST /v1/chat/completions (SSE, role chunk first, usage chunk, [DONE]); GET /metrics in vLLM's
 * names (num_requests_running = streams in flight) when `metrics` is set.
 *
 * Faults (next `count` generation requests, default all): http (status + raw body), stall / cut after
 * K tokens, stream-error (vLLM's error event after K tokens).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type TimedFault =
  | { kind: 'none' }
  | { kind: 'http'; status: number; body: string; contentType?: string; count?: number }
  | { kind: 'stall'; afterTokens: number; count?: number }
  | { kind: 'cut'; afterTokens: number; count?: number }
  | { kind: 'stream-error'; afterTokens: number; message: string; count?: number };

export interface TimedServerOptions {
  ttftMs?: number;
  itlMs?: number;
  slowdownPerStream?: number;
  reasoningTokens?: number;
  metrics?: boolean;
  model?: string;
}

export interface TimedServer {
  url: string;
  model: string;
  /** Generation requests received. */
  generations: number;
  truth(concurrency: number): { ttftMs: number; itlMs: number };
  /** Median TTFT the server actually delivered (request received -> first token written) for requests received in [from, to]: how late its own timers ran. */
  deliveredTtft(from: number, to: number): number | null;
  /** Streams in flight as the server counted them at each token it sent inside [from, to] (Date.now() ms). */
  concurrency(from: number, to: number): { max: number; median: number; samples: number };
  setFault(fault: TimedFault): void;
  close(): Promise<void>;
}

export async function startTimedServer(opts: TimedServerOptions = {}): Promise<TimedServer> {
  const ttftMs = opts.ttftMs ?? 150;
  const itlMs = opts.itlMs ?? 20;
  const slowdown = opts.slowdownPerStream ?? 0;
  const reasoning = opts.reasoningTokens ?? 0;
  const model = opts.model ?? 'timed:latest';
  let fault: TimedFault = { kind: 'none' };
  let faultLeft = 0;
  let active = 0;
  const samples: Array<{ at: number; active: number }> = [];
  const sockets = new Set<Socket>();
  const state = { generations: 0 };

  const itl = (streams: number): number => itlMs * (1 + slowdown * Math.max(0, streams - 1));
  const takeFault = (): TimedFault => {
    if (fault.kind === 'none' || faultLeft <= 0) return { kind: 'none' };
    faultLeft -= 1;
    return fault;
  };
  const json = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  const readBody = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
  };

  const delivered: Array<{ at: number; ttft: number }> = [];
  async function generate(req: IncomingMessage, res: ServerResponse, api: 'ollama' | 'openai'): Promise<void> {
    const received = performance.now();
    const receivedAt = Date.now();
    const body = await readBody(req);
    const arrived = performance.now();
    state.generations += 1;
    const f = takeFault();
    if (f.kind === 'http') {
      res.writeHead(f.status, { 'content-type': f.contentType ?? 'application/json', 'content-length': Buffer.byteLength(f.body) });
      res.end(f.body);
      return;
    }
    const count = Number(api === 'ollama' ? (body['options'] as { num_predict?: number } | undefined)?.num_predict ?? 128 : body['max_tokens'] ?? 16);
    const prompt = api === 'ollama' ? String(body['prompt'] ?? '') : String((body['messages'] as Array<{ content: string }>)[0]?.content ?? '');
    const promptTokens = prompt.split(/\s+/).filter(Boolean).length;
    active += 1;
    let closed = false;
    res.on('close', () => { closed = true; });
    res.writeHead(200, { 'content-type': api === 'ollama' ? 'application/x-ndjson' : 'text/event-stream', 'cache-control': 'no-cache' });
    const id = `chatcmpl-${state.generations}`;
    const sse = (x: unknown): string => `data: ${JSON.stringify(x)}\n\n`;
    if (api === 'openai') res.write(sse({ id, object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }));
    else res.flushHeaders();
    let due = arrived + ttftMs;
    let first = 0;
    try {
      for (let i = 0; i < count; i += 1) {
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (closed) return;
        if ((f.kind === 'stall' || f.kind === 'cut' || f.kind === 'stream-error') && i === f.afterTokens) {
          if (f.kind === 'cut') req.socket.destroy();
          if (f.kind === 'stream-error') res.end(sse({ error: { object: 'error', message: f.message, type: 'InternalServerError', param: null, code: 500 } }));
          return; // a stall: send nothing more, keep the connection open
        }
        samples.push({ at: Date.now(), active });
        if (i === 0) {
          first = performance.now();
          delivered.push({ at: receivedAt, ttft: first - received });
        }
        const thinking = i < reasoning;
        const text = thinking ? `think${i} ` : `tok${i} `;
        if (api === 'ollama') res.write(`${JSON.stringify({ model, created_at: new Date().toISOString(), response: thinking ? '' : text, ...(thinking ? { thinking: text } : {}), done: false })}\n`);
        else res.write(sse({ id, object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: thinking ? { reasoning_content: text } : { content: text }, finish_reason: null }] }));
        due += itl(active);
      }
      const last = performance.now();
      if (api === 'ollama') {
        res.end(`${JSON.stringify({ model, response: '', done: true, done_reason: 'length', total_duration: Math.round((last - arrived) * 1e6), load_duration: 0, prompt_eval_count: promptTokens, prompt_eval_duration: Math.round((first - arrived) * 1e6), eval_count: count, eval_duration: Math.round((last - first) * 1e6) })}\n`);
      } else {
        res.write(sse({ id, object: 'chat.completion.chunk', model, choices: [{ index: 0, delta: {}, finish_reason: 'length' }] }));
        res.end(`${sse({ id, object: 'chat.completion.chunk', model, choices: [], usage: { prompt_tokens: promptTokens, completion_tokens: count, total_tokens: promptTokens + count } })}data: [DONE]\n\n`);
      }
    } finally {
      active -= 1;
    }
  }

  const server = createServer((req, res) => {
    const route = `${req.method} ${(req.url ?? '/').split('?')[0]}`;
    const done = (p: Promise<void>): void => void p.catch(() => req.socket.destroy());
    switch (route) {
      case 'GET /api/version': return json(res, 200, { version: '0.0.0-timed' });
      case 'GET /api/tags': return json(res, 200, { models: [{ name: model, model, details: { parameter_size: '1M', quantization_level: 'F16' } }] });
      case 'GET /v1/models': return json(res, 200, { object: 'list', data: [{ id: model, object: 'model', owned_by: 'test' }] });
      case 'GET /metrics':
        if (!opts.metrics) return json(res, 404, { detail: 'Not Found' });
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        return void res.end([
          '# HELP vllm:num_requests_running Number of requests in model execution batches.', '# TYPE vllm:num_requests_running gauge',
          `vllm:num_requests_running{engine="0",model_name="${model}"} ${active}.0`,
          '# TYPE vllm:num_requests_waiting gauge', `vllm:num_requests_waiting{engine="0",model_name="${model}"} 0.0`,
          '# TYPE vllm:kv_cache_usage_perc gauge', `vllm:kv_cache_usage_perc{engine="0",model_name="${model}"} ${(active / 100).toFixed(2)}`,
          '# TYPE vllm:num_preemptions_total counter', `vllm:num_preemptions_total{engine="0",model_name="${model}"} 0.0`, '',
        ].join('\n'));
      case 'POST /api/generate': return done(generate(req, res, 'ollama'));
      case 'POST /v1/chat/completions': return done(generate(req, res, 'openai'));
      default: return json(res, 404, { error: `no route ${route}` });
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    model,
    get generations() { return state.generations; },
    truth: (c) => ({ ttftMs, itlMs: itl(c) }),
    deliveredTtft(from, to) {
      const inside = delivered.filter((d) => d.at >= from && d.at <= to).map((d) => d.ttft).sort((a, b) => a - b);
      return inside.length ? (inside[Math.floor(inside.length / 2)] as number) : null;
    },
    concurrency(from, to) {
      const inside = samples.filter((s) => s.at >= from && s.at <= to).map((s) => s.active).sort((a, b) => a - b);
      return { max: inside.length ? (inside.at(-1) as number) : 0, median: inside[Math.floor(inside.length / 2)] ?? 0, samples: inside.length };
    },
    setFault(f) {
      fault = f;
      faultLeft = f.kind === 'none' ? 0 : f.count ?? Infinity;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
