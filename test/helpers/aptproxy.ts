/**
 * apt caching proxy for provisioning tests: apt-cacher-ng on the bridge address
 * (10.213.0.1:3142), config WITHOUT `Remap-` lines (the stock config remaps Debian to
 * mirrors that are unreachable here), so it forwards to whatever host the target asked
 * for (deb.debian.org). Every target already has /etc/apt/apt.conf.d/01proxy pointing here.
 * The proxy is shared by all workers and runs on after the tests (like the bridge);
 * stopAptProxy() ends it.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withLock } from './lock.js';
import { BRIDGE_IP, ensureHostNetwork } from './network.js';
import { pidAlive, portOpen, sleep, spawnDetached, tailFile, which } from './proc.js';
import { CACHE_DIR } from './rootfs.js';

export const APT_PROXY_PORT = 3142;
export const APT_PROXY_URL = `http://${BRIDGE_IP}:${APT_PROXY_PORT}`;
const ACNG_DIR = join(CACHE_DIR, 'apt-cacher-ng');
const PID_FILE = join(ACNG_DIR, 'pid');

/** Contents of /etc/apt/apt.conf.d/01proxy in every target. */
export const APT_PROXY_CONF = `Acquire::http::Proxy "${APT_PROXY_URL}";\n`;

/** Starts apt-cacher-ng when it is not already answering. Idempotent; safe across processes. */
export async function ensureAptProxy(): Promise<{ url: string; host: string; port: number }> {
  const info = { url: APT_PROXY_URL, host: BRIDGE_IP, port: APT_PROXY_PORT };
  await ensureHostNetwork();
  if (ourProxyPid() !== null && (await portOpen(BRIDGE_IP, APT_PROXY_PORT))) return info;
  const bin = which('apt-cacher-ng');
  if (!bin) throw new Error('apt-cacher-ng is not installed (apt-get install apt-cacher-ng)');
  return withLock(join(CACHE_DIR, 'apt-cacher-ng.lock'), async () => {
    if (await portOpen(BRIDGE_IP, APT_PROXY_PORT)) {
      if (ourProxyPid() !== null) return info;
      throw new Error(
        `something else listens on ${BRIDGE_IP}:${APT_PROXY_PORT} (the stock apt-cacher-ng service, whose ` +
          'Remap- rules point Debian at unreachable mirrors?); stop it: /etc/init.d/apt-cacher-ng stop',
      );
    }
    for (const d of ['cache', 'log', 'conf']) mkdirSync(join(ACNG_DIR, d), { recursive: true });
    writeFileSync(
      join(ACNG_DIR, 'conf', 'acng.conf'),
      [
        '# written by test/helpers/aptproxy.ts: no Remap- lines on purpose',
        `CacheDir: ${join(ACNG_DIR, 'cache')}`,
        `LogDir: ${join(ACNG_DIR, 'log')}`,
        'SupportDir: /usr/lib/apt-cacher-ng',
        `Port: ${APT_PROXY_PORT}`,
        `BindAddress: ${BRIDGE_IP}`,
        'ForeGround: 1',
        'ExThreshold: 4',
        'ReportPage: acng-report.html',
        // Index files stay fresh for 5 minutes, not 27 s: fewer upstream InRelease refreshes while many
        // targets update at once. It does not remove acng's refresh race ("File exists" in apt-cacher.err,
        // after which a client can wait out apt's whole bound), seen with two test files at a time.
        'FreshIndexMaxAge: 300',
        '',
      ].join('\n'),
    );
    const log = join(ACNG_DIR, 'log', 'stdout.log');
    const pid = spawnDetached([bin, '-c', join(ACNG_DIR, 'conf')], log);
    writeFileSync(PID_FILE, `${pid}\n`);
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (await portOpen(BRIDGE_IP, APT_PROXY_PORT)) return info;
      if (!pidAlive(pid)) break;
      await sleep(100);
    }
    throw new Error(`apt-cacher-ng did not start on ${BRIDGE_IP}:${APT_PROXY_PORT}; its output:\n${tailFile(log)}`);
  });
}

/** Pid of the apt-cacher-ng this module started (pidfile + cmdline naming our config dir), or null. */
function ourProxyPid(): number | null {
  try {
    const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return pidAlive(pid) && cmdline.includes(join(ACNG_DIR, 'conf')) ? pid : null;
  } catch {
    return null;
  }
}

export async function stopAptProxy(): Promise<void> {
  const pid = ourProxyPid();
  if (pid !== null) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
    for (let i = 0; i < 50 && pidAlive(pid); i++) await sleep(100);
  }
  rmSync(PID_FILE, { force: true });
}
