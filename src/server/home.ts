// The server's home holds the database (with its WAL), repositories, keys, the hook socket and run files: all of
// it is owner-only (directories 0700, files 0600). Two layers make that hold:
// - the process umask is 077, because much of the home is written by code that takes its mode from the umask
//   (SQLite's -wal and -shm files, every file git writes into repositories, ssh's control sockets);
// - files this server creates itself also name their mode explicitly, so that they stay private when the code
//   runs in a process that did not set the umask (tests, tools).
import { chmod, mkdir, stat } from 'node:fs/promises';
import type { Logger } from '../obs/logger.js';

export const PRIVATE_UMASK = 0o077;
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Sets the owner-only umask and creates (or tightens) the home directory. */
export async function preparePrivateHome(home: string, log: Logger): Promise<void> {
  process.umask(PRIVATE_UMASK);
  await mkdir(home, { recursive: true, mode: PRIVATE_DIR_MODE });
  const mode = (await stat(home)).mode & 0o777;
  if (mode & 0o077) {
    // An existing home (made by hand, or by an older version) that others can read or enter.
    try {
      await chmod(home, PRIVATE_DIR_MODE);
      log.warn({ home, was: mode.toString(8) }, 'the home directory was accessible to other users; changed its mode to 0700');
    } catch (err) {
      log.warn({ home, mode: mode.toString(8), err: (err as Error).message }, 'the home directory is accessible to other users and its mode cannot be changed; restrict it to its owner');
    }
  }
}
