/**
 * Writes made after the restore time (issue #21), on the production route:
 * the point-in-time copy on another host (127.0.0.2) than the original
 * (127.0.0.1), both TLS verify-full; a swap recovery, then the record of the
 * writes made after T, compared with known numbers; the replay SQL run as the
 * master user restores exactly the intended rows; the pre-recovery database
 * is unchanged, proved by an independent fingerprint (catalog + content).
 */
import { rmSync } from 'node:fs';
import { MASTER, masterTarget, testCa } from './pg-test-env';
import { runChangesMode } from '../buildspec/runner/changes-mode';
import { StepLog } from '../buildspec/runner/log';
import { changesSchemaName, foreignKeyOrder, recordChanges, REPLAY_TABLE, SUMMARY_TABLE } from '../buildspec/runner/postgres/changes';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { keptName } from '../buildspec/runner/postgres/names';
import { connect } from '../buildspec/runner/postgres/process';
import { tableChanges } from '../buildspec/runner/postgres/tables';
import { LOOPBACK, SECOND_HOST, LocalCluster, makeWorkDir, quoteIdent } from '../local/cluster';
import { compareFingerprints, fingerprintDatabase } from '../local/fingerprint';

const DB = 'Shop "main" ü';
const STAMP = '20260404000001';
let source: LocalCluster;
let target: LocalCluster;
let workDir: string;
/** T on the original: after AT_T committed, before AFTER_T. */
let restoreTime: Date;

/** The target's clock now, as a Date (commit times are stamped by the server's clock). */
const serverNow = async (cluster: LocalCluster): Promise<Date> =>
  new Date(await cluster.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"));

/** A database created alike on the point-in-time copy's cluster and the original, as master: the state at T on both. */
const createOnBoth = async (database: string, sql: string): Promise<void> => {
  for (const c of [source, target]) {
    await c.sql(`CREATE DATABASE ${quoteIdent(database)} OWNER ${MASTER.username}`);
    await c.sql(sql, database);
  }
};

/** The kept rows of `table` in run `stamp`'s record, as `kind:id` in id order. */
const keptChanges = (stamp: string, table: string, database: string): Promise<string> =>
  target.sql(`SELECT string_agg(pitr_change || ':' || id, ',' ORDER BY id) FROM ${quoteIdent(changesSchemaName(stamp))}.${table}`, database);

/** The state at T: both clusters start from it; the point-in-time copy keeps it. */
const AT_T = `
  CREATE SCHEMA app AUTHORIZATION ${MASTER.username};
  SET ROLE ${MASTER.username};
  CREATE TABLE app.customers (id int PRIMARY KEY, name text NOT NULL, gone text);
  CREATE TABLE app.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, customer_id int NOT NULL REFERENCES app.customers,
                           amount numeric(10, 2), doubled numeric GENERATED ALWAYS AS (amount * 2) STORED, at date);
  -- An enum hashes by its label's OID, which the restore renumbers: this table must be compared by row text.
  CREATE TYPE app.mood AS ENUM ('sad', 'ok');
  CREATE TABLE app."Odd ""Table""" ("Key A" int NOT NULL, "key b" text NOT NULL, v float8, mood app.mood DEFAULT 'ok', UNIQUE ("Key A", "key b"));
  CREATE TABLE app.log (line text);
  CREATE TABLE app.dropped_later (id int PRIMARY KEY);
  INSERT INTO app.customers SELECT g, 'c' || g, 'x' FROM generate_series(1, 1000) g;
  INSERT INTO app.orders (customer_id, amount, at) SELECT 1 + g % 500, g / 3.0, DATE '2026-01-13' + g % 40 FROM generate_series(1, 3000) g;
  INSERT INTO app."Odd ""Table""" SELECT g, 'k' || (g % 7), g / 3.0 FROM generate_series(1, 200) g;
  INSERT INTO app.log SELECT 'line ' || g FROM generate_series(1, 50) g;
  INSERT INTO app.dropped_later SELECT generate_series(1, 10);
`;

/** Writes after T on the original, with known counts. */
const AFTER_T = `
  SET ROLE ${MASTER.username};
  ALTER TABLE app.customers ADD COLUMN email text;
  ALTER TABLE app.customers DROP COLUMN gone;
  INSERT INTO app.customers (id, name, email) SELECT g, 'new ' || g, 'n' || g || '@x' FROM generate_series(1001, 1007) g;   -- 7 inserted
  UPDATE app.customers SET name = name || ' (renamed)' WHERE id BETWEEN 10 AND 14;                                           -- 5 changed
  DELETE FROM app.customers WHERE id IN (999, 1000);                                                                          -- 2 deleted (no orders)
  INSERT INTO app.orders (customer_id, amount, at) SELECT 1001 + g % 7, 5.25 * g, DATE '2026-02-28' FROM generate_series(1, 11) g; -- 11 inserted, parents new
  UPDATE app.orders SET amount = amount + 1 WHERE id IN (1, 2, 3);                                                            -- 3 changed
  DELETE FROM app.orders WHERE id IN (100, 101, 102, 103);                                                                    -- 4 deleted
  UPDATE app."Odd ""Table""" SET v = -v WHERE "Key A" <= 6;                                                                   -- 6 changed
  INSERT INTO app.log VALUES ('after 1'), ('after 2'), ('after 3');                                                           -- keyless: 3 inserted
  DELETE FROM app.log WHERE line = 'line 1';                                                                                  -- keyless: 1 deleted
  DROP TABLE app.dropped_later;
  CREATE TABLE app.created_later (id int PRIMARY KEY);
  INSERT INTO app.created_later VALUES (1), (2);
`;

beforeAll(async () => {
  const tls = await testCa();
  const master = { username: MASTER.username, password: MASTER.password };
  [source, target] = await Promise.all([
    LocalCluster.create({ host: SECOND_HOST, tls, master }),
    // The original keeps commit timestamps, as an RDS instance with track_commit_timestamp = 1 in its parameter group.
    LocalCluster.create({ host: LOOPBACK, tls, master, settings: { track_commit_timestamp: 'on' } }),
  ]);
  workDir = await makeWorkDir('pitr-changes-');
  await createOnBoth(DB, AT_T);
  restoreTime = await serverNow(target);
  await new Promise((r) => setTimeout(r, 20));
  await target.sql(AFTER_T, DB);
});

afterAll(async () => {
  await Promise.all([source?.destroy(), target?.destroy()]);
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

test('foreign-key order: parents before children, whatever the input order; a cycle does not loop', () => {
  const t = (oid: number): { oid: number } => ({ oid });
  expect(foreignKeyOrder([t(3), t(1), t(2)], [{ child: 3, parent: 2 }, { child: 2, parent: 1 }]).map((x) => x.oid)).toEqual([1, 2, 3]);
  expect(foreignKeyOrder([t(1), t(2)], [{ child: 1, parent: 2 }, { child: 2, parent: 1 }]).map((x) => x.oid)).toHaveLength(2);
});

test('swap recovery, then the record: known counts, rows kept, replay restores exactly the writes after T, the pre-recovery copy unchanged', async () => {
  expect(source.host).not.toBe(target.host);
  expect(masterTarget(target)).toMatchObject({ sslMode: 'verify-full' });
  const lines: string[] = [];
  const log = new StepLog((l) => lines.push(l));
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), {
    databases: [DB], strategy: 'swap', jobs: 2, stamp: STAMP, workDir, log,
  });
  expect(copied.keptAs).toBe(keptName(DB, STAMP));
  const kept = copied.keptAs!;
  const beforeFingerprint = await fingerprintDatabase(target, kept);
  const catalogBefore = await target.sql(`SELECT datname || ' ' || pg_get_userbyid(datdba) || ' ' || datallowconn FROM pg_database WHERE datname = '${kept.replace(/'/g, "''")}'`);

  // T is known and commit times are on: only rows committed after T are compared in full (no margin: AT_T committed just before T).
  // Row versions off: this source is not a physical copy of the target (the row-version test below has one).
  const record = await recordChanges(masterTarget(target), {
    database: DB, keptAs: kept, stamp: STAMP, log, restoreTime, commitTimeMarginMs: 0, pointInTimeCopy: masterTarget(source), rowVersions: false,
  });

  // The pre-recovery database: same catalog and content, fact by fact.
  expect(compareFingerprints(beforeFingerprint, await fingerprintDatabase(target, kept))).toEqual({ missing: [], unexpected: [] });
  expect(await target.sql(`SELECT datname || ' ' || pg_get_userbyid(datdba) || ' ' || datallowconn FROM pg_database WHERE datname = '${kept.replace(/'/g, "''")}'`)).toBe(catalogBefore);

  const byTable = Object.fromEntries(record.tables.map((t) => [t.table, t]));
  expect(byTable['app.customers']).toMatchObject({ status: 'compared', inserted: 7, changed: 5, deleted: 2, key: ['id'] });
  expect(byTable['app.orders']).toMatchObject({ status: 'compared', inserted: 11, changed: 3, deleted: 4, key: ['id'] });
  expect(byTable['app."Odd ""Table"""']).toMatchObject({ status: 'compared', inserted: 0, changed: 6, deleted: 0, key: ['Key A', 'key b'] });
  expect(byTable['app.log']).toMatchObject({ status: 'compared', inserted: 3, deleted: 1 });
  expect(byTable['app.log'].changed).toBeUndefined();
  expect(byTable['app.log'].notes.join(' ')).toContain('no primary key');
  expect(byTable['app.dropped_later']).toMatchObject({ status: 'dropped after T' });
  expect(byTable['app.created_later']).toMatchObject({ status: 'created after T', inserted: 2 });
  expect(byTable['app.customers'].notes.join(' ')).toMatch(/columns dropped after T.*"gone"/);
  expect(byTable['app.customers'].notes.join(' ')).toMatch(/columns added after T.*"email"/);
  expect(record.commitTimes).toBe(true);
  expect(record.sequences.map((s) => s.sequence)).toEqual(['app.orders_id_seq']);
  // The commit-time filter: app.orders read in full only its 14 rows written after T (11 inserted, 3 updated) of 3007;
  // the tables whose rows could change without a newer commit time were compared row by row, saying why.
  expect(record.comparison).toContain(`T ${restoreTime.toISOString()} minus 0 s`);
  expect(byTable['app.orders']).toMatchObject({ rowsCompared: 14, rowsBefore: 3007 });
  expect(byTable['app.orders'].fullBecause).toBeUndefined();
  expect(byTable['app.customers']).toMatchObject({ rowsCompared: 1005, rowsBefore: 1005 });
  expect(byTable['app.customers'].fullBecause).toMatch(/1 dropped column\(s\) before live ones/);
  // Its enum column's labels are all still there with the same OIDs (both clusters were built alike): no row's text
  // can have changed through the catalog, so the filter is used (a renamed label is refused: changes-row-versions.test.ts).
  expect(byTable['app."Odd ""Table"""']).toMatchObject({ rowsCompared: 6, rowsBefore: 200, fullBecause: undefined });
  expect(lines.join('\n')).toMatch(/app\.orders: since T 11 inserted, 3 changed, 4 deleted \(rows paired by "id"; 14 of 3007 row\(s\) compared by content\); generated columns /);
  // One line per table at T, in the record's order (the catalog's), whatever order the parallel workers finished in.
  const tableLines = lines.flatMap((l) => /^\S+\s+(.+?): since T /.exec(l)?.[1] ?? []);
  expect(tableLines).toEqual(record.tables.filter((t) => t.status === 'compared').map((t) => t.table));

  // The rows, in the recovered database: post-T versions with commit times, deleted keys.
  const schema = changesSchemaName(STAMP);
  expect(await target.sql(`SELECT string_agg(pitr_change || ':' || id || ':' || coalesce(name, '-') || ':' || (pitr_committed_at IS NOT NULL), ',' ORDER BY id)
    FROM ${quoteIdent(schema)}."app__customers" WHERE id IN (10, 999, 1001)`, DB)).toBe('changed:10:c10 (renamed):true,deleted:999:-:false,inserted:1001:new 1001:true');
  expect(await target.sql(`SELECT count(*) FROM ${quoteIdent(schema)}.${SUMMARY_TABLE}`, DB)).toBe(String(record.tables.length + record.sequences.length));
  const replay = await target.sql(`SELECT sql FROM ${quoteIdent(schema)}.${REPLAY_TABLE}`, DB);
  expect(replay).toBe(record.replaySql);
  // Parents first for inserts, children first for deletes.
  expect(replay.indexOf('INSERT INTO "app"."customers"')).toBeLessThan(replay.indexOf('INSERT INTO "app"."orders"'));
  expect(replay.indexOf('DELETE FROM "app"."orders"')).toBeLessThan(replay.indexOf('DELETE FROM "app"."customers"'));
  expect(replay).toContain('OVERRIDING SYSTEM VALUE');
  expect(lines.join('\n')).toContain(`DROP SCHEMA ${quoteIdent(schema)} CASCADE`);

  // A write made after the recovery to a row the replay would update: the replay must leave it alone.
  await target.sql(`SET ROLE ${MASTER.username}; UPDATE app.customers SET name = 'written after the recovery' WHERE id = 14`, DB);
  const client = await connect(masterTarget(target), DB);
  try {
    await client.query(replay);
  } finally {
    await client.end();
  }
  // The recovered database now holds T's state plus exactly the writes after T (on the columns both have), except row 14.
  const rows = (db: string, table: string, cols: string, where = 'true'): Promise<string> =>
    target.sql(`SET extra_float_digits = 3; SELECT count(*) || ':' || md5(coalesce(string_agg(ROW(${cols})::text, ',' ORDER BY ROW(${cols})::text), '')) FROM ${table} WHERE ${where}`, db);
  expect(await rows(DB, 'app.customers', 'id, name', 'id <> 14')).toBe(await rows(kept, 'app.customers', 'id, name', 'id <> 14'));
  expect(await target.sql('SELECT name FROM app.customers WHERE id = 14', DB)).toBe('written after the recovery');
  expect(await rows(DB, 'app.orders', 'id, customer_id, amount, doubled, at')).toBe(await rows(kept, 'app.orders', 'id, customer_id, amount, doubled, at'));
  expect(await rows(DB, 'app."Odd ""Table"""', '"Key A", "key b", v')).toBe(await rows(kept, 'app."Odd ""Table"""', '"Key A", "key b", v'));
  // The sequence moved on: the next order does not collide with a replayed one.
  expect(Number(await target.sql('SELECT last_value FROM app.orders_id_seq', DB))).toBeGreaterThanOrEqual(3011);
  // Keyless: no replay, the table stays as at T.
  expect(await target.sql('SELECT count(*) FROM app.log', DB)).toBe('50');
});

test('AFTER with commit timestamps: the replay brings back only the good writes made after the bad change, not the bad change nor what came before it', async () => {
  const db = 'after bound';
  await createOnBoth(db, `SET ROLE ${MASTER.username}; CREATE TABLE public.accounts (id int PRIMARY KEY, name text NOT NULL);
      INSERT INTO public.accounts SELECT g, 'a' || g FROM generate_series(1, 100) g`);
  // After T on the original: a good write, the bad change, then good writes again.
  await target.sql(`SET ROLE ${MASTER.username}; INSERT INTO public.accounts VALUES (101, 'good before the bad change')`, db);
  await target.sql(`SET ROLE ${MASTER.username}; DELETE FROM public.accounts WHERE id <= 10; UPDATE public.accounts SET name = 'bad' WHERE id BETWEEN 11 AND 20`, db);
  const afterBad = new Date(await target.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"));
  await new Promise((r) => setTimeout(r, 20));
  await target.sql(`SET ROLE ${MASTER.username}; INSERT INTO public.accounts VALUES (102, 'good'), (103, 'good'); UPDATE public.accounts SET name = 'good later' WHERE id = 50`, db);

  const stamp = '20260404000002';
  const log = new StepLog(() => undefined);
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), { databases: [db], strategy: 'swap', jobs: 2, stamp, workDir, log });
  const record = await recordChanges(masterTarget(target), {
    database: db, keptAs: copied.keptAs!, stamp, log, after: afterBad, pointInTimeCopy: masterTarget(source),
  });
  expect(record.commitTimes).toBe(true);
  expect(record.tables).toEqual([expect.objectContaining({ table: 'public.accounts', inserted: 3, changed: 11, deleted: 10 })]);
  expect(record.replaySql).toContain(`SET pitr.after = '${afterBad.toISOString()}';`);

  const client = await connect(masterTarget(target), db);
  try {
    await client.query(record.replaySql);
  } finally {
    await client.end();
  }
  // T's state plus exactly the writes after the bad change.
  const expected = (await source.sql("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM (SELECT id, CASE WHEN id = 50 THEN 'good later' ELSE name END AS name FROM public.accounts UNION ALL VALUES (102, 'good'), (103, 'good')) x", db));
  expect(await target.sql("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM public.accounts", db)).toBe(expected);
});

test('the commit-time filter misses no write after T: a transaction open at T and committed after it, a key changed, '
  + 'a row rewritten with the same content, a row applied by replication with an old commit time, a deletion', async () => {
  const db = 'filter traps';
  await createOnBoth(db, `SET ROLE ${MASTER.username}; CREATE TABLE public.accounts (id int PRIMARY KEY, name text NOT NULL);
      INSERT INTO public.accounts SELECT g, 'a' || g FROM generate_series(1, 100) g;
      -- A text key: paired in SQL, not by the runner's integer merge.
      CREATE TABLE public.codes (code text PRIMARY KEY, v int NOT NULL);
      INSERT INTO public.codes SELECT 'c' || g, g FROM generate_series(1, 50) g`);
  // On the original: a transaction takes its xid and writes before T, and commits after T.
  const open = await connect(masterTarget(target), db);
  try {
    await open.query("BEGIN; UPDATE public.accounts SET name = 'open at T' WHERE id = 1; INSERT INTO public.accounts VALUES (201, 'open at T'); UPDATE public.codes SET v = -1 WHERE code = 'c1'");
    // Another transaction, started later, commits before T: the next xid at T is now above the open one's.
    await target.sql('SELECT pg_current_xact_id()', db);
    await new Promise((r) => setTimeout(r, 20));
    const at = await serverNow(target);
    // What a naive xid filter would take as "the xid at T": the next xid then (the open transaction's is below it).
    const nextXidAtT = await target.sql('SELECT pg_snapshot_xmax(pg_current_snapshot())', db);
    await new Promise((r) => setTimeout(r, 20));
    await open.query('COMMIT');
    await target.sql(`SET ROLE ${MASTER.username};
      UPDATE public.accounts SET id = 1003 WHERE id = 3;          -- the key changed: 1003 inserted, 3 deleted
      UPDATE public.accounts SET name = name WHERE id = 4;        -- rewritten, same content: not a change
      DELETE FROM public.accounts WHERE id = 5;                   -- deleted
      UPDATE public.codes SET code = 'c3x' WHERE code = 'c3';     -- c3x inserted, c3 deleted
      UPDATE public.codes SET v = v WHERE code = 'c4';            -- same content
      DELETE FROM public.codes WHERE code = 'c5';`, db);
    // A row applied by replication carries its publisher's commit time (here 2020, long before T): not a local commit.
    await target.sql("SELECT pg_replication_origin_create('pitr_test_origin')");
    await target.sql(`SELECT pg_replication_origin_session_setup('pitr_test_origin');
      BEGIN; SELECT pg_replication_origin_xact_setup('0/1', '2020-01-01T00:00:00Z'); UPDATE public.accounts SET name = 'replicated' WHERE id = 6; COMMIT;
      SELECT pg_replication_origin_session_reset()`, db);
    expect(await target.sql("SELECT pg_xact_commit_timestamp(xmin) < now() - interval '1 year' FROM public.accounts WHERE id = 6", db)).toBe('t');

    // A naive xid filter (xmin at or after the next xid at T) would miss the open transaction's rows.
    const naive = (await target.sql(`SELECT string_agg(id::text, ',' ORDER BY id) FROM public.accounts WHERE xmin::text::bigint >= ${nextXidAtT}::bigint % 4294967296`, db)).split(',');
    expect(naive).not.toContain('1');
    expect(naive).not.toContain('201');

    const stamp = '20260404000003';
    const lines: string[] = [];
    const log = new StepLog((l) => lines.push(l));
    const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), { databases: [db], strategy: 'swap', jobs: 2, stamp, workDir, log });
    const record = await recordChanges(masterTarget(target), {
      database: db, keptAs: copied.keptAs!, stamp, log, restoreTime: at, commitTimeMarginMs: 0,
    });
    expect(record.tables).toEqual([
      expect.objectContaining({ table: 'public.accounts', inserted: 2, changed: 2, deleted: 2, rowsBefore: 100 }),
      // c1 (open at T), c3x (key changed), c4 (same content): 3 of 49 compared in full.
      expect.objectContaining({ table: 'public.codes', inserted: 1, changed: 1, deleted: 2, rowsCompared: 3, rowsBefore: 49 }),
    ]);
    // Compared in full: 1, 201 (open at T), 1003 (key changed), 4 (same content), 6 (replicated): 5 of 100.
    expect(record.tables[0].rowsCompared).toBe(5);
    const kept = await keptChanges(stamp, 'public__accounts', db);
    expect(kept).toBe('changed:1,deleted:3,deleted:5,changed:6,inserted:201,inserted:1003');
    expect(lines.join('\n')).toContain(`comparison: rows committed before ${at.toISOString()}`);

    // A T later than the point-in-time copy's (after the writes): the keys inserted after the copy's T look old, do not exist
    // at T, and give the mistake away: every row is compared instead, and the record is the same.
    const late = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp: '20260404000005', log, restoreTime: await serverNow(target), commitTimeMarginMs: 0 });
    expect(late.tables).toEqual([
      expect.objectContaining({ inserted: 2, changed: 2, deleted: 2, rowsCompared: 100, rowsBefore: 100 }),
      expect.objectContaining({ inserted: 1, changed: 1, deleted: 2, rowsCompared: 49, rowsBefore: 49 }),
    ]);
    for (const t of late.tables) expect(t.fullBecause).toContain('have a key that does not exist at T: the commit times do not match this restore time');

    // With the default margin every row here committed less than 5 minutes before T: all compared, same record.
    const again = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp: '20260404000004', log, restoreTime: at });
    expect(again.tables).toEqual([
      expect.objectContaining({ inserted: 2, changed: 2, deleted: 2, rowsCompared: 100, rowsBefore: 100 }),
      expect.objectContaining({ inserted: 1, changed: 1, deleted: 2, rowsCompared: 49, rowsBefore: 49 }),
    ]);

    // Cut into key ranges of about 20 rows, as a table of millions of rows is (RANGE_ROWS): the same record, with the
    // filter and without. The first run finds no statistics on the key at T (as after a copy not yet analyzed): it
    // cuts evenly between the smallest and largest keys, and writes nothing there.
    await target.sql("DELETE FROM pg_statistic WHERE starelid = 'public.accounts'::regclass", db);
    const ranged = async (runStamp: string, options: { restoreTime?: Date; commitTimeMarginMs?: number }): Promise<void> => {
      const r = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp: runStamp, log, rangeRows: 20, ...options });
      expect(r.tables[0]).toMatchObject({ inserted: 2, changed: 2, deleted: 2, rowsCompared: options.restoreTime ? 5 : 100, rowsBefore: 100 });
      expect(r.tables[0].keyRanges).toBeGreaterThanOrEqual(4);
      expect(await keptChanges(runStamp, 'public__accounts', db)).toBe(kept);
    };
    await ranged('20260404000006', { restoreTime: at, commitTimeMarginMs: 0 });
    expect(await target.sql("SELECT count(*) FROM pg_stats WHERE tablename = 'accounts'", db)).toBe('0');
    await target.sql('ANALYZE public.accounts', db);
    await ranged('20260404000007', {});
    expect(record.tables[0].keyRanges).toBe(1);

    // More differing rows than the runner keeps (a mass change after T): the server pairs the table instead, same record.
    const server = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp: '20260404000010', log, maxDifferingInRunner: 1 });
    expect(server.tables[0]).toMatchObject({ inserted: 2, changed: 2, deleted: 2, rowsBefore: 100 });
    expect(server.tables[0].keyRanges).toBeUndefined();
    expect(await keptChanges('20260404000010', 'public__accounts', db)).toBe(kept);
  } finally {
    await open.end().catch(() => undefined);
    await target.sql("SELECT pg_replication_origin_drop('pitr_test_origin')").catch(() => undefined);
  }
});

test('the application writes to the recovered database again from the swap on: the record reads T on the point-in-time copy, '
  + 'so those writes are neither recorded nor undone by the replay', async () => {
  const db = 'app is back';
  await createOnBoth(db, `SET ROLE ${MASTER.username}; CREATE TABLE public.orders (id int PRIMARY KEY, total int NOT NULL);
      INSERT INTO public.orders SELECT g, g FROM generate_series(1, 100) g`);
  // After T, on the original: 2 inserted, 1 changed, 1 deleted.
  await target.sql(`SET ROLE ${MASTER.username}; INSERT INTO public.orders VALUES (101, 101), (102, 102);
    UPDATE public.orders SET total = -10 WHERE id = 10; DELETE FROM public.orders WHERE id = 20`, db);
  const stamp = '20260404000008';
  const log = new StepLog(() => undefined);
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), { databases: [db], strategy: 'swap', jobs: 2, stamp, workDir, log });
  // The application is back on the recovered database before the record runs: a new order (its key is free again at T),
  // an order changed, an order deleted; none of them was touched after T on the original.
  const appWrites = `SET ROLE ${MASTER.username}; INSERT INTO public.orders VALUES (101, 5000);
    UPDATE public.orders SET total = 7000 WHERE id = 30; DELETE FROM public.orders WHERE id = 40`;
  await target.sql(appWrites, db);
  const afterApp = await target.sql("SELECT string_agg(id || ':' || total, ',' ORDER BY id) FROM public.orders WHERE id IN (30, 40, 101)", db);
  expect(afterApp).toBe('30:7000,101:5000');

  // Read at T on the point-in-time copy (the source here): exactly the writes made after T.
  const pointInTimeCopy = masterTarget(source);
  const record = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp, log, pointInTimeCopy });
  expect(record.tables).toEqual([expect.objectContaining({ table: 'public.orders', inserted: 2, changed: 1, deleted: 1 })]);
  expect(await keptChanges(stamp, 'public__orders', db)).toBe('changed:10,deleted:20,inserted:101,inserted:102');
  // The replay leaves the application's writes alone: 101 is the application's now (the kept 101 is not inserted over
  // it), 30 keeps its new total, 40 stays deleted; the writes after T come back where they do not collide.
  const client = await connect(masterTarget(target), db);
  try {
    await client.query(record.replaySql);
  } finally {
    await client.end();
  }
  expect(await target.sql("SELECT string_agg(id || ':' || total, ',' ORDER BY id) FROM public.orders WHERE id IN (10, 20, 30, 40, 101, 102)", db))
    .toBe('10:-10,30:7000,101:5000,102:102');

  // Without the point-in-time copy (MODE=changes, once it is gone) the recovered database is read as it is now: the
  // application's writes look like writes that differ from T's, which is why the recovery reads T on the copy.
  await target.sql(appWrites.replace('INSERT INTO public.orders VALUES (101, 5000);', ''), db);
  const late = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp: '20260404000009', log });
  expect(late.tables[0]).not.toMatchObject({ inserted: 2, changed: 1, deleted: 1 });
});

test('compared by content: a write that the types call equal (1.0 -> 1.00, 0 -> -0, 1 day -> 24 hours, Bob -> bob, '
  + 'a sign, NaN for NULL, trailing blanks, 64-bit values their hash folds to 32 bits) is still a change; a row written again as it was is not; '
  + 'in the runner (integer key), on the server (text key) and through the commit-time filter', async () => {
  const db = 'equal is not identical';
  // Each column's type has a hash, and each of these writes keeps it: numeric ignores the scale and the sign and
  // hashes NaN as NULL, float8 the sign of zero, interval the units, a nondeterministic collation and citext the case,
  // arrays their bounds, bpchar trailing blanks; int8 and the time types fold 64 bits into 32.
  await createOnBoth(db, `SET ROLE ${MASTER.username};
    CREATE EXTENSION citext;
    CREATE COLLATION public.nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    CREATE DOMAIN public.bp1 AS bpchar; CREATE DOMAIN public.bp2 AS public.bp1;
    CREATE TABLE public.t (id int PRIMARY KEY, n numeric, f float8, i interval, name text COLLATE public.nocase, email citext,
                           a int[], c char(3), tags text[] COLLATE public.nocase, total numeric(8, 2), bp bpchar, cn char(3) COLLATE public.nocase,
                           big int8, ts timestamp, dd public.bp2, tz timestamptz);
    INSERT INTO public.t SELECT g, 1.0, 0, '1 day', 'Bob', 'Bob@x', '{1,2}', 'ab', '{Bob}', CASE WHEN g <> 10 THEN 1.5 END, 'a', 'Bob',
                                0, '2000-01-01 00:00:00', 'a', '2026-04-04 12:00:00+00' FROM generate_series(1, 20) g;
    -- The same rows under a text key: paired on the server, not in the runner.
    CREATE TABLE public.u (k text PRIMARY KEY, LIKE public.t);
    INSERT INTO public.u SELECT 'k' || id, * FROM public.t;
    -- And without the domain over a domain (its text could change through the catalog): the commit-time filter takes it.
    CREATE TABLE public.v AS SELECT * FROM public.t; ALTER TABLE public.v DROP COLUMN dd, ADD PRIMARY KEY (id)`);
  const at = await serverNow(target);
  const writes = (table: string): string => `
    UPDATE ${table} SET n = 1.00 WHERE id = 1;
    UPDATE ${table} SET f = '-0' WHERE id = 2;
    UPDATE ${table} SET i = '24 hours' WHERE id = 3;
    UPDATE ${table} SET name = 'bob' WHERE id = 4;
    UPDATE ${table} SET email = 'bob@x' WHERE id = 5;
    UPDATE ${table} SET a = '[0:1]={1,2}' WHERE id = 6;
    UPDATE ${table} SET tags = '{bob}' WHERE id = 7;
    UPDATE ${table} SET total = -total WHERE id = 8;
    UPDATE ${table} SET total = 'NaN' WHERE id = 10;
    UPDATE ${table} SET bp = 'a ' WHERE id = 11;
    UPDATE ${table} SET cn = 'bob' WHERE id = 12;
    UPDATE ${table} SET big = 4294967297 WHERE id = 13;
    UPDATE ${table} SET ts = '2000-01-01 01:11:34.967297' WHERE id = 14;
    UPDATE ${table} SET ${table === 'public.v' ? 'n = n' : 'dd = \'a  \''} WHERE id = 15;
    UPDATE ${table} SET tz = '2026-04-04 13:11:34.967359+00' WHERE id = 16;
    -- written again with the same content: not a change
    UPDATE ${table} SET n = n, f = f, i = i, name = name, email = email, a = a, c = 'ab ', tags = tags, total = 1.50, bp = bp, cn = cn,
                        big = big, ts = ts, tz = tz WHERE id >= 17;`;
  // Row 9 is left alone: 8 and 10 are its neighbours.
  await target.sql(`SET ROLE ${MASTER.username}; ${writes('public.t')} ${writes('public.u')} ${writes('public.v')}`, db);
  const stamp = '20260404000011';
  const log = new StepLog(() => undefined);
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), { databases: [db], strategy: 'swap', jobs: 2, stamp, workDir, log });
  const pointInTimeCopy = masterTarget(source);
  const record = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp, log, pointInTimeCopy });
  const changedIds = [...Array(16).keys()].map((i) => i + 1).filter((id) => id !== 9);
  // public.v has no dd: its row 15 is written again as it was.
  const changedInV = changedIds.filter((id) => id !== 15);
  expect(record.tables).toEqual([
    expect.objectContaining({ table: 'public.t', inserted: 0, changed: changedIds.length, deleted: 0 }),
    expect.objectContaining({ table: 'public.u', inserted: 0, changed: changedIds.length, deleted: 0 }),
    expect.objectContaining({ table: 'public.v', inserted: 0, changed: changedInV.length, deleted: 0 }),
  ]);
  expect(await keptChanges(stamp, 'public__t', db)).toBe(changedIds.map((id) => `changed:${id}`).join(','));
  expect(await target.sql(`SELECT string_agg(pitr_change || ':' || id, ',' ORDER BY id) FROM ${quoteIdent(changesSchemaName(stamp))}.public__u`, db))
    .toBe(changedIds.map((id) => `changed:${id}`).join(','));

  // With the commit-time filter (the original keeps commit times): public.v's rows committed after T are hashed
  // before the recovery and their rows at T looked up and hashed alike; the same writes are found. The other two are
  // compared in full: a domain over a domain's text can change through the catalog.
  const filtered = await recordChanges(masterTarget(target), {
    database: db, keptAs: copied.keptAs!, stamp: '20260404000016', log, pointInTimeCopy, restoreTime: at, commitTimeMarginMs: 0, rowVersions: false,
  });
  const byTable = Object.fromEntries(filtered.tables.map((t) => [t.table, t]));
  expect(byTable['public.v']).toMatchObject({ changed: changedInV.length, inserted: 0, deleted: 0, fullBecause: undefined, rowsCompared: 20 - 1 });
  expect(byTable['public.t'].fullBecause).toContain('"dd"');
  expect(await keptChanges('20260404000016', 'public__v', db)).toBe(changedInV.map((id) => `changed:${id}`).join(','));
});

test('the row hash keeps each column in its place: values swapped between two columns, a NULL against a value (0, \'\', false), '
  + 'a value moved to the next column, 64-bit values alike in a half are changes; in the runner (integer key) and on the server (text key)', async () => {
  const db = 'each in its place';
  // One column of each way into the hash (hashTerm): the types' own hashes (int2, int4, oid, "char", uuid, int8 in two
  // halves, text, name, char(n), numeric), and those hashed together in one record (bool, date, bytea, timestamptz).
  await createOnBoth(db, `SET ROLE ${MASTER.username};
    CREATE TABLE public.w (id int PRIMARY KEY, a int, b int, s text, t text, sm int2, o oid, ch "char", u uuid, big int8, nm name, c3 char(3),
                           m numeric(6, 2), flag bool, d date, raw bytea, at timestamptz);
    INSERT INTO public.w SELECT g, 1, 2, 'x', 'y', 7, 7, 'a', '00000000-0000-0000-0000-000000000001', 4294967296, 'n', 'ab', 1.5,
                                true, '2026-01-01', '\\x01', '2026-04-04 12:00:00+00' FROM generate_series(1, 20) g;
    UPDATE public.w SET a = NULL, s = NULL, flag = NULL, m = NULL WHERE id = 20;
    CREATE TABLE public.wt (k text PRIMARY KEY, LIKE public.w);
    INSERT INTO public.wt SELECT 'k' || id, * FROM public.w`);
  const writes = (table: string): string => `
    UPDATE ${table} SET a = 2, b = 1 WHERE id = 1;
    UPDATE ${table} SET s = 'y', t = 'x' WHERE id = 2;
    UPDATE ${table} SET a = NULL WHERE id = 3;
    UPDATE ${table} SET s = NULL WHERE id = 4;
    UPDATE ${table} SET flag = NULL WHERE id = 5;
    UPDATE ${table} SET a = b, b = NULL WHERE id = 6;
    UPDATE ${table} SET big = 8589934592 WHERE id = 7;
    UPDATE ${table} SET sm = 8, o = 8 WHERE id = 8;
    UPDATE ${table} SET ch = 'b' WHERE id = 9;
    UPDATE ${table} SET u = '00000000-0000-0000-0000-000000000002' WHERE id = 10;
    UPDATE ${table} SET nm = 'N' WHERE id = 11;
    UPDATE ${table} SET c3 = 'aB' WHERE id = 12;
    UPDATE ${table} SET d = '2026-01-02', raw = '\\x02' WHERE id = 13;
    UPDATE ${table} SET at = at + interval '1 microsecond' WHERE id = 14;
    UPDATE ${table} SET m = -m WHERE id = 15;
    UPDATE ${table} SET a = 0, s = '', flag = false, m = 0 WHERE id = 20;
    -- written again with the same content: not a change
    UPDATE ${table} SET a = a, b = b, s = s, t = t, big = big, c3 = 'ab ', m = 1.50, flag = flag WHERE id BETWEEN 16 AND 19;`;
  await target.sql(`SET ROLE ${MASTER.username}; ${writes('public.w')} ${writes('public.wt')}`, db);
  const stamp = '20260404000017';
  const log = new StepLog(() => undefined);
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), { databases: [db], strategy: 'swap', jobs: 2, stamp, workDir, log });
  const pointInTimeCopy = masterTarget(source);
  const record = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp, log, pointInTimeCopy });
  const changedIds = [...Array(15).keys()].map((i) => i + 1).concat(20);
  expect(record.tables).toEqual([
    expect.objectContaining({ table: 'public.w', inserted: 0, changed: changedIds.length, deleted: 0, rowsCompared: 20 }),
    expect.objectContaining({ table: 'public.wt', inserted: 0, changed: changedIds.length, deleted: 0 }),
  ]);
  expect(await keptChanges(stamp, 'public__w', db)).toBe(changedIds.map((id) => `changed:${id}`).join(','));
  expect(await target.sql(`SELECT string_agg(pitr_change || ':' || id, ',' ORDER BY id) FROM ${quoteIdent(changesSchemaName(stamp))}.public__wt`, db))
    .toBe(changedIds.map((id) => `changed:${id}`).join(','));
});

test('a key whose type has no binary input and output (contrib seg), a range key and a composite key are paired through text', async () => {
  const db = 'text key stream';
  // Composite and range keys cross as text too (copyFormat: their fields and subtypes may lack binary input and output);
  // built-in fields would cross in binary as well, so this checks that they pair and replay, not which format they take.
  await createOnBoth(db, `SET ROLE ${MASTER.username}; CREATE EXTENSION seg;
    CREATE TABLE public.s (k seg PRIMARY KEY, v int NOT NULL);
    INSERT INTO public.s SELECT (g || ' .. ' || g + 1)::seg, g FROM generate_series(1, 30) g;
    CREATE TABLE public.r (k int4range PRIMARY KEY, v int NOT NULL);
    INSERT INTO public.r SELECT int4range(g, g + 1), g FROM generate_series(1, 30) g;
    CREATE TYPE public.pair AS (a int, b text);
    CREATE TABLE public.c (k public.pair PRIMARY KEY, v int NOT NULL);
    INSERT INTO public.c SELECT ROW(g, 'b' || g)::public.pair, g FROM generate_series(1, 30) g`);
  await target.sql(`SET ROLE ${MASTER.username}; UPDATE public.s SET v = -v WHERE v = 5; DELETE FROM public.s WHERE v = 6;
    INSERT INTO public.s VALUES ('100 .. 101', 100);
    UPDATE public.r SET v = -v WHERE v = 5; DELETE FROM public.r WHERE v IN (6, 7); INSERT INTO public.r VALUES ('[100,101)', 100);
    UPDATE public.c SET v = -v WHERE v IN (5, 8); DELETE FROM public.c WHERE v = 6; INSERT INTO public.c VALUES (ROW(100, 'b 100'), 100)`, db);
  const stamp = '20260404000013';
  const log = new StepLog(() => undefined);
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), { databases: [db], strategy: 'swap', jobs: 2, stamp, workDir, log });
  const pointInTimeCopy = masterTarget(source);
  const record = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp, log, pointInTimeCopy });
  expect(record.tables).toEqual([
    expect.objectContaining({ table: 'public.c', inserted: 1, changed: 2, deleted: 1 }),
    expect.objectContaining({ table: 'public.r', inserted: 1, changed: 1, deleted: 2 }),
    expect.objectContaining({ table: 'public.s', inserted: 1, changed: 1, deleted: 1 }),
  ]);
  // The replay brings the writes after T back by those keys: each table is then as it was before the recovery.
  const client = await connect(masterTarget(target), db);
  try {
    await client.query(record.replaySql);
  } finally {
    await client.end();
  }
  for (const t of ['c', 'r', 's']) {
    const rows = `SELECT string_agg(k::text || '=' || v, ',' ORDER BY k::text) FROM public.${t}`;
    expect(await target.sql(rows, db)).toBe(await target.sql(rows, copied.keptAs!));
  }
});

test('a key of an extension type (citext, its = in public): paired under the runner\'s empty search_path, through domains, '
  + 'and when retyped after T; the replay runs under an empty search_path too and leaves a key changed in case alone; '
  + 'table recovery\'s change report pairs it as well', async () => {
  const db = 'citext key';
  const schemaSql = `SET ROLE ${MASTER.username}; CREATE EXTENSION citext;
    CREATE TABLE public.users (email citext PRIMARY KEY, n int NOT NULL);
    INSERT INTO public.users SELECT 'User' || g || '@x', g FROM generate_series(1, 20) g;
    -- A child whose key follows its parent's: a key rewritten by the replay would cascade before the child's own update.
    CREATE TABLE public.logins (id int PRIMARY KEY, email citext NOT NULL REFERENCES public.users ON UPDATE CASCADE, v int NOT NULL);
    INSERT INTO public.logins VALUES (1, 'User5@x', 1);
    CREATE DOMAIN public.em1 AS citext; CREATE DOMAIN public.em2 AS public.em1;
    CREATE TABLE public.members (email public.em2 PRIMARY KEY, n int NOT NULL);
    INSERT INTO public.members SELECT 'Member' || g || '@x', g FROM generate_series(1, 5) g;
    CREATE TABLE public.retyped (code text PRIMARY KEY, n int NOT NULL);
    INSERT INTO public.retyped SELECT 'c' || g, g FROM generate_series(1, 5) g`;
  await createOnBoth(db, schemaSql);
  // After T: one user changed, one changed in its key's case only (the same key to citext, not to text; its login
  // follows by cascade and changes too), one deleted, one inserted; a member's key changed in case; the retyped table's key
  // column became citext and one row changed.
  const afterT = `SET ROLE ${MASTER.username}; UPDATE public.users SET n = -n WHERE n = 3; UPDATE public.users SET email = 'USER5@X' WHERE n = 5;
    UPDATE public.logins SET v = 2 WHERE id = 1;
    DELETE FROM public.users WHERE n = 4; INSERT INTO public.users VALUES ('New@x', 100);
    UPDATE public.members SET email = 'MEMBER2@X' WHERE n = 2;
    ALTER TABLE public.retyped ALTER COLUMN code TYPE citext; UPDATE public.retyped SET n = -n WHERE code = 'c2'`;
  await target.sql(afterT, db);
  const stamp = '20260404000014';
  const log = new StepLog(() => undefined);
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), { databases: [db], strategy: 'swap', jobs: 2, stamp, workDir, log });
  const pointInTimeCopy = masterTarget(source);
  const record = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp, log, pointInTimeCopy });
  expect(record.tables).toEqual([
    expect.objectContaining({ table: 'public.logins', inserted: 0, changed: 1, deleted: 0 }),
    expect.objectContaining({ table: 'public.members', inserted: 0, changed: 1, deleted: 0 }),
    expect.objectContaining({ table: 'public.retyped', inserted: 0, changed: 1, deleted: 0 }),
    expect.objectContaining({ table: 'public.users', inserted: 1, changed: 2, deleted: 1 }),
  ]);
  // The replay on a runner session (search_path ''): every write after T comes back, but the key's new case.
  const client = await connect(masterTarget(target), db);
  try {
    expect((await client.query('SHOW search_path')).rows[0].search_path).toBe('');
    await client.query(record.replaySql);
  } finally {
    await client.end();
  }
  const rows = 'SELECT string_agg(email || \':\' || n, \',\' ORDER BY email COLLATE "C") FROM public.users';
  expect(await target.sql(rows, db)).toBe((await target.sql(rows, copied.keptAs!)).replace('USER5@X:5', 'User5@x:5'));
  expect(await target.sql('SELECT email || \':\' || v FROM public.logins', db)).toBe('USER5@X:2');

  // Table recovery's change report, the same pairing: the table at T restored beside the live one.
  const tablesDb = 'citext key tables';
  await target.sql(`CREATE DATABASE ${quoteIdent(tablesDb)} OWNER ${MASTER.username}`);
  await target.sql(`SET ROLE ${MASTER.username}; CREATE EXTENSION citext; CREATE TABLE public.users (email citext PRIMARY KEY, n int NOT NULL);
    INSERT INTO public.users SELECT 'User' || g || '@x', g FROM generate_series(1, 20) g;
    CREATE TABLE public.users_at_t (LIKE public.users INCLUDING ALL); INSERT INTO public.users_at_t SELECT * FROM public.users;
    UPDATE public.users SET n = -n WHERE n = 3; UPDATE public.users SET email = 'USER5@X' WHERE n = 5;
    DELETE FROM public.users WHERE n = 4; INSERT INTO public.users VALUES ('New@x', 100)`, tablesDb);
  const reporter = await connect(masterTarget(target), tablesDb);
  try {
    const changes = await tableChanges(reporter, { schema: 'public', name: 'users' }, { schema: 'public', name: 'users_at_t' });
    expect(changes).toMatchObject({ key: ['email'], inserted: 1, changed: 2, deleted: 1 });
  } finally {
    await reporter.end();
  }
});

test('a key unique under its index\'s own collation (name COLLATE "C" on a case-insensitive column, also with an INCLUDE column) '
  + 'pairs Bob with Bob only; the replay too', async () => {
  const db = 'index collation';
  await createOnBoth(db, `SET ROLE ${MASTER.username};
    CREATE COLLATION public.nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
    CREATE TABLE public.n (name text COLLATE public.nocase NOT NULL, v int NOT NULL);
    CREATE UNIQUE INDEX n_name ON public.n (name COLLATE "C");
    INSERT INTO public.n VALUES ('Bob', 1), ('bob', 2), ('Ann', 3);
    -- The same key through a unique index with an INCLUDE column: its operator and collation come from its key column.
    CREATE TABLE public.ni (name text COLLATE public.nocase NOT NULL, v int NOT NULL);
    CREATE UNIQUE INDEX ni_name ON public.ni (name COLLATE "C") INCLUDE (v);
    INSERT INTO public.ni SELECT * FROM public.n`);
  await target.sql(`SET ROLE ${MASTER.username}; UPDATE public.n SET v = 20 WHERE name COLLATE "C" = 'bob';
    UPDATE public.ni SET v = 20 WHERE name COLLATE "C" = 'bob'`, db);
  const stamp = '20260404000015';
  const log = new StepLog(() => undefined);
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), { databases: [db], strategy: 'swap', jobs: 2, stamp, workDir, log });
  const pointInTimeCopy = masterTarget(source);
  const record = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp, log, pointInTimeCopy });
  expect(record.tables).toEqual(['public.n', 'public.ni'].map((table) => expect.objectContaining({ table, key: ['name'], inserted: 0, changed: 1, deleted: 0 })));
  const client = await connect(masterTarget(target), db);
  try {
    await client.query(record.replaySql);
  } finally {
    await client.end();
  }
  for (const t of ['public.n', 'public.ni']) {
    expect(await target.sql(`SELECT string_agg(name || ':' || v, ',' ORDER BY name COLLATE "C") FROM ${t}`, db)).toBe('Ann:3,Bob:1,bob:20');
  }
});

test('a key that is no longer unique before the recovery (primary key dropped after T, a duplicate inserted) is not paired: '
  + 'counts by content, no replay that would overwrite the first row of that key', async () => {
  const db = 'key gone before';
  await createOnBoth(db, `SET ROLE ${MASTER.username}; CREATE TABLE public.k (id int PRIMARY KEY, v text NOT NULL);
    CREATE TABLE public.nullable (id int PRIMARY KEY, v text NOT NULL);
    INSERT INTO public.k SELECT g, 'v' || g FROM generate_series(1, 10) g;
    INSERT INTO public.nullable SELECT g, 'v' || g FROM generate_series(1, 10) g`);
  // After T: public.k loses its key and gets a second row 5; public.nullable's key becomes a unique index that allows NULL.
  await target.sql(`SET ROLE ${MASTER.username};
    ALTER TABLE public.k DROP CONSTRAINT k_pkey; INSERT INTO public.k VALUES (5, 'second five'); UPDATE public.k SET v = 'changed' WHERE id = 3;
    ALTER TABLE public.nullable DROP CONSTRAINT nullable_pkey; ALTER TABLE public.nullable ALTER COLUMN id DROP NOT NULL;
    CREATE UNIQUE INDEX nullable_id ON public.nullable (id); INSERT INTO public.nullable VALUES (NULL, 'no key')`, db);
  const stamp = '20260404000012';
  const log = new StepLog(() => undefined);
  const [copied] = await new PgDataPath({ streamMinBytes: 0 }).copy(masterTarget(source), masterTarget(target), { databases: [db], strategy: 'swap', jobs: 2, stamp, workDir, log });
  const pointInTimeCopy = masterTarget(source);
  const record = await recordChanges(masterTarget(target), { database: db, keptAs: copied.keptAs!, stamp, log, pointInTimeCopy });
  const byTable = Object.fromEntries(record.tables.map((t) => [t.table, t]));
  // By content: public.k's duplicate and the new version of row 3 are new rows, the old version of row 3 is gone.
  expect(byTable['public.k']).toMatchObject({ status: 'compared', inserted: 2, deleted: 1 });
  expect(byTable['public.k'].notes.join(' ')).toContain('the key ("id") is not a primary key or a unique key over NOT NULL columns before the recovery');
  expect(byTable['public.nullable']).toMatchObject({ status: 'compared', inserted: 1, deleted: 0 });
  for (const t of ['public.k', 'public.nullable']) expect([byTable[t].changed, byTable[t].keptIn]).toEqual([undefined, undefined]);
  expect(record.replaySql).not.toMatch(/UPDATE[^;]*"k"/);
});

test('MODE=changes: the same record later, from the kept pre-recovery copy; refused while the record of that run exists; a stamp with no copy is named', async () => {
  const rds = { describeSource: async () => ({ endpoint: { host: target.host, port: target.port } }) as never };
  const deps = { rds, credentials: { username: MASTER.username, password: MASTER.password }, tls: target.sslOptions };
  const lines: string[] = [];
  const log = new StepLog((l) => lines.push(l));
  // The first test recorded run STAMP already: refused, nothing written.
  await expect(runChangesMode({ sourceId: 'db', stamp: STAMP, databases: [DB] }, { ...deps, log })).rejects.toThrow(`schema "${changesSchemaName(STAMP)}" already exists`);
  await expect(runChangesMode({ sourceId: 'db', stamp: '20990101000000' }, { ...deps, log: new StepLog(() => undefined) }))
    .rejects.toThrow('no database has a kept pre-recovery copy of run 20990101000000; kept for that stamp: none');

  // Once dropped, MODE=changes writes it again from the kept copy (here after the replay: only row 14, changed since the recovery, still differs).
  await target.sql(`DROP SCHEMA ${quoteIdent(changesSchemaName(STAMP))} CASCADE`, DB);
  const [record] = await runChangesMode({ sourceId: 'db', stamp: STAMP, databases: [DB] }, { ...deps, log });
  expect(record.tables.find((t) => t.table === 'app.customers')).toMatchObject({ inserted: 0, changed: 1, deleted: 0 });
  expect(record.tables.find((t) => t.table === 'app.orders')).toMatchObject({ inserted: 0, changed: 0, deleted: 0 });
  expect(lines.join('\n')).toContain('RESULT: SUCCESS: the writes made after the restore time recorded for 1 database(s).');
  // No point-in-time copy any more: T is read on the recovered database as it is now, and the log warns what that means.
  expect(lines.join('\n')).toMatch(/ ! the point-in-time copy is gone: the state at T is read on .* as it is now/);
});
