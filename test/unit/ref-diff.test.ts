import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffToEvents } from '../../src/events/ref-recorder.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const Z = '0'.repeat(40);

describe('ref snapshot diff', () => {
  it('yields exact ADD, UPDATE, DELETE and HEAD changes in ref order', () => {
    const before = new Map([
      ['HEAD', 'ref: refs/heads/main'],
      ['refs/heads/main', A],
      ['refs/heads/old', A],
      ['refs/tags/v1', A],
    ]);
    const after = new Map([
      ['HEAD', 'ref: refs/heads/dev'],
      ['refs/heads/main', B],
      ['refs/heads/dev', B],
      ['refs/tags/v1', A],
    ]);
    const events = diffToEvents(before, after, 1, 7, { actor: 'alice', via: 'http' });
    assert.deepEqual(
      events.map((e) => [e.type, e.data]),
      [
        ['ref.updated', { refId: 'refs/heads/dev', fromHash: Z, toHash: B, changeType: 'ADD', actor: 'alice', via: 'http' }],
        ['ref.updated', { refId: 'refs/heads/main', fromHash: A, toHash: B, changeType: 'UPDATE', actor: 'alice', via: 'http' }],
        ['ref.updated', { refId: 'refs/heads/old', fromHash: A, toHash: Z, changeType: 'DELETE', actor: 'alice', via: 'http' }],
        ['repository.head_changed', { from: 'refs/heads/main', to: 'refs/heads/dev', actor: 'alice', via: 'http' }],
      ],
    );
    assert.ok(events.every((e) => e.projectId === 1 && e.repositoryId === 7));
  });

  it('yields nothing when nothing changed', () => {
    const state = new Map([['refs/heads/main', A]]);
    assert.deepEqual(diffToEvents(state, new Map(state), 1, 1, {}), []);
  });
});
