import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errPacket, FLUSH_PKT, parsePktLines, pktLine, PktLineValidator } from '../../src/protocol/pkt-line.js';

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

  it('checks the framing of a streamed request body, across chunk boundaries (truncated pkt-line: 400, not 500)', async () => {
    const check = async (chunks: string[], options?: { untilFlush?: boolean }) => {
      const out: Buffer[] = [];
      try {
        await pipeline(Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))), new PktLineValidator(options), async (source: AsyncIterable<Buffer>) => {
          for await (const chunk of source) out.push(chunk);
        });
        return Buffer.concat(out).toString('latin1');
      } catch (err) {
        return (err as Error).message;
      }
    };
    const body = '0014command=ls-refs\n00010009peel\n0000';
    assert.equal(await check([body]), body, 'passed through unchanged');
    assert.equal(await check(body.split('')), body, 'one byte at a time');
    assert.match(await check(['0014command=ls-refs\n00010009pe']), /protocol error: the request body ends inside a pkt-line \(at byte 30: fewer bytes/);
    assert.match(await check(['0014command=ls-refs\n00']), /ends inside a pkt-line \(at byte 22: 2 of its 4 length digits\)/);
    assert.match(await check(['0014command=ls-refs\n', 'zz']), /protocol error: bad pkt-line length "zz" at byte 20|ends inside/);
    assert.match(await check(['0003']), /bad pkt-line length 3 at byte 0/);
    assert.match(await check(['fff5']), /bad pkt-line length 65525/);
    const push = `0010refs/heads/x0000PACK${'\u0007'.repeat(10)}`;
    assert.equal(await check([push], { untilFlush: true }), push, 'a push: only the command list is framed, the pack is passed as is');
  });
});
