// The SSH exec grammar: which commands a client may run, and what a refusal says. Pure parsing, no server.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGitCommand } from '../../src/transport/ssh/command.js';

describe('SSH exec command parsing', () => {
  it('accepts the spellings git and people use', () => {
    const accepted: Array<[string, string, string, string]> = [
      ["git-upload-pack '/proj/repo.git'", 'upload-pack', 'proj', 'repo'],
      ["git-receive-pack '/PROJ/repo.git'", 'receive-pack', 'PROJ', 'repo'],
      ["git upload-pack 'proj/repo.git'", 'upload-pack', 'proj', 'repo'],
      ['git receive-pack "/proj/my-repo"', 'receive-pack', 'proj', 'my-repo'],
      ['git-upload-pack /proj/repo.git', 'upload-pack', 'proj', 'repo'],
      ['git-upload-pack  proj/re.po_1', 'upload-pack', 'proj', 're.po_1'],
      ["  git-upload-pack '/p_2/repo.git'  ", 'upload-pack', 'p_2', 'repo'],
    ];
    for (const [command, service, projectKey, slug] of accepted) {
      assert.deepEqual(parseGitCommand(command), { service, projectKey, slug }, command);
    }
  });

  it('refuses everything else with a message that names the problem', () => {
    const refused: Array<[string, RegExp]> = [
      ['', /An empty command is not supported/],
      ['ls -la', /Command "ls" is not supported/],
      ['git-upload-archive /proj/repo.git', /git archive --remote is not supported/],
      ['git upload-archive /proj/repo.git', /git archive --remote is not supported/],
      ['git-upload-pack', /a repository path is missing/],
      ['git-upload-pack   ', /a repository path is missing/],
      ["git-upload-pack '--help'", /"--help": it looks like an option/],
      ['git-upload-pack "--upload-pack=sh"', /it looks like an option/],
      ['git-upload-pack -c x proj/repo', /it looks like an option/],
      ["git-upload-pack '/proj/-repo.git'", /it looks like an option/],
      ["git-upload-pack '/proj/../other/repo.git'", /"\." and "\.\." are not allowed/],
      ["git-upload-pack '/proj/./repo.git'", /"\." and "\.\." are not allowed/],
      ["git-upload-pack '../../etc/passwd'", /"\." and "\.\." are not allowed/],
      ["git-upload-pack '~alice/repo.git'", /personal repositories/],
      ["git-upload-pack '/~alice/repo.git'", /personal repositories/],
      ["git-upload-pack '/scm/proj/repo.git'", /expected exactly PROJECT\/repo/],
      ["git-upload-pack '/proj//repo.git'", /expected exactly PROJECT\/repo/],
      ["git-upload-pack '/proj/repo.git/'", /expected exactly PROJECT\/repo/],
      ["git-upload-pack '/repo.git'", /expected exactly PROJECT\/repo/],
      ["git-upload-pack '/proj/.git'", /a repository slug has only/],
      ["git-upload-pack '/pr-oj/repo.git'", /a project key has only/],
      ["git-upload-pack '/proj/re po.git'", /a repository slug has only/],
      ["git-upload-pack '/proj/repo.git'; rm -rf /", /unbalanced or nested single quotes/],
      ["git-upload-pack '/proj/it'\\''s.git'", /unbalanced or nested single quotes/],
      ['git-upload-pack "/proj/$(id).git"', /shell characters/],
      ['git-upload-pack /proj/repo.git;id', /leave out spaces and shell characters/],
      ["git-upload-pack '/proj/repo.git'\0", /NUL or line-break/],
      ["git-upload-pack '/proj/repo.git'\nid", /NUL or line-break/],
      [`git-upload-pack '/proj/${'r'.repeat(1100)}.git'`, /longer than 1024 characters/],
      [`git-upload-pack '/proj/${'r'.repeat(200)}.git'`, /a repository slug has only/],
      ['GIT-UPLOAD-PACK /proj/repo.git', /not supported/],
    ];
    for (const [command, message] of refused) {
      assert.throws(() => parseGitCommand(command), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'INVALID_INPUT', command);
        assert.match(err.message, message, JSON.stringify(command));
        assert.doesNotMatch(err.message, /[\0\n]/, 'no control characters are echoed back');
        return true;
      });
    }
  });
});
