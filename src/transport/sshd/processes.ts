// Which sshd process serves a connection, read from /proc (Linux). sshd forks one process (as root, a
// privileged monitor and its child) per connection; the session script's parent is that connection's process,
// and the child of the listening sshd on the way up is the one whose end ends the connection. Used only to close
// connections whose access was revoked, or on shutdown; never to authorize anything.
import { readdirSync, readFileSync } from 'node:fs';

interface ProcStat {
  comm: string;
  state: string;
  ppid: number;
}

function stat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may itself hold spaces and parentheses, so cut at the last ")".
    const close = text.lastIndexOf(')');
    const fields = text.slice(close + 2).split(' ');
    return { comm: text.slice(text.indexOf('(') + 1, close), state: fields[0] ?? '', ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

/** The child of one of `listeners` that `pid` descends from (or is), if any. */
export function connectionProcess(pid: number, listeners: ReadonlySet<number>): number | undefined {
  let current = pid;
  for (let depth = 0; depth < 8 && current > 1; depth++) {
    const info = stat(current);
    if (!info) return undefined;
    if (listeners.has(info.ppid)) return current;
    current = info.ppid;
  }
  return undefined;
}

/** The processes whose parent is `pid`. */
export function childrenOf(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  return entries.filter((e) => /^\d+$/.test(e) && stat(Number(e))?.ppid === pid).map(Number);
}

/** Ends an sshd connection process, after checking that the pid still is an sshd (pids are reused). */
export function endSshdProcess(pid: number): boolean {
  if (stat(pid)?.comm !== 'sshd') return false;
  try {
    process.kill(pid, 'SIGTERM');
    return true;
  } catch {
    return false;
  }
}

/** Running, that is: neither gone nor a zombie waiting for its parent. */
export function isAlive(pid: number): boolean {
  const info = stat(pid);
  return info !== undefined && info.state !== 'Z';
}
