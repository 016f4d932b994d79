// Git's pkt-line framing: a 4-hex-digit length (including itself) and the payload; "0000" is a flush.
// Git itself parses everything clients send; we only frame what the server says (preambles and errors).

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
