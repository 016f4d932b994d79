// The processes below a server, read from /proc (Linux): what tests check about the git processes a server runs.
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessInfo {
  pid: number;
  /** The command line, split at its NUL bytes. */
  argv: string[];
}

/** Every live descendant of `pid` (children, grandchildren, ...), e.g. git under sshd under the server. */
export function processesBelow(pid: number): ProcessInfo[] {
  const parents = new Map<number, number>();
  const argvs = new Map<number, string[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so cut at the last ")".
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      argvs.set(Number(name), readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0'));
    } catch {
      // exited meanwhile
    }
  }
  const below: ProcessInfo[] = [];
  for (const [candidate, argv] of argvs) {
    for (let p = parents.get(candidate); p !== undefined && p > 1; p = parents.get(p)) {
      if (p === pid) {
        below.push({ pid: candidate, argv });
        break;
      }
    }
  }
  return below;
}
