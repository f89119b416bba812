/**
 * A real inference server for tests: llama.cpp (through node-llama-cpp, CPU prebuilt, no network)
 * running the seeded tiny model of make-gguf.ts, behind node:http on 127.0.0.1 with Ollama's native
 * API and the OpenAI-compatible API, both streaming, plus switchable faults.
 *
 *   import { startLlmServer } from '../helpers/llm/server.js';
 *   const srv = await startLlmServer();                 // ~1 s: model cached after the first run
 *   srv.url;              // 'http://127.0.0.1:PORT' (no trailing slash)
 *   srv.model;            // 'zanuri-tiny:latest', the only model name served
 *   srv.setFault({ kind: 'stall', afterTokens: 3 }); // or pass `fault` to startLlmServer
 *   srv.requests;         // what the server saw and did, one entry per generation request
 *   await srv.close();    // ends open streams, frees the engine
 *
 * Options (all optional): `modelName` ('zanuri-tiny:latest'), `spec` (overrides of the model
 * spec, see make-gguf.ts), `threads` (1: llama.cpp math threads; the machine has 2 cores and
 * Node needs one), `parallel` (1: concurrent generations, see Concurrency), `contextSize` (1024
 * tokens per sequence), `defaultMaxTokens` (128), `fault`.
 *
 * Endpoints (anything else: 404 `404 page not found`, as Ollama answers):
 *   GET  /                     `Ollama is running`
 *   GET  /api/version          {"version":"0.0.0-zanuri"}
 *   GET  /api/tags             {"models":[{name, model, modified_at, size, digest, details}]}
 *   POST /api/generate         {model, prompt, stream?=true, options?:{num_predict, temperature, seed, top_k, top_p}}
 *   POST /api/chat             {model, messages:[{role, content}], stream?=true, options?}
 *       stream: NDJSON (application/x-ndjson), one line per token
 *         {"model","created_at","response":"<piece>","done":false}      (/api/chat: "message":{"role":"assistant","content"})
 *       then {"model","created_at","response":"","done":true,"done_reason":"length", total_duration,
 *             load_duration, prompt_eval_count, prompt_eval_duration, eval_count, eval_duration}
 *       stream false: one object with the whole text and the same counters.
 *       An empty or absent prompt (generate) / messages (chat) answers done_reason "load", as Ollama does.
 *       Unknown model: 404 {"error":"model 'x' not found"}. Bad JSON or fields: 400 {"error": "..."}.
 *   GET  /v1/models            {"object":"list","data":[{"id","object":"model","created","owned_by"}]}
 *   POST /v1/completions       {model, prompt, max_tokens?, stream?=false, stream_options?:{include_usage}, temperature?, seed?, top_p?}
 *   POST /v1/chat/completions  {model, messages, max_tokens? | max_completion_tokens?, stream?, stream_options?, ...}
 *       stream: SSE (text/event-stream) `data: <json>\n\n` chunks; chat sends a first chunk with
 *       delta {"role":"assistant","content":""}, then one chunk per token (choices[0].delta.content,
 *       or choices[0].text for completions), then a chunk with finish_reason "length", then (if
 *       stream_options.include_usage) a chunk with choices [] and usage {prompt_tokens,
 *       completion_tokens, total_tokens}, then `data: [DONE]`. Without stream: one JSON object.
 *       Unknown model: 404 {"error":{"message":"model 'x' not found","type":"invalid_request_error",
 *       "param":"model","code":"model_not_found"}}.
 *   Model names match exactly or without the ":latest" tag.
 *
 * Generation: EOS, BOS, UNK and the 256 byte-fallback tokens are banned when sampling, so every
 * token is a whole non-empty piece of text, one streamed chunk per token, and a request for N tokens
 * yields exactly N (done_reason / finish_reason is always "length"). Default temperature 0.8
 * (temperature 0: greedy), seed from the request or 0 (the same request gives the same text).
 * num_predict < 0 (Ollama's "until the context is full") means contextSize - prompt tokens.
 * The prompt is `prompt` with BOS; chat messages are rendered as `<role>: <content>\n` lines and a
 * final `assistant: `. The KV cache is cleared per request, so the whole prompt is evaluated.
 *
 * Counters (nanoseconds, from process.hrtime), as Ollama's runner defines them:
 *   load_duration         request received -> a sequence (slot) is free; the model itself is
 *                         loaded once by startLlmServer (its time is `loadMs`), so this is queueing
 *   prompt_eval_count     tokens evaluated for the prompt (BOS included)
 *   prompt_eval_duration  evaluation start -> the prompt's batch is decoded and the first token sampled
 *   eval_count            tokens generated (the first one included)
 *   eval_duration         first token sampled -> last token sampled (so N tokens over N-1 decodes,
 *                         like Ollama's startGenerationTime)
 *   total_duration        request received -> final line
 *
 * Concurrency: `parallel` llama.cpp sequences share one context; up to `parallel` requests
 * generate at once (node-llama-cpp batches their tokens into the same decode), later ones wait in
 * FIFO order (the wait shows in load_duration). Default 1: one at a time, like OLLAMA_NUM_PARALLEL=1.
 *
 * Faults (option `fault`, or `setFault()`; they apply to the four generation endpoints only, and
 * `count` limits them to the next N generation requests):
 *   { kind: 'none' }
 *   { kind: 'http-500', message? }      500 with the API's error JSON, before any generation
 *   { kind: 'cut', afterTokens: K }     send K token chunks, then destroy the socket (no final line,
 *                                       no [DONE]; chunked encoding is left unterminated)
 *   { kind: 'stall', afterTokens: K }   send K token chunks, then send nothing more and keep the
 *                                       connection open until the client goes away or close()
 *   With K = 0 the response headers are still sent (flushed) before the cut or stall.
 *
 * Speed on this 2-core machine (x86-64, one thread, default spec 24.6M parameters Q8_0, 26 MB):
 * generating the file ~0.2 s (first use only), load ~0.5-0.8 s, decode ~250-500 tokens/s over 32
 * tokens (~70 with both cores busy elsewhere). `spec: SPEC_85M` (make-gguf.ts): ~125 tokens/s.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  getLlama,
  LlamaLogLevel,
  TokenBias,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaModel,
  type Token,
} from 'node-llama-cpp';
import { ensureTinyGguf, TOKEN, type TinyModel, type TinyModelSpec } from './make-gguf.js';

export type Fault =
  | { kind: 'none' }
  | { kind: 'http-500'; message?: string; count?: number }
  | { kind: 'cut'; afterTokens: number; count?: number }
  | { kind: 'stall'; afterTokens: number; count?: number };

export interface LlmServerOptions {
  modelName?: string;
  spec?: Partial<TinyModelSpec>;
  threads?: number;
  parallel?: number;
  contextSize?: number;
  defaultMaxTokens?: number;
  fault?: Fault;
  /** Address to listen on: 127.0.0.1 (default), or the test bridge's 10.213.0.1 so targets can reach it. */
  listen?: string;
}

export type Api = 'ollama-generate' | 'ollama-chat' | 'openai-completions' | 'openai-chat';

/** One generation request as the server saw it. */
export interface RequestRecord {
  api: Api;
  model: string;
  stream: boolean;
  promptTokens: number;
  maxTokens: number;
  /** tokens sent to the client */
  sentTokens: number;
  fault: Fault['kind'];
  /** how it ended: 'done', 'client-closed' (client went away first), 'cut', 'stall', 'http-500', 'server-closed' */
  outcome: 'pending' | 'done' | 'client-closed' | 'cut' | 'stall' | 'http-500' | 'server-closed';
}

export interface LlmServer {
  url: string;
  model: string;
  file: TinyModel;
  /** getLlama + loadModel + createContext, milliseconds */
  loadMs: number;
  requests: RequestRecord[];
  setFault(fault: Fault): void;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly openaiCode?: string) {
    super(message);
  }
}

const MAX_BODY = 1 << 20;

export async function startLlmServer(opts: LlmServerOptions = {}): Promise<LlmServer> {
  const modelName = opts.modelName ?? 'zanuri-tiny:latest';
  const threads = opts.threads ?? 1;
  const parallel = opts.parallel ?? 1;
  const contextSize = opts.contextSize ?? 1024;
  const defaultMaxTokens = opts.defaultMaxTokens ?? 128;
  let fault: Fault = opts.fault ?? { kind: 'none' };
  let faultLeft = fault.kind === 'none' ? 0 : fault.count ?? Infinity;

  const file = await ensureTinyGguf(opts.spec);
  const t0 = performance.now();
  const engineLog: string[] = [];
  const llama: Llama = await getLlama({
    gpu: false,
    build: 'never',
    maxThreads: threads,
    logLevel: LlamaLogLevel.warn,
    logger: (level, message) => {
      if (engineLog.length < 200) engineLog.push(`${level}: ${message}`);
    },
  });
  let model: LlamaModel | undefined;
  let context: LlamaContext | undefined;
  try {
    model = await llama.loadModel({ modelPath: file.path, gpuLayers: 0 });
    context = await model.createContext({ contextSize, sequences: parallel, threads, batchSize: Math.min(512, contextSize) });
  } catch (err) {
    await llama.dispose();
    throw new Error(`llama.cpp could not load ${file.path}: ${(err as Error).message}\n${engineLog.join('\n')}`, { cause: err });
  }
  const loadMs = performance.now() - t0;
  const mdl = model;
  const ctx = context;

  // control, unknown and byte tokens never come out: every token is whole text, EOS never ends early
  const bias = new TokenBias(mdl.tokenizer);
  for (let t = 0; t < TOKEN.firstByte + 256; t++) bias.set(t as Token, 'never');

  // a FIFO pool of sequences
  const free: LlamaContextSequence[] = Array.from({ length: parallel }, () => ctx.getSequence());
  const waiters: ((s: LlamaContextSequence) => void)[] = [];
  const acquire = (): Promise<LlamaContextSequence> => {
    const s = free.shift();
    return s ? Promise.resolve(s) : new Promise((resolve) => waiters.push(resolve));
  };
  const release = (s: LlamaContextSequence): void => {
    const next = waiters.shift();
    if (next) next(s);
    else free.push(s);
  };

  const requests: RequestRecord[] = [];
  const stalled = new Set<Socket>();
  const active = new Set<Promise<void>>();
  let closing = false;
  const created = new Date();
  const unix = (): number => Math.floor(Date.now() / 1000);

  const knownModel = (name: unknown): boolean =>
    typeof name === 'string' && (name === modelName || `${name}:latest` === modelName || name === modelName.replace(/:latest$/, ''));

  const takeFault = (): Fault => {
    if (fault.kind === 'none' || faultLeft <= 0) return { kind: 'none' };
    faultLeft--;
    return fault;
  };

  // -------------------------------------------------------------------------------------------
  // generation shared by the four endpoints

  interface GenRequest {
    api: Api;
    prompt: string;
    maxTokens: number | undefined; // undefined: default; < 0: until the context is full
    temperature: number;
    seed: number;
    topK?: number;
    topP?: number;
  }
  interface GenResult {
    promptTokens: number;
    evalCount: number;
    loadNs: bigint;
    promptNs: bigint;
    evalNs: bigint;
    text: string;
  }
  /** onToken returns false to stop generating (client gone, fault, server closing). */
  async function generate(
    g: GenRequest,
    tokens: Token[],
    tReq: bigint,
    record: RequestRecord,
    onToken: (piece: string, index: number) => boolean,
  ): Promise<GenResult | null> {
    const seq = await acquire();
    const tSlot = process.hrtime.bigint();
    try {
      if (closing) return null;
      await seq.clearHistory();
      const max = g.maxTokens === undefined ? defaultMaxTokens : g.maxTokens < 0 ? contextSize - tokens.length : g.maxTokens;
      record.promptTokens = tokens.length;
      record.maxTokens = max;
      const out: Token[] = [];
      let text = '';
      const tStart = process.hrtime.bigint();
      let tFirst = tStart;
      let tLast = tStart;
      if (max > 0) {
        const it = seq.evaluate(tokens, {
          temperature: g.temperature,
          seed: g.seed,
          ...(g.topK !== undefined ? { topK: g.topK } : {}),
          ...(g.topP !== undefined ? { topP: g.topP } : {}),
          tokenBias: bias,
        });
        for await (const token of it) {
          tLast = process.hrtime.bigint();
          if (out.length === 0) tFirst = tLast;
          const piece = mdl.detokenize([token], false, out.slice(-4));
          out.push(token);
          text += piece;
          if (!onToken(piece, out.length - 1) || out.length >= max || closing) break;
        }
      }
      return {
        promptTokens: tokens.length,
        evalCount: out.length,
        loadNs: tSlot - tReq,
        promptNs: tFirst - tStart,
        evalNs: tLast - tFirst,
        text,
      };
    } finally {
      release(seq);
    }
  }

  /**
   * Runs a generation for a streaming or plain response, applying the fault.
   * `write` sends one token chunk; `finish` sends the closing chunks (stream) or the whole body.
   */
  async function serveGeneration(
    req: IncomingMessage,
    res: ServerResponse,
    g: GenRequest,
    stream: boolean,
    contentType: string,
    tReq: bigint,
    preamble: string,
    write: (piece: string) => string,
    finish: (r: GenResult) => string,
    errorBody: (message: string) => unknown,
  ): Promise<void> {
    const tokens = [TOKEN.bos as Token, ...mdl.tokenize(g.prompt)];
    if (tokens.length >= contextSize) {
      throw new HttpError(400, `prompt is ${tokens.length} tokens; the context holds ${contextSize}`);
    }
    const f = takeFault();
    const record: RequestRecord = {
      api: g.api, model: modelName, stream, promptTokens: 0, maxTokens: 0, sentTokens: 0, fault: f.kind, outcome: 'pending',
    };
    requests.push(record);
    if (f.kind === 'http-500') {
      record.outcome = 'http-500';
      return sendJson(res, 500, errorBody(f.message ?? 'injected fault: internal server error'));
    }
    let clientGone = false;
    res.on('close', () => {
      if (!res.writableFinished) clientGone = true;
    });
    const begin = (): void => {
      if (res.headersSent) return;
      res.writeHead(200, { 'Content-Type': contentType, 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
      res.flushHeaders();
    };
    // resolves once the last chunk has reached the socket, so a cut loses none of the K chunks
    let flushed: Promise<void> = Promise.resolve();
    const send = (chunk: string): void => {
      flushed = new Promise((resolve) => res.write(chunk, () => resolve()));
    };
    if (stream) {
      begin();
      if (preamble) send(preamble);
    }
    const limit = f.kind === 'cut' || f.kind === 'stall' ? f.afterTokens : Infinity;
    const breakOff = async (): Promise<void> => {
      if (f.kind === 'cut') {
        record.outcome = 'cut';
        await Promise.race([flushed, new Promise((resolve) => res.once('close', resolve))]);
        req.socket.destroy();
      } else if (f.kind === 'stall') {
        record.outcome = 'stall';
        stalled.add(req.socket);
        req.socket.once('close', () => stalled.delete(req.socket));
      }
    };
    if (stream && limit === 0) return breakOff();
    const result = await generate(g, tokens, tReq, record, (piece) => {
      if (clientGone) return false;
      const chunk = write(piece);
      if (stream) send(chunk);
      record.sentTokens++;
      if (record.sentTokens >= limit) return false;
      return true;
    });
    if (result === null || closing) {
      record.outcome = 'server-closed';
      req.socket.destroy();
      return;
    }
    if (clientGone) {
      record.outcome = 'client-closed';
      return;
    }
    if (record.sentTokens >= limit) {
      if (!stream) begin();
      return breakOff();
    }
    const tail = finish(result);
    record.outcome = 'done';
    if (stream) res.end(tail);
    else {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(tail);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Ollama

  const ollamaStats = (r: GenResult, tReq: bigint) => ({
    total_duration: Number(process.hrtime.bigint() - tReq),
    load_duration: Number(r.loadNs),
    prompt_eval_count: r.promptTokens,
    prompt_eval_duration: Number(r.promptNs),
    eval_count: r.evalCount,
    eval_duration: Number(r.evalNs),
  });

  async function ollama(api: 'ollama-generate' | 'ollama-chat', req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>, tReq: bigint): Promise<void> {
    if (!knownModel(body.model)) throw new HttpError(404, `model '${String(body.model)}' not found`);
    const stream = body.stream !== false;
    const options = isObject(body.options) ? body.options : {};
    const chat = api === 'ollama-chat';
    let prompt: string;
    if (chat) {
      if (body.messages !== undefined && !Array.isArray(body.messages)) throw new HttpError(400, 'messages must be an array');
      const messages = (body.messages as unknown[] | undefined) ?? [];
      if (messages.length === 0) return sendJson(res, 200, { model: body.model, created_at: now(), message: { role: 'assistant', content: '' }, done_reason: 'load', done: true });
      prompt = renderChat(messages);
    } else {
      if (body.prompt !== undefined && typeof body.prompt !== 'string') throw new HttpError(400, 'prompt must be a string');
      prompt = (body.prompt as string | undefined) ?? '';
      if (prompt === '') return sendJson(res, 200, { model: body.model, created_at: now(), response: '', done: true, done_reason: 'load' });
      if (typeof body.system === 'string' && body.system) prompt = `${body.system}\n${prompt}`;
    }
    const g: GenRequest = {
      api, prompt,
      maxTokens: optInt(options.num_predict, 'options.num_predict', -2),
      temperature: optNum(options.temperature, 'options.temperature') ?? 0.8,
      seed: optInt(options.seed, 'options.seed', 0) ?? 0,
      ...optSampling(optInt(options.top_k, 'options.top_k', 0), optNum(options.top_p, 'options.top_p')),
    };
    const name = body.model as string;
    const piece = (p: string) => (chat ? { message: { role: 'assistant', content: p } } : { response: p });
    let full = '';
    await serveGeneration(
      req, res, g, stream, 'application/x-ndjson', tReq, '',
      (p) => {
        full += p;
        return `${JSON.stringify({ model: name, created_at: now(), ...piece(p), done: false })}\n`;
      },
      (r) => {
        const last = { model: name, created_at: now(), ...piece(stream ? '' : full), done: true, done_reason: 'length', ...ollamaStats(r, tReq) };
        return stream ? `${JSON.stringify(last)}\n` : JSON.stringify(last);
      },
      (message) => ({ error: message }),
    );
  }

  // -------------------------------------------------------------------------------------------
  // OpenAI-compatible

  let nextId = 1;
  async function openai(api: 'openai-completions' | 'openai-chat', req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>, tReq: bigint): Promise<void> {
    if (!knownModel(body.model)) throw new HttpError(404, `model '${String(body.model)}' not found`, 'model_not_found');
    const chat = api === 'openai-chat';
    let prompt: string;
    if (chat) {
      if (!Array.isArray(body.messages) || body.messages.length === 0) throw new HttpError(400, 'messages must be a non-empty array');
      prompt = renderChat(body.messages);
    } else {
      const p = body.prompt;
      if (typeof p === 'string') prompt = p;
      else if (Array.isArray(p) && p.every((x) => typeof x === 'string')) prompt = p.join('');
      else throw new HttpError(400, 'prompt must be a string or an array of strings');
    }
    const maxTokens = optInt(body.max_completion_tokens ?? body.max_tokens, 'max_tokens', 1);
    const stream = body.stream === true;
    const includeUsage = stream && isObject(body.stream_options) && body.stream_options.include_usage === true;
    const g: GenRequest = {
      api, prompt, maxTokens,
      temperature: optNum(body.temperature, 'temperature') ?? 0.8,
      seed: optInt(body.seed, 'seed', 0) ?? 0,
      ...optSampling(undefined, optNum(body.top_p, 'top_p')),
    };
    const id = `${chat ? 'chatcmpl' : 'cmpl'}-${nextId++}`;
    const createdS = unix();
    const name = body.model as string;
    const object = chat ? (stream ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
    const base = { id, object, created: createdS, model: name };
    const sse = (x: unknown): string => `data: ${JSON.stringify(x)}\n\n`;
    const usageOf = (r: GenResult) => ({ prompt_tokens: r.promptTokens, completion_tokens: r.evalCount, total_tokens: r.promptTokens + r.evalCount });
    const extra = includeUsage ? { usage: null } : {};
    let full = '';
    // chat streams open with a role chunk before generation starts, like vLLM and llama.cpp's server
    const preamble = chat
      ? sse({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], ...extra })
      : '';
    await serveGeneration(
      req, res, g, stream, stream ? 'text/event-stream' : 'application/json', tReq, preamble,
      (p) => {
        full += p;
        const choice = chat ? { index: 0, delta: { content: p }, logprobs: null, finish_reason: null } : { index: 0, text: p, logprobs: null, finish_reason: null };
        return sse({ ...base, choices: [choice], ...extra });
      },
      (r) => {
        if (!stream) {
          const choice = chat
            ? { index: 0, message: { role: 'assistant', content: full }, logprobs: null, finish_reason: 'length' }
            : { index: 0, text: full, logprobs: null, finish_reason: 'length' };
          return JSON.stringify({ ...base, choices: [choice], usage: usageOf(r) });
        }
        const choice = chat ? { index: 0, delta: {}, logprobs: null, finish_reason: 'length' } : { index: 0, text: '', logprobs: null, finish_reason: 'length' };
        let out = sse({ ...base, choices: [choice], ...extra });
        if (includeUsage) out += sse({ ...base, choices: [], usage: usageOf(r) });
        return `${out}data: [DONE]\n\n`;
      },
      (message) => ({ error: { message, type: 'server_error', param: null, code: null } }),
    );
  }

  // -------------------------------------------------------------------------------------------
  // routing

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const tReq = process.hrtime.bigint();
    const path = (req.url ?? '/').split('?')[0];
    const route = `${req.method} ${path}`;
    const isOpenai = path?.startsWith('/v1/') ?? false;
    try {
      switch (route) {
        case 'GET /':
        case 'HEAD /':
          res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
          return void res.end('Ollama is running');
        case 'GET /api/version':
          return sendJson(res, 200, { version: '0.0.0-zanuri' });
        case 'GET /api/tags':
          return sendJson(res, 200, {
            models: [{
              name: modelName, model: modelName, modified_at: created.toISOString(), size: file.bytes,
              digest: file.hash,
              details: {
                parent_model: '', format: 'gguf', family: 'llama', families: ['llama'],
                parameter_size: `${(file.parameters / 1e6).toFixed(1)}M`,
                quantization_level: file.spec.weightType.toUpperCase(),
              },
            }],
          });
        case 'GET /v1/models':
          return sendJson(res, 200, { object: 'list', data: [{ id: modelName, object: 'model', created: Math.floor(created.getTime() / 1000), owned_by: 'zanuri-test' }] });
        case 'POST /api/generate':
          return await ollama('ollama-generate', req, res, await readJson(req), tReq);
        case 'POST /api/chat':
          return await ollama('ollama-chat', req, res, await readJson(req), tReq);
        case 'POST /v1/completions':
          return await openai('openai-completions', req, res, await readJson(req), tReq);
        case 'POST /v1/chat/completions':
          return await openai('openai-chat', req, res, await readJson(req), tReq);
        default:
          res.writeHead(404, { 'Content-Type': 'text/plain' });
          return void res.end('404 page not found');
      }
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      const message = (err as Error).message;
      if (res.headersSent) {
        req.socket.destroy();
        return;
      }
      const code = err instanceof HttpError ? err.openaiCode ?? null : null;
      sendJson(res, status, isOpenai
        ? { error: { message, type: status === 500 ? 'server_error' : 'invalid_request_error', param: code === 'model_not_found' ? 'model' : null, code } }
        : { error: message });
    }
  }

  const server: Server = createServer((req, res) => {
    const p = handle(req, res).catch(() => {
      req.socket.destroy();
    });
    active.add(p);
    void p.finally(() => active.delete(p));
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, opts.listen ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://${opts.listen ?? '127.0.0.1'}:${port}`,
    model: modelName,
    file,
    loadMs,
    requests,
    setFault(f: Fault) {
      fault = f;
      faultLeft = f.kind === 'none' ? 0 : f.count ?? Infinity;
    },
    async close() {
      if (closing) return;
      closing = true;
      for (const s of stalled) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.allSettled([...active]);
      await llama.dispose();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// small helpers

function now(): string {
  return new Date().toISOString();
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `invalid JSON body: ${(err as Error).message}`);
  }
  if (!isObject(parsed)) throw new HttpError(400, 'the body must be a JSON object');
  return parsed;
}

function optNum(x: unknown, name: string): number | undefined {
  if (x === undefined || x === null) return undefined;
  if (typeof x !== 'number' || !Number.isFinite(x)) throw new HttpError(400, `${name} must be a number`);
  return x;
}

function optInt(x: unknown, name: string, min: number): number | undefined {
  const n = optNum(x, name);
  if (n === undefined) return undefined;
  if (!Number.isInteger(n) || n < min) throw new HttpError(400, `${name} must be an integer >= ${min}`);
  return n;
}

function optSampling(topK: number | undefined, topP: number | undefined): { topK?: number; topP?: number } {
  return { ...(topK !== undefined ? { topK } : {}), ...(topP !== undefined ? { topP } : {}) };
}

function renderChat(messages: unknown[]): string {
  const lines = messages.map((m, i) => {
    if (!isObject(m) || typeof m.role !== 'string') throw new HttpError(400, `messages[${i}] needs a role`);
    const c = m.content;
    const text = typeof c === 'string'
      ? c
      : Array.isArray(c)
        ? c.map((part) => (isObject(part) && typeof part.text === 'string' ? part.text : '')).join('')
        : '';
    return `${m.role}: ${text}\n`;
  });
  return `${lines.join('')}assistant: `;
}
