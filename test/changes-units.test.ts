/**
 * CHANGES and AFTER on their own (issue #21): the runner's variables, the
 * Lambda's `changes` and `after` fields and their StartBuild overrides, and
 * the replay script's shape for a table with known columns.
 */
import { Readable } from 'node:stream';
import { request } from './recovery-harness';
import { changesSkipped } from '../buildspec/runner/changes';
import { readChangesModeRequest } from '../buildspec/runner/changes-mode';
import { PlanError } from '../buildspec/runner/plan';
import { AFTER_SETTING, replayScript, replaySettings } from '../buildspec/runner/postgres/changes';
import { KeyHashRows, mergeByKey } from '../buildspec/runner/postgres/changes-merge';
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
  /** A binary COPY stream of (key, hash) rows, as PostgreSQL sends it: header, rows, trailer. */
  const copyBytes = (rows: ReadonlyArray<[bigint, bigint | null]>, keyBytes: 2 | 4 | 8, withHash: boolean): Buffer => {
    const parts: Buffer[] = [Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)];
    for (const [key, hash] of rows) {
      const head = Buffer.alloc(6 + keyBytes);
      head.writeInt16BE(withHash ? 2 : 1, 0);
      head.writeInt32BE(keyBytes, 2);
      if (keyBytes === 8) head.writeBigInt64BE(key, 6);
      else if (keyBytes === 4) head.writeInt32BE(Number(key), 6);
      else head.writeInt16BE(Number(key), 6);
      parts.push(head);
      if (withHash) {
        const h = Buffer.alloc(hash === null ? 4 : 12);
        h.writeInt32BE(hash === null ? -1 : 8, 0);
        if (hash !== null) h.writeBigInt64BE(hash, 4);
        parts.push(h);
      }
    }
    const trailer = Buffer.alloc(2);
    trailer.writeInt16BE(-1, 0);
    parts.push(trailer);
    return Buffer.concat(parts);
  };
  /** The bytes cut into chunks of `size`, as a socket may deliver them. */
  const chunks = (bytes: Buffer, size: number): Readable =>
    Readable.from(Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size)));
  /** A decoder over those rows, delivered in chunks of `size` bytes. */
  const stream = (rows: ReadonlyArray<[bigint, bigint | null]>, keyBytes: 2 | 4 | 8, withHash: boolean, size: number): KeyHashRows =>
    new KeyHashRows(chunks(copyBytes(rows, keyBytes, withHash), size), withHash);

  const before: Array<[bigint, bigint | null]> = [[-5n, 1n], [1n, null], [2n, -7n], [3n, 9n], [2n ** 40n, 4n], [9_007_199_254_740_993n, 5n]];
  const atT: Array<[bigint, bigint | null]> = [[-5n, 1n], [1n, 8n], [2n, -7n], [3n, 10n], [4n, 0n], [9_007_199_254_740_993n, 6n]];

  test.each([1, 3, 7, 64, 4096])('keys only before, only at T, and hashes that differ, whatever the chunk size (%i bytes)', async (size) => {
    const result = await mergeByKey(stream(before, 8, true, size), stream(atT, 8, true, size), true);
    expect(result.lines).toEqual([
      '3\t9\tchanged',
      '4\t\\N\tdeleted',
      '1099511627776\t4\tinserted',
      '9007199254740993\t5\tchanged',
    ]);
    expect(result).toMatchObject({ rowsBefore: 6, hashed: 5, unhashedOnlyBefore: 0 });
  });

  test('keys alone at T (the commit-time filter): hashed keys on both sides are paired for SQL; an unhashed key only before is counted', async () => {
    const at = atT.filter(([k]) => k !== 1n && k !== 2n ** 40n);
    const hashedAfterT: Array<[bigint, bigint | null]> = [[-5n, 1n], [0n, null], [2n, -7n], [3n, 9n], [2n ** 40n, 4n], [9_007_199_254_740_993n, 5n]];
    const result = await mergeByKey(stream(hashedAfterT, 8, true, 5), stream(at.map(([k]) => [k, null]), 8, false, 5), false);
    expect(result.lines).toEqual(['-5\t1\tpaired', '0\t\\N\tinserted', '2\t-7\tpaired', '3\t9\tpaired', '4\t\\N\tdeleted', '1099511627776\t4\tinserted', '9007199254740993\t5\tpaired']);
    expect(result.unhashedOnlyBefore).toBe(1);
  });

  test('integer and smallint keys pair with bigint ones; keys out of order stop the comparison', async () => {
    const small = await mergeByKey(stream([[-2n, 1n], [7n, 2n]], 2, true, 3), stream([[-2n, 1n], [7n, 3n]], 8, true, 3), true);
    expect(small.lines).toEqual(['7\t2\tchanged']);
    const int = await mergeByKey(stream([[-2n, 1n]], 4, true, 2), stream([[-2n, 1n]], 8, true, 2), true);
    expect(int.lines).toEqual([]);
    await expect(mergeByKey(stream([[2n, 1n], [1n, 1n]], 8, true, 9), stream([], 8, true, 9), true))
      .rejects.toThrow('keys out of order');
  });
});
