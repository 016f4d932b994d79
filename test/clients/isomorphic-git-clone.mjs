// Clones a repository with isomorphic-git over HTTPS and prints JSON: the HEAD commit id.
// Usage: node isomorphic-git-clone.mjs URL DIR. The user and password come from MF_GIT_USER / MF_GIT_PASSWORD
// (never argv); trust comes from NODE_EXTRA_CA_CERTS, as for any Node program. isomorphic-git speaks no SSH.
/* global process, console */
import fs from 'node:fs';
import git from 'isomorphic-git';
import http from 'isomorphic-git/http/node';

const [url, dir] = process.argv.slice(2);
if (!url || !dir) {
  console.error('usage: isomorphic-git-clone.mjs URL DIR');
  process.exit(2);
}
const user = process.env.MF_GIT_USER;
const onAuth = user ? () => ({ username: user, password: process.env.MF_GIT_PASSWORD ?? '' }) : undefined;
await git.clone({ fs, http, dir, url, onAuth, onAuthFailure: () => ({ cancel: true }) });
const head = await git.resolveRef({ fs, dir, ref: 'HEAD' });
console.log(JSON.stringify({ head, isomorphicGit: git.version() }));
