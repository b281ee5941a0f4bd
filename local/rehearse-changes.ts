/**
 * `npx projen rehearse --changes`: the record of writes made after T (issue
 * #21) rehearsed as a person at 3 a.m. would use it, on the same route as
 * the plain rehearsal (by default `runner.js recover` against the RDS
 * stand-in and moto, two hosts, verify-full).
 *
 * The instance keeps commit timestamps (`track_commit_timestamp = on`, as a
 * DB parameter group would set it). In order: good writes before T; T; a bad
 * change (an UPDATE that zeroes the total of every paid order); more good
 * writes (inserts, updates and deletes in two tables joined by a foreign
 * key); the recovery to T with the record on (the default) and
 * AFTER = the bad change's commit time as PostgreSQL reports it; the record
 * (the runner's counts, checked against a count of its own from the rows);
 * the stored replay SQL fetched and run with psql as the master user; then
 * an independent check, by content (fingerprints), that the database equals
 * T's state plus exactly the good writes made after the bad change, and that
 * the bad change is not back.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pgBin, quoteIdent, quoteLiteral, sleep, type LocalCluster } from './cluster';
import { compareFingerprints, fingerprintDatabase, type SqlRunner } from './fingerprint';
import { keyedRows, type KeyedRows } from './rehearse-tables';
import type { StepLog } from '../buildspec/runner/log';
import { DELETES_SETTING, REPLAY_TABLE, SUMMARY_TABLE, changesSchemaName } from '../buildspec/runner/postgres/changes';
import { START_ENV } from '../src/contract';

const execFileAsync = promisify(execFile);

/** The database the expected result is built in (T's state plus the good writes made after the bad change). */
export const EXPECTED_DATABASE = 'changes_expected';
/** The tables of the scenario, parents first. */
export const CHANGES_TABLES = ['shop.customers', 'shop.orders'] as const;

/** The built-in dataset of `--changes`: customers and their orders, ids given by the application, owned by the master user. */
export const CHANGES_SEED_SQL = `
\\set ON_ERROR_STOP on
DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT rolname FROM pg_roles WHERE rolcreaterole AND rolcanlogin AND NOT rolsuper LOOP EXECUTE format('SET ROLE %I', r.rolname); END LOOP;
END $$;
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id bigint PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE shop.orders (
  id bigint PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES shop.customers (id),
  status text NOT NULL,
  total numeric(12, 2) NOT NULL,
  placed_at timestamptz NOT NULL);
CREATE INDEX orders_customer ON shop.orders (customer_id);
INSERT INTO shop.customers SELECT g, 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 1000) g;
INSERT INTO shop.orders
  SELECT g, 1 + g % 1000, (ARRAY['new', 'paid', 'shipped'])[1 + g % 3], (g % 997) + 0.99, timestamptz '2026-01-01' + g * interval '1 minute'
    FROM generate_series(1, 10000) g;
`;

/** Before T: the application at work. Part of the state at T. */
export const GOOD_BEFORE_T_SQL = `
INSERT INTO shop.customers VALUES (1001, 'customer 1001', 'c1001@example.com'), (1002, 'customer 1002', 'c1002@example.com');
INSERT INTO shop.orders VALUES (10001, 1001, 'shipped', 10.00, '2026-02-01T00:00:00Z'), (10002, 1002, 'shipped', 20.00, '2026-02-01T00:00:00Z');
UPDATE shop.customers SET email = 'new-' || email WHERE id IN (1, 2, 3);
DELETE FROM shop.orders WHERE id IN (9999, 10000);`;

/** After T: the bad change, a migration that zeroes the total of every paid order. */
export const BAD_CHANGE_SQL = 'UPDATE shop.orders SET total = 0 WHERE status = \'paid\';';

/**
 * After the bad change: good writes a recovery to T takes back. A new customer's orders need the customer first; the
 * closed account's orders go before it. Updates touch rows the bad change did not.
 */
export const GOOD_AFTER_SQL = `
INSERT INTO shop.customers VALUES (2001, 'customer 2001', 'c2001@example.com'), (2002, 'customer 2002', 'c2002@example.com'), (2003, 'customer 2003', NULL);
INSERT INTO shop.orders VALUES (20001, 2001, 'new', 5.00, '2026-03-01T09:00:00Z'), (20002, 2001, 'new', 6.00, '2026-03-01T09:01:00Z'),
  (20003, 2002, 'new', 7.00, '2026-03-01T09:02:00Z'), (20004, 2002, 'paid', 8.00, '2026-03-01T09:03:00Z'),
  (20005, 2003, 'new', 9.00, '2026-03-01T09:04:00Z'), (20006, 2003, 'paid', 10.00, '2026-03-01T09:05:00Z');
UPDATE shop.customers SET email = 'moved-' || email WHERE id BETWEEN 10 AND 14;
UPDATE shop.orders SET status = 'shipped' WHERE id IN (3, 9, 12, 15);
DELETE FROM shop.orders WHERE customer_id = 7;
DELETE FROM shop.customers WHERE id = 7;`;

type ChangesRecoverResult = { readonly ok: true; readonly stamp: string } | { readonly ok: false; readonly why: string };

/** The part of the rehearsal's rig this needs. */
export interface ChangesRig {
  readonly source: LocalCluster;
  rotatePassword(password: string): Promise<void>;
  recover(start: Readonly<Record<string, string>>, password: string, signal?: AbortSignal): Promise<ChangesRecoverResult>;
}

export interface ChangesRehearsalResult {
  readonly outcome: 'passed' | 'recovery-failed' | 'mismatch';
  readonly stamp?: string;
}

/** Runs `sql` in `database` as `role` (the master user, which owns the tables), as the application would. */
async function asApp(cluster: LocalCluster, role: string, database: string, sql: string): Promise<void> {
  await cluster.sql(`SET ROLE ${quoteIdent(role)};\n${sql}`, database);
}

function showSql(log: StepLog, sql: string): void {
  for (const line of sql.trim().split('\n')) log.info(`    ${line}`);
}

export async function rehearseChanges(options: {
  readonly rig: ChangesRig;
  readonly log: StepLog;
  readonly masterUser: string;
  readonly sourceId: string;
  readonly database: string;
  readonly scratch: string;
  readonly keep: boolean;
  /** Every database's fingerprint (the rehearsal's own). */
  readonly fingerprintAll: () => Promise<Map<string, string[]>>;
  /** The plain rehearsal's check: every database equals its state at T, each pre-recovery copy holds the damaged data. */
  readonly compareWithT: (atT: Map<string, string[]>, damaged: Map<string, string[]>, stamp: string) => Promise<string[]>;
  /** Test only: AFTER for the recovery instead of the bad change's commit time (e.g. T, which lets the bad change back in). */
  readonly afterOverride?: (times: { restoreTime: Date; badCommit: string }) => string;
  readonly signal?: AbortSignal;
}): Promise<ChangesRehearsalResult> {
  const { rig, log, database, masterUser } = options;
  const src = rig.source;
  const commitTimes = await src.sql('SHOW track_commit_timestamp');
  log.info(`the instance keeps commit timestamps: track_commit_timestamp = ${commitTimes} (as with track_commit_timestamp = 1 in an RDS DB parameter group)`);

  await log.step('Rehearsal: good writes before T (part of the state at T)', async () => {
    showSql(log, GOOD_BEFORE_T_SQL);
    await asApp(src, masterUser, database, GOOD_BEFORE_T_SQL);
  });
  const readRows = async (): Promise<Map<string, KeyedRows | undefined>> =>
    new Map(await Promise.all(CHANGES_TABLES.map(async (t) => [t, await keyedRows(src, database, t)] as const)));
  const rowsAtT = await readRows();
  const atT = await log.step('Rehearsal: record the restore time T and fingerprint every database', async () => {
    const fingerprints = await options.fingerprintAll();
    await sleep(20);
    const restoreTime = new Date();
    await sleep(20);
    log.info(`T = ${restoreTime.toISOString()}; databases at T: ${[...fingerprints.keys()].join(', ')}`);
    return { restoreTime, fingerprints };
  });

  const badCommit = await log.step('Rehearsal: the bad change, after T', async () => {
    showSql(log, BAD_CHANGE_SQL);
    await asApp(src, masterUser, database, BAD_CHANGE_SQL);
    // As a person would find its time: the commit time PostgreSQL keeps for the rows it wrote (microseconds).
    const [count, committed] = (await src.sql('SELECT count(*) || \'|\' || (to_json(max(pg_xact_commit_timestamp(xmin)))#>>\'{}\') FROM shop.orders WHERE total = 0', database)).split('|');
    log.info(`the bad change zeroed ${count} paid orders; it committed at ${committed} (pg_xact_commit_timestamp of the rows it wrote)`);
    return committed;
  });
  await sleep(20);
  const damaged = await log.step('Rehearsal: good writes after the bad change (a recovery to T takes them back too); then rotate the master password', async () => {
    showSql(log, GOOD_AFTER_SQL);
    await asApp(src, masterUser, database, GOOD_AFTER_SQL);
    const committed = await src.sql('SELECT to_json(pg_xact_commit_timestamp(xmin))#>>\'{}\' FROM shop.customers WHERE id = 2001', database);
    log.info(`the good writes committed at ${committed}, after the bad change`);
    const rotated = randomBytes(18).toString('base64url');
    log.redact(rotated);
    await rig.rotatePassword(rotated);
    return { password: rotated, fingerprints: await options.fingerprintAll(), rows: await readRows() };
  });

  const after = options.afterOverride?.({ restoreTime: atT.restoreTime, badCommit }) ?? badCommit;
  const start: Record<string, string> = {
    [START_ENV.RESTORE_TIME]: atT.restoreTime.toISOString(),
    [START_ENV.CONFIRM]: options.sourceId,
    [START_ENV.STRATEGY]: 'swap',
    // No CHANGES: the record is on by default. AFTER: the time of the bad change, so the replay leaves it out.
    [START_ENV.AFTER]: after,
  };
  log.info(`---- the recovery to T, as on AWS (${START_ENV.RESTORE_TIME}=${start[START_ENV.RESTORE_TIME]}, ${START_ENV.AFTER}=${after}; the record of writes after T is on by default) ----`);
  const run = await rig.recover(start, damaged.password, options.signal);
  if (!run.ok) {
    log.warn(`REHEARSAL FAILED: the recovery did not complete: ${options.signal?.aborted ? (options.signal.reason as Error).message : run.why}`);
    return { outcome: 'recovery-failed' };
  }
  const stamp = run.stamp;
  const schema = changesSchemaName(stamp);

  log.info('---- independent check: the recovery brought back the state at T ----');
  const problems = await log.step('Rehearsal: compare every database with its state at T', () => options.compareWithT(atT.fingerprints, damaged.fingerprints, stamp));
  if (problems.length > 0) {
    log.warn(`REHEARSAL FAILED: the runbook reported success, but the result is not the state at T:\n${problems.join('\n')}`);
    return { outcome: 'mismatch', stamp };
  }

  log.info(`---- the record of writes made after T, as the runner left it in schema ${schema} of ${JSON.stringify(database)} ----`);
  const recordProblems = await log.step('Rehearsal: read the record, count the writes independently', async () => {
    const found: string[] = [];
    const summary = JSON.parse(await src.sql(`SELECT coalesce(json_agg(s ORDER BY table_name), '[]') FROM ${quoteIdent(schema)}.${quoteIdent(SUMMARY_TABLE)} s`, database)) as Array<{
      table_name: string; status: string; kept_in: string | null; inserted_after_t: number; changed_after_t: number | null; deleted_after_t: number;
    }>;
    for (const table of CHANGES_TABLES) {
      const entry = summary.find((s) => s.table_name === table);
      if (!entry) {
        found.push(`${table}: no row in ${schema}.${SUMMARY_TABLE}`);
        continue;
      }
      const [before, now] = [rowsAtT.get(table)!, damaged.rows.get(table)!];
      const expected = {
        inserted: [...now.rows.keys()].filter((k) => !before.rows.has(k)).length,
        changed: [...before.rows].filter(([k, row]) => now.rows.has(k) && now.rows.get(k) !== row).length,
        deleted: [...before.rows.keys()].filter((k) => !now.rows.has(k)).length,
      };
      const reported = { inserted: Number(entry.inserted_after_t), changed: Number(entry.changed_after_t), deleted: Number(entry.deleted_after_t) };
      log.info(`  ${table}: ${reported.inserted} inserted, ${reported.changed} changed, ${reported.deleted} deleted since T; rows in ${entry.kept_in}`);
      if (JSON.stringify(expected) !== JSON.stringify(reported)) found.push(`${table}: the record says ${JSON.stringify(reported)}, the rows at T and before the recovery say ${JSON.stringify(expected)}`);
      const [untimed, until, later] = (await src.sql(`SELECT count(*) FILTER (WHERE pitr_committed_at IS NULL) || '|' || count(*) FILTER (WHERE pitr_committed_at <= ${quoteLiteral(after)})
        || '|' || count(*) FILTER (WHERE pitr_committed_at > ${quoteLiteral(after)}) FROM ${entry.kept_in} WHERE pitr_change <> 'deleted'`, database)).split('|');
      log.info(`    of its ${Number(until) + Number(later)} inserted and changed rows, ${until} committed by the bad change's time (left out by AFTER), ${later} after it; `
        + `${reported.deleted} deletions carry no commit time`);
      if (untimed !== '0') found.push(`${table}: ${untimed} kept rows have no commit time, although track_commit_timestamp is on`);
    }
    if (found.length === 0) log.info('  the counts match a count of the rows at T and before the recovery, made here; every kept row carries its commit time');
    return found;
  });
  if (recordProblems.length > 0) {
    log.warn(`REHEARSAL FAILED: the record of writes after T is wrong:\n${recordProblems.join('\n')}`);
    return { outcome: 'mismatch', stamp };
  }

  await log.step(`Rehearsal: build the expected result in database ${EXPECTED_DATABASE}: T's state plus the good writes made after the bad change`, async () => {
    // The recovered database is T's state (checked above); the good writes are applied to a copy of it.
    await src.sql(`CREATE DATABASE ${quoteIdent(EXPECTED_DATABASE)} TEMPLATE ${quoteIdent(database)} OWNER ${quoteIdent(masterUser)}`);
    await src.sql(`DROP SCHEMA ${quoteIdent(schema)} CASCADE`, EXPECTED_DATABASE);
    await asApp(src, masterUser, EXPECTED_DATABASE, GOOD_AFTER_SQL);
  });

  log.info('---- the replay of the writes after the bad change, as a person would run it: psql as the master user ----');
  const replayFile = join(options.scratch, 'replay.sql');
  const replayed = await log.step('Rehearsal: fetch the stored replay SQL and run it as the master user', async () => {
    const master = { cluster: src, database, user: masterUser, password: damaged.password };
    const query = `SELECT sql FROM ${quoteIdent(schema)}.${REPLAY_TABLE}`;
    log.info(`  psql -d ${database} -Atc '${query}' -o replay.sql`);
    await psqlAs(master, ['-Atc', query, '-o', replayFile]);
    const bound = readFileSync(replayFile, 'utf8').split('\n').find((l) => l.startsWith('SET pitr.after'));
    log.info(`  replay.sql bounds itself (from AFTER): ${bound ?? '(no bound: AFTER was not taken)'}`);
    // The bad change deleted nothing, so every deletion after T is a good write: replay them too.
    log.info(`  psql -d ${database} -v ON_ERROR_STOP=1 -c "SET ${DELETES_SETTING} = 'on'" -f replay.sql   (the bad change deleted nothing, so every deletion after T is replayed)`);
    const output = await psqlAs(master, ['-v', 'ON_ERROR_STOP=1', '-c', `SET ${DELETES_SETTING} = 'on'`, '-f', replayFile]);
    // psql's command tags, the session settings aside: how many rows each statement of the replay wrote.
    for (const line of output.trim().split('\n').filter((l) => l !== 'SET')) log.info(`    ${line}`);
  }).then(() => true, (err: Error) => {
    log.warn(`the replay SQL failed: ${err.message}`);
    return false;
  });
  if (!replayed) {
    log.warn('REHEARSAL FAILED: the stored replay SQL did not run as the master user (its error is above).');
    return { outcome: 'mismatch', stamp };
  }

  log.info('---- independent check: T\'s state plus exactly the good writes made after the bad change, by content ----');
  const found = await log.step(`Rehearsal: compare ${JSON.stringify(database)} with ${EXPECTED_DATABASE}`, () => checkReplayResult(src, database, stamp, log));
  if (!options.keep) await src.sql(`DROP DATABASE ${quoteIdent(EXPECTED_DATABASE)}`);
  else log.info(`--keep: ${EXPECTED_DATABASE} (the expected result) is kept beside ${database}`);
  if (found.length > 0) {
    log.warn(`REHEARSAL FAILED: after the replay, ${JSON.stringify(database)} is not T's state plus exactly the good writes made after the bad change:\n${found.join('\n')}`);
    return { outcome: 'mismatch', stamp };
  }
  log.info(`REHEARSAL PASSED: recovered to T ${atT.restoreTime.toISOString()}; the record counted the writes made after T; its replay, bounded by AFTER=${after}, `
    + 'brought back exactly the good writes made after the bad change (inserts, updates, deletes, in foreign-key order) and not the bad change.');
  return { outcome: 'passed', stamp };
}

/**
 * The check after the replay, by content and independent of the runner: `database` (without the record's schema)
 * has the same fingerprint as EXPECTED_DATABASE, and no order has the bad change's zero total. Empty when it holds.
 */
export async function checkReplayResult(cluster: SqlRunner, database: string, stamp: string, log?: StepLog): Promise<string[]> {
  const found: string[] = [];
  const schema = changesSchemaName(stamp);
  const now = (await fingerprintDatabase(cluster, database)).filter((fact) => !fact.includes(` ${schema}`));
  const expected = await fingerprintDatabase(cluster, EXPECTED_DATABASE);
  const diff = compareFingerprints(expected, now);
  if (diff.missing.length + diff.unexpected.length > 0) {
    found.push(`${database} differs from ${EXPECTED_DATABASE}:\n${[...diff.missing.map((l) => `    - expected, not there: ${l}`), ...diff.unexpected.map((l) => `    + there, not expected: ${l}`)].join('\n')}`);
  } else {
    log?.info(`  ${database}: identical to ${EXPECTED_DATABASE} (${expected.length} facts: every table's rows and checksum, objects, privileges)`);
  }
  const zeroed = await cluster.sql('SELECT count(*) FROM shop.orders WHERE total = 0', database);
  if (zeroed !== '0') found.push(`the bad change was replayed: ${zeroed} orders have a total of 0 again`);
  else log?.info('  the bad change is not back: no order has a total of 0');
  for (const table of CHANGES_TABLES) {
    const counts = await cluster.sql(`SELECT count(*) FROM ${table}`, database);
    log?.info(`  ${table}: ${counts} rows`);
  }
  return found;
}

/** psql as `user` (password in the environment), TLS as the cluster serves it; returns its output. */
async function psqlAs(target: { cluster: LocalCluster; database: string; user: string; password: string }, args: string[]): Promise<string> {
  const { sslMode, sslRootCert } = target.cluster.sslOptions;
  const { stdout, stderr } = await execFileAsync(pgBin('psql'), ['-X', '-d', target.cluster.uri(target.database, target.user), ...args], {
    env: { ...process.env, PGPASSWORD: target.password, PGSSLMODE: sslMode, ...(sslRootCert ? { PGSSLROOTCERT: sslRootCert } : {}) },
  });
  return `${stdout}${stderr}`;
}
