import { ConfigError, StepFailedError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { userFact, type FactValues } from '../facts/state.js';
import { command } from '../resources/command.js';
import type { Resource } from '../resources/types.js';
import { user } from '../resources/user.js';

/**
 * What the application runtimes (python-app, node-app) share: the application's own system user
 * (no login shell, no home of its own), its directory under /opt or /srv, the environment file that
 * carries its secrets, and the systemd daemon-reload after a unit file changed.
 */

/** The shell of a service account: nobody logs in as the application. */
export const noLogin = '/usr/sbin/nologin';

/** Names that belong to the system or to other steps: the application never runs as one of them. */
const reservedNames = new Set(['root', 'daemon', 'bin', 'sys', 'sync', 'games', 'man', 'lp', 'mail', 'news', 'uucp', 'proxy', 'www-data', 'backup', 'list', 'irc', 'nobody', 'systemd-network', 'systemd-timesync', 'messagebus', 'sshd', '_apt', 'postgres', 'redis', 'prometheus', 'deploy', 'admin', 'ubuntu', 'debian', 'nginx', 'docker', 'sudo', 'adm', 'staff', 'users']);

/** An application directory: one level below /opt or /srv (seed 001: /opt/aikovrr), never a system directory. */
export const appDirPattern = '^/(?:opt|srv)/[a-z0-9][a-z0-9._-]{0,62}$';

/** The name of the application user (and group, and unit): refuses accounts that are the system's or the operators'. */
export function checkAppName(step: string, name: string): void {
  if (reservedNames.has(name)) {
    throw new ConfigError(`${step}: "${name}" is a system or operator account; the application runs as a user of its own`, { hint: `choose another ${step}.name, e.g. the application's name` });
  }
}

/**
 * The application's user and group: a system account whose shell is nologin. An existing account
 * with a login shell and a regular uid is a person's (or the deploy user): turning it into a
 * service account would lock them out, so the step stops instead.
 */
export function appUser(step: string, name: string, facts: FactValues): Resource {
  const current = facts.get(userFact(name));
  if (current.exists && current.uid !== null && current.uid >= 1000 && current.shell !== noLogin && current.shell !== '/bin/false' && current.shell !== '/usr/bin/false') {
    throw new StepFailedError('this host', `${step}: user ${name} exists with the login shell ${current.shell} (uid ${current.uid}): it is a person's account, and zanuri will not turn it into the application's service account`, {
      hint: `choose another ${step}.name, or change that account's shell to ${noLogin} yourself`,
    });
  }
  return user(name, { system: true, shell: noLogin });
}

/** `systemctl daemon-reload` when one of these unit files is about to change (declare it right after them, before any checkpoint). */
export function daemonReload(id: string, units: readonly Resource[], facts: FactValues, what: string): Resource {
  const changing = units.some((u) => u.plan(facts).length > 0);
  return command(`${id}-daemon-reload`, changing ? `systemd reads the changed ${what}` : null, { argv: ['systemctl', 'daemon-reload'] });
}

/**
 * The environment file's lines (--set STEP.environment=@FILE: NAME=value per line, # comments
 * allowed), as a Secret: the values are the application's secrets (SECRET_KEY, DATABASE_PASSWORD).
 * A bad line is named by its number only; its content never appears in an error.
 */
export function environmentOf(step: string, raw: readonly string[] | null): Secret | null {
  if (raw === null) return null;
  const lines = raw.filter((l) => !l.startsWith('#'));
  lines.forEach((line, i) => {
    // systemd's EnvironmentFile= and the step's own reading take NAME=value; no control characters.
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}=[^\x00-\x1f\x7f]{0,8192}$/.test(line)) {
      throw new ConfigError(`${step}: line ${i + 1} of the environment (not counting comments) is not NAME=value (the content is not shown)`, {
        hint: 'one NAME=value per line, NAME from letters, digits and _; e.g. SECRET_KEY=... (give it with --set STEP.environment=@FILE)',
      });
    }
  });
  const names = lines.map((l) => l.slice(0, l.indexOf('=')));
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new ConfigError(`${step}: ${twice} is set twice in the environment`);
  return new Secret(lines.map((l) => `${l}\n`).join(''));
}
