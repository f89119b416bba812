/**
 * Who may reach PostgreSQL and how: every cluster pg_lsclusters knows, the addresses it listens on
 * (listen_addresses, as the running server says) and the rows of its pg_hba.conf (the file the
 * running server names in hba_file, else Debian's path). Read-only, as root; the file travels
 * base64-encoded, so no line of it can forge a section marker. Nothing here reads a password: pg_hba
 * holds none.
 */
import type { FactRequest } from './state.js';

/** pg_hba.conf's connection types (PostgreSQL 15/16). */
export type HbaType = 'local' | 'host' | 'hostssl' | 'hostnossl' | 'hostgssenc' | 'hostnogssenc';

export interface HbaRule {
  /** 1-based line in the file (the first line of a continued row). */
  line: number;
  type: HbaType;
  database: string;
  user: string;
  /** host* rows: the address as written (a CIDR, a host name, all, samehost, samenet), with a separate mask folded in as /bits; null for local. */
  address: string | null;
  method: string;
  /** The row as written, comments and surplus blanks removed. */
  text: string;
  /** The file's lines that make up the row, exactly (more than one when continued with a backslash). */
  raw: string[];
}

export interface PostgresCluster {
  version: string;
  name: string;
  port: number;
  online: boolean;
  /** listen_addresses as the running server reports it; null when the cluster is down (it listens nowhere then). */
  listenAddresses: string | null;
  hbaPath: string;
  /** null when the file could not be read. */
  hba: HbaRule[] | null;
  /** Lines that are not a valid row (the server refuses to load such a file). */
  invalid: number[];
}

const types = new Set<HbaType>(['local', 'host', 'hostssl', 'hostnossl', 'hostgssenc', 'hostnogssenc']);

/** pg_hba's tokens: blanks separate, "double quotes" keep blanks and a leading #, # starts a comment. */
function tokens(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    const ch = line[i] ?? '';
    if (ch === ' ' || ch === '\t') { i += 1; continue; }
    if (ch === '#') break;
    let token = '';
    while (i < line.length && line[i] !== ' ' && line[i] !== '\t') {
      if (line[i] === '"') {
        const end = line.indexOf('"', i + 1);
        token += line.slice(i, end < 0 ? line.length : end + 1);
        i = end < 0 ? line.length : end + 1;
      } else {
        if (line[i] === '#') break;
        token += line[i];
        i += 1;
      }
    }
    if (token) out.push(token);
    if (line[i] === '#') break;
  }
  return out;
}

/** A dotted IPv4 mask (255.255.255.0) as prefix bits, null when it is not one. */
function maskBits(mask: string): number | null {
  const parts = mask.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return null;
  const bits = parts.reduce((n, p) => n * 256 + p, 0);
  const ones = bits.toString(2).padStart(32, '0');
  return /^1*0*$/.test(ones) ? ones.indexOf('0') < 0 ? 32 : ones.indexOf('0') : null;
}

/** The rows of a pg_hba.conf, in order (the first matching row decides), and the lines that are not rows. */
export function parseHba(text: string): { rules: HbaRule[]; invalid: number[] } {
  const rules: HbaRule[] = [];
  const invalid: number[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i += 1) {
    const start = i + 1;
    let line = lines[i] ?? '';
    const raw = [line];
    // PostgreSQL 16: a backslash at the end continues the row on the next line.
    while (line.endsWith('\\') && i + 1 < lines.length) { i += 1; raw.push(lines[i] ?? ''); line = `${line.slice(0, -1)} ${lines[i] ?? ''}`; }
    const t = tokens(line);
    if (!t.length) continue;
    const [type, database, user] = t;
    if (type === 'include' || type === 'include_if_exists' || type === 'include_dir') continue;
    if (!types.has(type as HbaType) || !database || !user) { invalid.push(start); continue; }
    let address: string | null = null;
    let method: string | undefined;
    if (type === 'local') {
      method = t[3];
    } else {
      address = t[3] ?? null;
      method = t[4];
      // An address without /bits may be followed by its mask: 10.0.0.0 255.0.0.0.
      if (address && !address.includes('/') && /^[\d.]+$/.test(address) && t[4] && /^[\d.]+$/.test(t[4])) {
        const bits = maskBits(t[4]);
        address = bits === null ? address : `${address}/${bits}`;
        method = t[5];
      } else if (address && !address.includes('/') && /:/.test(address) && t[4] && /^[0-9a-fA-F:]+$/.test(t[4]) && t[4].includes(':')) {
        address = `${address}/${t[4] === '::' ? 0 : t[4].split(':').filter((g) => /^f{4}$/i.test(g)).length * 16}`;
        method = t[5];
      }
    }
    if (!method || (type !== 'local' && !address)) { invalid.push(start); continue; }
    rules.push({ line: start, type: type as HbaType, database, user, address, method, text: t.join(' '), raw });
  }
  return { rules, invalid };
}

const script = `if command -v pg_lsclusters >/dev/null 2>&1; then
pg_lsclusters -h 2>/dev/null | while read -r v c port status owner rest; do
  case $v in ''|*[!0-9.]*) continue ;; esac
  hba= listen=
  if [ "\${status%%,*}" = online ]; then
    hba=$(cd / && timeout 10 runuser -u "$owner" -- psql -XAtq -p "$port" -c "select current_setting('hba_file')" </dev/null 2>/dev/null)
    listen=$(cd / && timeout 10 runuser -u "$owner" -- psql -XAtq -p "$port" -c "select current_setting('listen_addresses')" </dev/null 2>/dev/null) && printf '@listen %s\\n' "$listen"
  fi
  [ -n "$hba" ] || hba=/etc/postgresql/$v/$c/pg_hba.conf
  printf '@cluster %s %s %s %s\\n@hba %s\\n' "$v" "$c" "$port" "$status" "$hba"
  if [ -r "$hba" ]; then printf '@content '; head -c 262144 "$hba" | base64 | tr -d '\\n'; echo; fi
done
fi`;

/** Each cluster's sections: @listen (when online) comes before the @cluster line it belongs to. */
export function parsePostgresAccess(output: string): PostgresCluster[] {
  const clusters: PostgresCluster[] = [];
  let listen: string | null = null;
  for (const line of output.split('\n')) {
    const cluster = /^@cluster (\d+(?:\.\d+)?) (\S+) (\d+) (\S+)$/.exec(line);
    if (line.startsWith('@listen ')) listen = line.slice('@listen '.length).trim();
    else if (cluster) {
      clusters.push({
        version: cluster[1] ?? '', name: cluster[2] ?? '', port: Number(cluster[3]), online: (cluster[4] ?? '').split(',')[0] === 'online',
        listenAddresses: listen, hbaPath: '', hba: null, invalid: [],
      });
      listen = null;
    } else if (line.startsWith('@hba ') && clusters.length) {
      (clusters.at(-1) as PostgresCluster).hbaPath = line.slice('@hba '.length);
    } else if (line.startsWith('@content ') && clusters.length) {
      const parsed = parseHba(Buffer.from(line.slice('@content '.length).trim(), 'base64').toString('utf8'));
      Object.assign(clusters.at(-1) as PostgresCluster, { hba: parsed.rules, invalid: parsed.invalid });
    }
  }
  return clusters;
}

export const postgresAccessFact = (): FactRequest<PostgresCluster[]> => ({ key: 'postgresql:access', script, parse: parsePostgresAccess });
