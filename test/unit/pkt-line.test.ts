import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errPacket, FLUSH_PKT, parsePktLines, pktLine } from '../../src/protocol/pkt-line.js';

describe('pkt-line', () => {
  it('frames payloads with a 4-hex-digit length that includes itself', () => {
    assert.equal(pktLine('# service=git-upload-pack\n').toString(), '001e# service=git-upload-pack\n');
    assert.equal(FLUSH_PKT.toString(), '0000');
    assert.equal(errPacket('no').toString(), '000bERR no\n');
  });

  it('refuses payloads over the protocol maximum', () => {
    assert.throws(() => pktLine(Buffer.alloc(65517)), RangeError);
    assert.equal(pktLine(Buffer.alloc(65516)).subarray(0, 4).toString(), 'fff0');
  });

  it('parses flush, delim and data packets and rejects malformed lengths', () => {
    const parsed = parsePktLines(Buffer.from('0008abcd00000001'));
    assert.deepEqual(parsed.map((p) => (typeof p === 'string' ? p : p.toString())), ['abcd', 'flush', 'delim']);
    assert.throws(() => parsePktLines(Buffer.from('zzzz')), /malformed pkt-line length/);
    assert.throws(() => parsePktLines(Buffer.from('0010abc')), /malformed pkt-line length 16/);
    assert.throws(() => parsePktLines(Buffer.from('0003')), /malformed pkt-line length 3/);
  });
});
