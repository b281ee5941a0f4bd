/**
 * Pairing by an integer key without a join (issue #21, speed): both sides
 * send their rows' keys and hashes into the runner, which sorts them by key
 * and walks the two sides side by side, as a merge join does. Nothing is
 * written to a temporary table for the rows that are the same; only the keys
 * that differ cross back into the recovered database. Used when the key is
 * one smallint, integer or bigint column on both sides, whose order the
 * runner can follow exactly.
 *
 * What made it cheap (`npx projen bench --changes`):
 * - the rows come packed: a query returns one `bytea` of fixed-width rows
 *   (the key as 8 bytes, then the row's 64-bit hash, or a flag byte and the
 *   hash when it may be absent), so the runner reads one protocol message per
 *   key range instead of one per row;
 * - the server reads each range in the order the rows lie in the table
 *   (a sequential or bitmap scan), not through the key's index (an index
 *   scan per row cost as much as hashing the row), and the runner sorts the
 *   keys itself (a radix sort, linear in the rows);
 * - the key ranges come from the key's histogram (pg_stats) at T, so each
 *   holds about RANGE_ROWS rows whatever the keys' spread: memory is bounded
 *   by the range, not by the table.
 */

/** Key types the runner can order exactly as PostgreSQL does. */
export const MERGE_KEY_TYPES: readonly string[] = ['smallint', 'integer', 'bigint'];

/** Rows per key range, about: 16 MiB packed with hashes, per side. */
export const RANGE_ROWS = 1_048_576;

/**
 * What each packed row holds: the key alone (8 bytes), the key and its hash (16), or the key, a flag byte (1 when a
 * hash follows) and the hash, zeros without one (17).
 */
export type PackedLayout = 'key' | 'key-hash' | 'key-maybe-hash';

const WIDTH: Readonly<Record<PackedLayout, number>> = { 'key': 8, 'key-hash': 16, 'key-maybe-hash': 17 };

/** The SQL expression (a `bytea`) of one packed row, from the key and hash expressions (`hash` unused for `key`). */
export function packedRow(layout: PackedLayout, key: string, hash: string): string {
  const k = `int8send((${key})::bigint)`;
  if (layout === 'key') return k;
  if (layout === 'key-hash') return `${k} || int8send(${hash})`;
  return `${k} || coalesce('\\x01'::bytea || int8send(${hash}), '\\x000000000000000000'::bytea)`;
}

/** One chunk decoded: keys and hashes as (high 32 bits signed, low 32 bits unsigned), in strictly increasing key order. */
export interface KeyHashBatch {
  readonly n: number;
  readonly keyHi: Int32Array;
  readonly keyLo: Uint32Array;
  readonly hashHi: Int32Array;
  readonly hashLo: Uint32Array;
  /** 1 where the row carries a hash. */
  readonly hashed: Uint8Array;
}

const EMPTY: KeyHashBatch = {
  n: 0, keyHi: new Int32Array(0), keyLo: new Uint32Array(0), hashHi: new Int32Array(0), hashLo: new Uint32Array(0), hashed: new Uint8Array(0),
};

/**
 * Typed arrays kept from one chunk to the next of a side, each grown to the largest chunk: a record allocates them
 * once per side instead of a dozen per key range (garbage collection was about a third of the runner's main-thread
 * time in a cold process's profile). What they hold is valid until the next chunk is decoded with them.
 */
export class DecodeScratch {
  private readonly arrays = new Map<string, Int32Array | Uint32Array | Uint8Array>();

  i32(name: string, n: number): Int32Array {
    return this.take(name, n, (m) => new Int32Array(m)) as Int32Array;
  }

  u32(name: string, n: number): Uint32Array {
    return this.take(name, n, (m) => new Uint32Array(m)) as Uint32Array;
  }

  u8(name: string, n: number): Uint8Array {
    return this.take(name, n, (m) => new Uint8Array(m)) as Uint8Array;
  }

  /** The first `n` elements of array `name`, not cleared. */
  private take(name: string, n: number, make: (m: number) => Int32Array | Uint32Array | Uint8Array): Int32Array | Uint32Array | Uint8Array {
    let a = this.arrays.get(name);
    if (!a || a.length < n) {
      a = make(Math.max(n, Math.ceil((a?.length ?? 0) * 1.25)));
      this.arrays.set(name, a);
    }
    return a.subarray(0, n);
  }
}

/**
 * Decodes packed rows and sorts them by key (the server sends a range in the order the rows lie in the table). A key
 * seen twice stops the comparison: the rows could not be paired. The batch lives in `scratch`: valid until its next
 * use. Each loop is a function of its own: in one function, V8 optimized the first loop on the stack and threw that
 * code away at the next loop it had no feedback for, again at every chunk (about 100 times in a 20-table record).
 */
export function decodePacked(bytes: Buffer, layout: PackedLayout, scratch: DecodeScratch = new DecodeScratch()): KeyHashBatch {
  const width = WIDTH[layout];
  if (bytes.length % width !== 0) throw new Error(`a packed chunk of ${bytes.length} byte(s) is not whole rows of ${width}`);
  const n = bytes.length / width;
  const b: KeyHashBatch = {
    n, keyHi: scratch.i32('keyHi', n), keyLo: scratch.u32('keyLo', n), hashHi: scratch.i32('hashHi', n), hashLo: scratch.u32('hashLo', n), hashed: scratch.u8('hashed', n),
  };
  if (layout === 'key-maybe-hash') {
    decodeMaybeHashed(bytes, b, width);
  } else {
    // Whole 32-bit words: byte-swapped in one native call on an aligned copy, then read as integers.
    const words = scratch.i32('words', bytes.length / 4);
    const swapped = Buffer.from(words.buffer, words.byteOffset, bytes.length);
    bytes.copy(swapped);
    swapped.swap32();
    copyWords(words, width / 4, 0, n, b.keyHi, b.keyLo);
    if (layout === 'key-hash') {
      b.hashed.fill(1);
      copyWords(words, width / 4, 2, n, b.hashHi, b.hashLo);
    } else {
      b.hashed.fill(0);
    }
  }
  if (firstOutOfOrder(b) === n) return b;
  const out = sortBatch(b, scratch);
  const twice = firstOutOfOrder(out);
  if (twice < out.n) throw new Error(`key ${keyText(out.keyHi[twice], out.keyLo[twice])} twice in the comparison stream: the rows could not be paired`);
  return out;
}

function decodeMaybeHashed(bytes: Buffer, b: KeyHashBatch, width: number): void {
  for (let i = 0, p = 0; i < b.n; i++, p += width) {
    b.keyHi[i] = bytes.readInt32BE(p);
    b.keyLo[i] = bytes.readUInt32BE(p + 4);
    if (bytes[p + 8] === 1) {
      b.hashed[i] = 1;
      b.hashHi[i] = bytes.readInt32BE(p + 9);
      b.hashLo[i] = bytes.readUInt32BE(p + 13);
    } else {
      b.hashed[i] = 0;
    }
  }
}

/** Words `at` and `at + 1` of each of `n` rows of `stride` words, into `hi` and `lo`. */
function copyWords(words: Int32Array, stride: number, at: number, n: number, hi: Int32Array, lo: Uint32Array): void {
  for (let i = 0, w = at; i < n; i++, w += stride) {
    hi[i] = words[w];
    lo[i] = words[w + 1];
  }
}

/** The first row whose key is not above the one before it (`b.n` when the keys strictly increase). */
function firstOutOfOrder(b: KeyHashBatch): number {
  const hi = b.keyHi;
  const lo = b.keyLo;
  for (let i = 1; i < b.n; i++) {
    if (hi[i - 1] > hi[i] || (hi[i - 1] === hi[i] && lo[i - 1] >= lo[i])) return i;
  }
  return b.n;
}

/**
 * The rows in key order. Tables are mostly in key order already (rows appended as their keys grow; updated rows
 * move to the end, new ones fill freed space): the rows that keep the order form one run, the others are sorted
 * apart and merged in. When more than an eighth break the order, all of them are sorted (radixOrder).
 */
function sortBatch(b: KeyHashBatch, scratch: DecodeScratch): KeyHashBatch {
  const n = b.n;
  const hi = b.keyHi;
  const lo = b.keyLo;
  const run = scratch.u32('run', n);
  const rest = scratch.u32('rest', n);
  let runLength = 0;
  let restLength = 0;
  let lastHi = 0;
  let lastLo = 0;
  const above = (i: number, h: number, l: number): boolean => hi[i] > h || (hi[i] === h && lo[i] > l);
  for (let i = 0; i < n; i++) {
    const h = hi[i];
    const l = lo[i];
    // In the run when above its last row, unless the next row is too and lies below this one: then this one is the
    // row out of place (a row inserted into free space among older ones), not the next.
    const fits = runLength === 0 || above(i, lastHi, lastLo);
    const outOfPlace = fits && i + 1 < n && (runLength === 0 || above(i + 1, lastHi, lastLo)) && !above(i + 1, h, l);
    if (fits && !outOfPlace) {
      run[runLength++] = i;
      lastHi = h;
      lastLo = l;
    } else {
      rest[restLength++] = i;
    }
  }
  let order: Uint32Array;
  if (restLength > n / 8) {
    order = radixOrder(hi, lo, identity(scratch.u32('all', n)), scratch);
  } else {
    const others = radixOrder(hi, lo, rest.subarray(0, restLength), scratch);
    order = scratch.u32('order', n);
    for (let i = 0, r = 0, o = 0; i < n; i++) {
      if (o >= others.length) {
        order[i] = run[r++];
      } else if (r >= runLength) {
        order[i] = others[o++];
      } else {
        const x = run[r];
        const y = others[o];
        order[i] = hi[x] < hi[y] || (hi[x] === hi[y] && lo[x] < lo[y]) ? run[r++] : others[o++];
      }
    }
  }
  return {
    n,
    keyHi: pickI32(b.keyHi, order, scratch.i32('sortedKeyHi', n)),
    keyLo: pickU32(b.keyLo, order, scratch.u32('sortedKeyLo', n)),
    hashHi: pickI32(b.hashHi, order, scratch.i32('sortedHashHi', n)),
    hashLo: pickU32(b.hashLo, order, scratch.u32('sortedHashLo', n)),
    hashed: pickU8(b.hashed, order, scratch.u8('sortedHashed', n)),
  };
}

// One function per array type, so that each stays monomorphic.
function pickI32(a: Int32Array, order: Uint32Array, out: Int32Array): Int32Array {
  for (let i = 0; i < out.length; i++) out[i] = a[order[i]];
  return out;
}

function pickU32(a: Uint32Array, order: Uint32Array, out: Uint32Array): Uint32Array {
  for (let i = 0; i < out.length; i++) out[i] = a[order[i]];
  return out;
}

function pickU8(a: Uint8Array, order: Uint32Array, out: Uint8Array): Uint8Array {
  for (let i = 0; i < out.length; i++) out[i] = a[order[i]];
  return out;
}

/** 0, 1, 2, ... in `a`. */
function identity(a: Uint32Array): Uint32Array {
  for (let i = 0; i < a.length; i++) a[i] = i;
  return a;
}

/**
 * `positions` in key order: a least-significant-digit radix sort on the keys copied out, 16 bits at a time (the sign
 * bit flipped), skipping the digits every key shares (the high half, for keys under 2^32); a few keys are just sorted.
 */
/* eslint-disable no-bitwise -- the digits of a radix sort are bit fields */
function radixOrder(keyHi: Int32Array, keyLo: Uint32Array, positions: Uint32Array, scratch: DecodeScratch): Uint32Array {
  const m = positions.length;
  const lo = scratch.u32('radixLo', m);
  const hi = scratch.u32('radixHi', m);
  for (let i = 0; i < m; i++) {
    lo[i] = keyLo[positions[i]];
    hi[i] = (keyHi[positions[i]] ^ 0x80000000) >>> 0;
  }
  let order: Uint32Array = identity(scratch.u32('radixOrder', m));
  if (m < 1_024) {
    order.sort((x, y) => (hi[x] - hi[y]) || (lo[x] - lo[y]));
  } else {
    let spare: Uint32Array = scratch.u32('radixSpare', m);
    const counts = scratch.u32('radixCounts', 65_537);
    for (const [word, shift] of [[lo, 0], [lo, 16], [hi, 0], [hi, 16]] as Array<[Uint32Array, number]>) {
      counts.fill(0);
      for (let i = 0; i < m; i++) counts[((word[i] >>> shift) & 0xffff) + 1]++;
      // Every key has the same digit here: nothing to reorder.
      if (counts[((word[0] >>> shift) & 0xffff) + 1] === m) continue;
      for (let d = 1; d <= 65_536; d++) counts[d] += counts[d - 1];
      for (let i = 0; i < m; i++) {
        const at = order[i];
        spare[counts[(word[at] >>> shift) & 0xffff]++] = at;
      }
      [order, spare] = [spare, order];
    }
  }
  const out = scratch.u32('radixOut', m);
  for (let i = 0; i < m; i++) out[i] = positions[order[i]];
  return out;
}
/* eslint-enable no-bitwise */

/** The key as SQL text. */
export function keyText(hi: number, lo: number): string {
  return (BigInt(hi) * 4294967296n + BigInt(lo)).toString();
}

/**
 * Reads one side range after range: `fetch(i)` returns the packed rows of key range `i` (of `ranges`, in increasing
 * key order), or null when it has none. The next range is asked for as soon as the current one arrives, so the
 * server reads it while the runner pairs this one.
 */
export class KeyHashChunks {
  batch: KeyHashBatch = EMPTY;
  at = 0;
  private next = 0;
  private pending: Promise<Buffer | null> | undefined;
  private readonly scratch = new DecodeScratch();

  /** Asks for the first range at once: both sides of a table are read side by side. */
  constructor(
    private readonly fetch: (range: number) => Promise<Buffer | null>,
    private readonly ranges: number,
    private readonly layout: PackedLayout,
  ) {
    if (ranges > 0) this.ask(0);
  }

  private ask(range: number): void {
    this.pending = this.fetch(range);
    // Read later; a failure surfaces there, not as an unhandled rejection meanwhile.
    this.pending.catch(() => undefined);
  }

  /** True when a row is at `at`; takes the next range when the current one is used up. */
  async ready(): Promise<boolean> {
    while (this.at >= this.batch.n) {
      if (this.next >= this.ranges) return false;
      const bytes = await this.pending!;
      this.pending = undefined;
      this.next++;
      if (this.next < this.ranges) this.ask(this.next);
      // The last key before the next chunk is decoded: the batch lives in the scratch arrays, which that overwrites.
      const prev = this.batch;
      const [lastHi, lastLo] = [prev.keyHi[prev.n - 1], prev.keyLo[prev.n - 1]];
      const batch = bytes ? decodePacked(bytes, this.layout, this.scratch) : EMPTY;
      if (batch.n > 0 && prev.n > 0 && (batch.keyHi[0] < lastHi || (batch.keyHi[0] === lastHi && batch.keyLo[0] <= lastLo))) {
        throw new Error('keys out of order in the comparison stream: the rows could not be paired');
      }
      if (batch.n > 0) this.batch = batch;
      this.at = batch.n > 0 ? 0 : this.batch.n;
    }
    return true;
  }
}

/** How a table's keys spread, on both sides: what its key ranges are cut from. */
export interface KeySpread {
  /** Estimated rows at T and before the recovery. */
  readonly rowsAtT: number;
  readonly rowsBefore: number;
  /** The smallest and largest key on each side; null for a side without rows. */
  readonly atT: { readonly min: bigint; readonly max: bigint } | null;
  readonly before: { readonly min: bigint; readonly max: bigint } | null;
  /** The key's histogram bounds at T (pg_stats), when it has one. */
  readonly histogram: readonly bigint[];
}

/**
 * Where to cut a table's keys so that each range holds about `rangeRows` rows, on either side: none up to
 * `rangeRows` rows. Within the keys at T, at every `step`-th of the key's histogram bounds (even steps without
 * one); keys beyond those at T exist only before the recovery (rows inserted after T, a bulk load among them) and
 * are cut evenly by their share of the pre-recovery rows, so that no range is left holding them all.
 */
export function keyCuts(s: KeySpread, rangeRows: number = RANGE_ROWS): bigint[] {
  if (Math.max(s.rowsAtT, s.rowsBefore) <= rangeRows) return [];
  const cuts: bigint[] = [];
  const pieces = (rows: number): number => Math.ceil(rows / rangeRows);
  const even = (lo: bigint, hi: bigint, n: number): void => {
    const width = (hi - lo + 1n) / BigInt(Math.max(1, n));
    if (width <= 0n) return;
    for (let i = 1n; i < BigInt(n); i++) cuts.push(lo + width * i);
  };
  if (s.atT) {
    const inner = s.histogram.slice(1, -1);
    if (inner.length > 0) {
      const step = Math.max(1, Math.round(inner.length / pieces(s.rowsAtT)));
      cuts.push(...inner.filter((_, i) => (i + 1) % step === 0));
    } else {
      even(s.atT.min, s.atT.max, pieces(s.rowsAtT));
    }
  }
  if (s.before) {
    const span = Number(s.before.max - s.before.min) + 1;
    const share = (lo: bigint, hi: bigint): number => (s.rowsBefore * (Number(hi - lo) + 1)) / span;
    if (!s.atT) {
      even(s.before.min, s.before.max, pieces(s.rowsBefore));
    } else {
      if (s.before.max > s.atT.max) {
        cuts.push(s.atT.max + 1n);
        even(s.atT.max + 1n, s.before.max, pieces(share(s.atT.max + 1n, s.before.max)));
      }
      if (s.before.min < s.atT.min) {
        cuts.push(s.atT.min);
        even(s.before.min, s.atT.min - 1n, pieces(share(s.before.min, s.atT.min - 1n)));
      }
    }
  }
  return [...new Set(cuts)].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
}

/** The key ranges between `cuts` (ascending), as SQL conditions on `key`; no cut, one range without a condition. */
export function keyRanges(key: string, cuts: readonly bigint[]): string[] {
  if (cuts.length === 0) return [''];
  return [`${key} < ${cuts[0]}`, ...cuts.slice(1).map((c, i) => `${key} >= ${cuts[i]} AND ${key} < ${c}`), `${key} >= ${cuts[cuts.length - 1]}`];
}

/** A key the merge found on one side only, or on both with different hashes. */
export interface DifferingKey {
  /** The key as SQL text. */
  readonly key: string;
  /** Its hash before the recovery, when it has one. */
  readonly hash: string | null;
  /** `inserted` (only before), `deleted` (only at T), `changed`, or `paired`: hashed only before, compared afterwards. */
  readonly kind: 'inserted' | 'deleted' | 'changed' | 'paired';
}

/** What the merge found: keys only before (inserted after T), only at T (deleted after T), on both sides with different hashes. */
export interface MergeResult {
  /** In key order. */
  readonly differ: DifferingKey[];
  readonly rowsBefore: number;
  /** Rows before the recovery that carried a hash (were compared by content). */
  readonly hashed: number;
  /** Keys only before the recovery that carried no hash: the filter left them out, yet they are not at T. */
  readonly unhashedOnlyBefore: number;
  /** More keys differed than `limit`: the merge stopped, and `differ` is empty. */
  readonly tooMany?: boolean;
}

/**
 * Walks `before` (key, hash or none) and `atT` (key, with its hash when `atTHashes`) in key order. With hashes on
 * both sides, a key on both sides with different hashes is `changed`; without the T side's hashes, a hashed key on
 * both sides is `paired` (its row at T is hashed afterwards, in SQL). A key on both sides without a hash before the
 * recovery is the same row (the commit-time filter left it out).
 */
export async function mergeByKey(before: KeyHashChunks, atT: KeyHashChunks, atTHashes: boolean, limit: number = Infinity): Promise<MergeResult> {
  const differ: DifferingKey[] = [];
  let rowsBefore = 0;
  let hashed = 0;
  let unhashedOnlyBefore = 0;
  const hashOf = (r: KeyHashBatch, i: number): string | null => (r.hashed[i] ? keyText(r.hashHi[i], r.hashLo[i]) : null);
  for (;;) {
    // More differing keys than the runner keeps: stop; the caller pairs the table on the server instead.
    if (differ.length > limit) return { differ: [], rowsBefore, hashed, unhashedOnlyBefore, tooMany: true };
    // Await only when a chunk is used up: the rows of a chunk are taken synchronously.
    const b = before.at < before.batch.n || await before.ready();
    const t = atT.at < atT.batch.n || await atT.ready();
    if (!b && !t) break;
    const B = before.batch;
    const T = atT.batch;
    const bi = before.at;
    const ti = atT.at;
    let side: 'both' | 'before' | 'atT';
    if (b && t) {
      const bh = B.keyHi[bi];
      const th = T.keyHi[ti];
      const bl = B.keyLo[bi];
      const tl = T.keyLo[ti];
      side = bh === th && bl === tl ? 'both' : (bh < th || (bh === th && bl < tl) ? 'before' : 'atT');
    } else {
      side = b ? 'before' : 'atT';
    }
    if (side !== 'atT') {
      rowsBefore++;
      if (B.hashed[bi]) hashed++;
    }
    if (side === 'both') {
      if (B.hashed[bi]) {
        if (!atTHashes) differ.push({ key: keyText(B.keyHi[bi], B.keyLo[bi]), hash: hashOf(B, bi), kind: 'paired' });
        else if (B.hashHi[bi] !== T.hashHi[ti] || B.hashLo[bi] !== T.hashLo[ti]) differ.push({ key: keyText(B.keyHi[bi], B.keyLo[bi]), hash: hashOf(B, bi), kind: 'changed' });
      }
      before.at++;
      atT.at++;
    } else if (side === 'before') {
      if (!B.hashed[bi]) unhashedOnlyBefore++;
      differ.push({ key: keyText(B.keyHi[bi], B.keyLo[bi]), hash: hashOf(B, bi), kind: 'inserted' });
      before.at++;
    } else {
      differ.push({ key: keyText(T.keyHi[ti], T.keyLo[ti]), hash: null, kind: 'deleted' });
      atT.at++;
    }
  }
  return { differ, rowsBefore, hashed, unhashedOnlyBefore };
}
