import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ExitCode, UsageError, ZanuriError, errorView } from '../core/errors.js';
import { benchDefaults, defaultBenchEndpoint, defaultConcurrency } from '../engine/defaults.js';
import type { ProvisionFlags } from './provision.js';
import type { BenchFlags } from './bench.js';
import { addSshOptions, checkHostSpecs, collect, connectOptions, positive, type SshFlags } from './ssh-options.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

interface CheckFlags extends SshFlags {
  profile?: string[];
  host?: string[];
  json?: boolean;
  all?: boolean;
  concurrency?: number;
}

async function check(flags: CheckFlags): Promise<number> {
  // Loaded here, not at the top: `zanuri --help` should not pay for the whole check machinery.
  const [{ loadProfiles }, { checkHosts }, { makeChalk, renderReport }, { exitCodeFor }] = await Promise.all([
    import('../profiles/load.js'), import('../engine/check.js'), import('./render.js'), import('./exit-code.js'),
  ]);
  // Profiles first: a malformed profile stops everything before any connection is made.
  const profiles = await loadProfiles({ names: flags.profile ?? [] });
  const options = connectOptions(flags);
  checkHostSpecs(flags.host ?? []);
  const hosts = flags.host?.length ? flags.host : [null];
  const reports = await checkHosts(hosts, profiles, { ...options, ...(flags.concurrency ? { concurrency: flags.concurrency } : {}) });
  // Without --profile, check surveys every profile: it reports, and fails only on errors.
  const exitCode = exitCodeFor(reports, Boolean(flags.profile?.length));
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ schemaVersion: 1, exitCode, hosts: reports }, null, 2)}\n`);
  } else {
    process.stdout.write(`${renderReport(makeChalk(process.stdout), reports, flags.all === true || Boolean(flags.profile?.length))}\n`);
  }
  return exitCode;
}

async function provision(flags: ProvisionFlags): Promise<number> {
  const { validateTargets, selectSteps, eventLine, renderProvision, provisionExitCode } = await import('./provision.js');
  const hosts = validateTargets(flags);
  const options = connectOptions(flags);
  // Every step's parameters are checked here, before any connection.
  const { title, selected, benchmarks, templates } = await selectSteps(flags);
  if (!flags.dryRun && !flags.yes) {
    if (!process.stdin.isTTY) {
      throw new UsageError('refusing to change hosts without confirmation, and there is no terminal to ask on', { hint: 'pass --yes to proceed, or --dry-run to see what would change' });
    }
    const { confirm } = await import('@inquirer/prompts');
    const names = hosts.map((h) => h ?? 'this machine').join(', ');
    if (!(await confirm({ message: `Provision ${names} with ${title} (${selected.map((s) => s.step.id).join(', ')})?`, default: false }))) {
      process.stderr.write('zanuri: nothing was changed\n');
      return ExitCode.ok;
    }
  }
  const { provisionHosts, reportedStepIds, benchProvisioned } = await import('../engine/fleet.js');
  const names = hosts.map((h) => h ?? 'local');
  // A live listr2 view on a terminal; otherwise one plain line per finished step on stderr.
  const { TtyProgress } = await import('./progress.js');
  const progress = process.stdout.isTTY && !flags.json ? new TtyProgress(names, reportedStepIds(selected)) : null;
  const reports = await provisionHosts(hosts, selected, {
    dryRun: flags.dryRun === true,
    templates,
    connect: options,
    ...(flags.concurrency ? { concurrency: flags.concurrency } : {}),
    onEvent: (event) => {
      if (progress) progress.onEvent(event);
      else {
        const line = eventLine(event);
        if (line) process.stderr.write(`${line}\n`);
      }
    },
    onHostDone: (report) => progress?.finishHost(report),
  });
  await progress?.done();
  const exitCode = provisionExitCode(reports);
  // The last act: when the profile has benchmark targets, benchmark each converged host's model server.
  const benches: Record<string, unknown> = {};
  if (benchmarks.length && !flags.dryRun && flags.bench !== false) {
    const { renderBench, benchJson } = await import('./bench.js');
    await benchProvisioned(reports, hosts, benchmarks, {
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
  if (flags.json) process.stdout.write(`${JSON.stringify({ schemaVersion: 1, exitCode, dryRun: flags.dryRun === true, hosts: reports, ...(Object.keys(benches).length ? { bench: benches } : {}) }, null, 2)}\n`);
  else process.stdout.write(`${renderProvision(reports, flags.dryRun === true)}\n`);
  return exitCode;
}

async function benchCommand(flags: BenchFlags): Promise<number> {
  const { benchOptions, renderBench, benchJson, benchExitCode, writeHtmlReport } = await import('./bench.js');
  if ((flags.host?.length ?? 0) > 1) throw new UsageError('zanuri bench takes one --host at a time');
  const host = flags.host?.[0] ?? null;
  checkHostSpecs(flags.host ?? []);
  const options = await benchOptions(flags, connectOptions(flags));
  const { bench } = await import('../engine/bench.js');
  const report = await bench({ ...options, host, onProgress: (m) => process.stderr.write(`zanuri bench: ${m}\n`) });
  if (flags.report) await writeHtmlReport(flags.report, report);
  process.stdout.write(flags.json ? `${JSON.stringify(benchJson(report), null, 2)}\n` : `${renderBench(report)}\n`);
  return benchExitCode(report);
}

function program(): Command {
  const root = new Command('zanuri')
    .description('Take a Linux server from just racked to hardened, GPU-ready and benchmarked')
    .version(pkg.version)
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  addSshOptions(root.command('check'))
    .description('detect hardware and OS facts and judge them against requirement profiles')
    .option('-p, --profile <name>', 'profile id or profile file to judge against (repeatable, comma-separated); default: survey all', collect)
    .option('-H, --host <[user@]host[:port]>', 'check a remote host over SSH instead of this machine (repeatable)', collect)
    .option('--json', 'print a machine-readable report')
    .option('--all', 'show every finding, not only failures')
    .addOption(new Option('--concurrency <n>', 'hosts checked at once').argParser(positive('--concurrency')).default(defaultConcurrency))
    .action(async (flags: CheckFlags) => {
      process.exitCode = await check(flags);
    });
  addSshOptions(root.command('provision'))
    .description('converge hosts to a profile\'s playbook: idempotent steps, dry run with diffs, lockout-proof SSH changes')
    .option('-p, --profile <name>', 'profile whose playbook to run (its ports and PostgreSQL settings flow into the steps)')
    .option('--playbook <name or file>', 'run a playbook directly instead of a profile\'s')
    .option('-H, --host <[user@]host[:port]>', 'host to provision over SSH (repeatable)', collect)
    .option('--local', 'provision this machine (first-boot runs)')
    .option('-n, --dry-run', 'show what would change, with diffs, and change nothing')
    .option('-y, --yes', 'do not ask for confirmation (needed without a terminal)')
    .option('--only <steps>', 'run only these steps (comma-separated)', collect)
    .option('--skip <steps>', 'skip these steps (comma-separated)', collect)
    .option('--set <step.key=value>', 'set a step parameter (repeatable; JSON values, @file for a file\'s lines)', (v: string, p: string[] = []) => [...p, v])
    .option('--json', 'print a machine-readable report')
    .option('--templates <dir>', 'override shipped templates with the files of the same name in this directory')
    .option('--no-bench', 'do not benchmark the model server after provisioning (done when the profile has benchmark targets)')
    .option('--bench-endpoint <url>', 'the model server to benchmark, as the host sees it', defaultBenchEndpoint)
    .addOption(new Option('--concurrency <n>', 'hosts provisioned at once').argParser(positive('--concurrency')).default(defaultConcurrency))
    .action(async (flags: ProvisionFlags) => {
      process.exitCode = await provision(flags);
    });
  const number = (name: string) => (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`${name} must be a number, got "${value}"`);
    return n;
  };
  addSshOptions(root.command('bench'))
    .description('benchmark the model server on a host (through SSH): TTFT, TPOT, ITL, latency percentiles, throughput, roofline, targets')
    .option('-H, --host <[user@]host[:port]>', 'the host the server runs on (default: this machine)', collect)
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
    .addOption(new Option('--requests-per-level <n>', 'requests per load level at most').argParser(positive('--requests-per-level')).default(benchDefaults.requestsPerLevel))
    .addOption(new Option('--level-time <seconds>', 'time budget per load level').argParser(positive('--level-time')).default(benchDefaults.levelMaxMs / 1000))
    .addOption(new Option('--rate <req/s>', 'add an open-loop level with Poisson arrivals at this rate').argParser(number('--rate')))
    .addOption(new Option('--timeout <seconds>', 'per-request timeout').argParser(positive('--timeout')).default(benchDefaults.timeoutMs / 1000))
    .addOption(new Option('--stall <seconds>', 'give up on a stream silent this long').argParser(positive('--stall')).default(benchDefaults.stallMs / 1000))
    .addOption(new Option('--ttft-target <ms>', 'goodput: time to first token at most').argParser(number('--ttft-target')))
    .addOption(new Option('--tpot-target <ms>', 'goodput: time per output token at most').argParser(number('--tpot-target')))
    .option('--json', 'print a machine-readable report')
    .option('--report <file.html>', 'write a self-contained HTML report with charts')
    .action(async (flags: BenchFlags) => {
      process.exitCode = await benchCommand(flags);
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
      process.stderr.write(`zanuri: ${error.message}\n${error.hint ? `hint: ${error.hint}\n` : ''}`);
      process.exitCode = error.exitCode;
      return;
    }
    process.stderr.write(`zanuri: internal error: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
    process.exitCode = ExitCode.internal;
  }
}

await main(process.argv);
