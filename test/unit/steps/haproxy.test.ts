import { describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/core/plan.js';
import { fileFact, serviceFact } from '../../../src/facts/state.js';
import { configPath, haproxy } from '../../../src/steps/haproxy.js';
import { planOf } from './facts-of.js';

const backends = [{ name: 'app1', address: '10.0.0.11:8000' }, { name: 'app2', address: '10.0.0.12:8000' }];
const planFor = (params: unknown, config: string | null = null, unit = 'enabled\nactive'): Plan => planOf(haproxy, [
  [fileFact(configPath), config === null ? 'absent' : config],
  [serviceFact('haproxy.service'), unit],
], haproxy.parseParams(params));
const written = (plan: Plan): string => {
  const put = plan.actions.find((a) => a.kind === 'put');
  if (put?.kind !== 'put') throw new Error('no put');
  return String(put.content);
};

describe('haproxy', () => {
  it('writes a configuration with every backend health-checked, validated by haproxy -c on the staged copy, then reloads', () => {
    const plan = planFor({ backends });
    const put = plan.actions.find((a) => a.kind === 'put');
    expect(put?.kind === 'put' && put.validate?.argv).toEqual(['haproxy', '-c', '-q', '-f', '{}']);
    expect(put?.kind === 'put' && put.notify).toEqual([{ unit: 'haproxy.service', op: 'reload' }]);
    const cfg = written(plan);
    expect(cfg).toContain('    server app1 10.0.0.11:8000 check\n    server app2 10.0.0.12:8000 check');
    expect(cfg).toContain('http-check send meth GET uri /health');
    expect(cfg).not.toContain('ssl crt');
    expect(cfg).not.toContain('redirect scheme https');
  });

  it('denies the statistics page to every source but localhost and statsFrom, and declares it internal', () => {
    const cfg = written(planFor({ backends, statsFrom: ['10.8.0.0/24'] }));
    expect(cfg).toContain('acl internal src 127.0.0.0/8 10.8.0.0/24\n    http-request deny unless internal');
    expect(haproxy.serves?.(haproxy.parseParams({ backends }))).toEqual([
      expect.objectContaining({ port: 80, access: 'public' }),
      expect.objectContaining({ port: 8404, access: 'internal' }),
    ]);
  });

  it('terminates TLS with the certificate given and redirects plain HTTP', () => {
    const p = { backends, tls: 'terminate', certificate: '/etc/haproxy/certs/site.pem' };
    const cfg = written(planFor(p));
    expect(cfg).toContain('bind :443 ssl crt /etc/haproxy/certs/site.pem alpn h2,http/1.1');
    expect(cfg).toContain('http-request redirect scheme https code 301');
    expect(haproxy.serves?.(haproxy.parseParams(p)).map((s) => s.port)).toEqual([80, 443, 8404]);
  });

  it('passes TLS through in tcp mode to the backends without an HTTP backend', () => {
    const cfg = written(planFor({ backends, tls: 'passthrough' }));
    expect(cfg).toContain('mode tcp');
    expect(cfg).toContain('option ssl-hello-chk');
    expect(cfg).not.toContain('backend app\n');
  });

  it('plans nothing on a host with the same configuration and a running haproxy', () => {
    const cfg = written(planFor({ backends }));
    const plan = planFor({ backends }, `present 644 root root\n${Buffer.from(cfg).toString('base64')}`);
    expect(plan.actions).toEqual([]);
  });

  it('refuses terminate without a certificate, a certificate without terminate, clashing ports and duplicate names', () => {
    expect(() => haproxy.parseParams({ backends, tls: 'terminate' })).toThrow(/needs certificate/);
    expect(() => haproxy.parseParams({ backends, certificate: '/x.pem' })).toThrow(/only used with tls terminate/);
    expect(() => haproxy.parseParams({ backends, statsPort: 80 })).toThrow(/must differ/);
    expect(() => haproxy.parseParams({ backends: [backends[0], backends[0]] })).toThrow(/unique/);
    expect(() => haproxy.parseParams({ backends: [{ name: 'x', address: '10.0.0.1:80\n  bind :9' }] })).toThrow();
    expect(() => haproxy.parseParams({ backends: [] })).toThrow();
  });
});
