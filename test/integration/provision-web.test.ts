/**
 * nginx and certbot on real systemd targets (needs root): nginx alone serves /health, hardened
 * (no version, security headers, a body limit, no answer for unknown Host headers); then nginx +
 * certbot obtain a real certificate from Pebble (a local ACME server) by an HTTP-01 challenge that
 * Pebble validates against the target's nginx, and the target serves the application (a small
 * HTTP responder in the target, written in the perl that every Debian has) over HTTPS with it,
 * with HSTS, while plain HTTP redirects there.
 */
import { execFile } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAptProxy } from '../helpers/aptproxy.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { fourCells, zanuriProvision } from '../helpers/provision.js';
import { canRunTargets, startTargets, stopAllTargets, type TestTarget } from '../helpers/targets.js';

const can = canRunTargets();
const playbook = ['--playbook', 'test/integration/playbooks/web.yaml'];
const domain = 'web.zanuri.test';
/** The nginx step as the first tests converge it: a small body limit, so a test can exceed it cheaply. */
const nginxArgs = [...playbook, '--only', 'nginx', '--set', 'nginx.clientMaxBodySize="1k"'];

interface Reply { status: number; headers: IncomingHttpHeaders; body: string }
/** tls.servername: the SNI name ('' sends none; without it Node sends the Host header's name); no ca: any certificate is accepted. */
interface Ask { host: string; path: string; hostHeader?: string; method?: string; body?: string; tls?: { ca?: string; servername?: string } }

/** One HTTP(S) request to a target, with the Host header and SNI the test chooses. */
function ask(o: Ask): Promise<Reply> {
  const url = `${o.tls ? 'https' : 'http'}://${o.hostHeader ?? o.host}${o.path}`;
  return new Promise((resolve, reject) => {
    const headers = { host: o.hostHeader ?? o.host, ...(o.body ? { 'content-length': String(Buffer.byteLength(o.body)) } : {}) };
    const common = { host: o.host, path: o.path, method: o.method ?? 'GET', headers, timeout: 15_000 };
    const onResponse = (res: import('node:http').IncomingMessage): void => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    };
    const req = o.tls
      ? httpsRequest({
        ...common, port: 443, ...(o.tls.servername !== undefined ? { servername: o.tls.servername } : {}),
        ...(o.tls.ca ? { ca: o.tls.ca } : { rejectUnauthorized: false }),
      }, onResponse)
      : httpRequest({ ...common, port: 80 }, onResponse);
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${o.method ?? 'GET'} ${url}: timeout`)));
    req.end(o.body);
  });
}

/** The protocol the server picks by ALPN when the client offers HTTP/2 and HTTP/1.1. */
function alpn(host: string, servername: string, ca: string): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host, port: 443, servername, ca, ALPNProtocols: ['h2', 'http/1.1'], timeout: 15_000 }, () => {
      resolve(socket.alpnProtocol ?? false);
      socket.end();
    });
    socket.on('error', reject);
    socket.on('timeout', () => socket.destroy(new Error(`TLS to ${host}: timeout`)));
  });
}

/** The headers every zanuri response carries: no nginx version, and the security headers. */
function expectHardenedHeaders(reply: Reply, what: string): void {
  expect(reply.headers['server'], `${what}: no version in the Server header`).toBe('nginx');
  expect(reply.headers['x-content-type-options'], what).toBe('nosniff');
  expect(reply.headers['x-frame-options'], what).toBe('SAMEORIGIN');
  expect(reply.headers['referrer-policy'], what).toBe('strict-origin-when-cross-origin');
}

/**
 * The application: answers every request with its path, X-Forwarded-Proto and Host, on
 * 127.0.0.1:8000 in the target, as a transient systemd service (perl-base is in every Debian).
 */
const appScript = String.raw`use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 8000, Listen => 16, ReuseAddr => 1) or die "listen: $!";
while (my $c = $s->accept) {
  my $line = <$c> // ""; my %h;
  while (my $l = <$c>) { last if $l =~ /^\r?\n$/; $h{lc $1} = $2 if $l =~ /^([^:]+):\s*(.*?)\r?$/; }
  my (undef, $path) = split / /, $line;
  my $body = "app $path proto=" . ($h{"x-forwarded-proto"} // "-") . " host=" . ($h{host} // "-") . "\n";
  print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
  close $c;
}`;

async function startApp(target: TestTarget): Promise<void> {
  const started = await target.exec(['systemd-run', '--unit=zanuri-test-app', '--property=RuntimeMaxSec=3600', 'perl', '-e', appScript]);
  expect(started.exitCode, started.stderr).toBe(0);
  for (let i = 0; i < 50; i++) {
    const up = await target.exec(['perl', '-MIO::Socket::INET', '-e', 'exit(IO::Socket::INET->new("127.0.0.1:8000") ? 0 : 1)']);
    if (up.exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the test application did not listen on 127.0.0.1:8000: ${(await target.exec(['journalctl', '--no-pager', '-u', 'zanuri-test-app'])).stdout}`);
}

/** The CLI as zanuriProvision drives it, without assuming a per-host report (a usage error has none). */
function zanuriRaw(target: TestTarget, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = fileURLToPath(new URL('../../bin/zanuri.js', import.meta.url));
  const argv = [bin, 'provision', '--json', '--yes', '-F', '/dev/null', '--known-hosts', target.knownHostsPath, '-i', target.privateKeyPath, '--host', `root@${target.host}`, ...args];
  return new Promise((resolve) => {
    execFile('node', argv, { timeout: 60_000, env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }));
  });
}

/** How many SSH logins the target's sshd has accepted so far. */
async function acceptedLogins(target: TestTarget): Promise<number> {
  const r = await target.exec(['journalctl', '--no-pager', '-o', 'cat', '-t', 'sshd']);
  return r.stdout.split('\n').filter((l) => l.startsWith('Accepted publickey')).length;
}

describe.skipIf(!can.ok && !process.env['CI'])('provision: nginx and certbot on real targets against Pebble (needs root)', () => {
  let web: TestTarget;
  let tls: TestTarget;
  let pebble: Pebble;

  beforeAll(async () => {
    if (!can.ok) throw new Error(`CI must be able to run test targets: ${can.why}`);
    await ensureAptProxy();
    [web, tls] = (await startTargets(2)) as [TestTarget, TestTarget];
    pebble = await startPebble();
  });

  afterAll(async () => {
    await Promise.all([stopAllTargets(), pebble?.stop()]);
  });

  it('converges nginx alone in four cells; /health answers 200 "ok" for its name, hardened headers, no answer for an unknown Host, a body limit, and the default site is gone', async () => {
    const [dry1, , , apply2] = await fourCells(web, nginxArgs, ['nginx']);
    const server = dry1.host.steps.find((s) => s.id === 'nginx')?.actions.find((a) => a.kind === 'put' && a.summary.includes('/etc/nginx/zanuri/server.conf'));
    expect(server?.diff).toContain('+location = /health {');
    expect(apply2.host.steps.find((s) => s.id === 'nginx')?.why).toMatch(/nginx serves the zanuri site/);

    const health = await ask({ host: web.host, hostHeader: domain, path: '/health' });
    expect({ status: health.status, body: health.body }).toEqual({ status: 200, body: 'ok\n' });
    expectHardenedHeaders(health, '/health');
    const other = await ask({ host: web.host, hostHeader: domain, path: '/' });
    expect(other.status, 'the rest is ours (404), not Debian\'s welcome page').toBe(404);
    expectHardenedHeaders(other, 'a 404');
    // The catch-all default server closes the connection without an answer (444) for any other Host.
    for (const hostHeader of [web.host, 'evil.example.org']) {
      await expect(ask({ host: web.host, hostHeader, path: '/health' }), hostHeader).rejects.toThrow(/socket hang up|ECONNRESET/);
    }
    const big = await ask({ host: web.host, hostHeader: domain, path: '/', method: 'POST', body: 'x'.repeat(2048) });
    expect(big.status, 'a body over clientMaxBodySize (1k) is refused').toBe(413);
    expect((await web.exec(['test', '-e', '/etc/nginx/sites-enabled/default'])).exitCode, 'the default site is disabled').not.toBe(0);
    expect((await web.exec(['readlink', '/etc/nginx/sites-enabled/zanuri'])).stdout.trim()).toBe('/etc/nginx/sites-available/zanuri');
    expect((await web.exec(['systemctl', 'is-enabled', 'nginx.service'])).stdout.trim()).toBe('enabled');
  }, 900_000);

  it('puts the old site back when nginx -t fails after the new one is written, and nginx keeps serving', async () => {
    // Something else on the host breaks nginx's configuration: the step must not make it worse.
    await web.exec(['sh', '-c', 'printf "zanuri_test_bogus_directive on;\\n" > /etc/nginx/conf.d/zz-broken.conf']);
    try {
      const run = await zanuriProvision(web, [...nginxArgs, '--set', 'nginx.serverName="other.zanuri.test"']);
      const step = run.host.steps.find((s) => s.id === 'nginx');
      expect(step?.status, run.stderr).toBe('rolled-back');
      expect(step?.why).toMatch(/validating \/etc\/nginx\/sites-available\/zanuri in place/);
      expect(run.code).toBe(6);
      expect((await web.exec(['grep', '-c', 'server_name web.zanuri.test;', '/etc/nginx/sites-available/zanuri'])).stdout.trim()).toBe('1');
    } finally {
      await web.exec(['rm', '-f', '/etc/nginx/conf.d/zz-broken.conf']);
    }
    expect((await ask({ host: web.host, hostHeader: domain, path: '/health' })).body).toBe('ok\n');
    const again = await zanuriProvision(web, [...nginxArgs, '--dry-run']);
    expect(again.host.steps.find((s) => s.id === 'nginx')?.status, 'still converged').toBe('unchanged');
  }, 300_000);

  it('obtains a certificate from Pebble through nginx in four cells; HTTPS serves the application with HSTS, HTTP redirects there, and the renewal timer is active', async () => {
    await pebble.addA(domain, tls.host);
    const caBundle = await pebble.installCa(tls);
    await startApp(tls);
    const args = [
      ...playbook, '--set', `certbot.server=${JSON.stringify(pebble.directoryUrl)}`, '--set', `certbot.caBundle=${JSON.stringify(caBundle)}`,
      '--set', 'nginx.upstream="127.0.0.1:8000"', '--set', 'nginx.healthUrl="http://127.0.0.1:8000/app-health"',
    ];
    let runs;
    try {
      runs = await fourCells(tls, args, ['nginx', 'certbot']);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${pebble.logs()}`);
    }
    const [dry1, apply1, , apply2] = runs;
    expect(dry1.host.steps.find((s) => s.id === 'certbot')?.why).toMatch(/no certificate for web\.zanuri\.test yet/);
    const certonly = apply1.host.steps.find((s) => s.id === 'certbot')?.actions.find((a) => a.summary.includes('certbot certonly'));
    expect(certonly?.summary).toContain(`REQUESTS_CA_BUNDLE=${caBundle}`);
    expect(certonly?.summary).toContain('--webroot');
    expect(apply2.host.steps.find((s) => s.id === 'certbot')?.why).toMatch(/valid for more than 30 days/);
    // Either step alone, in either order, finds nothing to undo in the other's files.
    for (const only of ['nginx', 'certbot']) {
      const alone = await zanuriProvision(tls, [...args, '--only', only, '--dry-run']);
      expect(alone.host.steps.find((s) => s.id === only)?.status, `--only ${only} after both`).toBe('unchanged');
    }

    // Real HTTPS: the name checked against the Pebble-issued certificate, trusting only Pebble's root
    // (like curl --resolve web.zanuri.test:443:IP --cacert root.pem https://web.zanuri.test/).
    const root = await pebble.issuingRoot();
    const https = { ca: root, servername: domain };
    const app = await ask({ host: tls.host, hostHeader: domain, path: '/some/page?x=1', tls: https });
    expect({ status: app.status, body: app.body }, 'HTTPS reaches the application, not a 404').toEqual({ status: 200, body: `app /some/page?x=1 proto=https host=${domain}\n` });
    expect(app.headers['strict-transport-security']).toBe('max-age=63072000');
    expectHardenedHeaders(app, 'HTTPS /');
    expect(await alpn(tls.host, domain, root), 'HTTP/2 is offered').toBe('h2');
    const health = await ask({ host: tls.host, hostHeader: domain, path: '/health', tls: https });
    expect({ status: health.status, body: health.body }, '/health proxies the application\'s health URL').toEqual({ status: 200, body: `app /app-health proto=https host=${domain}\n` });
    await expect(ask({ host: tls.host, hostHeader: domain, path: '/', tls: { ca: pebble.caPem, servername: domain } }), 'not trusted without Pebble\'s root').rejects.toThrow();
    // Another name, or none: the handshake is refused even when the client would accept any certificate.
    for (const servername of ['other.zanuri.test', '']) {
      await expect(ask({ host: tls.host, hostHeader: domain, path: '/', tls: { servername } }), `SNI ${servername || '(none)'}`)
        .rejects.toThrow(/alert|handshake|unrecognized name|socket disconnected/i);
    }

    // Plain HTTP: a redirect to HTTPS, except /health and the ACME challenges, which renewals and probes need.
    const plain = await ask({ host: tls.host, hostHeader: domain, path: '/some/page?x=1' });
    expect({ status: plain.status, location: plain.headers['location'] }).toEqual({ status: 301, location: `https://${domain}/some/page?x=1` });
    expect(plain.headers['strict-transport-security'], 'HSTS is sent over HTTPS only').toBeUndefined();
    expectHardenedHeaders(plain, 'the redirect');
    const plainHealth = await ask({ host: tls.host, hostHeader: domain, path: '/health' });
    expect({ status: plainHealth.status, body: plainHealth.body }).toEqual({ status: 200, body: `app /app-health proto=http host=${domain}\n` });
    await tls.exec(['sh', '-c', 'printf token > /var/www/zanuri-acme/.well-known/acme-challenge/zanuri-test']);
    const challenge = await ask({ host: tls.host, hostHeader: domain, path: '/.well-known/acme-challenge/zanuri-test' });
    expect({ status: challenge.status, body: challenge.body }).toEqual({ status: 200, body: 'token' });

    expect((await tls.exec(['systemctl', 'is-active', 'certbot.timer'])).stdout.trim()).toBe('active');
    expect((await tls.exec(['systemctl', 'is-enabled', 'certbot.timer'])).stdout.trim()).toBe('enabled');
    expect((await tls.exec(['test', '-x', '/etc/letsencrypt/renewal-hooks/deploy/zanuri-reload-nginx'])).exitCode).toBe(0);
    // Renewals by the timer trust Pebble's HTTPS too.
    expect((await tls.exec(['systemctl', 'show', '-p', 'Environment', 'certbot.service'])).stdout).toContain(`REQUESTS_CA_BUNDLE=${caBundle}`);
    // certbot's nginx installer never ran: the nginx step's site is exactly as it wrote it.
    expect((await tls.exec(['grep', '-c', 'letsencrypt', '/etc/nginx/sites-available/zanuri'])).stdout.trim()).toBe('0');
    expect((await tls.exec(['nginx', '-t', '-q'])).exitCode).toBe(0);
  }, 900_000);

  it('refuses a hostile domain with exit 2 before any connection', async () => {
    const before = await acceptedLogins(web);
    expect(before, 'the earlier runs\' logins are in the journal: the count means something').toBeGreaterThan(0);
    for (const bad of ['a;reboot', '$(id)', 'web.zanuri.test\nreboot', 'WEB.zanuri.test\'', '*.zanuri.test']) {
      for (const set of [`certbot.domain=${JSON.stringify(bad)}`, `nginx.serverName=${JSON.stringify(bad)}`]) {
        const run = await zanuriRaw(web, [...playbook, '--set', set]);
        expect(run.code, `${set}: ${run.stderr}`).toBe(2);
        expect(JSON.parse(run.stdout).error.message).toMatch(/(certbot: domain|nginx: serverName) must be a DNS name/);
      }
    }
    expect(await acceptedLogins(web), 'no SSH login happened').toBe(before);
  }, 300_000);
});
