/**
 * CHANGES and AFTER on their own (issue #21): the runner's variables, the
 * Lambda's `changes` and `after` fields and their StartBuild overrides, and
 * the replay script's shape for a table with known columns.
 */
import type { Client } from 'pg';
import { request } from './recovery-harness';
import { changesSkipped } from '../buildspec/runner/changes';
import { readChangesModeRequest } from '../buildspec/runner/changes-mode';
import { PlanError } from '../buildspec/runner/plan';
import { AFTER_SETTING, replayScript, replaySettings, rowVersionCheck } from '../buildspec/runner/postgres/changes';
import { type KeyHashBatch, KeyHashChunks, type MergeResult, type PackedLayout, RANGE_ROWS, decodePacked, keyCuts, keyRanges, mergeByKey } from '../buildspec/runner/postgres/changes-merge';
import { RequestRejectedError, parseRecoveryRequest } from '../lambda/recovery-request';
import { environmentOverrides } from '../lambda/start-recovery';
import { START_ENV } from '../src/contract';

const startRequest = (env: Record<string, string>): ReturnType<typeof request> => request({ [START_ENV.RESTORE_TIME]: 'latest', ...env });

describe('CHANGES and AFTER in the build', () => {
  test('defaults: recorded, no time bound', () => {
    expect(startRequest({}).changes).toBe(true);
    expect(startRequest({}).after).toBeUndefined();
  });

  test('CHANGES=off skips; AFTER is read as an instant', () => {
    expect(startRequest({ [START_ENV.CHANGES]: 'off' }).changes).toBe(false);
    expect(startRequest({ [START_ENV.AFTER]: '2026-11-24T09:42:00+01:00' }).after).toEqual(new Date('2026-11-24T08:42:00Z'));
  });

  test.each([
    [START_ENV.CHANGES, 'no', 'CHANGES: "no" is not accepted; accepted: on | off (default on'],
    [START_ENV.AFTER, '2026-11-24 09:42', 'AFTER: "2026-11-24…" (16 characters) is not a time; accepted: an ISO-8601 time with its zone'],
    [START_ENV.AFTER, '2026-13-45T09:42:00Z', 'AFTER: "2026-13-45T09:42…" (20 characters) is not a time'],
  ])('%s=%j is refused before anything is created, naming the field, the value and what is accepted', (name, value, message) => {
    expect(() => startRequest({ [name]: value })).toThrow(PlanError);
    expect(() => startRequest({ [name]: value })).toThrow(message);
  });

  test('the summary says why there is no record', () => {
    const plan = (fields: Record<string, unknown>): never => ({ strategy: 'swap', changes: true, ...fields }) as never;
    expect(changesSkipped(plan({}))).toBeUndefined();
    expect(changesSkipped(plan({ changes: false }))).toContain('not recorded (CHANGES=off)');
    expect(changesSkipped(plan({ strategy: 'replace' }))).toContain('strategy replace keeps no pre-recovery copy');
    expect(changesSkipped(plan({ tables: [{ schema: 'a', table: 'b' }] }))).toBeUndefined();
  });
});

describe('the trigger Lambda', () => {
  const SOURCE = 'prod-db';
  const base = { restoreTime: 'latest', confirm: SOURCE };
  const env = (fields: Record<string, unknown>): Record<string, string> =>
    Object.fromEntries(environmentOverrides(parseRecoveryRequest({ ...base, ...fields }, SOURCE)).map((v) => [v.name, v.value!]));

  test('changes travels as CHANGES, after as AFTER; left out when not given (the build default applies)', () => {
    expect(env({ changes: 'off', after: '2026-11-24T09:42:00Z' })).toMatchObject({ [START_ENV.CHANGES]: 'off', [START_ENV.AFTER]: '2026-11-24T09:42:00Z' });
    expect(Object.keys(env({}))).not.toContain(START_ENV.CHANGES);
    expect(Object.keys(env({}))).not.toContain(START_ENV.AFTER);
  });

  test.each([
    [{ changes: false }, 'changes: a boolean is not accepted; accepted: on | off'],
    [{ after: 'yesterday' }, 'after: "yesterday" is not a time'],
  ])('refuses %j before anything is started', (fields, message) => {
    expect(() => parseRecoveryRequest({ ...base, ...fields }, SOURCE)).toThrow(RequestRejectedError);
    expect(() => parseRecoveryRequest({ ...base, ...fields }, SOURCE)).toThrow(message);
  });
});

describe('replayScript', () => {
  const replay = {
    live: '"app"."t"',
    kept: '"pitr_1_after"."app__t"',
    owner: 'app owner',
    key: ['id'],
    keyEq: [{ op: 'OPERATOR(public.=)' }],
    insertColumns: ['id', 'v'],
    updateColumns: ['v'],
    hashColumns: ['id', 'v', 'g'],
    overriding: false,
    triggers: [],
  };
  const table = { table: 'app.t', status: 'compared' as const, inserted: 1, changed: 2, deleted: 3, notes: [], replay };
  const ctx = { database: 'shop', keptAs: 'shop__before_pitr_1', schema: 'pitr_1_after', stamp: '1', commitTimes: true };

  test('settings first, one transaction, the time bound read from pitr.after; AFTER sets it', () => {
    const sql = replayScript(ctx, [table], []);
    expect(sql.split('\n').filter((l) => l.startsWith('SET '))).toEqual(replaySettings());
    expect(sql).toMatch(/BEGIN;[\s\S]*INSERT INTO "app"."t" \("id", "v"\)[\s\S]*UPDATE "app"."t" l SET "v" = a."v"[\s\S]*DELETE FROM "app"."t" l[\s\S]*COMMIT;$/);
    expect(sql).toContain('md5(ROW(l."id", l."v", l."g")::text) = a.pitr_row_at_t');
    // Keys are matched with their type's own equality, schema-qualified (an extension type's `=` may not be on the search_path).
    expect(sql).toContain('l."id" OPERATOR(public.=) a."id"');
    expect(sql).toContain(`current_setting('${AFTER_SETTING}', true)`);
    expect(sql).toContain('-- needs: INSERT, UPDATE, DELETE on "app"."t" (owner "app owner"');
    expect(replayScript({ ...ctx, after: new Date('2026-11-24T09:42:00Z') }, [table], [])).toContain(`SET ${AFTER_SETTING} = '2026-11-24T09:42:00.000Z';`);
    expect(replayScript({ ...ctx, commitTimes: false }, [table], [])).toContain('track_commit_timestamp was off');
  });
});

describe('MODE=changes', () => {
  const env = { SOURCE_INSTANCE_ID: 'prod-db', [START_ENV.CONFIRM]: 'prod-db', [START_ENV.STAMP]: '20261124093000' };
  test('reads the stamp, the databases and AFTER', () => {
    expect(readChangesModeRequest({ ...env, [START_ENV.DATABASES]: 'orders', [START_ENV.AFTER]: '2026-11-24T09:42:00Z' }))
      .toEqual({ sourceId: 'prod-db', stamp: '20261124093000', databases: ['orders'], after: new Date('2026-11-24T09:42:00Z') });
  });
  test('every problem at once: a bad stamp, no CONFIRM', () => {
    const error = (() => {
      try {
        readChangesModeRequest({ ...env, [START_ENV.STAMP]: '2026-11-24', [START_ENV.CONFIRM]: undefined });
      } catch (err) {
        return err as PlanError;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.problems.join('\n')).toContain('STAMP: "2026-11-24" is not a run stamp; accepted: the 14 digits YYYYMMDDHHMMSS');
    expect(error!.problems.join('\n')).toContain('CONFIRM: not set; accepted: exactly "prod-db"');
  });
});

test('the trigger Lambda refuses mode "changes" (it would otherwise start a recovery)', () => {
  expect(() => parseRecoveryRequest({ restoreTime: 'latest', confirm: 'prod-db', mode: 'changes' }, 'prod-db')).toThrow('mode: "changes" is not started by this function');
});

describe('pairing by an integer key in the runner (changes-merge.ts)', () => {
  type Row = [bigint, bigint | null];
  /** Rows packed as a chunk query returns them (changes-merge.ts packedRow): key, then the hash or a flag and the hash. */
  const packed = (rows: readonly Row[], layout: PackedLayout): Buffer => Buffer.concat(rows.map(([key, hash]) => {
    const k = Buffer.alloc(8);
    k.writeBigInt64BE(key);
    if (layout === 'key') return k;
    const h = Buffer.alloc(8);
    h.writeBigInt64BE(hash ?? 0n);
    return layout === 'key-hash' ? Buffer.concat([k, h]) : Buffer.concat([k, Buffer.from([hash === null ? 0 : 1]), hash === null ? Buffer.alloc(8) : h]);
  }));
  /** A side cut into key ranges at `cuts`, each range's rows in the given (table) order; null for a range without rows. */
  const side = (rows: readonly Row[], layout: PackedLayout, cuts: readonly bigint[] = []): KeyHashChunks => {
    const bounds = [-(2n ** 63n), ...cuts, 2n ** 63n];
    const ranges = bounds.slice(1).map((hi, i) => rows.filter(([k]) => k >= bounds[i] && k < hi));
    return new KeyHashChunks(async (range) => (ranges[range].length > 0 ? packed(ranges[range], layout) : null), ranges.length, layout);
  };
  /** The differing keys as `key<TAB>hash<TAB>kind`, \N for no hash. */
  const lines = (r: MergeResult): string[] => r.differ.map((d) => `${d.key}\t${d.hash ?? '\\N'}\t${d.kind}`);
  const keyOf = (b: KeyHashBatch, i: number): bigint => BigInt(b.keyHi[i]) * 4294967296n + BigInt(b.keyLo[i]);

  const before: Row[] = [[-5n, 1n], [1n, null], [2n, -7n], [3n, 9n], [2n ** 40n, 4n], [9_007_199_254_740_993n, 5n]];
  const atT: Row[] = [[-5n, 1n], [1n, 8n], [2n, -7n], [3n, 10n], [4n, 0n], [9_007_199_254_740_993n, 6n]];
  const hashed = before.map(([k, h]): Row => [k, h ?? 2n]);

  test.each([[[]], [[0n]], [[2n, 3n, 4n]], [[-10n, 2n ** 40n, 2n ** 62n]]])('keys only before, only at T, and hashes that differ, whatever the key ranges (cut at %j)', async (cuts) => {
    // Each side in another order than its keys (as a table holds them after updates): the runner sorts.
    const result = await mergeByKey(side([...hashed].reverse(), 'key-hash', cuts), side([atT[3], ...atT.filter((_, i) => i !== 3)], 'key-hash', cuts), true);
    expect(lines(result)).toEqual([
      '1\t2\tchanged',
      '3\t9\tchanged',
      '4\t\\N\tdeleted',
      '1099511627776\t4\tinserted',
      '9007199254740993\t5\tchanged',
    ]);
    expect(result).toMatchObject({ rowsBefore: 6, hashed: 6, unhashedOnlyBefore: 0 });
  });

  test('keys alone at T (the commit-time filter): hashed keys on both sides are paired for SQL; an unhashed key only before is counted', async () => {
    const at = atT.filter(([k]) => k !== 1n && k !== 2n ** 40n);
    const hashedAfterT: Row[] = [[-5n, 1n], [0n, null], [2n, -7n], [3n, 9n], [2n ** 40n, 4n], [9_007_199_254_740_993n, 5n]];
    const result = await mergeByKey(side(hashedAfterT, 'key-maybe-hash', [3n]), side(at, 'key', [3n]), false);
    expect(lines(result)).toEqual(['-5\t1\tpaired', '0\t\\N\tinserted', '2\t-7\tpaired', '3\t9\tpaired', '4\t\\N\tdeleted', '1099511627776\t4\tinserted', '9007199254740993\t5\tpaired']);
    expect(result).toMatchObject({ rowsBefore: 6, hashed: 5, unhashedOnlyBefore: 1 });
  });

  test('a key twice, or ranges that overlap, stop the comparison', async () => {
    await expect(mergeByKey(side([[2n, 1n], [1n, 1n], [2n, 3n]], 'key-hash'), side([], 'key-hash'), true)).rejects.toThrow('key 2 twice');
    const overlapping = new KeyHashChunks(async (range) => packed(range === 0 ? [[5n, 1n]] : [[4n, 1n]], 'key-hash'), 2, 'key-hash');
    await expect(mergeByKey(overlapping, side([], 'key-hash'), true)).rejects.toThrow('keys out of order');
  });

  test.each([
    ['in key order', (i: number): bigint => BigInt(i) * 3n],
    ['in key order but for the rows updated after T (moved to the end)', (i: number): bigint => (i < 4_500 ? BigInt(i) * 2n : BigInt(i - 4_500) * 600n + 1n)],
    ['in key order but for new rows in space freed among older ones', (i: number): bigint => (i % 50 === 7 ? 1_000_000n + BigInt(i) : BigInt(i))],
    ['in no order, negative and beyond 2^53', (i: number): bigint => (BigInt(i) * 7_919n % 5_003n - 2_500n) * 2n ** 41n + BigInt(i)],
  ])('a chunk %s comes out sorted by key, each hash with its key', (_, keyAt) => {
    const rows: Row[] = Array.from({ length: 5_000 }, (_x, i) => [keyAt(i), BigInt.asIntN(64, keyAt(i) * 31n + 7n)]);
    const batch = decodePacked(packed(rows, 'key-hash'), 'key-hash');
    const keys = Array.from({ length: batch.n }, (_x, i) => keyOf(batch, i));
    expect(keys).toEqual(rows.map(([k]) => k).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    const hashOf = (i: number): bigint => BigInt.asIntN(64, BigInt(batch.hashHi[i]) * 4294967296n + BigInt(batch.hashLo[i]));
    keys.forEach((k, i) => expect(hashOf(i)).toBe(BigInt.asIntN(64, k * 31n + 7n)));
  });

  test('one side\'s arrays reused from chunk to chunk (a large unsorted chunk, then smaller ones, with and without hashes) decode as fresh ones do', async () => {
    const chunk = (n: number, from: bigint, withHash: (i: number) => boolean): Row[] => Array.from({ length: n }, (_x, i) =>
      [from + BigInt((i * 7_919) % n), withHash(i) ? BigInt(i) * 13n - 5n : null]);
    // Keys ascend across chunks (each chunk a key range); within a chunk they come shuffled.
    const chunks: Row[][] = [
      chunk(6_000, 0n, () => true), chunk(1_500, 10_000n, (i) => i % 3 !== 0),
      chunk(40, 20_000n, (i) => i % 2 === 0), chunk(700, 30_000n, () => false),
    ];
    const reused = new KeyHashChunks(async (range) => packed(chunks[range], 'key-maybe-hash'), chunks.length, 'key-maybe-hash');
    const seen: string[] = [];
    while (await reused.ready()) {
      const b = reused.batch;
      const i = reused.at++;
      seen.push(`${keyOf(b, i)}:${b.hashed[i] ? BigInt.asIntN(64, BigInt(b.hashHi[i]) * 4294967296n + BigInt(b.hashLo[i])) : '-'}`);
    }
    const fresh = chunks.flatMap((rows) => {
      const b = decodePacked(packed(rows, 'key-maybe-hash'), 'key-maybe-hash');
      return Array.from({ length: b.n }, (_x, i) => `${keyOf(b, i)}:${b.hashed[i] ? BigInt.asIntN(64, BigInt(b.hashHi[i]) * 4294967296n + BigInt(b.hashLo[i])) : '-'}`);
    });
    expect(seen).toHaveLength(6_000 + 1_500 + 40 + 700);
    expect(seen).toEqual(fresh);
    expect(seen.filter((s) => s.endsWith(':-'))).toHaveLength(500 + 20 + 700);
  });

  describe('key ranges (keyCuts, keyRanges)', () => {
    const histogram = Array.from({ length: 101 }, (_, i) => BigInt(i * 1_000 - 50_000));
    const at = { min: -50_000n, max: 50_000n };
    /** The ranges a key falls in: exactly one, always. */
    const rangesOf = (ranges: readonly string[], key: bigint): number => ranges.filter((r) => r === '' || r.split(' AND ').every((c) => {
      const [, op, v] = c.split(' ');
      return op === '<' ? key < BigInt(v) : key >= BigInt(v);
    })).length;

    test('one range up to RANGE_ROWS rows on either side', () => {
      expect(keyRanges('id', keyCuts({ rowsAtT: RANGE_ROWS, rowsBefore: RANGE_ROWS, atT: at, before: at, histogram }))).toEqual(['']);
    });

    test('cut at the histogram bounds at T into about equal ranges; every key in exactly one', () => {
      const four = keyRanges('id', keyCuts({ rowsAtT: 4 * RANGE_ROWS, rowsBefore: 4 * RANGE_ROWS, atT: at, before: at, histogram }));
      expect(four).toEqual(['id < -25000', 'id >= -25000 AND id < 0', 'id >= 0 AND id < 25000', 'id >= 25000']);
      for (const key of [-(10n ** 12n), -25_001n, -25_000n, 0n, 24_999n, 25_000n, 10n ** 12n]) expect(rangesOf(four, key)).toBe(1);
    });

    test('without a histogram, even cuts over the keys at T', () => {
      const keys = { min: 1n, max: 3_000_000n };
      const rows = 3 * RANGE_ROWS;
      expect(keyCuts({ rowsAtT: rows, rowsBefore: rows, atT: keys, before: keys, histogram: [] })).toEqual([1_000_001n, 2_000_001n]);
    });

    test('a bulk load after T (keys beyond those at T, only before the recovery) gets ranges of its own, not one range for all of it', () => {
      // Small at T (one range's worth), ten ranges' worth loaded after T above its keys.
      const loaded = { min: 1n, max: 11n * 1_048_576n };
      const cuts = keyCuts({ rowsAtT: 1_000, rowsBefore: 11 * RANGE_ROWS, atT: { min: 1n, max: 1_000n }, before: loaded, histogram: [] });
      const ranges = keyRanges('id', cuts);
      expect(ranges.length).toBeGreaterThanOrEqual(11);
      // The loaded keys, evenly spread: no range holds much more than RANGE_ROWS of them.
      const bounds = [1n, ...cuts, 11n * 1_048_576n + 1n];
      for (let i = 1; i < bounds.length; i++) expect(Number(bounds[i] - bounds[i - 1])).toBeLessThanOrEqual(1.1 * RANGE_ROWS);
      for (const key of [0n, 1n, 1_000n, 1_001n, 5_000_000n, 11n * 1_048_576n, 2n ** 62n]) expect(rangesOf(ranges, key)).toBe(1);
      // Keys below those at T too; and a table empty at T.
      const atTBelow = { min: 3_000_000n, max: 3_001_000n };
      const beforeBelow = { min: -3_000_000n, max: 3_001_000n };
      const below = keyCuts({ rowsAtT: 1_000, rowsBefore: 3 * RANGE_ROWS, atT: atTBelow, before: beforeBelow, histogram: [] });
      expect(below[0]).toBeLessThan(0n);
      expect(below).toContain(3_000_000n);
      const onlyBefore = { min: 0n, max: 2n * 1_048_576n - 1n };
      expect(keyCuts({ rowsAtT: 0, rowsBefore: 2 * RANGE_ROWS, atT: null, before: onlyBefore, histogram: [] })).toEqual([1_048_576n]);
    });
  });
});

describe('rowVersionCheck: when rows may be paired by row version', () => {
  /** A session that answers the three reads rowVersionCheck makes (next xid, system identifier, tables written). */
  const session = (answers: { next?: string; id?: string | Error; written?: number[] }): Client => ({
    query: async (sql: string) => {
      if (sql.includes('txid_snapshot_xmax')) return { rows: [{ n: answers.next ?? '1000' }] };
      if (sql.includes('pg_control_system')) {
        if (answers.id instanceof Error) throw answers.id;
        return { rows: [{ id: answers.id ?? '7000000000000000001' }] };
      }
      if (sql.includes('pg_stat_user_tables')) return { rows: (answers.written ?? []).map((oid) => ({ oid })) };
      throw new Error(`unexpected query: ${sql}`);
    },
  }) as unknown as Client;

  test('on for a physical copy of an instance whose xid counter never wrapped; the tables written on the copy are named', async () => {
    const check = await rowVersionCheck(session({ next: String(2 ** 32 - 1) }), session({}), session({ written: [16384] }), true);
    expect(check.on).toBe(true);
    expect([...check.writtenOnCopy!]).toEqual([16384]);
    expect(check.why).toContain('its transaction id counter never wrapped');
  });

  test('off once the counter reached 2^32: an old frozen row\'s xmin can be a transaction\'s after T', async () => {
    const check = await rowVersionCheck(session({ next: String(2 ** 32) }), session({}), session({}), true);
    expect(check).toMatchObject({ on: false, why: `the instance has used ${2 ** 32} transaction ids, more than 2^32: its xmins repeat, so a row version does not name a row` });
  });

  test('off when the copy is not a physical copy (another system identifier), or that cannot be read', async () => {
    expect(await rowVersionCheck(session({}), session({ id: '1' }), session({ id: '2' }), true))
      .toMatchObject({ on: false, why: 'the point-in-time copy is not a physical copy of this instance (system identifiers 1 and 2)' });
    const refused = await rowVersionCheck(session({}), session({}), session({ id: new Error('permission denied for function pg_control_system') }), true);
    expect(refused.on).toBe(false);
    expect(refused.why).toContain('cannot be read (permission denied for function pg_control_system)');
  });

  test('off without the copy (MODE=changes), and when not wanted', async () => {
    expect((await rowVersionCheck(session({}), session({}), undefined, true)).why).toContain('the point-in-time copy is gone');
    expect(await rowVersionCheck(session({}), session({}), session({}), false)).toEqual({ on: false, why: 'row versions not used (rowVersions false)' });
  });
});
