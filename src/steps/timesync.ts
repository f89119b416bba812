import { commandFact } from '../facts/state.js';
import { directory } from '../resources/directory.js';
import { file } from '../resources/file.js';
import { link } from '../resources/link.js';
import { packages } from '../resources/packages.js';
import { service } from '../resources/service.js';
import { params, Type } from './schema.js';
import { defineStep } from './types.js';

/** How each daemon is installed, configured and run; the other one is removed (two daemons fight over the clock). */
const daemons = {
  'systemd-timesyncd': { unit: 'systemd-timesyncd.service', template: 'timesync/timesyncd.conf', dir: '/etc/systemd/timesyncd.conf.d', file: '/etc/systemd/timesyncd.conf.d/50-zanuri.conf' },
  chrony: { unit: 'chrony.service', template: 'timesync/chrony.conf', dir: '/etc/chrony/conf.d', file: '/etc/chrony/conf.d/50-zanuri.conf' },
} as const;
type Daemon = keyof typeof daemons;

/** `systemd-detect-virt --container` exits 0 inside a container, whose clock is the host's to keep. */
export const containerFact = () => commandFact(['systemd-detect-virt', '--container']);

/** tzdata writes Etc/UTC for UTC; so does this step, so that a Debian host set to UTC is already converged. */
const zoneName = (timezone: string): string => (timezone === 'UTC' ? 'Etc/UTC' : timezone);

/**
 * The clock: a time daemon keeping it in sync (systemd-timesyncd or chrony) and the timezone
 * (UTC, as seed 001 asks for its servers). Inside a container the daemon cannot set the clock
 * (both units are conditioned on it); it is installed and enabled, not started, and the step says so.
 */
export const timesync = defineStep({
  id: 'timesync',
  title: 'Time sync and timezone',
  params: params({
    timezone: Type.String({ pattern: '^(?:UTC|[A-Z][A-Za-z_+-]{1,30}(?:/[A-Za-z0-9_+-]{1,30}){1,2})$', what: 'a zone name like UTC or Europe/Berlin', default: 'UTC', description: 'The timezone (an /usr/share/zoneinfo name).' }),
    daemon: Type.Union([Type.Literal('systemd-timesyncd'), Type.Literal('chrony')], { default: 'systemd-timesyncd', description: 'The NTP client; the other one is removed.' }),
    servers: Type.Array(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9.:-]{0,252}$', what: 'a host name or address' }), { default: [], description: 'NTP servers; empty: the distribution\'s pool.' }),
  }),

  packages: (p) => [p.daemon, 'tzdata'],

  facts: () => [containerFact()],

  resources(facts, p, { templates }) {
    const daemon = daemons[p.daemon as Daemon];
    const other = p.daemon === 'chrony' ? 'systemd-timesyncd' : 'chrony';
    const inContainer = facts.get(containerFact()).exitCode === 0;
    const zone = zoneName(p.timezone);
    const restart = inContainer ? {} : { notify: [{ unit: daemon.unit, op: 'restart' as const }] };
    return [
      packages([other], { state: 'absent', why: `${other} is installed: two time daemons would fight over the clock` }),
      // The link is checked in place: a zone that tzdata does not have leaves it dangling, and it is put back.
      link('/etc/localtime', `/usr/share/zoneinfo/${zone}`, { validateInPlace: { argv: ['test', '-f', '/etc/localtime'] } }),
      file('/etc/timezone', templates.render('timesync/timezone', { timezone: zone })),
      directory(daemon.dir),
      file(daemon.file, templates.render(daemon.template, { servers: p.daemon === 'chrony' ? p.servers : p.servers.join(' ') }), restart),
      service(daemon.unit, { enabled: true, running: !inContainer }),
    ];
  },

  converged: (p, facts) => `the clock is kept by ${p.daemon}${facts.get(containerFact()).exitCode === 0 ? ' (enabled; in a container the host keeps the clock, so it does not run)' : ''}, timezone ${zoneName(p.timezone)}`,

});
