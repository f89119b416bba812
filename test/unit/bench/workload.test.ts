import { describe, expect, it } from 'vitest';
import { parseLength, parseShareGpt, Workload } from '../../../src/bench/workload.js';

const sharegpt = (pairs: Array<[string, string]>): string => JSON.stringify(pairs.map(([q, a], i) => ({ id: `c${i}`, conversations: [{ from: 'human', value: q }, { from: 'gpt', value: a }] })));
const long = (words: number): string => Array.from({ length: words }, (_, i) => `word${i}`).join(' ');

describe('workloads', () => {
  it('reads fixed lengths and ranges, and refuses anything else with the flag\'s name', () => {
    expect(parseLength('512', '--input-len')).toEqual({ kind: 'fixed', n: 512 });
    expect(parseLength('128-1024', '--output-len')).toEqual({ kind: 'range', min: 128, max: 1024 });
    expect(parseLength('64-64', '--output-len')).toEqual({ kind: 'fixed', n: 64 });
    for (const bad of ['0', '-5', '10-5', 'lots', '1.5']) expect(() => parseLength(bad, '--output-len')).toThrow(/--output-len takes a token count/);
  });

  it('gives the same requests for the same seed and other ones for another, random lengths inside their range', () => {
    const spec = { input: { kind: 'range' as const, min: 10, max: 40 }, output: { kind: 'range' as const, min: 5, max: 9 }, seed: 3 };
    const one = new Workload(spec);
    const b = Array.from({ length: 50 }, () => one.next());
    const two = new Workload(spec);
    const c = Array.from({ length: 50 }, () => two.next());
    expect(b).toEqual(c);
    const other = new Workload({ ...spec, seed: 4 });
    expect(Array.from({ length: 50 }, () => other.next())).not.toEqual(b);
    for (const item of b) {
      expect(item.maxTokens).toBeGreaterThanOrEqual(5);
      expect(item.maxTokens).toBeLessThanOrEqual(9);
      const words = item.prompt.split(' ').length;
      expect(words).toBeGreaterThanOrEqual(10);
      expect(words).toBeLessThanOrEqual(40);
    }
    expect(new Set(b.map((x) => x.maxTokens)).size).toBeGreaterThan(1);
    // Every prompt opens differently, so a prefix cache cannot hide prefill.
    expect(new Set(b.map((x) => x.prompt.split(' ').slice(0, 3).join(' '))).size).toBe(50);
  });

  it('reads the ShareGPT layout as vLLM\'s benchmark does: first human turn and its answer, short and long pairs skipped', () => {
    const entries = parseShareGpt(sharegpt([['What is a GPU and why is it fast?', long(100)], ['hi', 'hello there, how are you today?'], [long(900), long(900)]]), 'd.json');
    expect(entries).toEqual([{ prompt: 'What is a GPU and why is it fast?', inputTokens: 8, outputTokens: Math.round(long(100).length / 4) }]);
  });

  it('samples a dataset in a seeded order, with its own output lengths unless --output-len is given', () => {
    const entries = parseShareGpt(sharegpt(Array.from({ length: 20 }, (_, i) => [`Question number ${i} about servers?`, long(10 + i)] as [string, string])), 'd.json');
    const dataset = { name: 'd.json', entries };
    const take = (w: Workload): string[] => Array.from({ length: 20 }, () => w.next().prompt);
    const first = take(new Workload({ input: { kind: 'fixed', n: 1 }, output: null, seed: 1, dataset }));
    expect(first).toEqual(take(new Workload({ input: { kind: 'fixed', n: 1 }, output: null, seed: 1, dataset })));
    expect(new Set(first).size).toBe(20);
    expect(first).not.toEqual(entries.map((e) => e.prompt));
    const item = new Workload({ input: { kind: 'fixed', n: 1 }, output: null, seed: 1, dataset }).next();
    expect(item.maxTokens).toBe(entries.find((e) => e.prompt === item.prompt)?.outputTokens);
    expect(new Workload({ input: { kind: 'fixed', n: 1 }, output: { kind: 'fixed', n: 7 }, seed: 1, dataset }).next().maxTokens).toBe(7);
    expect(new Workload({ input: { kind: 'fixed', n: 1 }, output: null, seed: 1, dataset }).describe()).toBe('dataset d.json (20 conversations), output lengths of the dataset\'s answers, seed 1');
  });

  it('says clearly what is wrong with a file that is not a ShareGPT dataset', () => {
    expect(() => parseShareGpt('{oops', 'x.json')).toThrow(/--dataset x.json is not JSON/);
    expect(() => parseShareGpt('{"a":1}', 'x.json')).toThrow(/expected a JSON array/);
    expect(() => parseShareGpt('[{"conversations":[]}]', 'x.json')).toThrow(/no usable conversation/);
  });
});
