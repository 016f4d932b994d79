// The pure parts of Bitbucket compatibility: the `latest` rewrite, operationIds, build numbers and the error
// body reader mirrors use.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { operationIdOf, OperationIds } from '../../src/api/openapi.js';
import { errorOfBody } from '../../src/errors.js';
import { rewriteLatest } from '../../src/server/http-app.js';
import { buildNumberOf } from '../../src/version.js';

describe('rewriteLatest', () => {
  it('maps /rest/<root>/latest onto 1.0 and keeps the rest of the URL', () => {
    assert.equal(rewriteLatest('/rest/api/latest/projects'), '/rest/api/1.0/projects');
    assert.equal(rewriteLatest('/rest/api/latest/projects?start=25&limit=5'), '/rest/api/1.0/projects?start=25&limit=5');
    assert.equal(rewriteLatest('/rest/access-tokens/latest/users/alice'), '/rest/access-tokens/1.0/users/alice');
    assert.equal(rewriteLatest('/rest/branch-utils/latest/projects/P/repos/r/branches'), '/rest/branch-utils/1.0/projects/P/repos/r/branches');
    assert.equal(rewriteLatest('/rest/api/latest'), '/rest/api/1.0');
    assert.equal(rewriteLatest('/rest/api/latest?x=1'), '/rest/api/1.0?x=1');
  });

  it('leaves everything else alone', () => {
    for (const url of ['/rest/api/1.0/projects', '/rest/api/latestx/projects', '/rest/api/1.0/projects/latest', '/scm/latest/repo.git', '/rest/latest/projects', '/status', '/rest/api/openapi.json']) {
      assert.equal(rewriteLatest(url), url);
    }
  });
});

describe('operationIds', () => {
  it('are the method and the path in camel case, without "rest" and the version', () => {
    assert.equal(operationIdOf('GET', '/rest/api/1.0/projects'), 'getApiProjects');
    assert.equal(operationIdOf('DELETE', '/rest/api/1.0/projects/:projectKey/repos/:repositorySlug'), 'deleteApiProjectsByProjectKeyReposByRepositorySlug');
    assert.equal(operationIdOf('PUT', '/rest/access-tokens/1.0/users/{userSlug}'), 'putAccessTokensUsersByUserSlug');
    assert.equal(operationIdOf('GET', '/rest/api/1.0/application-properties'), 'getApiApplicationProperties');
    assert.equal(operationIdOf('GET', '/rest/api/openapi.json'), 'getApiOpenapiJson');
  });

  it('stay unique and stable when two routes would collide', () => {
    const ids = new OperationIds();
    assert.equal(ids.idFor('GET', '/rest/api/1.0/a-b'), 'getApiAB');
    assert.equal(ids.idFor('GET', '/rest/api/1.0/a_b'), 'getApiAB2');
    assert.equal(ids.idFor('GET', '/rest/api/1.0/a-b'), 'getApiAB');
    assert.equal(ids.idFor('GET', '/rest/api/1.0/a_b'), 'getApiAB2');
    assert.equal(ids.idFor('POST', '/rest/api/1.0/x', 'explicitName'), 'explicitName');
  });
});

describe('buildNumberOf', () => {
  it('counts versions as Bitbucket does', () => {
    assert.equal(buildNumberOf('7.21.0'), '7021000');
    assert.equal(buildNumberOf('0.1.0'), '1000');
    assert.equal(buildNumberOf('1.2.3-rc.1'), '1002003');
  });
});

describe('errorOfBody', () => {
  it("reads mirrorfarm's code, and exceptionName from a primary without code", () => {
    const body = { errors: [{ context: null, message: 'gone', exceptionName: 'com.atlassian.bitbucket.AuthorisationException', code: 'MIRROR_REMOVED' }] };
    assert.deepEqual(errorOfBody(body), { code: 'MIRROR_REMOVED', message: 'gone' });
    assert.deepEqual(errorOfBody({ errors: [{ message: 'old', exceptionName: 'MIRROR_REJECTED' }] }), { code: 'MIRROR_REJECTED', message: 'old' });
    assert.equal(errorOfBody({}), undefined);
    assert.equal(errorOfBody(undefined), undefined);
  });
});
