import { createHash } from 'node:crypto';
import type { Action } from '../core/plan.js';
import { postgresAccessFact, type HbaRule, type PostgresCluster } from '../facts/postgresql-access.js';
import type { Resource } from './types.js';

/**
 * Who may reach PostgreSQL, as a resource: the check that `zanuri audit` reports and the fix a step
 * can declare are the same function (accessProblems), so the two can never disagree.
 *
 * A problem is a pg_hba.conf row that lets a client in without a password (trust), with its password
 * in clear (password) or an MD5 hash that can be replayed (md5), without TLS from another host
 * (host/hostnossl), or from any address at all (0.0.0.0/0, ::/0, all); and a cluster listening
 * beyond loopback when the profile does not say it should. A reject row is never a problem.
 *
 * The fix comments a row out (it is kept, marked, for the operator and for the undo) and reloads the
 * cluster; a listen scope too wide gets a conf.d drop-in back to localhost and a restart.
 */
export type AccessProblemKind = 'listen' | 'trust' | 'password' | 'md5' | 'no-ssl' | 'any-address';
export type AccessSeverity = 'low' | 'medium' | 'high' | 'critical';

export interface AccessProblem {
  kind: AccessProblemKind;
  severity: AccessSeverity;
  /** "15/main". */
  cluster: string;
  /** What shows it: "pg_hba.conf:12 host all all 0.0.0.0/0 md5" or "listen_addresses = '*'". */
  evidence: string;
  why: string;
}

export interface AccessPolicy {
  /** listen_addresses entries the profile means (postgresql.listenAddresses); loopback is always fine. */
  listen?: readonly string[];
  /** Networks the profile opens to the database (postgresql.allowFrom): rows for exactly these are not "any address". */
  allowFrom?: readonly string[];
}

/** Prefix bits of a CIDR, or null when the address has none (a host name, a keyword). */
const prefixOf = (address: string): number | null => {
  const m = /\/(\d+)$/.exec(address);
  return m ? Number(m[1]) : null;
};

const anyAddress = (address: string): boolean => address === 'all' || prefixOf(address) === 0;

/** Loopback, or the server's own addresses: a client on this host. */
const localAddress = (address: string): boolean =>
  address === 'localhost' || address === 'samehost' || /^127\./.test(address) || /^::1(?:\/128)?$/.test(address) || /^::ffff:127\./i.test(address);

const loopbackListen = (entry: string): boolean => entry === 'localhost' || /^127\./.test(entry) || entry === '::1';
const everyAddress = (entry: string): boolean => entry === '*' || entry === '0.0.0.0' || entry === '::';

/** What is wrong with one row, most serious first; none for a reject row or a local, peer-like one. */
export function rowProblems(rule: HbaRule, policy: AccessPolicy = {}): { kind: AccessProblemKind; severity: AccessSeverity; why: string }[] {
  const method = rule.method.toLowerCase();
  if (method === 'reject') return [];
  const remote = rule.type !== 'local' && rule.address !== null && !localAddress(rule.address);
  const clear = remote && (rule.type === 'host' || rule.type === 'hostnossl' || rule.type === 'hostnogssenc');
  const out: { kind: AccessProblemKind; severity: AccessSeverity; why: string }[] = [];
  const from = rule.type === 'local' ? 'over the local socket' : remote ? `from ${rule.address}` : `from this host (${rule.address})`;
  if (method === 'trust') out.push({ kind: 'trust', severity: remote ? 'critical' : 'high', why: `trust: anyone ${from} logs in without a password as ${rule.user === 'all' ? 'any role, the superuser too' : rule.user}` });
  if (method === 'password') out.push({ kind: 'password', severity: clear ? 'high' : 'medium', why: `password: the password travels in clear text ${from}${clear ? ', on a connection without TLS' : ''}` });
  if (method === 'md5') out.push({ kind: 'md5', severity: remote ? 'medium' : 'low', why: `md5: an MD5 hash that a stolen copy of pg_authid replays (scram-sha-256 does not)` });
  if (remote && rule.address !== null && anyAddress(rule.address) && !(policy.allowFrom ?? []).includes(rule.address)) {
    out.push({ kind: 'any-address', severity: 'high', why: `any address (${rule.address}) may try to log in` });
  }
  if (clear) out.push({ kind: 'no-ssl', severity: 'medium', why: `${rule.type}: clients ${from} may connect without TLS` });
  return out;
}

const clusterId = (c: PostgresCluster): string => `${c.version}/${c.name}`;
const fileName = (c: PostgresCluster): string => c.hbaPath.split('/').at(-1) || 'pg_hba.conf';

/** Every problem of every cluster: the listen scope, then the rows in file order. */
export function accessProblems(clusters: readonly PostgresCluster[], policy: AccessPolicy = {}): AccessProblem[] {
  const problems: AccessProblem[] = [];
  for (const c of clusters) {
    const cluster = clusterId(c);
    if (c.online && c.listenAddresses !== null) {
      const wide = c.listenAddresses.split(',').map((e) => e.trim()).filter((e) => e && !loopbackListen(e) && !(policy.listen ?? []).includes(e));
      if (wide.length) {
        problems.push({
          kind: 'listen', severity: wide.some(everyAddress) ? 'medium' : 'low', cluster, evidence: `${cluster}: listen_addresses = '${c.listenAddresses}' (port ${c.port})`,
          why: `PostgreSQL ${cluster} listens on ${wide.map((e) => (everyAddress(e) ? `every address (${e})` : e)).join(', ')}, beyond loopback`,
        });
      }
    }
    for (const rule of c.hba ?? []) {
      for (const p of rowProblems(rule, policy)) problems.push({ ...p, cluster, evidence: `${cluster} ${fileName(c)}:${rule.line}: ${rule.text}`, why: p.why });
    }
  }
  return problems;
}

/**
 * Comments rows out in place (sed -i keeps mode and owner) after checking they still read as they
 * did; the undo takes the mark away again. Arguments: file first-line last-line sha256-of-those-lines.
 */
export const hbaMark = '#zanuri-disabled: ';
const disableScript = `set -eu
f=$1 a=$2 b=$3 sum=$4
[ "$(sed -n "\${a},\${b}p" -- "$f" | sha256sum | cut -d' ' -f1)" = "$sum" ] || { echo "zanuri: lines $a-$b of $f changed since they were read; nothing done" >&2; exit 3; }
sed -i -e "\${a},\${b}s/^/${hbaMark}/" -- "$f"`;
const enableScript = `set -eu
sed -i -e "$2,$3s/^${hbaMark}//" -- "$1"`;

const listenDropIn = (c: PostgresCluster): string => `/etc/postgresql/${c.version}/${c.name}/conf.d/zz-zanuri-listen.conf`;
const unitOf = (c: PostgresCluster): string => `postgresql@${c.version}-${c.name}.service`;

/**
 * The resource: converged when accessProblems finds nothing. Each fix carries the row's exact lines
 * as a hash, so it touches nothing that changed since the facts were read.
 */
export function postgresqlAccess(policy: AccessPolicy = {}): Resource {
  const state = postgresAccessFact();
  return {
    id: 'postgresql-access',
    describe: 'PostgreSQL listens on loopback unless the profile says otherwise, and pg_hba.conf has no trust, password or md5 row, none without TLS from another host and none for any address',
    facts: () => [state],
    plan(facts) {
      const actions: Action[] = [];
      for (const c of facts.get(state)) {
        const listen = accessProblems([{ ...c, hba: [] }], policy)[0];
        if (listen) {
          actions.push({
            kind: 'run', why: listen.why, display: `write ${listenDropIn(c)} (listen_addresses = 'localhost'), restart ${unitOf(c)}`,
            cmd: { argv: ['sh', '-c', 'printf "%s\\n" "# Managed by zanuri (postgresql-access): loopback only." "listen_addresses = \'localhost\'" > "$1" && chmod 644 "$1"', 'zanuri-listen', listenDropIn(c)] },
            undo: { argv: ['rm', '-f', '--', listenDropIn(c)] },
            notify: [{ unit: unitOf(c), op: 'restart' }],
          });
        }
        for (const rule of c.hba ?? []) {
          const problems = rowProblems(rule, policy);
          if (!problems.length) continue;
          const last = rule.line + rule.raw.length - 1;
          // As `sed -n a,bp` prints them: each line with its newline.
          const sum = createHash('sha256').update(rule.raw.map((l) => `${l}\n`).join('')).digest('hex');
          actions.push({
            kind: 'run', why: `${fileName(c)}:${rule.line} (${clusterId(c)}) "${rule.text}": ${problems.map((p) => p.why).join('; ')}`,
            display: `comment out ${c.hbaPath}:${rule.line} (${rule.text}), reload ${unitOf(c)}`,
            cmd: { argv: ['sh', '-c', disableScript, 'zanuri-hba', c.hbaPath, String(rule.line), String(last), sum] },
            undo: { argv: ['sh', '-c', enableScript, 'zanuri-hba', c.hbaPath, String(rule.line), String(last)] },
            notify: [{ unit: unitOf(c), op: 'reload' }],
          });
        }
      }
      return actions;
    },
  };
}
