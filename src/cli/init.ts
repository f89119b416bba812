import { existsSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ExitCode, UsageError } from '../core/errors.js';
import { parseHostSpec } from '../core/host-spec.js';
import { connectOptions, type SshFlags } from './ssh-options.js';

export interface InitFlags extends SshFlags {
  host?: string[];
  inventory?: string;
  profile?: string;
  domain?: string;
  email?: string;
  sshKey?: string;
  output?: string;
  force?: boolean;
  /** false with --no-check. */
  check?: boolean;
}

const domainPattern = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
const emailPattern = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const say = (line: string): void => { process.stderr.write(`${line}\n`); };

function hostsOk(value: string): true | string {
  const list = value.split(',').map((h) => h.trim()).filter(Boolean);
  if (!list.length) return 'name at least one host, or the path of an inventory file';
  for (const h of list) {
    try {
      parseHostSpec(h);
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }
  return true;
}

/**
 * `zanuri init`: asks for the hosts (or an inventory), checks them, offers the profiles they meet,
 * asks for the certificate's domain and contact when the profile's playbook gets one, and for the
 * operator's public key, then writes a commented zanuri.yaml. Every question has a flag; without a
 * terminal every answer must come from them.
 */
export async function init(flags: InitFlags): Promise<number> {
  const output = resolve(flags.output ?? 'zanuri.yaml');
  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const [{ loadProfiles }, { loadPlaybook }, { readPublicKeys }, { renderConfig }] = await Promise.all([
    import('../profiles/load.js'), import('../profiles/playbook.js'), import('./cloud-init.js'), import('../profiles/config.js'),
  ]);
  const all = (await loadProfiles()).filter((p) => p.playbook);
  const playbookSteps = async (id: string): Promise<string[]> => {
    const p = all.find((x) => x.id === id);
    return p?.playbook ? (await loadPlaybook(p.playbook)).steps.map((s) => s.step) : [];
  };
  if (flags.profile && !all.some((p) => p.id === flags.profile)) {
    throw new UsageError(`unknown profile "${flags.profile}" (or it names no playbook)`, { hint: `profiles with a playbook: ${all.map((p) => p.id).join(', ')}` });
  }
  if (flags.host?.length && flags.inventory) throw new UsageError('--host and --inventory exclude each other');
  for (const h of flags.host ?? []) parseHostSpec(h);
  if (flags.domain !== undefined && !domainPattern.test(flags.domain)) throw new UsageError(`--domain ${JSON.stringify(flags.domain)} is not a DNS name`);
  if (flags.email !== undefined && !emailPattern.test(flags.email)) throw new UsageError(`--email ${JSON.stringify(flags.email)} is not an e-mail address`);
  if (flags.sshKey) readPublicKeys(flags.sshKey);

  if (!interactive) {
    const certbot = flags.profile ? (await playbookSteps(flags.profile)).includes('certbot') : false;
    const missing = [
      ...(flags.host?.length || flags.inventory ? [] : ['--host or --inventory']),
      ...(flags.profile ? [] : ['--profile']),
      ...(flags.sshKey ? [] : ['--ssh-key']),
      ...(certbot && !flags.domain ? ['--domain'] : []),
      ...(certbot && !flags.email ? ['--email'] : []),
    ];
    if (missing.length) {
      throw new UsageError(`zanuri init asks its questions on a terminal, and there is none: give ${missing.join(', ')}`, {
        hint: 'every question has a flag: --host/--inventory, --profile, --domain, --email, --ssh-key, --output, --force, --no-check',
      });
    }
    if (existsSync(output) && !flags.force) throw new UsageError(`${output} exists: pass --force to replace it`);
  }
  const { input, select, confirm } = await import('@inquirer/prompts');

  if (existsSync(output) && !flags.force && !(await confirm({ message: `${output} exists. Replace it?`, default: false }))) {
    say('zanuri init: nothing was written');
    return ExitCode.ok;
  }

  let hosts = flags.host ?? [];
  let inventory = flags.inventory;
  if (!hosts.length && !inventory) {
    const answer = (await input({
      message: 'Hosts to set up ([user@]host[:port], comma-separated), or the path of an Ansible inventory:',
      validate: (v) => (existsSync(v.trim()) && statSync(v.trim()).isFile() ? true : hostsOk(v)),
    })).trim();
    if (existsSync(answer) && statSync(answer).isFile()) inventory = answer;
    else hosts = answer.split(',').map((h) => h.trim()).filter(Boolean);
  }

  // Check them, to offer the profiles every reachable host meets.
  const metBy = new Map<string, string[]>();
  const reachable: string[] = [];
  if (flags.check !== false) {
    const [{ checkFleet }, { resolveHosts }] = await Promise.all([import('../engine/fleet.js'), import('./fleet.js')]);
    const resolved = await resolveHosts({ ...(inventory ? { inventory } : { host: hosts }) }, connectOptions(flags), (l) => say(`zanuri: warning: ${l}`)) ?? [];
    say(`checking ${resolved.length} host${resolved.length === 1 ? '' : 's'} against ${all.length} profiles...`);
    const reports = await checkFleet(resolved.map((h) => ({ name: h.name, spec: h.spec, connect: h.connect, profiles: all })), 8);
    for (const r of reports) {
      if (!r.ok) {
        say(`  ${r.host}: not checked: ${r.error.message}`);
        continue;
      }
      reachable.push(r.host);
      const met = r.profiles.filter((v) => v.status !== 'fail').map((v) => v.profile);
      for (const id of met) metBy.set(id, [...(metBy.get(id) ?? []), r.host]);
      say(`  ${r.host}: meets ${met.length ? met.join(', ') : 'no profile with a playbook'}`);
    }
  }
  const meetsAll = (id: string): boolean => reachable.length > 0 && (metBy.get(id)?.length ?? 0) === reachable.length;

  let profile = flags.profile;
  if (!profile) {
    const ordered = [...all].sort((a, b) => Number(meetsAll(b.id)) - Number(meetsAll(a.id)) || a.id.localeCompare(b.id));
    profile = await select({
      message: 'Profile to converge them to:',
      choices: ordered.map((p) => ({
        value: p.id,
        name: `${p.id}${meetsAll(p.id) ? ' (met)' : reachable.length ? ' (not met by every host)' : ''}`,
        description: `${p.title}; playbook ${p.playbook}`,
      })),
      pageSize: 12,
    });
  }
  const steps = await playbookSteps(profile);
  const set: Record<string, unknown> = {};
  if (steps.includes('certbot')) {
    set['certbot.domain'] = flags.domain ?? (await input({ message: 'Domain of the certificate (it must resolve to the host):', validate: (v) => domainPattern.test(v.trim()) || 'a DNS name, e.g. app.example.com' })).trim();
    set['certbot.email'] = flags.email ?? (await input({ message: 'E-mail for the certificate authority (expiry notices):', validate: (v) => emailPattern.test(v.trim()) || 'an e-mail address' })).trim();
  } else if (flags.domain || flags.email) {
    throw new UsageError(`profile ${profile} gets no certificate (its playbook has no certbot step): --domain and --email do not apply`);
  }
  let sshKey = flags.sshKey;
  if (!sshKey && steps.includes('deploy-user')) {
    const guess = resolve(homedir(), '.ssh', 'id_ed25519.pub');
    sshKey = (await input({
      message: 'Your public key, for the deploy user (a .pub file):',
      ...(existsSync(guess) ? { default: guess } : {}),
      validate: (v) => {
        try {
          readPublicKeys(v.trim());
          return true;
        } catch (error) {
          return error instanceof Error ? error.message : String(error);
        }
      },
    })).trim();
  }
  const text = renderConfig({
    ...(inventory ? { inventory } : { hosts }),
    profile,
    ...(sshKey ? { sshKey: resolve(sshKey) } : {}),
    ...(Object.keys(set).length ? { set } : {}),
  }, { checked: reachable.length ? (meetsAll(profile) ? `Every checked host meets it (${reachable.join(', ')}).` : `Not every checked host meets it: run zanuri check --all.`) : '' });
  writeFileSync(output, text, { mode: 0o644 });
  say(`zanuri init: wrote ${output}\nnext: zanuri check, then zanuri provision --dry-run, then zanuri provision (or zanuri cloud-init for new machines)`);
  return ExitCode.ok;
}

/**
 * zanuri.yaml of the current directory as defaults for check, provision and cloud-init: what a flag
 * on the command line gives wins; the profile's --set values and key apply only to that profile.
 */
export async function applyConfigDefaults(command: Command): Promise<void> {
  const name = command.name();
  // No config, no YAML parser to load: most runs start faster this way.
  if (!['check', 'provision', 'cloud-init'].includes(name) || !existsSync('zanuri.yaml')) return;
  const { loadConfig } = await import('../profiles/config.js');
  const config = await loadConfig();
  if (!config) return;
  const given = (option: string): boolean => {
    const source = command.getOptionValueSource(option);
    return source === 'cli' || source === 'env';
  };
  const put = (option: string, value: unknown): void => { command.setOptionValueWithSource(option, value, 'config'); };
  if (name !== 'cloud-init' && !given('host') && !given('inventory') && !given('local')) {
    if (config.inventory) put('inventory', config.inventory);
    else if (config.hosts?.length) put('host', config.hosts);
  }
  const ownProfile = config.profile !== undefined && !given('profile') && !given('playbook');
  if (!ownProfile || !config.profile) return;
  put('profile', name === 'check' ? [config.profile] : config.profile);
  if (name === 'check') return;
  const sets = Object.entries(config.set ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  if (config.sshKey && name === 'provision') sets.push(`deploy-user.authorizedKeys=@${config.sshKey}`);
  if (config.sshKey && name === 'cloud-init' && !given('sshKey')) put('sshKey', config.sshKey);
  // Command-line --set values come after, so they win.
  if (sets.length) put('set', [...sets, ...((command.getOptionValue('set') as string[] | undefined) ?? [])]);
}
