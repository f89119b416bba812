/**
 * The test inference engine (test/helpers/llm): a seeded tiny GGUF model run by llama.cpp on the
 * CPU behind Ollama's and the OpenAI-compatible streaming APIs, with fault injection. The bench
 * feature's tests build on it, so this file proves the fixture itself is real and well-formed.
 */
import { openSync, readSync, closeSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureTinyGguf } from '../helpers/llm/make-gguf.js';
import { startLlmServer, type LlmServer } from '../helpers/llm/server.js';

let srv: LlmServer;

beforeAll(async () => {
  srv = await startLlmServer();
}, 180_000);

afterAll(async () => {
  await srv?.close();
});

const post = (path: string, body: unknown, signal?: AbortSignal): Promise<Response> =>
  fetch(`${srv.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    ...(signal ? { signal } : {}),
  });

/** Splits a streamed body into lines (NDJSON) or SSE `data:` payloads, as they arrive. */
async function* lines(res: Response): AsyncGenerator<string> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() !== '') yield line;
    }
  }
  if (buf.trim() !== '') yield buf;
}

const sseData = async (res: Response): Promise<string[]> => {
  const out: string[] = [];
  for await (const l of lines(res)) if (l.startsWith('data: ')) out.push(l.slice('data: '.length));
  return out;
};

describe('the tiny GGUF model', () => {
  it('is a GGUF v3 file that is generated once and then reused from the cache', async () => {
    const again = await ensureTinyGguf();
    expect(again.path).toBe(srv.file.path);
    expect(again.generated).toBe(false);
    const fd = openSync(again.path, 'r');
    const head = Buffer.alloc(8);
    readSync(fd, head, 0, 8, 0);
    closeSync(fd);
    expect(head.subarray(0, 4).toString('ascii')).toBe('GGUF');
    expect(head.readUInt32LE(4)).toBe(3);
    expect(again.parameters).toBeGreaterThan(1e6);
  });
});

describe('the llama.cpp test server, Ollama API', () => {
  it('streams exactly 32 tokens from /api/generate and reports Ollama counters in nanoseconds', async () => {
    const res = await post('/api/generate', { model: srv.model, prompt: 'Why is the sky blue?', options: { num_predict: 32, seed: 7 } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const objs = [];
    for await (const l of lines(res)) objs.push(JSON.parse(l));
    const pieces = objs.filter((o) => o.done === false);
    const last = objs.at(-1);
    expect(pieces).toHaveLength(32);
    for (const p of pieces) {
      expect(p).toMatchObject({ model: srv.model, done: false });
      expect(typeof p.response).toBe('string');
      expect(p.response.length).toBeGreaterThan(0);
      expect(Number.isNaN(Date.parse(p.created_at))).toBe(false);
    }
    expect(last).toMatchObject({ done: true, done_reason: 'length', response: '', eval_count: 32 });
    expect(last.prompt_eval_count).toBeGreaterThan(1);
    for (const k of ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration']) {
      expect(Number.isInteger(last[k]), k).toBe(true);
      expect(last[k], k).toBeGreaterThan(0);
    }
    expect(last.total_duration).toBeGreaterThanOrEqual(last.load_duration + last.prompt_eval_duration + last.eval_duration);
    const tokPerS = last.eval_count / (last.eval_duration / 1e9);
    console.log(`llm-engine: ${srv.file.parameters} parameters, ${srv.file.bytes} bytes, load ${srv.loadMs.toFixed(0)} ms, ` +
      `prompt ${last.prompt_eval_count} tok in ${(last.prompt_eval_duration / 1e6).toFixed(1)} ms, decode ${tokPerS.toFixed(0)} tok/s (1 thread)`);
    expect(tokPerS).toBeGreaterThan(5); // a sanity check that real decoding happened, not a timing target
  });

  it('gives the same text for the same seed, and serves concurrent requests one after the other', async () => {
    const ask = async () => {
      const res = await post('/api/generate', { model: srv.model, prompt: 'hello', stream: false, options: { num_predict: 12, seed: 3 } });
      expect(res.status).toBe(200);
      return res.json() as Promise<{ response: string; eval_count: number; load_duration: number }>;
    };
    const [a, b] = await Promise.all([ask(), ask()]);
    expect(a.eval_count).toBe(12);
    expect(b.eval_count).toBe(12);
    expect(a.response).toBe(b.response);
    // parallel = 1: one of the two waited for the other's slot, which Ollama counts as load time
    expect(Math.max(a.load_duration, b.load_duration)).toBeGreaterThan(1_000_000);
  });

  it('streams /api/chat with assistant message pieces', async () => {
    const res = await post('/api/chat', { model: srv.model, messages: [{ role: 'user', content: 'hi' }], options: { num_predict: 5 } });
    const objs = [];
    for await (const l of lines(res)) objs.push(JSON.parse(l));
    expect(objs).toHaveLength(6);
    expect(objs[0].message.role).toBe('assistant');
    expect(objs.at(-1)).toMatchObject({ done: true, eval_count: 5 });
  });

  it('lists the model in /api/tags', async () => {
    const tags = (await (await fetch(`${srv.url}/api/tags`)).json()) as { models: { name: string; details: { format: string } }[] };
    expect(tags.models.map((m) => m.name)).toEqual([srv.model]);
    expect(tags.models[0]!.details.format).toBe('gguf');
  });

  it("answers an unknown model with 404 and Ollama's error body", async () => {
    const res = await post('/api/generate', { model: 'nope:7b', prompt: 'x' });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: "model 'nope:7b' not found" });
  });
});

describe('the llama.cpp test server, OpenAI-compatible API', () => {
  it('streams chat completion chunks as SSE, then a usage chunk, then [DONE]', async () => {
    const res = await post('/v1/chat/completions', {
      model: srv.model, messages: [{ role: 'user', content: 'Say something.' }], max_tokens: 10, stream: true,
      stream_options: { include_usage: true },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const data = await sseData(res);
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const content = chunks.filter((c) => c.choices[0]?.delta?.content);
    expect(content).toHaveLength(10);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id)).toBe(true);
    expect(chunks.at(-2).choices[0].finish_reason).toBe('length');
    const usage = chunks.at(-1);
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toMatchObject({ completion_tokens: 10 });
    expect(usage.usage.total_tokens).toBe(usage.usage.prompt_tokens + 10);
  });

  it('streams legacy completions as choices[0].text and lists the model in /v1/models', async () => {
    const data = await sseData(await post('/v1/completions', { model: srv.model, prompt: 'Once', max_tokens: 4, stream: true }));
    expect(data.at(-1)).toBe('[DONE]');
    const texts = data.slice(0, -1).map((d) => JSON.parse(d).choices[0]);
    expect(texts.filter((c) => c.finish_reason === null).map((c) => c.text)).toHaveLength(4);
    const models = (await (await fetch(`${srv.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual([srv.model]);
  });

  it('answers an unknown model with 404 and an OpenAI error object', async () => {
    const res = await post('/v1/chat/completions', { model: 'gpt-x', messages: [{ role: 'user', content: 'x' }] });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { message: "model 'gpt-x' not found", code: 'model_not_found' } });
  });
});

describe('the llama.cpp test server, injected faults', () => {
  afterAll(() => srv.setFault({ kind: 'none' }));

  it('answers 500 with a JSON error, for the next request only when count is 1', async () => {
    srv.setFault({ kind: 'http-500', message: 'boom', count: 1 });
    const res = await post('/api/generate', { model: srv.model, prompt: 'x', options: { num_predict: 2 } });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: 'boom' });
    const ok = await post('/api/generate', { model: srv.model, prompt: 'x', stream: false, options: { num_predict: 2 } });
    expect(ok.status).toBe(200);
  });

  it('cuts the stream after K tokens: the client sees K chunks and then a broken body', async () => {
    srv.setFault({ kind: 'cut', afterTokens: 3 });
    const res = await post('/v1/completions', { model: srv.model, prompt: 'x', max_tokens: 20, stream: true });
    expect(res.status).toBe(200);
    const seen: string[] = [];
    await expect((async () => {
      for await (const l of lines(res)) seen.push(l);
    })()).rejects.toThrow();
    expect(seen).toHaveLength(3);
    expect(srv.requests.at(-1)).toMatchObject({ outcome: 'cut', sentTokens: 3 });
  });

  it('stalls after K tokens: the connection stays open and nothing more arrives', async () => {
    srv.setFault({ kind: 'stall', afterTokens: 2 });
    const abort = new AbortController();
    const res = await post('/api/generate', { model: srv.model, prompt: 'x', options: { num_predict: 20 } }, abort.signal);
    const it = lines(res)[Symbol.asyncIterator]();
    expect(JSON.parse((await it.next()).value as string).done).toBe(false);
    expect(JSON.parse((await it.next()).value as string).done).toBe(false);
    const third = await Promise.race([it.next().then(() => 'data'), new Promise((r) => setTimeout(() => r('silence'), 700))]);
    expect(third).toBe('silence');
    expect(srv.requests.at(-1)).toMatchObject({ outcome: 'stall', sentTokens: 2 });
    abort.abort();
    srv.setFault({ kind: 'none' });
    // the stalled request gave its slot back: the next request is served at once
    const ok = await post('/api/generate', { model: srv.model, prompt: 'x', stream: false, options: { num_predict: 2 } });
    expect(((await ok.json()) as { eval_count: number }).eval_count).toBe(2);
  });
});

describe('a llama.cpp test server with two sequences', () => {
  it('generates two requests at once and close() ends a stream that is still open', async () => {
    const two = await startLlmServer({ parallel: 2, fault: { kind: 'stall', afterTokens: 1, count: 1 } });
    try {
      const gen = (n: number) => fetch(`${two.url}/api/generate`, {
        method: 'POST', body: JSON.stringify({ model: two.model, prompt: 'x', stream: false, options: { num_predict: n } }),
      });
      const stalled = await fetch(`${two.url}/v1/completions`, {
        method: 'POST', body: JSON.stringify({ model: two.model, prompt: 'x', max_tokens: 50, stream: true }),
      });
      const order: string[] = [];
      const long = gen(300).then(async (r) => { order.push('long'); return r.json(); });
      await new Promise((r) => setTimeout(r, 50));
      const short = gen(2).then(async (r) => { order.push('short'); return r.json(); });
      await Promise.all([long, short]);
      expect(order).toEqual(['short', 'long']); // the short one did not queue behind the long one
      const broken = expect(sseData(stalled)).rejects.toThrow('terminated');
      await two.close();
      await broken;
      expect(two.requests.map((r) => r.outcome)).toEqual(['stall', 'done', 'done']);
    } finally {
      await two.close();
    }
  });
});
