/**
 * Pairing by an integer key without a join (issue #21, speed): both sides
 * stream their rows in key order (binary COPY, `ORDER BY` the key, which the
 * key's own index serves) into the runner, which walks the two streams side
 * by side, as a merge join does. Nothing is written to a temporary table for
 * the rows that are the same; only the keys that differ cross back into the
 * recovered database. Used when the key is one smallint, integer or bigint
 * column on both sides, whose order the runner can follow exactly.
 */
import type { Readable } from 'node:stream';

/** Key types the runner can order exactly as PostgreSQL does. */
export const MERGE_KEY_TYPES: readonly string[] = ['smallint', 'integer', 'bigint'];

/** A COPY (FORMAT binary) stream of (integer key, bigint hash or NULL) rows, decoded in batches as they arrive. */
export class KeyHashRows {
  private readonly it: AsyncIterator<Buffer>;
  private buf: Buffer = Buffer.alloc(0);
  private headerRead = false;
  private done = false;
  /** The current batch: key as (high 32 bits signed, low 32 bits unsigned), hash the same, or NaN for NULL. */
  keyHi: number[] = [];
  keyLo: number[] = [];
  hashHi: number[] = [];
  hashLo: number[] = [];
  at = 0;

  constructor(stream: Readable, private readonly withHash: boolean) {
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  /** True when a row is at `at`; reads the next batch when the current one is used up. */
  async ready(): Promise<boolean> {
    while (this.at >= this.keyHi.length) {
      if (this.done) return false;
      const next = await this.it.next();
      if (next.done) {
        this.done = true;
        if (this.buf.length > 0) throw new Error(`COPY stream ended inside a row (${this.buf.length} byte(s) left)`);
        this.keyHi = [];
        return false;
      }
      this.buf = this.buf.length > 0 ? Buffer.concat([this.buf, next.value]) : next.value;
      this.decode();
    }
    return true;
  }

  private decode(): void {
    const b = this.buf;
    let pos = 0;
    if (!this.headerRead) {
      if (b.length < 19) return;
      if (b.toString('latin1', 0, 11) !== 'PGCOPY\n\xff\r\n\0') throw new Error('not a binary COPY stream');
      pos = 19 + b.readInt32BE(15);
      this.headerRead = true;
    }
    this.keyHi = [];
    this.keyLo = [];
    this.hashHi = [];
    this.hashLo = [];
    this.at = 0;
    for (;;) {
      if (b.length - pos < 2) break;
      const fields = b.readInt16BE(pos);
      if (fields === -1) {
        pos += 2;
        continue;
      }
      // A whole row: field count, key (length + 2, 4 or 8 bytes), hash (length + 8 bytes, or -1 for NULL).
      const keyLen = b.length - pos >= 6 ? b.readInt32BE(pos + 2) : -2;
      if (keyLen === -2 || b.length - pos < 6 + keyLen + (this.withHash ? 4 : 0)) break;
      let end = pos + 6 + keyLen;
      let hashLen = -1;
      if (this.withHash) {
        hashLen = b.readInt32BE(end);
        if (b.length - end < 4 + Math.max(0, hashLen)) break;
      }
      const k = pos + 6;
      if (keyLen === 8) {
        this.keyHi.push(b.readInt32BE(k));
        this.keyLo.push(b.readUInt32BE(k + 4));
      } else if (keyLen === 4 || keyLen === 2) {
        const v = keyLen === 4 ? b.readInt32BE(k) : b.readInt16BE(k);
        this.keyHi.push(v < 0 ? -1 : 0);
        this.keyLo.push(v < 0 ? v + 4294967296 : v);
      } else {
        throw new Error(`unexpected key of ${keyLen} byte(s) in the COPY stream`);
      }
      if (this.withHash) {
        if (hashLen === 8) {
          this.hashHi.push(b.readInt32BE(end + 4));
          this.hashLo.push(b.readUInt32BE(end + 8));
        } else {
          this.hashHi.push(NaN);
          this.hashLo.push(NaN);
        }
        end += 4 + Math.max(0, hashLen);
      }
      if (fields !== (this.withHash ? 2 : 1)) throw new Error(`unexpected ${fields} field(s) in the COPY stream`);
      pos = end;
    }
    this.buf = b.subarray(pos);
  }
}

/** The key as SQL text. */
export function keyText(hi: number, lo: number): string {
  return (BigInt(hi) * 4294967296n + BigInt(lo)).toString();
}

/** What the merge found: keys only before (inserted after T), only at T (deleted after T), on both sides with different hashes. */
export interface MergeResult {
  /** Tab-separated COPY text lines: key, hash (or \N), kind (`inserted`, `deleted`, `changed`, or `paired`: compare in SQL). */
  readonly lines: string[];
  readonly rowsBefore: number;
  /** Rows before the recovery that carried a hash (were compared by content). */
  readonly hashed: number;
  /** Keys only before the recovery that carried no hash: the filter left them out, yet they are not at T. */
  readonly unhashedOnlyBefore: number;
}

/**
 * Walks `before` (key, hash or NULL) and `atT` (key, with its hash when `atTHashes`) in key order. With hashes on
 * both sides, a key on both sides with different hashes is `changed`; without the T side's hashes, a hashed key on
 * both sides is `paired` (its row at T is hashed afterwards, in SQL). A key on both sides without a hash before the
 * recovery is the same row (the commit-time filter left it out).
 */
export async function mergeByKey(before: KeyHashRows, atT: KeyHashRows, atTHashes: boolean): Promise<MergeResult> {
  const lines: string[] = [];
  let rowsBefore = 0;
  let hashed = 0;
  let unhashedOnlyBefore = 0;
  const hashOf = (r: KeyHashRows, i: number): string => (Number.isNaN(r.hashHi[i]) ? '\\N' : keyText(r.hashHi[i], r.hashLo[i]));
  // Each stream must come in strictly increasing key order; anything else would pair the wrong rows: stop.
  const prevB = [-Infinity, -Infinity];
  const prevT = [-Infinity, -Infinity];
  const ascending = (prev: number[], hi: number, lo: number): void => {
    if (hi < prev[0] || (hi === prev[0] && lo <= prev[1])) throw new Error('keys out of order in the comparison stream: the rows could not be paired');
    prev[0] = hi;
    prev[1] = lo;
  };
  for (;;) {
    // Await only when a batch is used up: most rows are taken synchronously.
    const b = before.at < before.keyHi.length || await before.ready();
    const t = atT.at < atT.keyHi.length || await atT.ready();
    if (!b && !t) break;
    const bi = before.at;
    const ti = atT.at;
    let side: 'both' | 'before' | 'atT';
    if (b && t) {
      const bh = before.keyHi[bi];
      const th = atT.keyHi[ti];
      const bl = before.keyLo[bi];
      const tl = atT.keyLo[ti];
      side = bh === th && bl === tl ? 'both' : (bh < th || (bh === th && bl < tl) ? 'before' : 'atT');
    } else {
      side = b ? 'before' : 'atT';
    }
    if (side !== 'atT') {
      ascending(prevB, before.keyHi[bi], before.keyLo[bi]);
      rowsBefore++;
      if (!Number.isNaN(before.hashHi[bi])) hashed++;
    }
    if (side !== 'before') ascending(prevT, atT.keyHi[ti], atT.keyLo[ti]);
    if (side === 'both') {
      if (!Number.isNaN(before.hashHi[bi])) {
        if (!atTHashes) lines.push(`${keyText(before.keyHi[bi], before.keyLo[bi])}\t${hashOf(before, bi)}\tpaired`);
        else if (before.hashHi[bi] !== atT.hashHi[ti] || before.hashLo[bi] !== atT.hashLo[ti]) lines.push(`${keyText(before.keyHi[bi], before.keyLo[bi])}\t${hashOf(before, bi)}\tchanged`);
      }
      before.at++;
      atT.at++;
    } else if (side === 'before') {
      if (Number.isNaN(before.hashHi[bi])) unhashedOnlyBefore++;
      lines.push(`${keyText(before.keyHi[bi], before.keyLo[bi])}\t${hashOf(before, bi)}\tinserted`);
      before.at++;
    } else {
      lines.push(`${keyText(atT.keyHi[ti], atT.keyLo[ti])}\t\\N\tdeleted`);
      atT.at++;
    }
  }
  return { lines, rowsBefore, hashed, unhashedOnlyBefore };
}
