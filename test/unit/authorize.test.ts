import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANONYMOUS, authorize, effectiveLevel, Level, type AccessFacts, type Principal, type Resource } from '../../src/access/authorize.js';

const user = (extra: Partial<Extract<Principal, { kind: 'user' }>> = {}): Principal => ({ kind: 'user', userId: 2, name: 'alice', sysadmin: false, via: 'password', ...extra });
const repo = (facts: Partial<AccessFacts> = {}): Resource => ({
  kind: 'repository',
  path: 'PROJ/repo',
  facts: { isPublic: false, projectGrant: Level.NONE, repositoryGrant: Level.NONE, ...facts },
});

const codeOf = (fn: () => void): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code: string }).code;
  }
};

describe('authorize (the one policy function)', () => {
  it('asks anonymous callers to log in and hides private repositories from users without access', () => {
    assert.equal(codeOf(() => authorize(ANONYMOUS, repo(), 'read')), 'AUTHENTICATION_REQUIRED');
    assert.equal(codeOf(() => authorize(user(), repo(), 'read')), 'REPOSITORY_NOT_FOUND');
  });

  it('lets anyone read public repositories but not write them', () => {
    assert.equal(codeOf(() => authorize(ANONYMOUS, repo({ isPublic: true }), 'read')), undefined);
    assert.equal(codeOf(() => authorize(ANONYMOUS, repo({ isPublic: true }), 'write')), 'AUTHENTICATION_REQUIRED');
    assert.equal(codeOf(() => authorize(user(), repo({ isPublic: true }), 'write')), 'FORBIDDEN');
  });

  it('takes the highest of project and repository grants', () => {
    assert.equal(effectiveLevel(user(), repo({ projectGrant: Level.READ, repositoryGrant: Level.WRITE })), Level.WRITE);
    assert.equal(effectiveLevel(user(), repo({ projectGrant: Level.ADMIN })), Level.ADMIN);
    assert.equal(codeOf(() => authorize(user(), repo({ repositoryGrant: Level.READ }), 'write')), 'FORBIDDEN');
  });

  it('gives sysadmins everything', () => {
    assert.equal(effectiveLevel(user({ sysadmin: true }), repo()), Level.ADMIN);
    assert.equal(codeOf(() => authorize(user({ sysadmin: true }), { kind: 'system' }, 'admin')), undefined);
    assert.equal(codeOf(() => authorize(user(), { kind: 'system' }, 'admin')), 'FORBIDDEN');
  });

  it('caps tokens at their scope, even for sysadmins', () => {
    const readToken = user({ via: 'token', tokenCap: { project: Level.NONE, repository: Level.READ } });
    assert.equal(effectiveLevel(readToken, repo({ repositoryGrant: Level.ADMIN })), Level.READ);
    assert.equal(codeOf(() => authorize(readToken, repo({ repositoryGrant: Level.ADMIN }), 'write')), 'FORBIDDEN');
    const adminToken = user({ sysadmin: true, via: 'token', tokenCap: { project: Level.WRITE, repository: Level.READ } });
    assert.equal(effectiveLevel(adminToken, repo()), Level.WRITE);
    assert.equal(codeOf(() => authorize(adminToken, { kind: 'system' }, 'admin')), 'FORBIDDEN');
    assert.equal(effectiveLevel(readToken, repo()), Level.NONE, 'a token never adds to what the user has');
  });
});

describe('authorize for mirror keys', () => {
  const mirror: Principal = { kind: 'mirror', mirrorId: 'ABCD-0000-0000-0000' };

  it('lets a mirror read only the projects it carries, and never write', () => {
    assert.equal(codeOf(() => authorize(mirror, repo({ mirrorCarries: true }), 'read')), undefined);
    assert.equal(codeOf(() => authorize(mirror, repo({ mirrorCarries: true }), 'write')), 'FORBIDDEN');
    assert.equal(codeOf(() => authorize(mirror, repo({ mirrorCarries: false }), 'read')), 'REPOSITORY_NOT_FOUND');
    assert.equal(codeOf(() => authorize(mirror, repo({ isPublic: true }), 'read')), 'REPOSITORY_NOT_FOUND', 'public does not extend a mirror beyond its selection');
    assert.equal(codeOf(() => authorize(mirror, { kind: 'system' }, 'admin')), 'FORBIDDEN');
  });
});
