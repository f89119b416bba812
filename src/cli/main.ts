import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, ExitCode, UsageError, ZanuriError, errorView } from '../core/errors.js';
import { availableParallelism } from 'node:os';
import { benchDefaults, defaultBenchEndpoint } from '../engine/defaults.js';
import { defaultForks } from '../engine/pool.js';
import { percentValue, secondsValue, serialValue, shown, type FleetFlags } from './fleet.js';
import type { ProvisionFlags } from './provision.js';
import type { BenchFlags } from './bench.js';
import { addFleetOptions, addSshOptions, checkHostSpecs, collect, collectHosts, connectOptions, positive, type SshFlags } from './ssh-options.js';
import { terminalSafe } from '../core/terminal.js';
import type { AuditFlags } from './audit.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

interface CheckFlags extends SshFlags, FleetFlags {
  profile?: string[];
  json?: boolean;
  all?: boolean;
  concurrency?: number;
  forks?: number;
}

const warn = (line: string): void => { process.stderr.write(`zanuri: warning: ${line}\n`); };

/** --list-hosts: the selected names, one a line, and nothing contacted (as Ansible's). */
function listHosts(names: readonly string[]): number {
  process.stdout.write(names.map((n) => `${n}\n`).join(''));
  return ExitCode.ok;
}

async function check(flags: CheckFlags): Promise<number> {
  // Loaded here, not at the top: `zanuri --help` should not pay for the whole check machinery.
  const [{ loadProfiles }, { checkHosts }, { checkFleet }, { makeChalk, renderReport }, { exitCodeFor, worstExitCode }, { resolveHosts }] = await Promise.all([
    import('../profiles/load.js'), import('../engine/check.js'), import('../engine/fleet.js'), import('./render.js'), import('./exit-code.js'), import('./fleet.js'),
  ]);
  const options = connectOptions(flags);
  const resolved = await resolveHosts(flags, options, warn);
  if (flags.listHosts) return listHosts(resolved?.map((h) => h.name) ?? ['local']);
  // Profiles first: a malformed profile stops everything before any connection is made.
  const named = flags.profile ?? [];
  const profiles = await loadProfiles({ names: named });
  // Without --profile, an inventory host with zanuri_profile is judged against it; the others are surveyed.
  const own = named.length ? [] : [...new Set((resolved ?? []).flatMap((h) => (h.profile ? [h.profile] : [])))];
  const ownProfiles = new Map((await Promise.all(own.map(async (name) => [name, await loadProfiles({ names: [name] })] as const))));
  const forks = flags.concurrency ?? flags.forks ?? defaultForks(availableParallelism());
  let reports;
  let judged: boolean[];
  if (resolved) {
    const targets = resolved.map((h) => ({ name: h.name, spec: h.spec, connect: h.connect, profiles: (!named.length && h.profile ? ownProfiles.get(h.profile) : undefined) ?? profiles }));
    judged = resolved.map((h) => named.length > 0 || Boolean(h.profile));
    reports = await checkFleet(targets, forks);
  } else {
    judged = [named.length > 0];
    reports = await checkHosts([null], profiles, { ...options, concurrency: forks });
  }
  // Without --profile, check surveys every profile: it reports, and fails only on errors.
  const exitCode = worstExitCode(reports.map((r, i) => exitCodeFor([r], judged[i] === true)));
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ schemaVersion: 1, exitCode, hosts: reports }, null, 2)}\n`);
  } else {
    process.stdout.write(terminalSafe(`${renderReport(makeChalk(process.stdout), reports, flags.all === true || Boolean(flags.profile?.length))}\n`));
  }
  return exitCode;
}

/** Hosts that share a profile and zanuri_set share one selection of steps. */
function groupBySelection<H extends { name: string; profile: string | null; sets: string[] }>(hosts: readonly H[], flags: ProvisionFlags): Map<string, { profile: string | undefined; sets: string[]; hosts: H[] }> {
  const groups = new Map<string, { profile: string | undefined; sets: string[]; hosts: H[] }>();
  for (const host of hosts) {
    const profile = flags.profile ?? (flags.playbook ? undefined : host.profile ?? undefined);
    if (!flags.playbook && !profile) {
      throw new UsageError(`host ${host.name} has no profile to provision with`, { hint: 'pass --profile or --playbook, or set zanuri_profile for it in the inventory' });
    }
    const key = JSON.stringify([profile ?? null, host.sets]);
    const group = groups.get(key) ?? { profile, sets: host.sets, hosts: [] };
    group.hosts.push(host);
    groups.set(key, group);
  }
  return groups;
}

const selectionFlags = (flags: ProvisionFlags, group: { profile: string | undefined; sets: string[] }): ProvisionFlags =>
  ({ ...flags, ...(group.profile ? { profile: group.profile } : {}), set: [...group.sets, ...(flags.set ?? [])] });

async function provision(flags: ProvisionFlags): Promise<number> {
  const { selectSteps, eventLine, renderProvision, provisionExitCode, hostLine, fleetSummary, eventJson } = await import('./provision.js');
  const { resolveHosts } = await import('./fleet.js');
  const options = connectOptions(flags);
  const resolved = await resolveHosts(flags, options, warn);
  if (flags.local && resolved) throw new UsageError(`--local and ${flags.inventory ? '--inventory' : '--host'} exclude each other`);
  if (!flags.local && !resolved) throw new UsageError('name the hosts to provision with --host or --inventory, or --local for this machine');
  const hosts = resolved ?? [{ name: 'local', spec: null, connect: options, profile: null, sets: [], become: true, loginIsRoot: true }];
  if (flags.listHosts) return listHosts(hosts.map((h) => h.name));
  // Hosts that share a profile and zanuri_set share one selection; every one is checked here, before any connection.
  for (const host of hosts) {
    if (!host.become && !host.loginIsRoot) {
      throw new ConfigError(`host ${host.name}: ansible_become is false and the login user is not root, but provisioning needs root`, { hint: 'set ansible_user=root for it, or allow sudo (ansible_become: true)' });
    }
  }
  const selections = [];
  for (const group of groupBySelection(hosts, flags).values()) selections.push({ ...group, ...(await selectSteps(selectionFlags(flags, group))) });
  // The monitoring server scrapes the whole inventory (not only what --limit selects), unless its jobs are given.
  const monitors = selections.filter((s) => s.selected.some((x) => x.step.id === 'prometheus'));
  if (flags.inventory && monitors.length) {
    const { fleetScrapeJobs, addressOf } = await import('../engine/scrape-jobs.js');
    // Hosts with no profile (and no --profile or --playbook for all) are not zanuri's: nothing of theirs is scraped.
    const fleet = ((await resolveHosts({ ...flags, limit: undefined, listHosts: true }, options, () => {})) ?? []).filter((h) => flags.profile || flags.playbook || h.profile);
    const fleetHosts = [];
    for (const group of groupBySelection(fleet, flags).values()) {
      const { selected, gpu } = await selectSteps({ ...selectionFlags(flags, group), only: [], skip: [] });
      for (const h of group.hosts) fleetHosts.push({ address: addressOf(h.spec ?? h.name), selected, gpu });
    }
    const jobs = fleetScrapeJobs(fleetHosts);
    if (jobs.length) for (const s of monitors) Object.assign(s, await selectSteps(selectionFlags(flags, s), { prometheus: { jobs } }));
  }
  if (!flags.dryRun && !flags.yes) {
    if (!process.stdin.isTTY) {
      throw new UsageError('refusing to change hosts without confirmation, and there is no terminal to ask on', { hint: 'pass --yes to proceed, or --dry-run to see what would change' });
    }
    const { confirm } = await import('@inquirer/prompts');
    const what = selections.map((s) => `${s.hosts.map((h) => (h.spec === null ? 'this machine' : h.name)).join(', ')} with ${s.title} (${s.selected.map((x) => x.step.id).join(', ')})`).join('; ');
    if (!(await confirm({ message: `Provision ${what}?`, default: false }))) {
      process.stderr.write('zanuri: nothing was changed\n');
      return ExitCode.ok;
    }
  }
  const { provisionFleet, reportedStepIds, benchProvisioned } = await import('../engine/fleet.js');
  const targets = selections.flatMap((s) => s.hosts.map((h) => ({ name: h.name, spec: h.spec, connect: h.connect, selected: s.selected, templates: s.templates })));
  const names = targets.map((t) => t.name);
  const events = flags.jsonEvents === true;
  const emitJson = (event: object): void => { process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`); };
  // A live listr2 view on a terminal for a few hosts of one selection; otherwise plain lines on stderr.
  const { TtyProgress } = await import('./progress.js');
  const single = selections.length === 1 ? selections[0] : undefined;
  const progress = process.stdout.isTTY && !flags.json && !events && single && names.length <= 10 ? new TtyProgress(names, reportedStepIds(single.selected)) : null;
  const rollout = await provisionFleet(targets, {
    dryRun: flags.dryRun === true,
    ...(flags.reboot === false ? { noReboot: true } : {}),
    forks: flags.concurrency ?? flags.forks ?? defaultForks(availableParallelism()),
    ...(flags.serial !== undefined ? { serial: flags.serial } : {}),
    ...(flags.maxFailPercent !== undefined ? { maxFailPercent: flags.maxFailPercent } : {}),
    ...(flags.hostTimeout !== undefined || flags.lockWait !== undefined ? {
      bounds: { ...(flags.hostTimeout !== undefined ? { hostTimeoutSeconds: flags.hostTimeout } : {}), ...(flags.lockWait !== undefined ? { lockWaitSeconds: flags.lockWait } : {}) },
    } : {}),
    onEvent: (event) => {
      if (events) {
        emitJson(eventJson(event));
        return;
      }
      if (event.type === 'step-start' || event.type === 'step-end') {
        if (progress) progress.onEvent(event);
        else {
          const line = eventLine(event);
          if (line) process.stderr.write(terminalSafe(`${line}\n`));
        }
      } else if (event.type === 'host-end') {
        if (progress) progress.finishHost(event.report);
        else if (!flags.json) process.stderr.write(terminalSafe(`${hostLine(event.report, flags.dryRun === true)}\n`));
      } else if (event.type === 'host-wait' && !flags.json) {
        const line = eventLine(event);
        if (line) process.stderr.write(terminalSafe(`${line}\n`));
      } else if (event.type === 'batch-end' && event.stop && !flags.json) {
        process.stderr.write(`zanuri: ${event.stop}\n`);
      }
    },
  });
  await progress?.done();
  const reports = rollout.reports;
  const exitCode = provisionExitCode(reports);
  // The last act: when the profile has benchmark targets, benchmark each converged host's model server.
  const benches: Record<string, unknown> = {};
  for (const s of selections) {
    if (!s.benchmarks.length || flags.dryRun || flags.bench === false || events) continue;
    const { renderBench, benchJson } = await import('./bench.js');
    const mine = new Set(s.hosts.map((h) => h.name));
    const pairs = reports.flatMap((r, i) => (mine.has(r.host) ? [{ report: r, spec: targets[i]?.spec ?? null }] : []));
    await benchProvisioned(pairs.map((p) => p.report), pairs.map((p) => p.spec), s.benchmarks, {
      ...(flags.benchEndpoint ? { endpoint: flags.benchEndpoint } : {}),
      connect: options,
      onProgress: (m) => process.stderr.write(`zanuri bench: ${m}\n`),
      onBench: ({ host, report, skipped }) => {
        // A skip does not fail the provisioning: the model server may come later.
        benches[host] = skipped === null ? benchJson(report) : { skipped: `no model server answered at ${report.endpoint}: ${skipped}` };
        if (!flags.json) process.stdout.write(`${skipped === null ? renderBench(report) : `${host}: bench skipped: ${skipped}`}\n`);
      },
    });
  }
  const summary = fleetSummary(rollout, flags.dryRun === true);
  if (events) emitJson({ type: 'run-end', exitCode, stopped: rollout.stopped, ...summary.counts });
  else if (flags.json) process.stdout.write(`${JSON.stringify({ schemaVersion: 1, exitCode, dryRun: flags.dryRun === true, hosts: reports, fleet: { batches: rollout.batches, stopped: rollout.stopped, ...summary.counts }, ...(Object.keys(benches).length ? { bench: benches } : {}) }, null, 2)}\n`);
  else process.stdout.write(terminalSafe(`${renderProvision(reports, flags.dryRun === true)}${reports.length > 1 || rollout.stopped ? `\n${summary.line}` : ''}\n`));
  return exitCode;
}

async function audit(flags: AuditFlags): Promise<number> {
  const { runAudit, renderAudit } = await import('./audit.js');
  const { makeChalk } = await import('./render.js');
  const { reports, exitCode, listed } = await runAudit(flags, warn);
  if (listed) return listHosts(listed);
  if (flags.json) process.stdout.write(`${JSON.stringify({ schemaVersion: 1, exitCode, failOn: flags.failOn ?? 'high', hosts: reports }, null, 2)}\n`);
  else process.stdout.write(`${renderAudit(makeChalk(process.stdout), reports)}\n`);
  return exitCode;
}

/** --fail-on, checked as commander parses it (the levels live in cli/audit.ts, loaded only for audit). */
function auditFailOn(value: string): AuditFlags['failOn'] {
  const v = value.trim().toLowerCase();
  if (['info', 'low', 'medium', 'high', 'critical', 'none'].includes(v)) return v as AuditFlags['failOn'];
  throw new UsageError(`--fail-on must be one of info, low, medium, high, critical or none, got "${value.replace(/[^\x20-\x7e]/g, '?').slice(0, 40)}"`);
}

async function benchCommand(flags: BenchFlags): Promise<number> {
  const { benchOptions, renderBench, benchJson, benchExitCode, writeHtmlReport } = await import('./bench.js');
  if ((flags.host?.length ?? 0) > 1) throw new UsageError('zanuri bench takes one --host at a time');
  const host = flags.host?.[0] ?? null;
  checkHostSpecs(flags.host ?? []);
  const options = await benchOptions(flags, connectOptions(flags));
  const { bench } = await import('../engine/bench.js');
  const report = await bench({ ...options, host, onProgress: (m) => process.stderr.write(terminalSafe(`zanuri bench: ${m}\n`)) });
  if (flags.report) await writeHtmlReport(flags.report, report);
  process.stdout.write(flags.json ? `${JSON.stringify(benchJson(report), null, 2)}\n` : terminalSafe(`${renderBench(report)}\n`));
  return benchExitCode(report);
}

function program(): Command {
  const root = new Command('zanuri')
    .description('Take a Linux server from just racked to hardened, GPU-ready and benchmarked')
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  addFleetOptions(addSshOptions(root.command('check')), 'checked')
    .description('detect hardware and OS facts and judge them against requirement profiles')
    .option('-p, --profile <name>', 'profile id or profile file to judge against (repeatable, comma-separated); default: survey all', collect)
    .option('-H, --host <[user@]host[:port]>', 'check a remote host over SSH instead of this machine (repeatable)', collectHosts)
    .option('--json', 'print a machine-readable report')
    .option('--all', 'show every finding, not only failures')
    .action(async (flags: CheckFlags) => {
      process.exitCode = await check(flags);
    });
  addFleetOptions(addSshOptions(root.command('provision')), 'provisioned')
    .description('converge hosts to a profile\'s playbook: idempotent steps, dry run with diffs, lockout-proof SSH changes')
    .option('-p, --profile <name>', 'profile whose playbook to run (its ports and PostgreSQL settings flow into the steps)')
    .option('--playbook <name or file>', 'run a playbook directly instead of a profile\'s')
    .option('-H, --host <[user@]host[:port]>', 'host to provision over SSH (repeatable)', collectHosts)
    .option('--local', 'provision this machine (first-boot runs)')
    .option('-n, --dry-run', 'show what would change, with diffs, and change nothing')
    .option('-y, --yes', 'do not ask for confirmation (needed without a terminal)')
    .option('--only <steps>', 'run only these steps (comma-separated)', collect)
    .option('--skip <steps>', 'skip these steps (comma-separated)', collect)
    .option('--set <step.key=value>', 'set a step parameter (repeatable; JSON values, @file for a file\'s lines)', (v: string, p: string[] = []) => [...p, v])
    .option('--json', 'print a machine-readable report')
    .option('--templates <dir>', 'override shipped templates with the files of the same name in this directory')
    .option('--no-reboot', 'never reboot: stop at the first step that needs a reboot and report it as pending')
    .option('--no-bench', 'do not benchmark the model server after provisioning (done when the profile has benchmark targets)')
    .option('--bench-endpoint <url>', 'the model server to benchmark, as the host sees it', defaultBenchEndpoint)
    .addOption(new Option('--serial <n or n%>', 'rolling batches: this many hosts (or this share of them) at a time, batch after batch').argParser(serialValue))
    .addOption(new Option('--max-fail-percent <p>', 'stop the rollout after a batch in which more than this share of hosts failed').argParser(percentValue))
    .option('--json-events', 'print NDJSON events (one JSON object a line) for log pipelines instead of the report')
    .addOption(new Option('--host-timeout <s>', 'bound on one host\'s whole run, in seconds (default 7200, or ZANURI_HOST_TIMEOUT): a host past it fails, the others go on').argParser(secondsValue('--host-timeout', 1, 604_800)))
    .addOption(new Option('--lock-wait <s>', 'how long to wait for another zanuri run\'s lock on a host, in seconds; 0 refuses at once (default 300, or ZANURI_HOST_LOCK_WAIT)').argParser(secondsValue('--lock-wait', 0, 86_400)))
    .action(async (flags: ProvisionFlags) => {
      process.exitCode = await provision(flags);
    });
  const number = (name: string) => (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`${name} must be a number, got ${shown(value)}`);
    return n;
  };
  addSshOptions(root.command('bench'))
    .description('benchmark the model server on a host (through SSH): TTFT, TPOT, ITL, latency percentiles, throughput, roofline, targets')
    .option('-H, --host <[user@]host[:port]>', 'the host the server runs on (default: this machine)', collectHosts)
    .option('--endpoint <url>', 'the server as the host sees it (reached through the SSH connection)', defaultBenchEndpoint)
    .option('--api <ollama|openai>', 'Ollama native API or an OpenAI-compatible server (vLLM, llama-server, Ollama /v1)', 'ollama')
    .option('-m, --model <name>', 'model to benchmark (default: the first the server lists)')
    .option('--params <size>', 'model size when the server cannot tell, e.g. 7B (for the roofline)')
    .option('--quant <format>', 'weight format with --params, e.g. q4_k_m, q8_0, f16', 'f16')
    .option('-p, --profile <name>', 'judge against this profile\'s benchmark targets')
    .addOption(new Option('--max-tokens <n>', 'output tokens per request').argParser(positive('--max-tokens')).default(benchDefaults.maxTokens))
    .addOption(new Option('--prompt-words <n>', 'words per prompt (prompts all differ, so a prefix cache cannot hide prefill)').argParser(positive('--prompt-words')).default(benchDefaults.promptWords))
    .addOption(new Option('--warmup <n>', 'unmeasured warm-up requests').argParser(number('--warmup')).default(benchDefaults.warmup))
    .addOption(new Option('--requests <n>', 'single-stream requests').argParser(positive('--requests')).default(benchDefaults.singleStreamRequests))
    .option('-c, --concurrency <list>', 'load levels: concurrent streams, e.g. 1,4,16,50', benchDefaults.concurrency.join(','))
    .addOption(new Option('--requests-per-level <n>', 'measured requests per load level (at least 3 x its concurrency)').argParser(positive('--requests-per-level')).default(benchDefaults.requestsPerLevel))
    .addOption(new Option('--level-time <seconds>', 'time budget per load level').argParser(positive('--level-time')).default(benchDefaults.levelMaxMs / 1000))
    .option('--rate <list>', 'add open-loop levels with Poisson arrivals at these rates (req/s), e.g. 1,2,4')
    .option('--find-max-rate', 'goodput search: the highest Poisson rate at which --attainment of requests meet the targets')
    .addOption(new Option('--attainment <fraction>', 'share of requests that must meet the targets in --find-max-rate').argParser(number('--attainment')).default(0.9))
    .option('--input-len <n|min-max>', 'prompt tokens (about): fixed, or uniform random in a range (default: --prompt-words)')
    .option('--output-len <n|min-max>', 'output tokens: fixed, or uniform random in a range (default: --max-tokens)')
    .option('--dataset <file.json>', 'prompts (and output lengths) from a ShareGPT-layout JSON file, as vLLM\'s and SGLang\'s benchmarks read')
    .addOption(new Option('--seed <n>', 'seed of random lengths, dataset sampling and arrivals').argParser(number('--seed')).default(0))
    .option('--ignore-eos', 'ask the server to generate every requested token (vLLM, SGLang, llama-server)')
    .option('--no-server-metrics', 'do not sample the server\'s /metrics')
    .addOption(new Option('--timeout <seconds>', 'per-request timeout').argParser(positive('--timeout')).default(benchDefaults.timeoutMs / 1000))
    .addOption(new Option('--first-token-timeout <seconds>', 'a request with no token this long fails (the first warm-up request waits --timeout)').argParser(positive('--first-token-timeout')).default(benchDefaults.firstTokenMs / 1000))
    .addOption(new Option('--stall <seconds>', 'give up on a stream whose tokens stop this long').argParser(positive('--stall')).default(benchDefaults.stallMs / 1000))
    .addOption(new Option('--ttft-target <ms>', 'goodput: time to first token at most').argParser(number('--ttft-target')))
    .addOption(new Option('--tpot-target <ms>', 'goodput: time per output token at most').argParser(number('--tpot-target')))
    .addOption(new Option('--e2e-target <ms>', 'goodput: end-to-end latency at most').argParser(number('--e2e-target')))
    .option('--json', 'print a machine-readable report')
    .option('--report <file.html>', 'write a self-contained HTML report with charts')
    .action(async (flags: BenchFlags) => {
      process.exitCode = await benchCommand(flags);
    });
  addFleetOptions(addSshOptions(root.command('audit')), 'audited')
    .description('read a host\'s security posture in one round trip: findings with severity, evidence and the provision step that fixes each, a score')
    .option('-H, --host <[user@]host[:port]>', 'audit a remote host over SSH instead of this machine (repeatable)', collectHosts)
    .option('-p, --profile <name>', 'judge against this profile\'s playbook (default: the hardened playbook)')
    .option('--playbook <name or file>', 'judge against a playbook directly')
    .option('--set <step.key=value>', 'a step parameter, as for provision (e.g. deploy-user.authorizedKeys=@key.pub, so the keys are judged too)', (v: string, p: string[] = []) => [...p, v])
    .option('--only <steps>', 'judge only these steps of the playbook (comma-separated)', collect)
    .option('--skip <steps>', 'leave these steps of the playbook out (comma-separated)', collect)
    .option('--templates <dir>', 'template overrides, as for provision')
    .addOption(new Option('--fail-on <severity>', 'exit 3 when a finding at or above this severity is present: info, low, medium, high, critical or none').default('high').argParser((v: string) => auditFailOn(v)))
    .option('--json', 'print a machine-readable report')
    .action(async (flags: AuditFlags) => {
      process.exitCode = await audit(flags);
    });
  root.command('cloud-init')
    .description('write #cloud-config that converges a fresh machine to a profile on its first boot, with no operator attached')
    .option('-p, --profile <name>', 'profile (id or file) the machine converges to')
    .option('--set <step.key=value>', 'set a step parameter (repeatable; JSON values, @file for a file\'s lines): it is written into the user-data', (v: string, p: string[] = []) => [...p, v])
    .option('--only <steps>', 'converge only these steps (comma-separated)', collect)
    .option('--skip <steps>', 'skip these steps (comma-separated)', collect)
    .option('--ssh-key <file>', 'the operator\'s public key, for the deploy user')
    .option('--node-url <url>', 'where the machine fetches a Node runtime (a node binary or an official node-*-linux-*.tar.xz)')
    .option('--node-sha256 <hex>', 'the sha256 of that file: nothing unpinned is executed')
    .option('--zanuri-url <url>', 'fetch zanuri from this URL (upload the --archive file there) instead of carrying it in the user-data')
    .option('--archive <file>', 'also write the zanuri archive (pinned by sha256 in the user-data) to this file')
    .action(async (flags: import('./cloud-init.js').CloudInitFlags) => {
      const { cloudInit } = await import('./cloud-init.js');
      process.exitCode = await cloudInit(flags, (line) => process.stderr.write(`zanuri cloud-init: ${line}\n`));
    });
  addSshOptions(root.command('init'))
    .description('ask for the hosts, check them, offer the profiles they meet, and write a commented zanuri.yaml that check, provision and cloud-init read')
    .option('-H, --host <[user@]host[:port]>', 'a host to set up (repeatable)', collect)
    .option('--inventory <file>', 'an Ansible inventory instead of --host')
    .option('-p, --profile <name>', 'the profile to converge them to')
    .option('--domain <name>', 'the certificate\'s domain (profiles whose playbook has certbot)')
    .option('--email <address>', 'the ACME contact for the certificate')
    .option('--ssh-key <file>', 'the operator\'s public key, for the deploy user')
    .option('-o, --output <file>', 'where to write the config', 'zanuri.yaml')
    .option('--force', 'replace an existing config without asking')
    .option('--no-check', 'do not check the hosts before offering profiles')
    .action(async (flags: import('./init.js').InitFlags) => {
      const { init } = await import('./init.js');
      process.exitCode = await init(flags);
    });
  // zanuri.yaml in the current directory (written by zanuri init) gives defaults to check, provision and cloud-init.
  root.hook('preAction', async (_root, command) => {
    const { applyConfigDefaults } = await import('./init.js');
    await applyConfigDefaults(command);
  });
  return root;
}

async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      process.exitCode = error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
      return;
    }
    if (error instanceof ZanuriError) {
      const json = argv.includes('--json');
      if (json) process.stdout.write(`${JSON.stringify({ schemaVersion: 1, exitCode: error.exitCode, error: (({ exitCode: _, ...view }) => view)(errorView(error)) }, null, 2)}\n`);
      process.stderr.write(terminalSafe(`zanuri: ${error.message}\n${error.hint ? `hint: ${error.hint}\n` : ''}`));
      process.exitCode = error.exitCode;
      return;
    }
    process.stderr.write(`zanuri: internal error: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exitCode = ExitCode.internal;
  }
}

await main(process.argv);
