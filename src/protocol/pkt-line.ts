// Git's pkt-line framing: a 4-hex-digit length (including itself) and the payload; "0000" is a flush.
// Git itself parses what clients send; we frame what the server says (preambles and errors) and check only the
// framing of request bodies, so that a malformed or truncated request is the client's error (400) rather than a
// git failure (500).
import { Transform, type TransformCallback } from 'node:stream';

export const FLUSH_PKT = Buffer.from('0000');
export const MAX_PKT_PAYLOAD = 65516;

export function pktLine(payload: string | Buffer): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  if (data.length > MAX_PKT_PAYLOAD) throw new RangeError(`pkt-line payload of ${data.length} bytes exceeds ${MAX_PKT_PAYLOAD}`);
  return Buffer.concat([Buffer.from((data.length + 4).toString(16).padStart(4, '0')), data]);
}

/** An "ERR" packet: git clients print it as "fatal: remote error: <message>". */
export function errPacket(message: string): Buffer {
  return pktLine(`ERR ${message}\n`);
}

/** Splits a buffer into pkt-lines; throws on malformed framing. Used to read our own framing back in tests. */
export function parsePktLines(buffer: Buffer): Array<Buffer | 'flush' | 'delim' | 'response-end'> {
  const out: Array<Buffer | 'flush' | 'delim' | 'response-end'> = [];
  let offset = 0;
  while (offset < buffer.length) {
    const header = buffer.subarray(offset, offset + 4).toString('ascii');
    if (!/^[0-9a-f]{4}$/.test(header)) throw new Error(`malformed pkt-line length ${JSON.stringify(header)} at offset ${offset}`);
    const length = parseInt(header, 16);
    if (length === 0) out.push('flush');
    else if (length === 1) out.push('delim');
    else if (length === 2) out.push('response-end');
    else if (length < 4 || offset + length > buffer.length) throw new Error(`malformed pkt-line length ${length} at offset ${offset}`);
    else out.push(buffer.subarray(offset + 4, offset + length));
    offset += length < 4 ? 4 : length;
  }
  return out;
}

/** Framing of a request body that is not valid pkt-line; the message is meant for the client. */
export class PktLineFramingError extends Error {
  override name = 'PktLineFramingError';
}

/**
 * Passes a request body through unchanged while checking its pkt-line framing, and fails (with a
 * PktLineFramingError) on a malformed length or when the body ends inside a packet. With `untilFlush`, only the
 * first section is checked, up to and including its flush: a push's command list, after which come push options
 * and the raw pack, which git checks itself.
 */
export class PktLineValidator extends Transform {
  private header = '';
  /** Payload bytes still expected for the current packet. */
  private remaining = 0;
  private offset = 0;
  private done = false;

  constructor(private readonly options: { untilFlush?: boolean } = {}) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const problem = this.scan(chunk);
    callback(problem ? new PktLineFramingError(problem) : null, problem ? undefined : chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.done || (this.header === '' && this.remaining === 0)) return callback();
    const got = this.header ? `${this.header.length} of its 4 length digits` : 'fewer bytes than its length announces';
    callback(new PktLineFramingError(`protocol error: the request body ends inside a pkt-line (at byte ${this.offset}: ${got}); send the complete request`));
  }

  private scan(chunk: Buffer): string | undefined {
    let i = 0;
    while (i < chunk.length && !this.done) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        this.offset += take;
        continue;
      }
      const need = 4 - this.header.length;
      this.header += chunk.subarray(i, i + need).toString('latin1');
      const took = Math.min(need, chunk.length - i);
      i += took;
      this.offset += took;
      if (this.header.length < 4) break;
      const header = this.header;
      this.header = '';
      if (!/^[0-9a-f]{4}$/.test(header)) return `protocol error: bad pkt-line length ${JSON.stringify(header)} at byte ${this.offset - 4}`;
      const length = parseInt(header, 16);
      if (length === 0) {
        if (this.options.untilFlush) this.done = true;
      } else if (length === 3 || length > MAX_PKT_PAYLOAD + 4) {
        return `protocol error: bad pkt-line length ${length} at byte ${this.offset - 4}`;
      } else if (length >= 4) {
        this.remaining = length - 4;
      }
      // 0001 (delim) and 0002 (response-end) have no payload.
    }
    return undefined;
  }
}
