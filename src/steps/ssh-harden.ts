import { ConfigError } from '../core/errors.js';
import { fileFact, serviceFact, commandFact, type FactValues } from '../facts/state.js';
import { sshAlgorithmsFact, sshdEffectiveFact, sshdFilesFact, type SshAlgorithms } from '../facts/sshd.js';
import { command } from '../resources/command.js';
import { file } from '../resources/file.js';
import type { Resource } from '../resources/types.js';
import { proveLogin, retryWhileUnreachable } from './access.js';
import { params, Type, userName, type Static } from './schema.js';
import { directivesOf, findConflicts, mismatches, neutralise, readOrder, type Conflict } from './sshd-config.js';
import { defineStep, type HostInfo, type PlanContext } from './types.js';

/** sshd takes the first value it reads and includes sshd_config.d/*.conf first, in name order: 00- wins over cloud-init's 50-. */
export const dropInPath = '/etc/ssh/sshd_config.d/00-zanuri-hardening.conf';
const moduliPath = '/etc/ssh/moduli';
/** Where the moduli file is kept before pruning, for rollback (the engine's backup tree). */
const moduliBackup = '/var/lib/zanuri/backup/etc/ssh/moduli';
const sshdTest = { argv: ['sshd', '-t'] } as const;

const onOff = (o: { default: boolean; description: string }) => Type.Boolean(o);

const schema = params({
  deployUser: Type.Union([userName(), Type.Null()], { default: 'deploy', description: 'The user whose fresh key login and passwordless sudo must work before anything changes (and again after the reload); null: the login user.' }),
  permitRootLogin: Type.Union([Type.Literal('no'), Type.Literal('prohibit-password'), Type.Null()], {
    default: null,
    description: 'PermitRootLogin. null: "no" when the proven user is not root (the deploy user\'s key login and sudo -n are proven first), else "prohibit-password". With "no", log in as the deploy user afterwards.',
  }),
  maxAuthTries: Type.Integer({ minimum: 2, maximum: 10, default: 6, description: 'MaxAuthTries. Every key an agent offers counts as a try: with N, an agent that offers N or more other keys first is cut off (IdentitiesOnly in ~/.ssh/config avoids that). 6 is OpenSSH\'s own default; passwords are off, so fewer tries gain little.' }),
  loginGraceTime: Type.Integer({ minimum: 10, maximum: 600, default: 30, description: 'LoginGraceTime in seconds: how long an unauthenticated connection may stay.' }),
  maxStartups: Type.String({ pattern: '^\\d{1,4}:\\d{1,3}:\\d{1,4}$', what: 'start:rate:full, e.g. 10:30:60', default: '10:30:60', description: 'MaxStartups start:rate:full: unauthenticated connections beyond start are dropped with rate% probability, all beyond full.' }),
  clientAliveInterval: Type.Integer({ minimum: 0, maximum: 3600, default: 300, description: 'ClientAliveInterval in seconds (0: off).' }),
  clientAliveCountMax: Type.Integer({ minimum: 1, maximum: 10, default: 2, description: 'ClientAliveCountMax: unanswered keepalives before the connection is dropped.' }),
  x11Forwarding: onOff({ default: false, description: 'X11Forwarding.' }),
  allowTcpForwarding: Type.Union([Type.Literal('no'), Type.Literal('local'), Type.Literal('yes')], {
    default: 'local',
    description: 'AllowTcpForwarding. "local" (the default) keeps ssh -L, which zanuri bench uses to reach the model server, and refuses -R listeners; anyone with a shell can forward locally anyway.',
  }),
  allowAgentForwarding: onOff({ default: false, description: 'AllowAgentForwarding.' }),
  permitTunnel: onOff({ default: false, description: 'PermitTunnel (tun/tap devices over SSH).' }),
  allowUsers: Type.Array(userName(), { default: [], description: 'When set, only these users may log in (AllowUsers).' }),
  moduliMinBits: Type.Union([Type.Integer({ minimum: 2048, maximum: 8192 }), Type.Null()], { default: 3072, description: 'Diffie-Hellman group-exchange moduli smaller than this are removed from /etc/ssh/moduli; null leaves the file alone.' }),
});

type Params = Static<typeof schema>;

/** Whose fresh login proves access: the deploy user, or the login user. */
const proofUser = (p: Params, host: HostInfo): string => p.deployUser ?? (host.loginUser || 'root');
const rootLogin = (p: Params, host: HostInfo): 'no' | 'prohibit-password' => p.permitRootLogin ?? (proofUser(p, host) === 'root' ? 'prohibit-password' : 'no');
/** The accounts whose effective configuration is judged: the one that proves access, and root. */
const judged = (p: Params, host: HostInfo): string[] => [...new Set([proofUser(p, host), 'root'])];

/** Counts the moduli below and at or above the minimum (the 5th field is the size in bits minus one). */
export const moduliFact = (min: number) => commandFact(['awk', '-v', `min=${min - 1}`, '!/^#/ && NF >= 7 { if ($5 < min) w++; else s++ } END { printf "%d %d\\n", w, s }', moduliPath]);

/** Keeps comments and the moduli of `min` bits or more; refuses to leave none; the old file goes to the backup tree. */
const pruneScript = `set -eu
f=$1 min=$2 b=$3
t=$(mktemp -- "$f.zanuri-XXXXXX"); trap 'rm -f -- "$t"' EXIT
awk -v min="$min" '/^#/ || NF < 7 || $5 >= min' "$f" > "$t"
awk -v min="$min" '!/^#/ && NF >= 7 { n++ } END { exit n > 0 ? 0 : 1 }' "$t" || { echo "zanuri: no modulus would remain in $f; it is left as it is" >&2; exit 3; }
mkdir -p -- "$(dirname -- "$b")"; cp -p -- "$f" "$b"
chown --reference="$f" -- "$t"; chmod --reference="$f" -- "$t"
sync -- "$t" 2>/dev/null || sync
mv -f -- "$t" "$f"; trap - EXIT`;
const restoreScript = 'set -eu; cp -p -- "$2" "$1.zanuri-undo"; mv -f -- "$1.zanuri-undo" "$1"';

function moduli(facts: FactValues, min: number | null): { resource: Resource | null; note: string } {
  if (min === null) return { resource: null, note: '' };
  const state = facts.get(moduliFact(min));
  const [weak = 0, strong = 0] = state.exitCode === 0 ? state.stdout.trim().split(/\s+/).map(Number) : [];
  const needed = weak > 0 && strong > 0 ? `${moduliPath} offers ${weak} Diffie-Hellman moduli under ${min} bits to group-exchange clients` : null;
  return {
    resource: command(`prune moduli under ${min} bits`, needed,
      { argv: ['sh', '-c', pruneScript, 'zanuri-moduli', moduliPath, String(min - 1), moduliBackup] },
      { display: `remove the ${weak} moduli under ${min} bits from ${moduliPath} (the old file kept in ${moduliBackup})`, undo: { argv: ['sh', '-c', restoreScript, 'zanuri-moduli', moduliPath, moduliBackup] } }),
    note: state.exitCode !== 0 ? '' : weak > 0 && strong === 0 ? `; ${moduliPath} has only moduli under ${min} bits, so it is left as it is` : `; ${moduliPath} has no modulus under ${min} bits`,
  };
}

/**
 * The algorithms offered, best first: post-quantum hybrids where this OpenSSH has them (ML-KEM from
 * 9.9, sntrup761 from 8.5), then X25519 and the 4096/8192-bit groups; AEAD and CTR ciphers;
 * encrypt-then-MAC SHA-2 and UMAC-128, plus plain hmac-sha2 for clients without EtM (paramiko,
 * older JSch; used only with CTR). No NIST curves, no SHA-1, no umac-64, no 2048-bit groups.
 */
export const preferredAlgorithms = {
  kex: ['mlkem768x25519-sha256', 'sntrup761x25519-sha512', 'sntrup761x25519-sha512@openssh.com', 'curve25519-sha256', 'curve25519-sha256@libssh.org',
    'diffie-hellman-group16-sha512', 'diffie-hellman-group18-sha512', 'diffie-hellman-group-exchange-sha256'],
  cipher: ['chacha20-poly1305@openssh.com', 'aes256-gcm@openssh.com', 'aes128-gcm@openssh.com', 'aes256-ctr', 'aes192-ctr', 'aes128-ctr'],
  mac: ['hmac-sha2-256-etm@openssh.com', 'hmac-sha2-512-etm@openssh.com', 'umac-128-etm@openssh.com', 'hmac-sha2-256', 'hmac-sha2-512'],
} as const;

/** Names every OpenSSH since 7.4 (2016) knows: used when `ssh -Q` cannot be read, so sshd -t never meets an unknown name. */
const everyOpenSsh = new Set<string>(['curve25519-sha256', 'curve25519-sha256@libssh.org', 'diffie-hellman-group16-sha512', 'diffie-hellman-group18-sha512',
  'diffie-hellman-group-exchange-sha256', ...preferredAlgorithms.cipher, ...preferredAlgorithms.mac]);

/** The preferred lists cut to what this host's OpenSSH supports (an unknown name makes sshd refuse its whole configuration). */
export function chooseAlgorithms(supported: SshAlgorithms): { kex: string; cipher: string; mac: string } {
  const pick = (preferred: readonly string[], have: string[] | null): string => {
    const known = have ? new Set(have) : everyOpenSsh;
    const chosen = preferred.filter((name) => known.has(name));
    return (chosen.length ? chosen : preferred.filter((name) => everyOpenSsh.has(name))).join(',');
  };
  return { kex: pick(preferredAlgorithms.kex, supported.kex), cipher: pick(preferredAlgorithms.cipher, supported.cipher), mac: pick(preferredAlgorithms.mac, supported.mac) };
}

function rendered(p: Params, ctx: PlanContext, algorithms: { kex: string; cipher: string; mac: string }) {
  const yesNo = (b: boolean): string => (b ? 'yes' : 'no');
  return ctx.templates.render('ssh/hardening.conf', {
    permitRootLogin: rootLogin(p, ctx), maxAuthTries: p.maxAuthTries, loginGraceTime: p.loginGraceTime, maxStartups: p.maxStartups,
    clientAliveInterval: p.clientAliveInterval, clientAliveCountMax: p.clientAliveCountMax, x11Forwarding: yesNo(p.x11Forwarding),
    allowTcpForwarding: p.allowTcpForwarding, allowAgentForwarding: yesNo(p.allowAgentForwarding), permitTunnel: yesNo(p.permitTunnel),
    allowUsers: p.allowUsers.join(' '), ...algorithms,
  });
}

const textOf = (content: ReturnType<typeof rendered>): string => String(content.text);

/**
 * An sshd drop-in with keys-only logins, modern algorithms and no forwarding beyond ssh -L, judged
 * by what sshd really does: `sshd -T`, and `sshd -T -C` for the deploy user and root connecting
 * from the operator's address. A line read before the drop-in, or a Match block that lets
 * passwords (or root) back in, is shown with its file:line and commented out; what zanuri cannot
 * trace to a line is refused with the evidence. It never locks the operator out: the deploy user's
 * fresh key login and `sudo -n` are proven before anything changes, `sshd -t` checks every file in
 * place, and after the reload the effective configuration and a fresh login (retried briefly while
 * sshd restarts) must hold, or everything is put back.
 */
export const sshHarden = defineStep({
  id: 'ssh-harden',
  title: 'SSH hardening',
  after: ['deploy-user'],
  params: schema,

  packages: () => ['openssh-server'],

  facts: (p, host) => [serviceFact('ssh.service'), serviceFact('ssh.socket'), sshdFilesFact(), fileFact(dropInPath), sshdEffectiveFact(judged(p, host)), sshAlgorithmsFact(),
    ...(p.moduliMinBits === null ? [] : [moduliFact(p.moduliMinBits)])],

  resources(facts, p, ctx) {
    // Debian and Ubuntu name the unit ssh, RHEL sshd. With socket activation (Ubuntu 22.10+) the
    // daemon reads its config per start, and restarting ssh.service applies it.
    const unit = facts.get(serviceFact('ssh.service')).enabled !== 'not-found' ? 'ssh.service' : 'sshd.service';
    const socketActivated = facts.get(serviceFact('ssh.socket')).active === 'active';
    const notify = [{ unit, op: socketActivated ? 'restart' as const : 'reload' as const }];
    const content = rendered(p, ctx, chooseAlgorithms(facts.get(sshAlgorithmsFact())));
    const wanted = directivesOf(textOf(content));
    const root = rootLogin(p, ctx);
    const tries = p.maxAuthTries < 6 ? `; MaxAuthTries ${p.maxAuthTries}: an agent that offers ${p.maxAuthTries} other keys before the right one is refused (IdentitiesOnly avoids that)` : '';
    const resources: Resource[] = [file(dropInPath, content, {
      validateInPlace: sshdTest, notify,
      whyMissing: `password logins are not disabled by zanuri yet (PermitRootLogin ${root}${root === 'no' ? `: log in as ${proofUser(p, ctx)} from now on` : ''})${tries}`,
      whyDiffers: `${dropInPath} differs from the hardened settings${tries}`,
    })];

    const order = readOrder(facts.get(sshdFilesFact()), dropInPath);
    let conflicts: Conflict[] = [];
    if (order) {
      if (!order.dropIn) {
        throw new ConfigError(`ssh-harden: no Include line in /etc/ssh/sshd_config reads ${dropInPath}, so sshd would never see the hardened settings`, {
          hint: 'put "Include /etc/ssh/sshd_config.d/*.conf" at the top of /etc/ssh/sshd_config (Debian and Ubuntu ship it there)',
        });
      }
      if (order.dropIn.match !== null) {
        throw new ConfigError(`ssh-harden: ${order.dropIn.via} includes ${dropInPath} inside "Match ${order.dropIn.match}", so its settings would apply to those connections only`, {
          hint: 'move the Include line above every Match block of /etc/ssh/sshd_config',
        });
      }
      conflicts = findConflicts(order, dropInPath, wanted);
      for (const path of [...new Set(conflicts.map((c) => c.directive.file))]) {
        const current = facts.get(sshdFilesFact()).find((f) => f.path === path);
        if (!current) continue;
        const mine = conflicts.filter((c) => c.directive.file === path);
        const text = neutralise(current, mine, (c) => textOf(ctx.templates.render('ssh/neutralised-line', { reason: c.why, line: c.directive.text })).replace(/\n$/, ''));
        resources.push(file(path, text, {
          mode: current.mode, owner: current.owner, group: current.group, validateInPlace: sshdTest, notify,
          whyDiffers: `${mine.map((c) => c.why).join('; ')}: commented out`,
        }));
      }
    }
    const pruning = moduli(facts, p.moduliMinBits);
    if (pruning.resource) resources.push(pruning.resource);

    // With the drop-in in place and nothing left to turn off, sshd itself must agree; if it does
    // not, something zanuri cannot see overrides it (sshd -o options, a file outside the Includes).
    const dropIn = facts.get(fileFact(dropInPath));
    if (order && !conflicts.length && dropIn.content === textOf(content)) {
      const effective = facts.get(sshdEffectiveFact(judged(p, ctx)));
      const wrong = mismatches(effective, wanted);
      if (wrong.length) {
        throw new ConfigError(`ssh-harden: sshd's effective configuration disagrees with ${dropInPath}, and no line of sshd_config or its Includes explains it: ${wrong.join('; ')}`, {
          hint: `see sshd -T -C user=USER,${effective.spec || 'addr=ADDRESS'}; look for options on sshd's command line (systemctl cat ssh) and files outside /etc/ssh`,
        });
      }
    }
    return resources;
  },

  converged(p, facts, ctx) {
    const users = judged(p, ctx).join(' and ');
    const spec = facts.get(sshdEffectiveFact(judged(p, ctx))).spec;
    return `sshd's effective configuration (sshd -T, and for ${users}${spec ? ` from ${spec.replace(/^host=[^,]*,/, '')}` : ''}) is keys only, PermitRootLogin ${rootLogin(p, ctx)}, as ${dropInPath} says${moduli(facts, p.moduliMinBits).note}`;
  },

  /** The deploy user's fresh key login and sudo -n, before anything changes; PermitRootLogin no needs both. */
  async beforeApply(ctx, p) {
    const user = proofUser(p, ctx);
    if (rootLogin(p, ctx) === 'no' && user === 'root') {
      throw new ConfigError('ssh-harden: permitRootLogin "no" with root as the only proven login would lock the operator out', {
        hint: 'name a deploy user (ssh-harden.deployUser, created by the deploy-user step) or log in as a sudoer',
      });
    }
    await proveLogin(ctx, { user: p.deployUser, sudo: user !== 'root' });
  },

  /** After the reload: sshd's effective configuration, then a fresh login (sshd may still be restarting, or ufw limit may refuse: retried, bounded). */
  async verify(ctx, p) {
    const fact = sshdEffectiveFact(judged(p, ctx));
    const result = await ctx.run({ argv: ['sh', '-c', `PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"\n${fact.script}`] });
    const effective = fact.parse(result.stdout);
    // What sshd must now say is what the drop-in in place says (this run just wrote it).
    const dropIn = await ctx.run({ argv: ['cat', '--', dropInPath] });
    const wrong = mismatches(effective, directivesOf(dropIn.stdout));
    if (!effective.global || wrong.length) {
      throw new ConfigError(`ssh-harden: after the reload sshd's effective configuration is not the hardened one: ${effective.global ? wrong.join('; ') : effective.error ?? 'sshd -T failed'}`);
    }
    await retryWhileUnreachable(() => proveLogin(ctx, { user: p.deployUser, sudo: proofUser(p, ctx) !== 'root', delaysMs: [] }));
  },
});
