// The Git LFS object store on a real directory: an object becomes visible only with the hash and size it was
// announced with, and the per-object and per-repository limits refuse objects before any byte is stored,
// counting what one batch admits.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { LfsObjectStore } from '../../src/lfs/object-store.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

after(() => removeTempDirs());

const oidOf = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function storeWith(limits: { maxObjectBytes: number; maxRepositoryBytes: number }) {
  const root = join(tempDir('mf-lfs-store-'), 'lfs');
  const store = new LfsObjectStore(root, limits);
  await store.prepare();
  return { store, root };
}

describe('Git LFS object store', () => {
  it('stores an object under its oid only when hash and size match, and leaves nothing behind otherwise', async () => {
    const { store, root } = await storeWith({ maxObjectBytes: 1024, maxRepositoryBytes: 0 });
    const data = Buffer.from('hello lfs\n');
    await assert.rejects(store.write(1, oidOf(data), data.length, Readable.from([Buffer.from('hello LFS\n')])), { code: 'LFS_HASH_MISMATCH' });
    await assert.rejects(store.write(1, oidOf(data), data.length + 1, Readable.from([data])), { code: 'LFS_SIZE_MISMATCH' });
    assert.equal(await store.size(1, oidOf(data)), undefined);
    assert.deepEqual(readdirSync(join(root, 'tmp')), [], 'no temporary file left');
    await store.write(1, oidOf(data), data.length, Readable.from([data]));
    assert.equal(await store.size(1, oidOf(data)), data.length);
    assert.equal(await store.size(2, oidOf(data)), undefined, 'objects belong to their repository');
  });

  it('refuses objects over the object limit, and a batch that would take the repository over its limit', async () => {
    const { store } = await storeWith({ maxObjectBytes: 8, maxRepositoryBytes: 10 });
    const data = Buffer.from('123456');
    await store.write(1, oidOf(data), data.length, Readable.from([data]));
    const admit = await store.admission(1);
    assert.throws(() => admit(9), { code: 'LFS_OBJECT_TOO_LARGE' });
    admit(3);
    assert.throws(() => admit(2), { code: 'LFS_REPOSITORY_FULL' }, 'what the batch admitted counts: 6 + 3 + 2 > 10');
    (await store.admission(2))(8); // another repository's usage is its own
  });
});
