// HOME/run/endpoints.json: where a running server listens, for scripts and the test harness (ports may be
// chosen by the OS). Written to a temporary file and renamed, so that a reader never sees half of it.
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export async function writeEndpoints(home: string, endpoints: Record<string, unknown>): Promise<void> {
  const dir = join(home, 'run');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'endpoints.json');
  await writeFile(`${file}.${process.pid}.tmp`, JSON.stringify({ pid: process.pid, ...endpoints }) + '\n', { mode: 0o600 });
  await rename(`${file}.${process.pid}.tmp`, file);
}
