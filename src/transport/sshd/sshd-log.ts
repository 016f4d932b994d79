// What sshd's log tells the server: `sshd -e` prints its refusals and logins one per line (OpenSSH 9's
// wording), and these become the same metrics the built-in server counts.
import { sshConnectionsCounter } from '../ssh/front-end.js';
import type { Metrics } from '../../obs/metrics.js';


/**
 * sshd's refusals, which only its log shows: `sshd -e` prints them one per line (OpenSSH 9's wording). Each
 * connection's authentication counts once, as with the built-in server's metric. Login timeouts are not
 * counted: sshd does not log them (they happen in a signal handler).
 */
const LOG_OUTCOMES: Array<[RegExp, 'auth_success' | 'auth_failure' | 'refused' | 'login_timeout' | 'too_many_auth_attempts']> = [
  [/^Accepted publickey for /, 'auth_success'],
  [/^Connection (closed|reset) by authenticating user /, 'auth_failure'],
  [/^Disconnected from authenticating user /, 'auth_failure'],
  [/^(error: )?maximum authentication attempts exceeded /, 'too_many_auth_attempts'],
  [/past Max ?Startups/i, 'refused'],
];

/** Counts one sshd log line into the server's metrics, if it is one of the outcomes above. */
export function sshdLogCounter(metrics: Metrics): (line: string) => void {
  const connections = sshConnectionsCounter(metrics.registry);
  return (line) => {
    for (const [pattern, outcome] of LOG_OUTCOMES) {
      if (!pattern.test(line)) continue;
      if (outcome === 'auth_success') metrics.authentications.inc({ outcome: 'success' });
      else if (outcome === 'auth_failure') metrics.authentications.inc({ outcome: 'failure' });
      else connections.inc({ outcome });
      return;
    }
  };
}
