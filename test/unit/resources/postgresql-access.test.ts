import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseHba, parsePostgresAccess, postgresAccessFact, type HbaRule } from '../../../src/facts/postgresql-access.js';
import { accessProblems, hbaMark, postgresqlAccess, rowProblems } from '../../../src/resources/postgresql-access.js';
import { factsOf } from '../steps/facts-of.js';

const fixture = (name: string): string => readFileSync(new URL(`../../facts/audit/${name}`, import.meta.url), 'utf8');
const stock = parsePostgresAccess(fixture('postgresql-access.debian12.txt'));
const weak = parsePostgresAccess(fixture('postgresql-access-weak.debian12.txt'));
const row = (text: string): HbaRule => {
  const [rule] = parseHba(text).rules;
  if (!rule) throw new Error(`not a row: ${text}`);
  return rule;
};

describe('the PostgreSQL access fact', () => {
  it('reads Debian 12\'s cluster as shipped: online, loopback only, seven rows', () => {
    expect(stock).toHaveLength(1);
    expect(stock[0]).toMatchObject({ version: '15', name: 'main', port: 5432, online: true, listenAddresses: 'localhost', hbaPath: '/etc/postgresql/15/main/pg_hba.conf', invalid: [] });
    expect(stock[0]?.hba?.map((r) => `${r.line} ${r.type} ${r.address ?? '-'} ${r.method}`)).toEqual([
      '90 local - peer', '95 local - peer', '97 host 127.0.0.1/32 scram-sha-256', '99 host ::1/128 scram-sha-256',
      '102 local - peer', '103 host 127.0.0.1/32 scram-sha-256', '104 host ::1/128 scram-sha-256',
    ]);
  });

  it('reads every row as PostgreSQL itself does (pg_hba_file_rules on the same file): masks, quotes, comments, a continued row', () => {
    const oracle = fixture('pg-hba-file-rules.debian12.txt').trim().split('\n').map((l) => l.split('|'));
    const rules = weak[0]?.hba ?? [];
    expect(rules.map((r) => r.line)).toEqual(oracle.map((o) => Number(o[0])));
    const bits = (mask: string): number => (mask.includes(':') ? mask.split(':').filter((g) => g === 'ffff').length * 16 : mask.split('.').reduce((n, p) => n + Number(p).toString(2).replace(/0/g, '').length, 0));
    for (const [i, o] of oracle.entries()) {
      const [, type, database, user, address, netmask, method, error] = o;
      const r = rules[i] as HbaRule;
      expect(error, `line ${r.line}`).toBe('');
      expect([r.type, `{${r.database}}`, `{${r.user}}`, r.method], `line ${r.line}`).toEqual([type, database, user, method]);
      expect(r.address, `line ${r.line}`).toBe(address ? (netmask ? `${address}/${bits(netmask ?? '')}` : address) : null);
    }
  });

  it('reads a row continued with a backslash (PostgreSQL 15 and later) as one, keeping its lines for the fix', () => {
    const { rules, invalid } = parseHba('# c\nhost all all samenet \\\n    scram-sha-256\nlocal all all peer\n');
    expect(invalid).toEqual([]);
    expect(rules.map((r) => [r.line, r.address, r.method, r.raw.length])).toEqual([[2, 'samenet', 'scram-sha-256', 2], [4, null, 'peer', 1]]);
  });

  it('reads nothing on a host without PostgreSQL, and a stopped cluster as listening nowhere', () => {
    expect(parsePostgresAccess('')).toEqual([]);
    const [down] = parsePostgresAccess('@cluster 15 main 5432 down\n@hba /etc/postgresql/15/main/pg_hba.conf\n');
    expect(down).toMatchObject({ online: false, listenAddresses: null, hba: null });
  });

  it('cannot be fooled by a row that looks like a section marker: the file travels base64-encoded', () => {
    expect(postgresAccessFact().script).toContain('base64');
    const forged = Buffer.from('@cluster 9 evil 1 online\nlocal all all peer\n').toString('base64');
    const clusters = parsePostgresAccess(`@cluster 15 main 5432 online\n@hba /x\n@content ${forged}\n`);
    expect(clusters.map((c) => c.name)).toEqual(['main']);
    expect(clusters[0]?.invalid).toEqual([1]);
  });
});

describe('the PostgreSQL access check (what audit reports and the resource fixes)', () => {
  it('finds nothing wrong with Debian\'s cluster as shipped', () => {
    expect(accessProblems(stock)).toEqual([]);
    expect(postgresqlAccess().plan(factsOf([[postgresAccessFact(), fixture('postgresql-access.debian12.txt')]]))).toEqual([]);
  });

  it('names every weak row and the listen scope, with the row as evidence', () => {
    expect(accessProblems(weak).map((p) => `${p.kind} ${p.severity} | ${p.evidence}`)).toEqual([
      "listen medium | 15/main: listen_addresses = '*' (port 5432)",
      'trust high | 15/main pg_hba.conf:105: local sameuser all trust',
      'md5 medium | 15/main pg_hba.conf:106: host all all 0.0.0.0/0 md5',
      'any-address high | 15/main pg_hba.conf:106: host all all 0.0.0.0/0 md5',
      'no-ssl medium | 15/main pg_hba.conf:106: host all all 0.0.0.0/0 md5',
      'password medium | 15/main pg_hba.conf:107: hostssl app app 10.0.0.0 255.0.0.0 password',
      'no-ssl medium | 15/main pg_hba.conf:110: host all all samenet scram-sha-256',
    ]);
  });

  it('judges the method and the reach of a row: reject never, trust everywhere, clear text and no TLS only from other hosts', () => {
    const kinds = (text: string): string[] => rowProblems(row(text)).map((p) => `${p.kind}:${p.severity}`);
    expect(kinds('hostnossl all all 0.0.0.0/0 reject')).toEqual([]);
    expect(kinds('local all all peer')).toEqual([]);
    expect(kinds('host all all 127.0.0.1/32 scram-sha-256')).toEqual([]);
    expect(kinds('hostssl app app 10.0.0.0/8 scram-sha-256')).toEqual([]);
    expect(kinds('local all all trust')).toEqual(['trust:high']);
    expect(kinds('host all all 10.1.2.3/32 trust')).toEqual(['trust:critical', 'no-ssl:medium']);
    expect(kinds('host all all 127.0.0.1/32 password')).toEqual(['password:medium']);
    expect(kinds('host all all 10.0.0.0/8 password')).toEqual(['password:high', 'no-ssl:medium']);
    expect(kinds('host all all ::1/128 md5')).toEqual(['md5:low']);
    expect(kinds('hostssl all all all scram-sha-256')).toEqual(['any-address:high']);
    expect(kinds('hostssl all all ::/0 scram-sha-256')).toEqual(['any-address:high']);
    expect(kinds('host all all db.example.org scram-sha-256')).toEqual(['no-ssl:medium']);
    // The profile's own networks (postgresql.allowFrom) are meant, even when that is everyone.
    expect(rowProblems(row('hostssl app app 0.0.0.0/0 scram-sha-256'), { allowFrom: ['0.0.0.0/0'] })).toEqual([]);
  });

  it('takes the listen scope the profile names (postgresql.listenAddresses) as meant', () => {
    expect(accessProblems(weak, { listen: ['*'] }).some((p) => p.kind === 'listen')).toBe(false);
    const specific = accessProblems([{ ...(stock[0] as (typeof stock)[0]), listenAddresses: 'localhost,10.0.0.5' }]);
    expect(specific.map((p) => `${p.kind} ${p.severity}`)).toEqual(['listen low']);
  });
});

describe('the PostgreSQL access resource', () => {
  const actions = postgresqlAccess().plan(factsOf([[postgresAccessFact(), fixture('postgresql-access-weak.debian12.txt')]]));

  it('plans one fix per weak row and one for the listen scope, each with its undo and the cluster\'s reload or restart', () => {
    expect(actions.map((a) => (a.kind === 'run' ? a.display : a.kind))).toEqual([
      "write /etc/postgresql/15/main/conf.d/zz-zanuri-listen.conf (listen_addresses = 'localhost'), restart postgresql@15-main.service",
      'comment out /etc/postgresql/15/main/pg_hba.conf:105 (local sameuser all trust), reload postgresql@15-main.service',
      'comment out /etc/postgresql/15/main/pg_hba.conf:106 (host all all 0.0.0.0/0 md5), reload postgresql@15-main.service',
      'comment out /etc/postgresql/15/main/pg_hba.conf:107 (hostssl app app 10.0.0.0 255.0.0.0 password), reload postgresql@15-main.service',
      'comment out /etc/postgresql/15/main/pg_hba.conf:110 (host all all samenet scram-sha-256), reload postgresql@15-main.service',
    ]);
    for (const a of actions) expect(a.kind === 'run' && a.undo !== undefined).toBe(true);
  });

  it('comments the rows out and back in exactly, in dash and bash, and refuses lines that changed since they were read', () => {
    const text = Buffer.from(/^@content (.*)$/m.exec(fixture('postgresql-access-weak.debian12.txt'))?.[1] ?? '', 'base64').toString('utf8');
    for (const sh of ['dash', 'bash']) {
      const dir = mkdtempSync(join(tmpdir(), 'zanuri-hba-'));
      const file = join(dir, 'pg_hba.conf');
      writeFileSync(file, text);
      const run = (argv: readonly string[]): number | null => spawnSync(sh, ['-c', argv[2] ?? '', ...argv.slice(3).map((a) => (a === '/etc/postgresql/15/main/pg_hba.conf' ? file : a))], { encoding: 'utf8' }).status;
      const rows = actions.slice(1).flatMap((a) => (a.kind === 'run' ? [a] : []));
      for (const a of rows) expect(run(a.cmd.argv), sh).toBe(0);
      const disabled = readFileSync(file, 'utf8');
      expect(disabled.split('\n').filter((l) => l.startsWith(hbaMark))).toHaveLength(4);
      expect(parseHba(disabled).rules.map((r) => r.line)).toEqual([90, 95, 97, 99, 102, 103, 104, 108, 109]);
      // Already disabled: the lines no longer read as they did, so nothing is done twice.
      expect(run(rows[0]?.cmd.argv ?? []), sh).toBe(3);
      for (const a of [...rows].reverse()) expect(run(a.undo?.argv ?? []), sh).toBe(0);
      expect(readFileSync(file, 'utf8'), sh).toBe(text);
    }
  });
});
