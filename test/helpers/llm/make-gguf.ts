/**
 * A tiny `llama`-architecture model written as GGUF v3, with seeded random weights and an
 * SPM ("llama") tokenizer in its metadata, so tests get a real llama.cpp engine with no model hub.
 *
 *   const { path, model } = await ensureTinyGguf();          // default spec, cached
 *   const { path } = await ensureTinyGguf({ nLayer: 2 });    // another spec, another cache entry
 *
 * The file is cached as `<cache>/llm/tiny-llama-<hash>.gguf`, <hash> = sha256 of the full spec plus
 * FORMAT_VERSION, so the same spec is generated once and reused (generation is ~1 s per 10M
 * parameters). <cache> is $ZANURI_TEST_CACHE or /var/cache/zanuri-test, or os.tmpdir() when that is
 * not writable. Files are written to a temp name and renamed: parallel workers may both generate, but
 * none reads a half-written file.
 *
 * Format (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md), all little endian:
 *   "GGUF" u32 version=3, u64 n_tensors, u64 n_kv, kv[] (key string, u32 type, value),
 *   tensor info[] (name string, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml_type, u64 offset),
 *   zero padding to `general.alignment` (32), tensor data (each tensor's offset aligned to 32).
 * Matrices are Q8_0 (blocks of 32 int8 + one f16 scale: 34 bytes) or F16; norm vectors are F32.
 * The output projection is tied to token_embd (no `output.weight`), which llama.cpp accepts.
 *
 * Vocabulary (ids): 0 `<unk>`, 1 `<s>` (BOS), 2 `</s>` (EOS), 3..258 `<0x00>`..`<0xFF>` (byte
 * fallback, type BYTE), then printable ASCII and `▁` (the SPM space), then pieces made by joining two
 * earlier pieces, so the SPM merge tokenizer can reach every piece. The model only emits gibberish;
 * the server (server.ts) bans the control and byte tokens when sampling, so every generated token is
 * a whole, non-empty piece of text and a request for N tokens yields exactly N.
 */
import { createHash } from 'node:crypto';
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Bump when the bytes written for a given spec change. */
export const FORMAT_VERSION = 1;

export interface TinyModelSpec {
  /** model dimension (multiple of 32 for Q8_0) */
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  /** feed-forward width (multiple of 32 for Q8_0) */
  nFf: number;
  /** total tokens, control and byte tokens included (>= 512) */
  nVocab: number;
  /** trained context length written to the metadata */
  nCtxTrain: number;
  /** matrix type; norms are always F32 */
  weightType: 'q8_0' | 'f16';
  seed: number;
  /** `general.name` */
  name: string;
}

/** ~27M parameters, 29 MB with Q8_0; a few hundred tokens/s on one x86 core. */
export const DEFAULT_SPEC: TinyModelSpec = {
  nEmbd: 512,
  nLayer: 6,
  nHead: 8,
  nHeadKv: 8,
  nFf: 1536,
  nVocab: 8192,
  nCtxTrain: 4096,
  weightType: 'q8_0',
  seed: 20240601,
  name: 'zanuri-tiny',
};

/**
 * ~84M parameters (90 MB Q8_0, generated in ~1 s): for tests that want heavier decode work.
 * Measured here on one thread: ~125 tokens/s decode, ~450 tokens/s prompt, load ~1.3 s.
 * (F16 of the same: 169 MB, ~5 s to generate, ~65 tokens/s.)
 */
export const SPEC_85M: Partial<TinyModelSpec> = { nEmbd: 768, nLayer: 11, nFf: 2048 };

export interface TinyModel {
  path: string;
  spec: TinyModelSpec;
  /** parameter count (all tensors) */
  parameters: number;
  /** file size in bytes */
  bytes: number;
  /** sha256 of the spec (the cache key), hex */
  hash: string;
  /** true when this call wrote the file, false when it came from the cache */
  generated: boolean;
}

export const TOKEN = { unk: 0, bos: 1, eos: 2, firstByte: 3 } as const;

export function cacheDir(): string {
  const preferred = join(process.env.ZANURI_TEST_CACHE ?? '/var/cache/zanuri-test', 'llm');
  try {
    mkdirSync(preferred, { recursive: true });
    accessSync(preferred, constants.W_OK);
    return preferred;
  } catch {
    const fallback = join(tmpdir(), 'zanuri-test-llm');
    mkdirSync(fallback, { recursive: true });
    return fallback;
  }
}

/** Returns the cached model for `overrides` (merged into DEFAULT_SPEC), generating it first if absent. */
export async function ensureTinyGguf(overrides: Partial<TinyModelSpec> = {}, dir = cacheDir()): Promise<TinyModel> {
  const spec = { ...DEFAULT_SPEC, ...overrides };
  validate(spec);
  const hash = createHash('sha256').update(JSON.stringify({ FORMAT_VERSION, spec })).digest('hex');
  const path = join(dir, `tiny-llama-${hash.slice(0, 16)}.gguf`);
  const layout = tensorLayout(spec);
  const parameters = layout.reduce((n, t) => n + t.ne.reduce((a, b) => a * b, 1), 0);
  if (existsSync(path)) {
    const { size } = await import('node:fs/promises').then((fs) => fs.stat(path));
    return { path, spec, parameters, bytes: size, hash, generated: false };
  }
  mkdirSync(dir, { recursive: true });
  const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
  try {
    const bytes = writeGguf(tmp, spec, layout);
    renameSync(tmp, path);
    return { path, spec, parameters, bytes, hash, generated: true };
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

function validate(s: TinyModelSpec): void {
  const fail = (why: string): never => {
    throw new Error(`tiny GGUF spec ${JSON.stringify(s)}: ${why}`);
  };
  for (const k of ['nEmbd', 'nLayer', 'nHead', 'nHeadKv', 'nFf', 'nVocab', 'nCtxTrain'] as const) {
    if (!Number.isInteger(s[k]) || s[k] <= 0) fail(`${k} must be a positive integer`);
  }
  if (s.nEmbd % s.nHead !== 0) fail('nEmbd must be a multiple of nHead');
  if (s.nHead % s.nHeadKv !== 0) fail('nHead must be a multiple of nHeadKv');
  if (s.nVocab < 512) fail('nVocab must be at least 512 (control + byte + ASCII tokens)');
  if (s.weightType === 'q8_0' && (s.nEmbd % 32 !== 0 || s.nFf % 32 !== 0)) fail('Q8_0 needs nEmbd and nFf multiples of 32');
}

// ---------------------------------------------------------------------------------------------
// Tensors

const GGML_TYPE = { f32: 0, f16: 1, q8_0: 8 } as const;

interface TensorDesc {
  name: string;
  /** dimensions, innermost (contiguous) first, as GGUF stores them */
  ne: number[];
  type: keyof typeof GGML_TYPE;
  /** 'ones' for norm weights; otherwise uniform with this standard deviation */
  init: 'ones' | number;
}

function tensorLayout(s: TinyModelSpec): TensorDesc[] {
  const headDim = s.nEmbd / s.nHead;
  const kvDim = headDim * s.nHeadKv;
  const w = s.weightType;
  const t: TensorDesc[] = [
    // std 0.02 keeps the tied output's logits spread ~N(0, 0.45): sampling stays varied
    { name: 'token_embd.weight', ne: [s.nEmbd, s.nVocab], type: w, init: 0.02 },
    { name: 'output_norm.weight', ne: [s.nEmbd], type: 'f32', init: 'ones' },
  ];
  for (let i = 0; i < s.nLayer; i++) {
    const p = `blk.${i}.`;
    t.push(
      { name: `${p}attn_norm.weight`, ne: [s.nEmbd], type: 'f32', init: 'ones' },
      { name: `${p}attn_q.weight`, ne: [s.nEmbd, s.nEmbd], type: w, init: 1 / Math.sqrt(s.nEmbd) },
      { name: `${p}attn_k.weight`, ne: [s.nEmbd, kvDim], type: w, init: 1 / Math.sqrt(s.nEmbd) },
      { name: `${p}attn_v.weight`, ne: [s.nEmbd, kvDim], type: w, init: 1 / Math.sqrt(s.nEmbd) },
      { name: `${p}attn_output.weight`, ne: [s.nEmbd, s.nEmbd], type: w, init: 1 / Math.sqrt(s.nEmbd) },
      { name: `${p}ffn_norm.weight`, ne: [s.nEmbd], type: 'f32', init: 'ones' },
      { name: `${p}ffn_gate.weight`, ne: [s.nEmbd, s.nFf], type: w, init: 1 / Math.sqrt(s.nEmbd) },
      { name: `${p}ffn_up.weight`, ne: [s.nEmbd, s.nFf], type: w, init: 1 / Math.sqrt(s.nEmbd) },
      { name: `${p}ffn_down.weight`, ne: [s.nFf, s.nEmbd], type: w, init: 1 / Math.sqrt(s.nFf) },
    );
  }
  return t;
}

function tensorBytes(t: TensorDesc): number {
  const n = t.ne.reduce((a, b) => a * b, 1);
  switch (t.type) {
    case 'f32':
      return n * 4;
    case 'f16':
      return n * 2;
    case 'q8_0':
      return (n / 32) * 34;
  }
}

/** sfc32: small, fast, seedable; good enough for weights nobody trains. */
function sfc32(seed: number): () => number {
  let a = 0x9e3779b9 ^ seed;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = (seed * 0x85ebca6b) | 0;
  const next = (): number => {
    a |= 0; b |= 0; c |= 0; d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half from a float (round to nearest even; our values are all normal or zero). */
export function toHalf(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0]!;
  const sign = (f >>> 16) & 0x8000;
  const exp = ((f >>> 23) & 0xff) - 127 + 15;
  let mant = f & 0x7fffff;
  if (exp <= 0) return sign; // flush tiny values to zero
  if (exp >= 31) return sign | 0x7c00;
  let h = sign | (exp << 10) | (mant >>> 13);
  mant &= 0x1fff;
  if (mant > 0x1000 || (mant === 0x1000 && (h & 1) === 1)) h++;
  return h;
}

/** Data for one tensor, deterministic given the PRNG state. */
function tensorData(t: TensorDesc, rand: () => number): Buffer {
  const n = t.ne.reduce((a, b) => a * b, 1);
  const buf = Buffer.alloc(tensorBytes(t));
  if (t.init === 'ones') {
    if (t.type !== 'f32') throw new Error(`${t.name}: norm weights are F32`);
    new Float32Array(buf.buffer, buf.byteOffset, n).fill(1);
    return buf;
  }
  const std = t.init;
  if (t.type === 'q8_0') {
    // uniform int8 in [-127, 127] has std ~73.3; one scale for all blocks gives the wanted std
    const d = toHalf(std / 73.3);
    const words = new Uint32Array(8);
    const bytes = new Int8Array(words.buffer);
    for (let off = 0; off < buf.length; off += 34) {
      buf.writeUInt16LE(d, off);
      for (let w = 0; w < 8; w++) words[w] = rand();
      for (let i = 0; i < 32; i++) buf[off + 2 + i] = (bytes[i] === -128 ? -127 : bytes[i]!) & 0xff;
    }
    return buf;
  }
  const half = t.type === 'f16';
  const a = std * Math.sqrt(3); // uniform [-a, a] has this std
  for (let i = 0; i < n; i++) {
    const v = (rand() / 0x1_0000_0000 * 2 - 1) * a;
    if (half) buf.writeUInt16LE(toHalf(v), i * 2);
    else buf.writeFloatLE(v, i * 4);
  }
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

export interface Vocab {
  tokens: string[];
  scores: number[];
  types: number[];
}

export function makeVocab(nVocab: number, seed: number): Vocab {
  const tokens: string[] = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TOKEN_TYPE.unknown, TOKEN_TYPE.control, TOKEN_TYPE.control];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN_TYPE.byte);
  }
  const seen = new Set(tokens);
  const pieces: string[] = [];
  const add = (p: string): void => {
    if (seen.has(p)) return;
    seen.add(p);
    pieces.push(p);
    tokens.push(p);
    types.push(TOKEN_TYPE.normal);
  };
  add('\u2581'); // "▁", the SPM word boundary (a space)
  for (let c = 0x21; c <= 0x7e; c++) add(String.fromCharCode(c));
  // then words: "▁" + letter, and joins of two earlier pieces, letters-heavy so output looks wordy
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  for (const l of letters) add(`\u2581${l}`);
  const rand = sfc32(seed ^ 0x5eed);
  const wordy = pieces.filter((p) => /^\u2581?[a-z]$/.test(p));
  const inner = wordy.filter((p) => !p.startsWith('\u2581')); // word continuations
  let guard = 0;
  while (tokens.length < nVocab) {
    if (++guard > nVocab * 100) throw new Error(`cannot build a vocabulary of ${nVocab} pieces`);
    const pool = rand() % 4 === 0 ? pieces : wordy;
    const left = pool[rand() % pool.length]!;
    const right = inner[rand() % inner.length]!;
    const joined = left + right;
    if (joined.length > 12) continue;
    const before = tokens.length;
    add(joined);
    if (tokens.length > before && /^\u2581?[a-z]+$/.test(joined)) {
      wordy.push(joined);
      if (!joined.startsWith('\u2581')) inner.push(joined);
    }
  }
  // SPM merges prefer higher scores; longer pieces later in the list get lower scores
  const scores = tokens.map((_, i) => (i < 3 + 256 ? 0 : -(i - 259)));
  return { tokens, scores, types };
}

// ---------------------------------------------------------------------------------------------
// GGUF writer

const GGUF_TYPE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;
const ALIGNMENT = 32;

type KvValue =
  | { t: 'u32' | 'i32' | 'f32'; v: number }
  | { t: 'bool'; v: boolean }
  | { t: 'string'; v: string }
  | { t: 'array'; of: 'string'; v: string[] }
  | { t: 'array'; of: 'f32' | 'i32'; v: number[] };

class ByteWriter {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  u8(v: number): void {
    this.push(Buffer.from([v]));
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.push(b);
  }
  raw(b: Buffer): void {
    this.push(b);
  }
  pad(to: number): void {
    const n = (to - (this.length % to)) % to;
    if (n) this.push(Buffer.alloc(n));
  }
  value(kv: KvValue): void {
    this.u32(GGUF_TYPE[kv.t]);
    switch (kv.t) {
      case 'u32': return this.u32(kv.v);
      case 'i32': return this.i32(kv.v);
      case 'f32': return this.f32(kv.v);
      case 'bool': return this.u8(kv.v ? 1 : 0);
      case 'string': return this.str(kv.v);
      case 'array':
        this.u32(GGUF_TYPE[kv.of]);
        this.u64(kv.v.length);
        if (kv.of === 'string') for (const s of kv.v as string[]) this.str(s);
        else if (kv.of === 'f32') for (const x of kv.v as number[]) this.f32(x);
        else for (const x of kv.v as number[]) this.i32(x);
        return;
    }
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function metadata(s: TinyModelSpec, vocab: Vocab): [string, KvValue][] {
  return [
    ['general.architecture', { t: 'string', v: 'llama' }],
    ['general.name', { t: 'string', v: s.name }],
    ['general.alignment', { t: 'u32', v: ALIGNMENT }],
    // llama_ftype: 7 = MOSTLY_Q8_0, 1 = MOSTLY_F16
    ['general.file_type', { t: 'u32', v: s.weightType === 'q8_0' ? 7 : 1 }],
    ['llama.context_length', { t: 'u32', v: s.nCtxTrain }],
    ['llama.embedding_length', { t: 'u32', v: s.nEmbd }],
    ['llama.block_count', { t: 'u32', v: s.nLayer }],
    ['llama.feed_forward_length', { t: 'u32', v: s.nFf }],
    ['llama.rope.dimension_count', { t: 'u32', v: s.nEmbd / s.nHead }],
    ['llama.rope.freq_base', { t: 'f32', v: 10000 }],
    ['llama.attention.head_count', { t: 'u32', v: s.nHead }],
    ['llama.attention.head_count_kv', { t: 'u32', v: s.nHeadKv }],
    ['llama.attention.layer_norm_rms_epsilon', { t: 'f32', v: 1e-5 }],
    ['llama.vocab_size', { t: 'u32', v: s.nVocab }],
    ['tokenizer.ggml.model', { t: 'string', v: 'llama' }],
    ['tokenizer.ggml.tokens', { t: 'array', of: 'string', v: vocab.tokens }],
    ['tokenizer.ggml.scores', { t: 'array', of: 'f32', v: vocab.scores }],
    ['tokenizer.ggml.token_type', { t: 'array', of: 'i32', v: vocab.types }],
    ['tokenizer.ggml.bos_token_id', { t: 'u32', v: TOKEN.bos }],
    ['tokenizer.ggml.eos_token_id', { t: 'u32', v: TOKEN.eos }],
    ['tokenizer.ggml.unknown_token_id', { t: 'u32', v: TOKEN.unk }],
    ['tokenizer.ggml.add_bos_token', { t: 'bool', v: true }],
    ['tokenizer.ggml.add_eos_token', { t: 'bool', v: false }],
  ];
}

/** Writes the whole file to `path`; returns its size in bytes. */
function writeGguf(path: string, spec: TinyModelSpec, layout: TensorDesc[]): number {
  const vocab = makeVocab(spec.nVocab, spec.seed);
  const kvs = metadata(spec, vocab);
  const head = new ByteWriter();
  head.raw(Buffer.from('GGUF', 'ascii'));
  head.u32(3);
  head.u64(layout.length);
  head.u64(kvs.length);
  for (const [key, value] of kvs) {
    head.str(key);
    head.value(value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of layout) {
    head.str(t.name);
    head.u32(t.ne.length);
    for (const d of t.ne) head.u64(d);
    head.u32(GGML_TYPE[t.type]);
    head.u64(offset);
    offsets.push(offset);
    offset += tensorBytes(t);
    offset += (ALIGNMENT - (offset % ALIGNMENT)) % ALIGNMENT;
  }
  head.pad(ALIGNMENT);
  const rand = sfc32(spec.seed);
  const fd = openSync(path, 'w');
  try {
    const header = head.concat();
    let pos = writeSync(fd, header);
    const dataStart = pos;
    layout.forEach((t, i) => {
      const at = dataStart + offsets[i]!;
      if (at > pos) pos += writeSync(fd, Buffer.alloc(at - pos));
      pos += writeSync(fd, tensorData(t, rand));
    });
    return pos;
  } finally {
    closeSync(fd);
  }
}
