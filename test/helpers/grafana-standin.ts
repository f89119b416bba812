/**
 * A stand-in for Grafana's apt repository (https://apt.grafana.com stable main), which cannot be
 * reached from here: a signed repository in the same layout (dists/stable/InRelease,
 * dists/stable/main/binary-amd64/Packages, pool/main/), built by the test with dpkg-deb,
 * dpkg-scanpackages and gpg and served over HTTP on the test bridge by this process. Its `grafana`
 * and `loki` packages carry the real names, units, users and paths, and say in their description that
 * they are stand-ins; their programs are small Perl HTTP servers, NOT Grafana or Loki:
 *
 * - grafana-server.service runs /usr/share/grafana/bin/grafana as the user grafana; it answers
 *   /api/health on $GF_SERVER_HTTP_PORT with what that user can read: whether the admin password
 *   credential ($GF_SECURITY_ADMIN_PASSWORD__FILE) is there, the provisioned datasources' names and
 *   the number of provisioned dashboards. It proves the wiring zanuri sets up, not Grafana.
 * - loki.service runs /usr/bin/loki -config.file /etc/loki/config.yml as the user loki and answers
 *   /ready on the config's http_listen_port; `-verify-config` checks only that the file has
 *   server/schema_config/compactor sections and a http_listen_port (the real Loki checks far more).
 *
 * Built from test/helpers/standin-repo.ts (owned elsewhere; copied, not imported, where it differs:
 * that one serves flat repositories).
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BRIDGE_IP } from './network.js';
import { runOk } from './proc.js';
import { serveDirectory } from './standin-repo.js';

interface Pkg { name: string; version: string; files: Record<string, [string, number]>; postinst: string; depends?: string }

const httpServer = String.raw`use strict; use warnings; use IO::Socket::INET;
sub serve { my ($port, $handler) = @_;
  my $s = IO::Socket::INET->new(LocalAddr => '0.0.0.0', LocalPort => $port, Listen => 16, ReuseAddr => 1, Proto => 'tcp') or die "stand-in: cannot listen on $port: $!\n";
  while (my $c = $s->accept) {
    my $line = <$c> // ''; while (my $h = <$c>) { last if $h =~ /^\r?\n$/ }
    my ($path) = $line =~ m{^(?:GET|HEAD) (\S+)}; my ($code, $body) = $handler->($path // '');
    print $c "HTTP/1.0 $code\r\nContent-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body"; close $c;
  } }
`;

const grafanaProgram = `#!/usr/bin/perl
# zanuri test stand-in for Grafana: NOT Grafana. Reports what its service user can read.
${httpServer}
my $port = $ENV{GF_SERVER_HTTP_PORT} || 3000;
sub readable { my $f = shift; return 0 unless defined $f && -r $f; open(my $h, '<', $f) or return 0; my $t = <$h> // ''; close $h; return $t =~ /^[A-Za-z0-9]{32}$/ ? 1 : 0 }
sub datasources { my @n; for my $f (glob('/etc/grafana/provisioning/datasources/*.yaml')) { open(my $h, '<', $f) or next; while (<$h>) { push @n, $1 if /^\\s*- name: (\\S+)/ } close $h } return @n }
sub dashboards { my $n = 0; for my $f (glob('/etc/grafana/provisioning/dashboards/*.yaml')) { open(my $h, '<', $f) or next; while (<$h>) { if (/^\\s*path: (\\S+)/) { for my $d (glob("$1/*.json")) { $n++ if -r $d } } } close $h } return $n }
serve($port, sub { my $p = shift;
  return ('404 Not Found', '{}') unless $p eq '/api/health';
  my $ds = join(',', map { "\\"$_\\"" } datasources());
  return ('200 OK', sprintf('{"standin": true, "database": "ok", "credential": %s, "datasources": [%s], "dashboards": %d}', readable($ENV{GF_SECURITY_ADMIN_PASSWORD__FILE}) ? 'true' : 'false', $ds, dashboards()));
});
`;

const lokiProgram = `#!/usr/bin/perl
# zanuri test stand-in for Loki: NOT Loki.
${httpServer}
my ($config, $verify) = ('/etc/loki/config.yml', 0);
for (my $i = 0; $i < @ARGV; $i++) { my $a = $ARGV[$i]; if ($a =~ /^-config\\.file=(.+)$/) { $config = $1 } elsif ($a eq '-config.file') { $config = $ARGV[++$i] } elsif ($a eq '-verify-config') { $verify = 1 } }
open(my $h, '<', $config) or die "stand-in loki: cannot read $config: $!\\n"; my $text = do { local $/; <$h> }; close $h;
my ($port) = $text =~ /^\\s*http_listen_port:\\s*(\\d+)/m;
if ($verify) { for my $s ('server:', 'schema_config:', 'compactor:') { die "stand-in loki: $config has no $s section\\n" unless $text =~ /^\\Q$s\\E/m } die "stand-in loki: no http_listen_port\\n" unless $port; print "stand-in loki: config sections present\\n"; exit 0 }
serve($port || 3100, sub { my $p = shift; return $p eq '/ready' ? ('200 OK', "ready\\n") : ('404 Not Found', '{}') });
`;

function packagesOf(): Pkg[] {
  return [
    {
      name: 'grafana', version: '11.0.0-standin',
      files: {
        '/usr/share/grafana/bin/grafana': [grafanaProgram, 0o755],
        '/lib/systemd/system/grafana-server.service': ['[Unit]\nDescription=Grafana instance (zanuri test stand-in)\nAfter=network-online.target\n\n[Service]\nEnvironmentFile=-/etc/default/grafana-server\nUser=grafana\nGroup=grafana\nType=simple\nRestart=on-failure\nWorkingDirectory=/usr/share/grafana\nExecStart=/usr/share/grafana/bin/grafana server --config=/etc/grafana/grafana.ini\n\n[Install]\nWantedBy=multi-user.target\n', 0o644],
        '/etc/grafana/grafana.ini': ['; zanuri test stand-in for the package\'s grafana.ini\n', 0o640],
        '/etc/default/grafana-server': ['GRAFANA_USER=grafana\n', 0o644],
      },
      postinst: '#!/bin/sh\nset -e\nif [ "$1" = configure ]; then\n  getent group grafana >/dev/null || addgroup --system grafana\n  getent passwd grafana >/dev/null || adduser --system --ingroup grafana --home /usr/share/grafana --no-create-home --disabled-login grafana\n  mkdir -p /etc/grafana/provisioning/datasources /etc/grafana/provisioning/dashboards /var/lib/grafana\n  chown root:grafana /etc/grafana /etc/grafana/grafana.ini /etc/grafana/provisioning /etc/grafana/provisioning/datasources /etc/grafana/provisioning/dashboards\n  chown grafana:grafana /var/lib/grafana\n  systemctl daemon-reload >/dev/null 2>&1 || true\nfi\n',
    },
    {
      name: 'loki', version: '3.0.0-standin',
      files: {
        '/usr/bin/loki': [lokiProgram, 0o755],
        '/lib/systemd/system/loki.service': ['[Unit]\nDescription=Loki service (zanuri test stand-in)\nAfter=network.target\n\n[Service]\nType=simple\nUser=loki\nExecStart=/usr/bin/loki -config.file /etc/loki/config.yml\nRestart=on-failure\nRestartSec=2\n\n[Install]\nWantedBy=multi-user.target\n', 0o644],
        '/etc/loki/config.yml': ['# zanuri test stand-in for the package\'s config.yml\nserver:\n  http_listen_port: 3100\nschema_config:\ncompactor:\n', 0o644],
      },
      postinst: '#!/bin/sh\nset -e\nif [ "$1" = configure ]; then\n  getent group loki >/dev/null || addgroup --system loki\n  getent passwd loki >/dev/null || adduser --system --ingroup loki --home /var/lib/loki --no-create-home --disabled-login loki\n  systemctl daemon-reload >/dev/null 2>&1 || true\nfi\n',
    },
  ];
}

export interface GrafanaStandin { url: string; keyArmored: string; requests: string[]; close(): Promise<void> }

/** Builds and serves the stand-in repository; url is what repositoryUrl takes (Suites: stable, Components: main). */
export async function startGrafanaStandin(): Promise<GrafanaStandin> {
  const root = mkdtempSync(join(tmpdir(), 'zanuri-grafana-standin-'));
  const gnupg = join(root, 'gnupg');
  mkdirSync(gnupg, { mode: 0o700 });
  const env = { GNUPGHOME: gnupg };
  const www = join(root, 'www');
  const pool = join(www, 'pool/main');
  const binary = join(www, 'dists/stable/main/binary-amd64');
  mkdirSync(pool, { recursive: true });
  mkdirSync(binary, { recursive: true });

  await runOk(['gpg', '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', '--quick-gen-key', 'zanuri stand-in for Grafana\'s repository <standin@invalid>', 'ed25519', 'sign', '1d'], { env });
  const keyArmored = (await runOk(['gpg', '--batch', '--armor', '--export'], { env })).stdout;

  for (const pkg of packagesOf()) {
    const tree = join(root, 'build', pkg.name);
    mkdirSync(join(tree, 'DEBIAN'), { recursive: true });
    writeFileSync(join(tree, 'DEBIAN/control'), [
      `Package: ${pkg.name}`, `Version: ${pkg.version}`, 'Architecture: amd64', 'Maintainer: zanuri tests <tests@invalid>', 'Depends: adduser',
      `Description: stand-in for ${pkg.name} (zanuri test)`, ' A test package with the vendor package\'s name; not the real software.', '',
    ].join('\n'));
    writeFileSync(join(tree, 'DEBIAN/postinst'), pkg.postinst);
    chmodSync(join(tree, 'DEBIAN/postinst'), 0o755);
    const conffiles = Object.keys(pkg.files).filter((p) => p.startsWith('/etc/'));
    if (conffiles.length) writeFileSync(join(tree, 'DEBIAN/conffiles'), `${conffiles.join('\n')}\n`);
    for (const [path, [content, mode]] of Object.entries(pkg.files)) {
      const dest = join(tree, path);
      mkdirSync(dirname(dest), { recursive: true });
      writeFileSync(dest, content);
      chmodSync(dest, mode);
    }
    await runOk(['dpkg-deb', '--root-owner-group', '-Zgzip', '--build', tree, join(pool, `${pkg.name}_${pkg.version}_amd64.deb`)]);
  }
  // Paths in Packages are relative to the repository root (Filename: pool/main/...).
  const scanned = await runOk(['sh', '-c', 'cd "$1" && dpkg-scanpackages --multiversion pool/main', 'sh', www]);
  writeFileSync(join(binary, 'Packages'), scanned.stdout);
  const bytes = readFileSync(join(binary, 'Packages'));
  writeFileSync(join(www, 'dists/stable/Release'), [
    'Origin: zanuri-grafana-standin', 'Label: zanuri stand-in for Grafana', 'Suite: stable', 'Codename: stable', 'Components: main', 'Architectures: amd64',
    `Date: ${new Date().toUTCString()}`, 'SHA256:', ` ${createHash('sha256').update(bytes).digest('hex')} ${bytes.length} main/binary-amd64/Packages`, '',
  ].join('\n'));
  await runOk(['gpg', '--batch', '--yes', '--clearsign', '--output', join(www, 'dists/stable/InRelease'), join(www, 'dists/stable/Release')], { env });

  const { server, port, requests } = await serveDirectory(www);
  return {
    url: `http://${BRIDGE_IP}:${port}`,
    keyArmored,
    requests,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(root, { recursive: true, force: true });
    },
  };
}
