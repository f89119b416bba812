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
