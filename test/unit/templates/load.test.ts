import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Secret } from '../../../src/core/secret.js';
import { loadTemplates } from '../../../src/templates/load.js';

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'zanuri-templates-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe('templates', () => {
  const builtinDir = tree({
    'web/site.conf': '# site\nserver_name {{name}};\n{{#upstreams}}\nserver {{host}}:{{port}};\n{{/upstreams}}\n{{^upstreams}}\nreturn 404;\n{{/upstreams}}\n',
    'web/typo.conf': 'a\nb {{naem}}\n',
  });

  it('renders lists and flags without escaping anything (these are config files, not HTML)', async () => {
    const t = await loadTemplates({ builtinDir });
    const out = t.render('web/site.conf', { name: 'a&b <c>', upstreams: [{ host: '10.0.0.1', port: 80 }, { host: 'x', port: 81 }] });
    expect(out).toEqual({ text: '# site\nserver_name a&b <c>;\nserver 10.0.0.1:80;\nserver x:81;\n', source: 'template web/site.conf' });
    expect(t.render('web/site.conf', { name: 'n', upstreams: [] }).text).toBe('# site\nserver_name n;\nreturn 404;\n');
  });

  it('names the file and line of a variable the step does not give', async () => {
    const t = await loadTemplates({ builtinDir });
    expect(() => t.render('web/typo.conf', { name: 'x' })).toThrow(`${join(builtinDir, 'web/typo.conf')}:2:1: template web/typo.conf: unknown variable "naem"`);
    expect(() => t.render('web/site.conf', { name: 'x', upstreams: [{ host: 'h' }] })).toThrow(/site.conf:4:1: .*unknown variable "port"/);
  });

  it('makes the whole file a Secret when a Secret goes into it', async () => {
    const t = await loadTemplates({ builtinDir });
    const out = t.render('web/site.conf', { name: new Secret('hunter2'), upstreams: [] });
    expect(out.text).toBeInstanceOf(Secret);
    expect((out.text as Secret).reveal()).toContain('server_name hunter2;');
    expect(JSON.stringify(out)).not.toContain('hunter2');
  });

  it('lets an operator override a template, and says where the text came from', async () => {
    const overrideDir = tree({ 'web/site.conf': '# ours\nserver_name {{name}};\n' });
    const t = await loadTemplates({ builtinDir, overrideDir });
    expect(t.render('web/site.conf', { name: 'n', upstreams: [] })).toEqual({ text: '# ours\nserver_name n;\n', source: `${join(overrideDir, 'web/site.conf')} (overrides template web/site.conf)` });
  });

  it('refuses an override that overrides nothing, a partial, and broken syntax, with the file', async () => {
    await expect(loadTemplates({ builtinDir, overrideDir: tree({ 'web/sit.conf': 'x' }) })).rejects.toThrow(/overrides no template: there is no template named web\/sit.conf/);
    await expect(loadTemplates({ builtinDir, overrideDir: tree({ 'web/site.conf': 'a\n{{> other}}\n' }) })).rejects.toThrow(/site.conf:2:1: .*partials/);
    await expect(loadTemplates({ builtinDir: tree({ 'x.conf': 'a\n{{#open}}\n' }) })).rejects.toThrow(/x.conf:\d+:1: template x.conf: Unclosed section "open"/);
    await expect(loadTemplates({ builtinDir, overrideDir: '/nonexistent/zanuri' })).rejects.toThrow(/does not exist/);
  });

  it('loads the shipped templates, every one of them parseable', async () => {
    const t = await loadTemplates();
    expect(t.render('sudo/deploy-user', { name: 'deploy' }).text).toBe('# Managed by zanuri (deploy-user).\ndeploy ALL=(ALL:ALL) NOPASSWD:ALL\n');
  });
});
