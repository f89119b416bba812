/**
 * haproxy and keepalived on two real systemd targets (needs root), behind ufw: four cells on each,
 * then the load balancer is used through the virtual IP from this host, 10.213.0.1, where two small
 * HTTP servers stand in for the application servers. The test stops haproxy on the master (the
 * check script moves the address), then keepalived itself, and requests through the virtual IP
 * keep being answered; a backend that stops answering its health check gets no more requests.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { BRIDGE_IP, NET_PREFIX } from '../helpers/network.js';
import { fourCells } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = 'test/integration/playbooks/lb.yaml';
/** Slots take .10 to .209 and the bridge .1: .250 is nobody's. */
const vip = `${NET_PREFIX}.250`;

/** An application server stand-in: /health answers 200 while healthy, everything else names the server. */
function backend(name: string): { server: Server; healthy: { value: boolean } } {
  const healthy = { value: true };
  const server = createServer((req, res) => {
    if (req.url === '/health') { res.writeHead(healthy.value ? 200 : 503).end(healthy.value ? 'ok' : 'down'); return; }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(name);
  });
  return { server, healthy };
}

async function get(url: string): Promise<{ status: number; body: string } | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
    return { status: res.status, body: await res.text() };
  } catch {
    return null;
  }
}

/** Polls `probe` every 500 ms until it is true, at most `ms`. */
async function until(what: string, ms: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`not within ${ms} ms: ${what}`);
}

describe.skipIf(!can.ok && !process.env['CI'])('provision: haproxy and keepalived on two real targets (needs root)', () => {
  let a: TestTarget;
  let b: TestTarget;
  const backends = [backend('backend-one'), backend('backend-two')];

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [a, b] = (await startTargets(2)) as [TestTarget, TestTarget];
    for (const { server } of backends) await new Promise<void>((r) => server.listen(0, BRIDGE_IP, r));
  }, 600_000);

  afterAll(async () => {
    for (const { server } of backends) server.close();
    await stopAllTargets();
  });

  const holdsVip = async (t: TestTarget): Promise<boolean> => (await t.exec(['ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).stdout.includes(` ${vip}/`);
  const args = (self: TestTarget, peer: TestTarget, role: 'master' | 'backup'): string[] => [
    '--playbook', playbook,
    '--set', `haproxy.backends=${JSON.stringify(backends.map(({ server }, i) => ({ name: `app${i + 1}`, address: `${BRIDGE_IP}:${(server.address() as AddressInfo).port}` })))}`,
    '--set', `keepalived.role=${role}`, '--set', `keepalived.peers=${JSON.stringify([peer.host])}`, '--set', `keepalived.virtualIp=${vip}`,
  ];

  it('converges haproxy and keepalived on both in four cells; the master holds the virtual IP and it balances over both backends', async () => {
    await Promise.all([fourCells(a, args(a, b, 'master'), ['haproxy', 'keepalived']), fourCells(b, args(b, a, 'backup'), ['haproxy', 'keepalived'])]);
    await until(`${vip} on the master ${a.host}`, 20_000, () => holdsVip(a));
    expect(await holdsVip(b), 'the backup does not hold the virtual IP: VRRP passes the firewall between the peers').toBe(false);

    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const res = await get(`http://${vip}/`);
      expect(res?.status).toBe(200);
      seen.add(res?.body ?? '');
    }
    expect([...seen].sort()).toEqual(['backend-one', 'backend-two']);

    // VRRP is admitted from the peer only, by the block in before.rules.
    const rules = (await a.exec(['iptables', '-S', 'ufw-before-input'])).stdout;
    const journal = (await a.exec(['journalctl', '--no-pager', '-u', 'ufw.service'])).stdout;
    expect(rules, journal).toMatch(new RegExp(`-A ufw-before-input -s ${b.host.replaceAll('.', '\\.')}/32 -p (?:vrrp|112) -j ACCEPT`));
    // The statistics page: haproxy answers it on localhost, denies this host (the firewall lets it through: 10.213.0.0/24 is internal).
    const local = await a.exec(['bash', '-c', 'exec 3<>/dev/tcp/127.0.0.1/8404 && printf "GET /stats HTTP/1.0\\r\\n\\r\\n" >&3 && head -c 12 <&3']);
    expect(local.stdout).toMatch(/^HTTP\/1\.[01] 200$/);
    expect((await get(`http://${a.host}:8404/stats`))?.status).toBe(403);
    // A public port nobody serves stays closed.
    expect(await get(`http://${a.host}:8405/`)).toBeNull();
  }, 1_500_000);

  it('takes a backend that fails its health check out of the rotation', async () => {
    (backends[0] as ReturnType<typeof backend>).healthy.value = false;
    await until('backend-one out of the rotation', 20_000, async () => {
      const bodies = await Promise.all([1, 2, 3, 4].map(() => get(`http://${vip}/`)));
      return bodies.every((r) => r?.status === 200 && r.body === 'backend-two');
    });
    (backends[0] as ReturnType<typeof backend>).healthy.value = true;
    await until('backend-one back in the rotation', 20_000, async () => (await get(`http://${vip}/`))?.body === 'backend-one');
  }, 120_000);

  it('moves the virtual IP to the backup when the master\'s haproxy stops, and again when its keepalived stops, while requests keep being answered', async () => {
    let failed = 0;
    let answered = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const res = await get(`http://${vip}/`);
        if (res?.status === 200) answered++; else failed++;
        await new Promise((r) => setTimeout(r, 200));
      }
    })();

    await a.exec(['systemctl', 'stop', 'haproxy']);
    await until(`${vip} on the backup ${b.host} after haproxy stopped on the master`, 20_000, async () => (await holdsVip(b)) && !(await holdsVip(a)));
    const afterMove = answered;
    await until('requests answered through the backup', 10_000, async () => answered >= afterMove + 5);

    // haproxy back: the master takes the address back (preempt), then its keepalived stops.
    await a.exec(['systemctl', 'start', 'haproxy']);
    await until(`${vip} back on the master`, 20_000, () => holdsVip(a));
    await a.exec(['systemctl', 'stop', 'keepalived']);
    await until(`${vip} on the backup ${b.host} after keepalived stopped on the master`, 20_000, async () => (await holdsVip(b)) && !(await holdsVip(a)));
    const afterSecond = answered;
    await until('requests answered through the backup again', 10_000, async () => answered >= afterSecond + 5);

    polling = false;
    await poller;
    // A move costs at most a few seconds of failed requests (VRRP's advert interval is 1 s, the check runs every 2 s).
    expect(failed, `${failed} failed of ${failed + answered}`).toBeLessThanOrEqual(40);
    expect(answered).toBeGreaterThan(10);
    await a.exec(['systemctl', 'start', 'keepalived']);
  }, 180_000);
});
