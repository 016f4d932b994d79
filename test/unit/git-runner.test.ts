import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { GitCommand, GitError, GitRunner, UnsafeGitArgumentError } from '../../src/git/runner.js';
import { removeTempDirs, tempDir } from '../helpers/tmp.js';

after(removeTempDirs);

describe('git runner', () => {
  const runner = new GitRunner({ binary: 'git', home: tempDir(), defaultTimeoutMs: 10_000 });

  it('refuses user values that git would read as options', () => {
    assert.throws(() => GitCommand.of('upload-pack').value('--upload-pack=touch /tmp/pwned'), UnsafeGitArgumentError);
    assert.throws(() => GitCommand.of('rev-parse').value('a\0b'), UnsafeGitArgumentError);
    assert.deepEqual(GitCommand.of('rev-parse', '--verify').value('main').args, ['rev-parse', '--verify', 'main']);
  });

  it('runs git in an isolated environment', async () => {
    process.env.GIT_DIR = '/should/not/leak';
    try {
      const r = await runner.run(GitCommand.of('var').value('GIT_COMMITTER_IDENT'), { env: { GIT_COMMITTER_NAME: 'x', GIT_COMMITTER_EMAIL: 'x@y' } });
      assert.match(r.stdout.toString(), /^x <x@y>/);
      const cfg = await runner.run(GitCommand.of('config', '--list', '--show-origin'), { allowExitCodes: [1] });
      assert.doesNotMatch(cfg.stdout.toString(), /\/etc\/gitconfig/, 'no system config');
    } finally {
      delete process.env.GIT_DIR;
    }
  });

  it('reports failures with git stderr', async () => {
    await assert.rejects(runner.run(GitCommand.of('rev-parse').value('no-such-rev'), { gitDir: tempDir() }), (err: GitError) => {
      assert.ok(err instanceof GitError);
      assert.equal(err.code, 128);
      return true;
    });
  });

  it('kills git when the caller aborts and when the timeout passes', async () => {
    const gitDir = tempDir();
    await runner.run(GitCommand.of('init', '--bare', '--quiet').value(gitDir));
    const abort = new AbortController();
    const child = runner.spawn(GitCommand.of('cat-file', '--batch'), { gitDir, signal: abort.signal });
    setTimeout(() => abort.abort(), 50);
    assert.equal(await child.exited, null, 'killed by a signal');
    const slow = runner.spawn(GitCommand.of('cat-file', '--batch'), { gitDir, timeoutMs: 50 });
    assert.equal(await slow.exited, null);
  });
});
