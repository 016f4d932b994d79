// What a mirror reads of a push it passes on: the command list at the start of the client's request (which refs
// to which objects, and whether the client asked for side-band progress) and the primary's report-status at the
// end of the answer (which of them the primary accepted). Git itself checks everything else on the primary; this
// only reads, so that the mirror knows which refs it must see published before it lets the client go.
import { FLUSH_PKT, pktLine } from '../../protocol/pkt-line.js';

export interface PushCommand {
  oldOid: string;
  newOid: string;
  ref: string;
}

export interface PushRequestHead {
  commands: PushCommand[];
  sideBand: boolean;
}

const ZERO = /^0{40}$|^0{64}$/;

export function isDelete(command: PushCommand): boolean {
  return ZERO.test(command.newOid);
}

/** Reads pkt-lines from the start of `data` until the first flush; undefined while the flush has not arrived. */
function leadingPkts(data: Buffer): Buffer[] | undefined {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset + 4 <= data.length) {
    const length = parseInt(data.subarray(offset, offset + 4).toString('ascii'), 16);
    if (Number.isNaN(length)) return [];
    if (length === 0) return out;
    if (length < 4) return [];
    if (offset + length > data.length) return undefined;
    out.push(data.subarray(offset + 4, offset + length));
    offset += length;
  }
  return undefined;
}

/** Collects the start of a push request and parses its command list once the first flush has arrived. */
export class PushRequestReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private parsed: PushRequestHead | undefined;

  constructor(private readonly limit = 1024 * 1024) {}

  feed(chunk: Buffer): void {
    if (this.parsed || this.size > this.limit) return;
    this.chunks.push(chunk);
    this.size += chunk.length;
    const pkts = leadingPkts(Buffer.concat(this.chunks));
    if (pkts === undefined) return;
    const commands: PushCommand[] = [];
    let sideBand = false;
    for (const [i, pkt] of pkts.entries()) {
      let line = pkt.toString('utf8');
      if (i === 0) {
        const nul = line.indexOf('\0');
        if (nul >= 0) {
          sideBand = /(^| )side-band(-64k)?( |$)/.test(line.slice(nul + 1).trim());
          line = line.slice(0, nul);
        }
      }
      const m = /^([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (refs\/\S+)\n?$/.exec(line);
      if (m) commands.push({ oldOid: m[1]!, newOid: m[2]!, ref: m[3]! });
    }
    this.parsed = { commands, sideBand };
    this.chunks = [];
  }

  result(): PushRequestHead | undefined {
    return this.parsed;
  }
}

/**
 * The refs the primary accepted ("ok <ref>") in a report-status, side-band framed or not. Anything unreadable
 * yields no refs, so the mirror does not wait for what it cannot confirm.
 */
export function acceptedRefs(response: Buffer, sideBand: boolean): Set<string> {
  let report = response;
  if (sideBand) {
    const parts: Buffer[] = [];
    let offset = 0;
    while (offset + 4 <= response.length) {
      const length = parseInt(response.subarray(offset, offset + 4).toString('ascii'), 16);
      if (Number.isNaN(length) || (length > 0 && length < 5)) break;
      if (length === 0) {
        offset += 4;
        continue;
      }
      if (response[offset + 4] === 1) parts.push(response.subarray(offset + 5, offset + length));
      offset += length;
    }
    report = Buffer.concat(parts);
  }
  const ok = new Set<string>();
  let offset = 0;
  while (offset + 4 <= report.length) {
    const length = parseInt(report.subarray(offset, offset + 4).toString('ascii'), 16);
    if (Number.isNaN(length) || (length > 0 && length < 4)) break;
    if (length === 0) {
      offset += 4;
      continue;
    }
    const line = report.subarray(offset + 4, offset + length).toString('utf8').replace(/\n$/, '');
    if (line.startsWith('ok ')) ok.add(line.slice(3));
    offset += length;
  }
  return ok;
}

/** A progress message in side band 2 ("remote: ..." on the client), or nothing without side-band. */
export function progressMessage(text: string, sideBand: boolean): Buffer {
  if (!sideBand) return Buffer.alloc(0);
  return pktLine(Buffer.concat([Buffer.from([2]), Buffer.from(`${text}\n`)]));
}

export { FLUSH_PKT };
