/**
 * Pebble, Let's Encrypt's small ACME test server, on the test bridge, with pebble-challtestsrv as
 * its DNS server, so that certbot in a target obtains a real certificate by a real HTTP-01
 * challenge that Pebble validates against the target's port 80.
 *
 *   const pebble = await startPebble();
 *   await pebble.addA('web.zanuri.test', target.host);     // challtestsrv answers Pebble's DNS query
 *   await pebble.installCa(target);                       // -> path of the CA that signed Pebble's HTTPS
 *   certbot ... --server pebble.directoryUrl               // with REQUESTS_CA_BUNDLE = that path
 *   const root = await pebble.issuingRoot();              // PEM of the root that signs issued certificates
 *   await pebble.stop();
 *
 * Debian's `pebble` package ships no test certificates: the helper makes its own CA with openssl
 * and a server certificate for the bridge IP (SAN IP:10.213.0.1). Pebble keeps its state in memory,
 * so each start is a fresh ACME server; certbot's state lives in the (fresh) target.
 * Ports on 10.213.0.1: 14000 ACME, 15000 Pebble management, 8053 DNS, 8055 challtestsrv management.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BRIDGE_IP, ensureHostNetwork } from './network.js';
import { pidAlive, portOpen, runOk, sleep, spawnDetached, tailFile, which } from './proc.js';
import type { TestTarget } from './targets.js';

export const PEBBLE_PORT = 14000;
export const PEBBLE_MANAGEMENT_PORT = 15000;
export const DNS_PORT = 8053;
export const CHALLTESTSRV_MANAGEMENT_PORT = 8055;
/** Where installCa() puts the test CA inside a target. */
export const TARGET_CA_PATH = '/usr/local/share/zanuri-test/pebble-ca.pem';

export interface Pebble {
  /** The ACME directory URL certbot is given with --server. */
  directoryUrl: string;
  /** PEM of the test CA that signed Pebble's own HTTPS certificate. */
  caPem: string;
  /** Maps a DNS name to an IPv4 address in challtestsrv (what Pebble resolves to validate). */
  addA(host: string, ip: string): Promise<void>;
  /** Copies the test CA into a target; returns its path there (certbot's caBundle). */
  installCa(target: TestTarget): Promise<string>;
  /** PEM of the root that signs the certificates Pebble issues (GET /roots/0 on the management port). */
  issuingRoot(): Promise<string>;
  /** The last lines of Pebble's and challtestsrv's logs, for a failing test's message. */
  logs(): string;
  /** Stops Pebble and challtestsrv and removes their files. Idempotent. */
  stop(): Promise<void>;
}

async function ensurePebbleInstalled(): Promise<void> {
  if (which('pebble') && which('pebble-challtestsrv')) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await runOk(['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'pebble'], { env, timeoutMs: 600_000 });
}

/** Makes a CA and a server certificate for the bridge IP. */
async function makeCertificates(dir: string): Promise<{ caPem: string; cert: string; key: string }> {
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca.key');
  const key = join(dir, 'server.key');
  const csr = join(dir, 'server.csr');
  const cert = join(dir, 'server.pem');
  const ext = join(dir, 'server.ext');
  writeFileSync(ext, `subjectAltName=IP:${BRIDGE_IP}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  await runOk(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=zanuri test Pebble HTTPS CA']);
  await runOk(['openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${BRIDGE_IP}`]);
  await runOk(['openssl', 'x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext]);
  const caPem = (await runOk(['cat', ca])).stdout;
  return { caPem, cert, key };
}

function post(port: number, path: string, body: unknown): Promise<void> {
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: BRIDGE_IP, port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`challtestsrv ${path}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`challtestsrv ${path}: timeout`)));
    req.end(data);
  });
}

/** GET over HTTPS trusting only `ca`. */
export function httpsGet(url: string, ca: string, extra: { servername?: string; host?: string } = {}): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  // SNI carries names only (RFC 6066); for an IP the certificate is checked against the IP itself.
  const servername = extra.servername ?? (isIP(u.hostname) ? undefined : u.hostname);
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: extra.host ?? u.hostname, port: u.port || 443, path: `${u.pathname}${u.search}`, method: 'GET', ca,
      ...(servername ? { servername } : {}), headers: { host: u.host }, timeout: 15_000,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.end();
  });
}

async function waitForPort(port: number, pid: number, log: string, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await portOpen(BRIDGE_IP, port)) return;
    if (!pidAlive(pid)) break;
    await sleep(100);
  }
  throw new Error(`${what} did not listen on ${BRIDGE_IP}:${port}\n--- ${log} ---\n${tailFile(log)}`);
}

export async function startPebble(): Promise<Pebble> {
  await ensureHostNetwork();
  await ensurePebbleInstalled();
  for (const port of [PEBBLE_PORT, PEBBLE_MANAGEMENT_PORT, DNS_PORT, CHALLTESTSRV_MANAGEMENT_PORT]) {
    if (await portOpen(BRIDGE_IP, port)) throw new Error(`${BRIDGE_IP}:${port} is already in use (another Pebble test running?)`);
  }
  const dir = mkdtempSync(join(tmpdir(), `zanuri-pebble-${process.pid}-`));
  const pids: number[] = [];
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      for (const pid of pids) if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 50 && pids.some(pidAlive); i++) await sleep(100);
      for (const pid of pids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  process.once('exit', () => { for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } } });
  try {
    const { caPem, cert, key } = await makeCertificates(dir);
    const challLog = join(dir, 'challtestsrv.log');
    // Only DNS: HTTP-01 answers come from the target's nginx. Unknown names get no address.
    const chall = spawnDetached(['pebble-challtestsrv', '-dns01', `${BRIDGE_IP}:${DNS_PORT}`, '-management', `${BRIDGE_IP}:${CHALLTESTSRV_MANAGEMENT_PORT}`,
      '-http01', '', '-https01', '', '-tlsalpn01', '', '-defaultIPv4', '', '-defaultIPv6', ''], challLog);
    pids.push(chall);
    await waitForPort(CHALLTESTSRV_MANAGEMENT_PORT, chall, challLog, 'pebble-challtestsrv');

    const config = join(dir, 'pebble-config.json');
    writeFileSync(config, JSON.stringify({
      pebble: {
        listenAddress: `${BRIDGE_IP}:${PEBBLE_PORT}`, managementListenAddress: `${BRIDGE_IP}:${PEBBLE_MANAGEMENT_PORT}`,
        certificate: cert, privateKey: key, httpPort: 80, tlsPort: 443, ocspResponderURL: '', externalAccountBindingRequired: false,
      },
    }, null, 2));
    const pebbleLog = join(dir, 'pebble.log');
    const pebble = spawnDetached(['pebble', '-config', config, '-dnsserver', `${BRIDGE_IP}:${DNS_PORT}`], pebbleLog,
      { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' });
    pids.push(pebble);
    await waitForPort(PEBBLE_PORT, pebble, pebbleLog, 'pebble');
    await waitForPort(PEBBLE_MANAGEMENT_PORT, pebble, pebbleLog, 'pebble (management)');

    return {
      directoryUrl: `https://${BRIDGE_IP}:${PEBBLE_PORT}/dir`,
      caPem,
      addA: (host, ip) => post(CHALLTESTSRV_MANAGEMENT_PORT, '/add-a', { host, addresses: [ip] }),
      async installCa(target) {
        const r = await target.exec(['sh', '-c', 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod 644 "$1"', 'sh', TARGET_CA_PATH], { stdin: caPem });
        if (r.exitCode !== 0) throw new Error(`copying the Pebble CA into ${target.name}: ${r.stderr}`);
        return TARGET_CA_PATH;
      },
      async issuingRoot() {
        const r = await httpsGet(`https://${BRIDGE_IP}:${PEBBLE_MANAGEMENT_PORT}/roots/0`, caPem);
        if (r.status !== 200 || !r.body.includes('BEGIN CERTIFICATE')) throw new Error(`pebble /roots/0: HTTP ${r.status}: ${r.body.slice(0, 200)}`);
        return r.body;
      },
      logs: () => `--- pebble ---\n${tailFile(pebbleLog, 4000)}\n--- challtestsrv ---\n${tailFile(challLog, 2000)}`,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}
