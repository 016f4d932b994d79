// Reads one line from the start of an SSH channel, leaving everything after it for whoever reads next (the
// `mirrorfarm-push` assertion comes before git's own protocol).
import type { Readable } from 'node:stream';
import { Errors } from '../../errors.js';

export function readFirstLine(input: Readable, maxBytes = 8192, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err?: Error, line?: string, rest?: Buffer) => {
      clearTimeout(timer);
      input.off('data', onData);
      input.off('end', onEnd);
      input.pause();
      if (rest?.length) input.unshift(rest);
      if (err) reject(err);
      else resolve(line!);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      const all = Buffer.concat(chunks);
      const newline = all.indexOf(0x0a);
      if (newline >= 0) return done(undefined, all.subarray(0, newline).toString('utf8'), all.subarray(newline + 1));
      if (size > maxBytes) done(Errors.invalid(`The first line is longer than ${maxBytes} bytes.`));
    };
    const onEnd = () => done(Errors.invalid('The input ended before its first line.'));
    const timer = setTimeout(() => done(Errors.invalid('No first line within the time allowed.')), timeoutMs);
    input.on('data', onData);
    input.once('end', onEnd);
  });
}
