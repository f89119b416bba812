import { isIP } from 'node:net';
import { CommandError, ConfigError } from '../core/errors.js';
import { fileFact, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import { file } from '../resources/file.js';
import { service } from '../resources/service.js';
import { activeWithin } from './service-shared.js';
import { params, Type } from './schema.js';
import { defineStep } from './types.js';

export const configPath = '/etc/keepalived/keepalived.conf';
export const ufwBeforeRules = '/etc/ufw/before.rules';
const unit = 'keepalived.service';
const begin = '# BEGIN zanuri keepalived';
const end = '# END zanuri keepalived';
/** The last line of the part of Debian's before.rules that must come first (chain declarations). */
const requiredEnd = '# End required lines';

const ipv4 = (description?: string) => Type.String({ pattern: '^\\d{1,3}(?:\\.\\d{1,3}){3}$', what: 'an IPv4 address', ...(description ? { description } : {}) });

/**
 * before.rules with the VRRP block placed right after the required lines (replaced where it is
 * already, anywhere else in the file left byte for byte); null when the file has no place for it.
 */
export function withVrrpBlock(current: string, block: string): string | null {
  const lines = current.split('\n');
  const starts = lines.flatMap((l, i) => (l.trim() === begin ? [i] : []));
  const ends = lines.flatMap((l, i) => (l.trim() === end ? [i] : []));
  const body = block.replace(/\n$/, '').split('\n');
  if (starts.length === 1 && ends.length === 1 && (ends[0] as number) > (starts[0] as number)) {
    return [...lines.slice(0, starts[0]), ...body, ...lines.slice((ends[0] as number) + 1)].join('\n');
  }
  if (starts.length || ends.length) return null;
  const at = lines.findIndex((l) => l.trim() === requiredEnd);
  if (at < 0) return null;
  return [...lines.slice(0, at + 1), ...body, ...lines.slice(at + 1)].join('\n');
}

const rulesFact = fileFact(ufwBeforeRules);
/** Reloads ufw when it is active (an inactive ufw reads before.rules when it is enabled). */
export const ufwReload = { argv: ['sh', '-c', 'LC_ALL=C ufw status | grep -q "^Status: active" || exit 0; exec ufw reload', 'zanuri-ufw-reload'] as [string, ...string[]] };
const rulesOf = (facts: FactValues): string | null => {
  const state = facts.get(rulesFact);
  return state.exists && state.bytes ? state.bytes.toString('utf8') : null;
};

/**
 * keepalived: a VRRP virtual IP shared by the load balancers (seed 002), on `interface`. The peers
 * are named (unicast VRRP): no multicast on the network, and the firewall admits VRRP from them
 * alone. A host whose haproxy is not active loses checkWeight of its priority, so the virtual IP
 * moves to a peer whose haproxy is. VRRP's PASS authentication travels in clear on the network: it
 * keeps a neighbouring VRRP group with the same router id out, it is no defence against an attacker
 * there; that is the firewall's part.
 *
 * ufw has no rule for IP protocol 112 (its rules name tcp/udp ports and a few protocols, not VRRP),
 * so where ufw is installed the step adds a marked block to /etc/ufw/before.rules, after Debian's
 * required lines, accepting VRRP from the peers only, and restarts ufw (which applies before.rules
 * only when it is enabled).
 */
export const keepalived = defineStep({
  id: 'keepalived',
  title: 'keepalived virtual IP (VRRP)',
  after: ['ufw', 'haproxy'],
  params: params({
    virtualIp: Type.Union([ipv4(), Type.Null()], { default: null, what: 'an IPv4 address', description: 'The virtual IP the load balancers share (an address nobody else uses, in the interface\'s network); required.' }),
    prefix: Type.Integer({ minimum: 8, maximum: 32, default: 24, description: 'The virtual IP\'s prefix length.' }),
    interface: Type.String({ pattern: '^[A-Za-z0-9_.-]{1,15}$', default: 'eth0', what: 'a network interface name', description: 'The interface VRRP speaks on and the virtual IP is added to.' }),
    role: Type.Union([Type.Literal('master'), Type.Literal('backup')], { default: 'backup', description: 'master holds the virtual IP while it is healthy; backup takes it over.' }),
    priority: Type.Union([Type.Integer({ minimum: 1, maximum: 254 }), Type.Null()], { default: null, what: 'a priority from 1 to 254', description: 'VRRP priority; null: 150 for master, 100 for backup.' }),
    peers: Type.Array(ipv4('A peer\'s address.'), { default: [], description: 'The other load balancers\' addresses on interface (unicast VRRP; the firewall admits VRRP from these only).' }),
    virtualRouterId: Type.Integer({ minimum: 1, maximum: 255, default: 51, description: 'VRRP router id: the same on every peer, unique on the network.' }),
    authPass: Type.Union([Type.String({ pattern: '^[A-Za-z0-9]{4,8}$' }), Type.Null()], { default: null, what: '4 to 8 letters or digits', description: 'Required: VRRP PASS authentication, the same on every peer (sent in clear: it separates VRRP groups, it does not stop an attacker on the network).' }),
    checkUnit: Type.String({ pattern: '^[A-Za-z0-9@_.-]{1,64}\\.service$', default: 'haproxy.service', what: 'a systemd service name', description: 'The service whose health keeps the virtual IP here (systemctl is-active every 2 s).' }),
    checkWeight: Type.Integer({ minimum: 1, maximum: 253, default: 60, description: 'Priority lost while checkUnit is not active: more than the master/backup difference, so the address moves.' }),
    preempt: Type.Boolean({ default: true, description: 'A recovered master takes the virtual IP back; false: it stays where it is (every peer starts as BACKUP).' }),
  }),

  check(raw) {
    const { virtualIp, authPass } = raw;
    if (virtualIp === null || authPass === null || !raw.peers.length) {
      throw new ConfigError('keepalived needs virtualIp, peers and authPass (the same virtual IP, router id and authPass on every peer)', { hint: 'e.g. --set keepalived.virtualIp=10.0.0.100 --set keepalived.peers=["10.0.0.12"] --set keepalived.authPass=s3cret' });
    }
    const p = { ...raw, virtualIp, authPass };
    for (const a of [p.virtualIp, ...p.peers]) if (isIP(a) !== 4) throw new ConfigError(`keepalived: ${a} is not an IPv4 address`);
    const peers = [...new Set(p.peers)];
    if (peers.includes(p.virtualIp)) throw new ConfigError(`keepalived: the virtual IP ${p.virtualIp} is listed among the peers`);
    const priority = p.priority ?? (p.role === 'master' ? 150 : 100);
    return { ...p, peers, priority };
  },

  packages: () => ['keepalived'],

  facts: () => [rulesFact],

  resources(facts, p, { templates }) {
    const config = templates.render('keepalived/keepalived.conf', {
      ...p, routerId: `zanuri_${p.virtualRouterId}`, instance: `VI_${p.virtualRouterId}`,
      state: p.role === 'master' && p.preempt ? 'MASTER' : 'BACKUP', nopreempt: !p.preempt,
    });
    const rules = rulesOf(facts);
    const block = templates.render('keepalived/ufw-before.rules', { peers: p.peers });
    const wantedRules = rules === null ? null : withVrrpBlock(rules, String(block.text));
    if (rules !== null && wantedRules === null) {
      throw new ConfigError(`keepalived: ${ufwBeforeRules} has no "${requiredEnd}" line or broken "${begin}"/"${end}" markers: zanuri cannot tell where VRRP's rules go`, { hint: 'restore the Debian before.rules (or mend the markers), then provision again' });
    }
    return [
      ...(wantedRules === null ? [] : [
        file(ufwBeforeRules, wantedRules, {
          mode: facts.get(rulesFact).mode ?? 0o640,
          whyDiffers: `${ufwBeforeRules} does not admit VRRP from the peers (${p.peers.join(', ')})`,
        }),
        // Not a restart of ufw.service: `ufw enable` leaves that unit inactive, and starting it finds
        // the firewall running and loads nothing. `ufw reload` re-reads before.rules (undo: the old file).
        command('ufw-reload-vrrp', wantedRules === rules ? null : `ufw must load ${ufwBeforeRules} again to admit VRRP`, ufwReload, { undo: ufwReload, display: 'ufw reload (when active)' }),
      ]),
      file(configPath, config, {
        mode: 0o640,
        validate: { argv: ['keepalived', '--config-test', '-f', '{}'] },
        notify: [{ unit, op: 'reload' }],
        whyMissing: `no ${configPath}: keepalived does not start without it`,
        whyDiffers: `${configPath} differs from the wanted VRRP instance (virtual IP ${p.virtualIp}, ${p.role})`,
      }),
      service(unit),
    ];
  },

  converged: (p, facts) => `keepalived shares ${p.virtualIp} with ${p.peers.join(', ')} as ${p.role} (priority ${p.priority})${rulesOf(facts) === null ? '; ufw is not installed, so no VRRP rule is needed' : `; ${ufwBeforeRules} admits VRRP from the peers`}`,

  async verify(ctx) {
    // Bounded wait: right after a reload systemd reports "reloading" for a moment.
    const active = await ctx.run(activeWithin(unit));
    if (!active.ok) throw new CommandError(active, `systemctl is-active ${unit} (not active within 15 s)`);
  },
});
