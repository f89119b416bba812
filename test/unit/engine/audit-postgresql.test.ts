import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { auditContext, auditOnlyFindings, postgresFindings } from '../../../src/engine/audit.js';
import type { SelectedStep } from '../../../src/engine/provision.js';
import { parsePostgresAccess, postgresAccessFact } from '../../../src/facts/postgresql-access.js';
import type { FactRequest, FactValues } from '../../../src/facts/state.js';
import { stepById } from '../../../src/steps/index.js';

const fixture = (name: string): string => readFileSync(new URL(`../../facts/audit/${name}`, import.meta.url), 'utf8');
const weak = fixture('postgresql-access-weak.debian12.txt');

async function select(id: string, params: Record<string, unknown> = {}): Promise<SelectedStep> {
  const step = await stepById(id);
  return { step, params: step.parseParams(params) };
}

describe('audit: PostgreSQL listen scope and pg_hba (captured on a Debian 12 target)', () => {
  it('reports one finding per kind, the rows as evidence, and the postgresql step as the fix', () => {
    const findings = postgresFindings(parsePostgresAccess(weak), auditContext([]));
    expect(findings.map((f) => `${f.rule} ${f.severity} ${f.evidence.length}`)).toEqual([
      'audit:postgresql-listen medium 1', 'audit:pg-hba-trust high 1', 'audit:pg-hba-password medium 1', 'audit:pg-hba-md5 medium 1',
      'audit:pg-hba-no-ssl medium 2', 'audit:pg-hba-any-address high 1',
    ]);
    expect(findings.find((f) => f.rule === 'audit:pg-hba-any-address')?.evidence).toEqual(['15/main pg_hba.conf:106: host all all 0.0.0.0/0 md5 (any address (0.0.0.0/0) may try to log in)']);
    for (const f of findings) expect(f.fix?.step).toBe('postgresql');
    expect(findings.find((f) => f.rule === 'audit:postgresql-listen')?.fix?.parameter).toBe('listenAddresses');
  });

  it('is part of the audit-only rules, read from the same fact in the first round trip', () => {
    const values: FactValues = { get: <T>(r: FactRequest<T>): T => r.parse(r.key === postgresAccessFact().key ? weak : '') };
    const { findings } = auditOnlyFindings(values, auditContext([]));
    expect(findings.filter((f) => f.resource === 'postgresql-access').length).toBe(6);
  });

  it('finds nothing on Debian\'s cluster as shipped, nor on a host without PostgreSQL', () => {
    expect(postgresFindings(parsePostgresAccess(fixture('postgresql-access.debian12.txt')), auditContext([]))).toEqual([]);
    expect(postgresFindings([], auditContext([]))).toEqual([]);
  });

  it('takes what the profile\'s postgresql step opens as meant: its listen addresses and its allowFrom networks', async () => {
    const selected = [await select('postgresql', { listenAddresses: 'localhost,*', allowFrom: ['0.0.0.0/0'] })];
    const rules = postgresFindings(parsePostgresAccess(weak), auditContext(selected)).map((f) => f.rule);
    expect(rules).not.toContain('audit:postgresql-listen');
    // 0.0.0.0/0 is meant, yet the row still takes md5 without TLS.
    expect(rules).toEqual(['audit:pg-hba-trust', 'audit:pg-hba-password', 'audit:pg-hba-md5', 'audit:pg-hba-no-ssl']);
  });

  it('says what it could not judge: an unreadable pg_hba.conf, lines the server would refuse', () => {
    const notJudged: string[] = [];
    const clusters = parsePostgresAccess(`@cluster 15 main 5432 down\n@hba /etc/postgresql/15/main/pg_hba.conf\n@cluster 16 other 5433 down\n@hba /x/pg_hba.conf\n@content ${Buffer.from('local all\nlocal all all peer\n').toString('base64')}\n`);
    expect(postgresFindings(clusters, auditContext([]), notJudged)).toEqual([]);
    expect(notJudged).toEqual([
      'PostgreSQL 15/main: /etc/postgresql/15/main/pg_hba.conf could not be read',
      'PostgreSQL 16/other: /x/pg_hba.conf line 1 is not a valid row (the server refuses to load the file)',
    ]);
  });
});
