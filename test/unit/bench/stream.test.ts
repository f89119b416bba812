import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NdjsonParser, SseParser, type StreamEvent } from '../../../src/bench/stream.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`../../facts/streams/${name}`, import.meta.url));

function feed(parser: NdjsonParser | SseParser, bytes: Buffer, chunkSize: number): StreamEvent[] {
  const events: StreamEvent[] = [];
  for (let i = 0; i < bytes.length; i += chunkSize) parser.push(bytes.subarray(i, i + chunkSize), (e) => events.push(e));
  parser.end((e) => events.push(e));
  return events;
}

describe('stream parsers', () => {
  it('reads tokens and Ollama\'s timing fields from the documented /api/generate stream, whatever the chunking', () => {
    for (const size of [1, 7, 4096]) {
      const events = feed(new NdjsonParser(), fixture('ollama-generate.ndjson'), size);
      expect(events).toEqual([
        { kind: 'token', text: 'The' },
        { kind: 'done', totalDurationNs: 10706818083, loadDurationNs: 6338219291, promptEvalCount: 26, promptEvalDurationNs: 130079000, evalCount: 259, evalDurationNs: 4232710000 },
        { kind: 'end' },
      ]);
    }
  });

  it('reads content deltas and [DONE] from OpenAI\'s documented SSE stream, skipping the empty role delta', () => {
    for (const size of [1, 13, 4096]) {
      expect(feed(new SseParser(), fixture('openai-chat.sse'), size)).toEqual([{ kind: 'token', text: 'Hello' }, { kind: 'end' }]);
    }
  });

  it('keeps a multi-byte character whole when a chunk boundary splits it', () => {
    const line = Buffer.from('{"response":"日本","done":false}\n');
    const events = feed(new NdjsonParser(), line, 1);
    expect(events).toEqual([{ kind: 'token', text: '日本' }]);
  });

  it('reports server errors sent inside the stream, from either API', () => {
    expect(feed(new NdjsonParser(), Buffer.from('{"error":"model \'x\' not found"}\n'), 64)).toEqual([{ kind: 'error', message: "model 'x' not found" }]);
    expect(feed(new SseParser(), Buffer.from('data: {"error":{"message":"overloaded"}}\n\n'), 64)).toEqual([{ kind: 'error', message: 'overloaded' }]);
  });

  it('reads the usage chunk that stream_options.include_usage adds, and ignores SSE comments', () => {
    const text = ': ping\n\ndata: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":34}}\n\ndata: [DONE]\n\n';
    expect(feed(new SseParser(), Buffer.from(text), 5)).toEqual([{ kind: 'usage', promptTokens: 12, completionTokens: 34 }, { kind: 'end' }]);
  });

  it('flags a line that is not JSON instead of dropping it silently', () => {
    expect(feed(new NdjsonParser(), Buffer.from('<html>502 Bad Gateway</html>\n'), 64)[0]).toMatchObject({ kind: 'error' });
  });
});

describe('reasoning and error shapes', () => {
  it('times reasoning deltas as tokens on their own channel: reasoning_content (vLLM, llama.cpp), reasoning (newer vLLM, Ollama /v1)', () => {
    const text = ['{"choices":[{"delta":{"role":"assistant","content":""}}]}', '{"choices":[{"delta":{"reasoning_content":"Let me think"}}]}',
      '{"choices":[{"delta":{"reasoning":" more"}}]}', '{"choices":[{"delta":{"content":"Answer"}}]}'].map((l) => `data: ${l}\n\n`).join('');
    expect(feed(new SseParser(), Buffer.from(text), 7)).toEqual([
      { kind: 'token', text: 'Let me think', channel: 'reasoning' }, { kind: 'token', text: ' more', channel: 'reasoning' }, { kind: 'token', text: 'Answer' },
    ]);
  });

  it('reads Ollama\'s native "thinking" field, from /api/generate and /api/chat, as reasoning tokens', () => {
    const text = '{"response":"","thinking":"Hmm","done":false}\n{"message":{"role":"assistant","content":"","thinking":"ok"},"done":false}\n{"response":"Yes","done":false}\n';
    expect(feed(new NdjsonParser(), Buffer.from(text), 5)).toEqual([
      { kind: 'token', text: 'Hmm', channel: 'reasoning' }, { kind: 'token', text: 'ok', channel: 'reasoning' }, { kind: 'token', text: 'Yes' },
    ]);
  });

  it('reads vLLM\'s error objects inside the stream, old ({"object":"error"}) and new ({"error":{...}})', () => {
    expect(feed(new SseParser(), Buffer.from('data: {"object":"error","message":"maximum context length is 2048 tokens","type":"BadRequestError","param":null,"code":400}\n\n'), 9))
      .toEqual([{ kind: 'error', message: 'maximum context length is 2048 tokens' }]);
    expect(feed(new SseParser(), Buffer.from('data: {"error":{"object":"error","message":"engine dead","type":"InternalServerError","code":500}}\n\n'), 9))
      .toEqual([{ kind: 'error', message: 'engine dead' }]);
  });

  it('finds the message of every server\'s error body, and none in a normal chunk', async () => {
    const { errorMessage } = await import('../../../src/bench/stream.js');
    const { httpErrorMessage } = await import('../../../src/bench/client.js');
    expect(errorMessage({ detail: 'Not Found' })).toBe('Not Found');
    expect(errorMessage({ detail: [{ loc: ['body', 'max_tokens'], msg: 'Input should be a valid integer' }] })).toBe('Input should be a valid integer');
    expect(errorMessage({ error: { code: 503, message: 'Loading model', type: 'unavailable_error' } })).toBe('Loading model');
    expect(errorMessage({ choices: [] })).toBeNull();
    expect(httpErrorMessage(400, '{"object":"error","message":"bad max_tokens","type":"BadRequestError","param":null,"code":400}')).toBe('HTTP 400: bad max_tokens');
    expect(httpErrorMessage(502, '<html>\n<body>502 Bad Gateway</body>\n</html>')).toBe('HTTP 502: <html> <body>502 Bad Gateway</body> </html>');
    expect(httpErrorMessage(500, '')).toBe('HTTP 500: (empty body)');
  });
});
