import { startServer, sshKeyPair, sshExec, git } from '../../test/helpers/server.js';
import { createProject, createRepo, addSshKey } from '../../test/helpers/fixtures.js';
const server = await startServer();
const key = await sshKeyPair('admin');
await createProject(server, 'PROJ'); await createRepo(server, 'PROJ', 'repo');
await addSshKey(server, 'admin', key.publicKey);
for (let i = 0; i < 5; i++) {
  const t = Date.now();
  const r = await sshExec(server, key, ["git-upload-pack '/proj/repo.git'"], '0000');
  const t2 = Date.now();
  const l = await git(server, ['ls-remote', server.sshUrl('PROJ', 'repo')], { sshKey: key });
  console.log('exec', t2 - t, r.code, r.stderr.slice(0, 100), 'ls-remote', Date.now() - t2, l.code);
}
console.log(server.output().split('\n').filter(l => /sshd/.test(l)).slice(-12).join('\n'));
await server.stop();
