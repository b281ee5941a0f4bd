/**
 * Writes made after the restore time (issue #21): after a whole-database
 * recovery with `swap`, the recovered database (its state at T) is compared
 * with the pre-recovery database `<db>__before_pitr_<stamp>` (its state when
 * the recovery started), and the difference is kept in a schema
 * `pitr_<stamp>_after` of the recovered database, with SQL that replays it.
 * The runner never executes that SQL. Nothing is written to the pre-recovery
 * database: it is only read, in one read-only snapshot.
 *
 * PostgreSQL cannot join across databases, so what is needed is brought over
 * in two passes on two connections:
 * 1. per keyed table, the key and an md5 of the row text of every row of the
 *    pre-recovery table stream (COPY TO STDOUT -> COPY FROM STDIN) into a
 *    temporary table of the recovered database; SQL there pairs them with the
 *    rows at T by key: inserted, changed, deleted;
 * 2. only the inserted and changed rows are then read in full from the
 *    pre-recovery table (keys passed as JSON), with their commit time when
 *    `track_commit_timestamp` is on, into `pitr_<stamp>_after.<table>`.
 * A keyless table is compared by content (EXCEPT ALL over the row text):
 * counts only, no replay SQL.
 *
 * Row text is compared under the runner's fixed session settings
 * (process.ts SESSION_SETTINGS); the replay SQL sets the same ones, so the
 * md5 it checks ("the row is still as at T") is computed the same way.
 */
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { derivedName, ident, literal, qualified } from './names';
import { SESSION_SETTINGS, connect } from './process';
import { rowKeyColumns } from './row-key';
import { formatTableName } from '../../../src/contract';
import type { StepLog } from '../log';
import type { PgTarget } from '../ports';

/** The summary table in `pitr_<stamp>_after`. */
export const SUMMARY_TABLE = 'summary';
/** The replay script in `pitr_<stamp>_after`. */
export const REPLAY_TABLE = 'replay_sql';
/** The setting the replay SQL reads for the AFTER bound: `SET pitr.after = '<time>'` before running it. */
export const AFTER_SETTING = 'pitr.after';
/**
 * Deletions have no commit time, so `pitr.after` skips them; `SET pitr.deletes = 'on'` replays them too (every
 * deletion made after T), for when the bad change deleted nothing.
 */
export const DELETES_SETTING = 'pitr.deletes';
/** Keys passed to the pre-recovery database per query when fetching the post-T rows. */
const FETCH_BATCH = 5_000;
/** Log lines of the replay SQL shown in the build log; the whole script is in the schema. */
const LOG_REPLAY_LINES = 40;

/**
 * The record's cost as a share of the copy's time, from `npx projen bench --changes` (bench/results/*-changes.md):
 * both read every row once per side, the record hashes instead of writing.
 */
export const CHANGES_COST_OF_COPY = 0.5;

/** Estimated seconds of the record of writes made after T for a copy of `copySeconds` (the drill's evidence). */
export function changesRecordSeconds(copySeconds: number): number {
  return copySeconds * CHANGES_COST_OF_COPY;
}

/** `pitr_<stamp>_after`: where the record of writes made after T is kept in the recovered database. */
export function changesSchemaName(stamp: string): string {
  return `pitr_${stamp}_after`;
}

export interface ChangesOptions {
  /** The recovered database (its content is the state at T). */
  readonly database: string;
  /** The pre-recovery database kept by the swap (`<db>__before_pitr_<stamp>`). */
  readonly keptAs: string;
  readonly stamp: string;
  readonly log: StepLog;
  /** AFTER: when set, the replay SQL starts with `SET pitr.after = ...` and replays only what committed after it. */
  readonly after?: Date;
  /** Tables compared at a time (two sessions each). @default CHANGES_JOBS */
  readonly jobs?: number;
}

/** Tables compared at a time by default: the comparison runs after the swap, beside the application's own load. */
export const CHANGES_JOBS = 2;

/** One table's writes since T. */
export interface TableWrites {
  /** `schema.table` as SQL writes it. */
  readonly table: string;
  readonly status: 'compared' | 'created after T' | 'dropped after T';
  /** Where its post-T rows are kept (`pitr_<stamp>_after.<name>`), when it has a key. */
  readonly keptIn?: string;
  readonly key?: readonly string[];
  readonly inserted: number;
  readonly changed?: number;
  readonly deleted: number;
  readonly notes: readonly string[];
}

export interface SequenceMove {
  readonly sequence: string;
  readonly atT: string;
  readonly now: string;
  readonly setval: string;
}

export interface ChangesRecord {
  readonly database: string;
  readonly keptAs: string;
  readonly schema: string;
  readonly tables: readonly TableWrites[];
  readonly sequences: readonly SequenceMove[];
  /** True when each kept row carries its commit time (track_commit_timestamp was on). */
  readonly commitTimes: boolean;
  readonly replaySql: string;
  readonly ms: number;
}

interface Column {
  readonly name: string;
  readonly type: string;
  readonly generated: boolean;
  readonly identityAlways: boolean;
  readonly notNull: boolean;
}

interface Table {
  readonly oid: number;
  readonly schema: string;
  readonly name: string;
  readonly owner: string;
}

const USER_TABLES = `
  SELECT c.oid::int AS oid, n.nspname AS schema, c.relname AS name, pg_get_userbyid(c.relowner) AS owner
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE c.relkind = 'r' AND c.relpersistence = 'p' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pitr\\_%'
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
   ORDER BY 2, 3`;

async function tablesOf(client: Client): Promise<Table[]> {
  return (await client.query<Table>(USER_TABLES)).rows;
}

async function columnsOf(client: Client, oid: number): Promise<Column[]> {
  const { rows } = await client.query<{ name: string; type: string; generated: string; identity: string; notnull: boolean }>(`
    SELECT attname AS name, format_type(atttypid, atttypmod) AS type, attgenerated::text AS generated, attidentity::text AS identity, attnotnull AS notnull
      FROM pg_attribute WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, [oid]);
  return rows.map((r) => ({ name: r.name, type: r.type, generated: r.generated !== '', identityAlways: r.identity === 'a', notNull: r.notnull }));
}

/** Foreign-key edges among the tables: child oid -> parent oids. */
async function foreignKeys(client: Client): Promise<Array<{ child: number; parent: number }>> {
  const { rows } = await client.query<{ child: number; parent: number }>(
    "SELECT conrelid::int AS child, confrelid::int AS parent FROM pg_constraint WHERE contype = 'f' AND conrelid <> confrelid");
  return rows;
}

/** Parents before children (cycles broken by name order), so inserts and updates see their parents; deletes run the other way. */
export function foreignKeyOrder<T extends { readonly oid: number }>(
  tables: readonly T[], edges: ReadonlyArray<{ child: number; parent: number }>,
): T[] {
  const out: T[] = [];
  const done = new Set<number>();
  const visiting = new Set<number>();
  const byOid = new Map(tables.map((t) => [t.oid, t]));
  const visit = (t: T): void => {
    if (done.has(t.oid) || visiting.has(t.oid)) return;
    visiting.add(t.oid);
    for (const e of edges) {
      const parent = e.child === t.oid ? byOid.get(e.parent) : undefined;
      if (parent) visit(parent);
    }
    visiting.delete(t.oid);
    done.add(t.oid);
    out.push(t);
  };
  tables.forEach(visit);
  return out;
}

/** The `SET` lines the replay SQL starts with: the settings under which the runner computed each row's md5. */
export function replaySettings(): string[] {
  return ['DateStyle', 'IntervalStyle', 'extra_float_digits', 'TimeZone', 'bytea_output', 'xmloption', 'lc_monetary']
    .map((name) => `SET ${name} = ${literal(SESSION_SETTINGS[name])};`);
}

const rowText = (alias: string, cols: readonly string[]): string => `md5(ROW(${cols.map((c) => `${alias}.${ident(c)}`).join(', ')})::text)`;

/**
 * Compares `database` (at T) with `keptAs` (before the recovery) on `target`
 * and writes the record into `pitr_<stamp>_after` of `database`.
 */
export async function recordChanges(target: PgTarget, options: ChangesOptions): Promise<ChangesRecord> {
  const started = Date.now();
  const { database, keptAs, stamp, log } = options;
  const schema = changesSchemaName(stamp);
  const before = await connect(target, keptAs);
  let now: Client | undefined;
  try {
    now = await connect(target, database);
    const exists = await now.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (exists.rowCount) throw new Error(`schema ${ident(schema)} already exists in ${JSON.stringify(database)}: the record of this run was already written. Drop it first (DROP SCHEMA ${ident(schema)} CASCADE) to write it again.`);
    // One snapshot of the pre-recovery database for every read: nothing is written there.
    await before.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const commitTimes = (await before.query<{ on: string }>("SELECT current_setting('track_commit_timestamp') AS on")).rows[0].on === 'on';
    const [beforeTables, atTTables] = [await tablesOf(before), await tablesOf(now)];
    await now.query(`CREATE SCHEMA ${ident(schema)}`);
    await now.query(`COMMENT ON SCHEMA ${ident(schema)} IS ${literal(`cdk-rds-pitr: writes made after the restore time, taken from ${keptAs}. The replay SQL in ${REPLAY_TABLE} was never executed.`)}`);
    const key = (t: { schema: string; name: string }): string => `${t.schema}\u0000${t.name}`;
    const beforeByName = new Map(beforeTables.map((t) => [key(t), t]));
    const atTByName = new Map(atTTables.map((t) => [key(t), t]));
    const names = keptNames(atTTables);
    const results: Array<TableWrites & { replay?: TableReplay }> = [];
    // Tables are compared JOBS at a time, each worker on its own pair of sessions; the pre-recovery side shares one snapshot.
    const snapshot = (await before.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0].s;
    const slots: Array<TableWrites & { replay?: TableReplay }> = new Array(atTTables.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      const wBefore = await connect(target, keptAs);
      let wNow: Client | undefined;
      try {
        wNow = await connect(target, database);
        await wBefore.query(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${literal(snapshot)}`);
        for (let i = next++; i < atTTables.length; i = next++) {
          const t = atTTables[i];
          const b = beforeByName.get(key(t));
          if (!b) {
            const rows = Number((await wNow.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${qualified(t.schema, t.name)}`)).rows[0].n);
            slots[i] = {
              table: formatTableName({ schema: t.schema, table: t.name }),
              status: 'dropped after T',
              inserted: 0,
              deleted: rows,
              notes: [`the table existed at T and not before the recovery: dropped or renamed after T (its ${rows} rows at T are back; nothing to replay).`],
            };
          } else {
            slots[i] = await compareTable(wBefore, wNow, t, b, schema, names[i], commitTimes);
          }
          log.info(describeTable(slots[i]));
        }
        await wBefore.query('COMMIT');
      } finally {
        await wBefore.end().catch(() => undefined);
        await wNow?.end().catch(() => undefined);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(options.jobs ?? CHANGES_JOBS, atTTables.length)) }, worker));
    results.push(...slots);
    for (const b of beforeTables.filter((x) => !atTByName.has(key(x)))) {
      const rows = Number((await before.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${qualified(b.schema, b.name)}`)).rows[0].n);
      results.push({
        table: formatTableName({ schema: b.schema, table: b.name }),
        status: 'created after T',
        inserted: rows,
        deleted: 0,
        notes: [`created after T (or renamed): not in the recovered database; its ${rows} rows are in ${keptAs} only. To bring it back whole: pg_dump -t ${qualified(b.schema, b.name)} from ${keptAs} and restore it.`],
      });
      log.info(describeTable(results[results.length - 1]));
    }
    const sequences = await sequenceMoves(before, now);
    await before.query('COMMIT');
    for (const s of sequences) log.info(`sequence ${s.sequence}: ${s.atT} at T, ${s.now} before the recovery`);

    const edges = await foreignKeys(now);
    const replaySql = replayScript({ database, keptAs, schema, stamp, commitTimes, after: options.after }, foreignKeyOrder(
      results.map((r, i) => ({ ...r, oid: atTTables[i]?.oid ?? -1 - i })), edges), sequences);
    await writeSummary(now, schema, results, sequences, replaySql);
    const tables = results.map(({ replay: _, ...r }) => r);
    const record: ChangesRecord = { database, keptAs, schema, tables, sequences, commitTimes, replaySql, ms: Date.now() - started };
    for (const line of describeRecord(record)) log.info(line);
    return record;
  } catch (err) {
    await before.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await before.end().catch(() => undefined);
    await now?.end().catch(() => undefined);
  }
}

/** Each table's name in `pitr_<stamp>_after`: `<schema>__<table>`, cut and made unique within 63 bytes. */
function keptNames(tables: readonly Table[]): string[] {
  const taken = new Set<string>([SUMMARY_TABLE, REPLAY_TABLE]);
  return tables.map((t) => {
    const base = `${t.schema}__${t.name}`;
    let name = derivedName(base, '');
    for (let i = 2; taken.has(name); i++) name = derivedName(base, `_${i}`);
    taken.add(name);
    return name;
  });
}

interface TableReplay {
  readonly live: string;
  readonly kept: string;
  readonly owner: string;
  readonly key: readonly string[];
  /** Columns written by INSERT (at T and before the recovery, not generated now). */
  readonly insertColumns: readonly string[];
  /** Columns written by UPDATE (as insertColumns, minus the key and GENERATED ALWAYS identities). */
  readonly updateColumns: readonly string[];
  /** Columns the md5 of "the row as at T" covers. */
  readonly hashColumns: readonly string[];
  readonly overriding: boolean;
  readonly triggers: readonly string[];
}

async function compareTable(
  before: Client, now: Client, t: Table, b: Table, schema: string, keptName: string, commitTimes: boolean,
): Promise<TableWrites & { replay?: TableReplay }> {
  const table = formatTableName({ schema: t.schema, table: t.name });
  const live = qualified(t.schema, t.name);
  const [atTCols, beforeCols] = [await columnsOf(now, t.oid), await columnsOf(before, b.oid)];
  const beforeByName = new Map(beforeCols.map((c) => [c.name, c]));
  const common = atTCols.filter((c) => beforeByName.has(c.name)).map((c) => c.name);
  const notes: string[] = [];
  const onlyAtT = atTCols.filter((c) => !beforeByName.has(c.name)).map((c) => ident(c.name));
  const onlyBefore = beforeCols.filter((c) => !atTCols.some((a) => a.name === c.name)).map((c) => ident(c.name));
  if (onlyAtT.length > 0) notes.push(`columns dropped after T (left out of the comparison and the replay): ${onlyAtT.join(', ')}.`);
  if (onlyBefore.length > 0) notes.push(`columns added after T (kept with the rows, left out of the replay, which gives them their defaults): ${onlyBefore.join(', ')}.`);
  const key = await rowKeyColumns(now, t.oid);
  await now.query('DROP TABLE IF EXISTS pg_temp.pitr_stage');
  if (!key || !key.every((k) => beforeByName.has(k))) {
    notes.push(key
      ? `the key (${key.map(ident).join(', ')}) is not in the table before the recovery: rows cannot be paired; counts by content only, no replay SQL.`
      : 'no primary key or unique key over NOT NULL columns: rows cannot be paired, so "changed" cannot be told from "deleted and inserted"; counts by content only, no replay SQL.');
    await now.query('CREATE TEMP TABLE pitr_stage (r text)');
    await stream(before, now, `COPY (SELECT ROW(${common.map((c) => `x.${ident(c)}`).join(', ')})::text FROM ONLY ${qualified(b.schema, b.name)} x) TO STDOUT`, 'COPY pg_temp.pitr_stage (r) FROM STDIN');
    const rowsNow = `SELECT ROW(${common.map((c) => `x.${ident(c)}`).join(', ')})::text FROM ONLY ${live} x`;
    const count = async (sql: string): Promise<number> => Number((await now.query<{ n: string }>(`SELECT count(*) AS n FROM (${sql}) d`)).rows[0].n);
    const inserted = await count(`SELECT r FROM pg_temp.pitr_stage EXCEPT ALL ${rowsNow}`);
    const deleted = await count(`${rowsNow} EXCEPT ALL SELECT r FROM pg_temp.pitr_stage`);
    await now.query('DROP TABLE pg_temp.pitr_stage');
    return { table, status: 'compared', inserted, deleted, notes };
  }

  // Pass 1: key + a hash of every row before the recovery: the types' own 64-bit hash where every column has one that
  // does not depend on OIDs (4x cheaper than text + md5), else an md5 of the row text.
  const keyCols = key.map((k) => beforeByName.get(k)!);
  const fastHash = await hashableByValue(before, b.oid, common);
  const rowHash = (alias: string): string => (fastHash
    ? `hash_record_extended(ROW(${common.map((c) => `${alias}.${ident(c)}`).join(', ')}), 0)` : rowText(alias, common));
  // Binary COPY when hashing by value (the key and the hash cross without text conversion).
  const format = fastHash ? ' (FORMAT binary)' : '';
  await now.query(`CREATE TEMP TABLE pitr_stage (${keyCols.map((c) => `${ident(c.name)} ${c.type}`).join(', ')}, pitr_h ${fastHash ? 'bigint' : 'text'})`);
  await stream(before, now,
    `COPY (SELECT ${key.map((k) => `x.${ident(k)}`).join(', ')}, ${rowHash('x')} FROM ONLY ${qualified(b.schema, b.name)} x) TO STDOUT${format}`,
    `COPY pg_temp.pitr_stage (${key.map(ident).join(', ')}, pitr_h) FROM STDIN${format}`);
  await now.query('ANALYZE pg_temp.pitr_stage');
  const match = (a: string, c: string): string => key.map((k) => `${a}.${ident(k)} = ${c}.${ident(k)}`).join(' AND ');
  await now.query('DROP TABLE IF EXISTS pg_temp.pitr_want');
  // One full join: only before (inserted after T), only at T (deleted after T), both with another hash (changed).
  await now.query(`CREATE TEMP TABLE pitr_want AS
    SELECT CASE WHEN s.pitr_h IS NULL THEN 'deleted' WHEN r.ctid IS NULL THEN 'inserted' ELSE 'changed' END AS pitr_change,
           ${key.map((k) => `coalesce(s.${ident(k)}, r.${ident(k)}) AS ${ident(k)}`).join(', ')},
           CASE WHEN r.ctid IS NULL THEN NULL ELSE ${rowText('r', common)} END AS pitr_row_at_t
      FROM pg_temp.pitr_stage s FULL JOIN ONLY ${live} r ON ${match('r', 's')}
     WHERE s.pitr_h IS NULL OR r.ctid IS NULL OR s.pitr_h <> ${rowHash('r')}`);
  const counts = new Map((await now.query<{ c: string; n: string }>('SELECT pitr_change AS c, count(*) AS n FROM pg_temp.pitr_want GROUP BY 1')).rows.map((r) => [r.c, Number(r.n)]));
  const [inserted, changed, deleted] = ['inserted', 'changed', 'deleted'].map((c) => counts.get(c) ?? 0);

  // Pass 2: the full post-T rows of the inserted and changed keys, into pitr_<stamp>_after.<name>.
  const kept = qualified(schema, keptName);
  await now.query(`CREATE TABLE ${kept} (pitr_change text, pitr_committed_at timestamptz, pitr_row_at_t text, ${beforeCols.map((c) => `${ident(c.name)} ${c.type}`).join(', ')})`);
  await now.query(`COMMENT ON TABLE ${kept} IS ${literal(`cdk-rds-pitr: ${table} rows inserted or changed after T (their version before the recovery) and the keys of rows deleted after T; pitr_row_at_t is the md5 of the row at T.`)}`);
  const cols = beforeCols.map((c) => ident(c.name)).join(', ');
  const committed = commitTimes ? 'pg_xact_commit_timestamp(x.xmin)' : 'NULL::timestamptz';
  const keyJson = `json_build_object(${key.map((k) => `${literal(k)}, w.${ident(k)}`).join(', ')})`;
  for (let offset = 0; offset < inserted + changed; offset += FETCH_BATCH) {
    const { rows } = await now.query<{ j: string }>(`SELECT coalesce(json_agg(${keyJson}), '[]')::text AS j FROM (SELECT * FROM pg_temp.pitr_want w WHERE pitr_change <> 'deleted'
      ORDER BY ${key.map(ident).join(', ')} OFFSET ${offset} LIMIT ${FETCH_BATCH}) w`);
    await stream(before, now,
      `COPY (SELECT ${committed}, ${beforeCols.map((c) => `x.${ident(c.name)}`).join(', ')} FROM ONLY ${qualified(b.schema, b.name)} x
        WHERE (${key.map((k) => `x.${ident(k)}`).join(', ')}) IN (SELECT ${key.map((k) => `j.${ident(k)}`).join(', ')} FROM json_populate_recordset(NULL::${qualified(b.schema, b.name)}, ${literal(rows[0].j)}) j)) TO STDOUT`,
      `COPY ${kept} (pitr_committed_at, ${cols}) FROM STDIN`);
  }
  await now.query(`UPDATE ${kept} k SET pitr_change = w.pitr_change, pitr_row_at_t = w.pitr_row_at_t FROM pg_temp.pitr_want w WHERE ${match('k', 'w')}`);
  await now.query(`INSERT INTO ${kept} (pitr_change, pitr_row_at_t, ${key.map(ident).join(', ')}) SELECT pitr_change, pitr_row_at_t, ${key.map(ident).join(', ')} FROM pg_temp.pitr_want WHERE pitr_change = 'deleted'`);
  await now.query('DROP TABLE pg_temp.pitr_stage; DROP TABLE pg_temp.pitr_want');

  const atTByName = new Map(atTCols.map((c) => [c.name, c]));
  const insertColumns = common.filter((c) => !atTByName.get(c)!.generated);
  const generated = common.filter((c) => atTByName.get(c)!.generated);
  if (generated.length > 0) notes.push(`generated columns ${generated.map(ident).join(', ')} are computed by the table, not replayed.`);
  const identityAlways = insertColumns.filter((c) => atTByName.get(c)!.identityAlways);
  if (identityAlways.length > 0) notes.push(`identity columns ${identityAlways.map(ident).join(', ')} (GENERATED ALWAYS): the inserts use OVERRIDING SYSTEM VALUE; updates leave them.`);
  const triggers = (await now.query<{ name: string }>('SELECT tgname AS name FROM pg_trigger WHERE tgrelid = $1::oid AND NOT tgisinternal ORDER BY 1', [t.oid])).rows.map((r) => r.name);
  if (triggers.length > 0) notes.push(`the table has triggers (${triggers.map(ident).join(', ')}): the replay fires them, as any write would.`);
  return {
    table,
    status: 'compared',
    keptIn: formatTableName({ schema, table: keptName }),
    key,
    inserted,
    changed,
    deleted,
    notes,
    replay: {
      live,
      kept,
      owner: t.owner,
      key,
      insertColumns,
      hashColumns: common,
      overriding: identityAlways.length > 0,
      triggers,
      updateColumns: insertColumns.filter((c) => !key.includes(c) && !atTByName.get(c)!.identityAlways),
    },
  };
}

/**
 * True when every column's type (through domains and arrays) is a base type with a default hash operator class, so
 * hash_record_extended gives the same value for the same content in both databases. Enums, composites and ranges
 * are left out: an enum hashes by its label's OID, which a restore renumbers.
 */
async function hashableByValue(client: Client, oid: number, columns: readonly string[]): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(`
    WITH cols AS (
      SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END AS typ FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
       WHERE a.attrelid = $1::oid AND a.attname = ANY($2::text[])),
    base AS (SELECT CASE WHEN t.typcategory = 'A' AND t.typelem <> 0 THEN t.typelem ELSE t.oid END AS typ FROM cols JOIN pg_type t ON t.oid = cols.typ)
    SELECT coalesce(bool_and(t.typtype = 'b' AND EXISTS (
             SELECT 1 FROM pg_opclass oc JOIN pg_am am ON am.oid = oc.opcmethod WHERE am.amname = 'hash' AND oc.opcdefault AND oc.opcintype = t.oid)), false) AS ok
      FROM base JOIN pg_type t ON t.oid = base.typ`, [oid, columns]);
  return rows[0].ok;
}

/** COPY out of `from` into `to`, as the bytes flow. */
async function stream(from: Client, to: Client, out: string, into: string): Promise<number> {
  const reader = from.query(copyTo(out));
  const writer = to.query(copyFrom(into));
  await pipeline(reader, writer);
  return writer.rowCount ?? 0;
}

async function sequenceMoves(before: Client, now: Client): Promise<SequenceMove[]> {
  const sql = `SELECT format('%I.%I', schemaname, sequencename) AS name, last_value::text AS v FROM pg_sequences
                WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`;
  const atT = new Map((await now.query<{ name: string; v: string | null }>(sql)).rows.map((r) => [r.name, r.v]));
  const out: SequenceMove[] = [];
  for (const r of (await before.query<{ name: string; v: string | null }>(sql)).rows) {
    const at = atT.get(r.name);
    // Only sequences that moved past their value at T: one behind it (reset, or restarted lower) has nothing to replay.
    if (r.v === null || at === undefined || (at !== null && BigInt(r.v) <= BigInt(at))) continue;
    out.push({ sequence: r.name, atT: atT.get(r.name) ?? 'unused', now: r.v, setval: `SELECT setval(${literal(r.name)}, greatest(${r.v}, (SELECT last_value FROM ${r.name})));` });
  }
  return out;
}

interface ReplayContext {
  readonly database: string;
  readonly keptAs: string;
  readonly schema: string;
  readonly stamp: string;
  readonly commitTimes: boolean;
  readonly after?: Date;
}

const AFTER_UNSET = `nullif(current_setting(${literal(AFTER_SETTING)}, true), '') IS NULL`;
const DELETES_ON = `coalesce(current_setting(${literal(DELETES_SETTING)}, true), '') = 'on'`;

/** The replay script: inserts and updates parents first, deletes children first, sequences last. Never executed here. */
export function replayScript(
  ctx: ReplayContext, ordered: ReadonlyArray<TableWrites & { replay?: TableReplay }>, sequences: readonly SequenceMove[],
): string {
  const lines: string[] = [
    `-- cdk-rds-pitr: replay of the writes made after the restore time in ${JSON.stringify(ctx.database)} (run ${ctx.stamp}).`,
    `-- Taken from ${JSON.stringify(ctx.keptAs)}; the rows are in schema ${ident(ctx.schema)}. The runner never executed this.`,
    '-- Run it with psql as the master user (or a role with the privileges named per table), in the recovered database:',
    `--   psql -d ${JSON.stringify(ctx.database)} -v ON_ERROR_STOP=1 -f replay.sql`,
    '-- Inserts skip rows whose key exists; updates and deletes touch only rows still exactly as at T (md5 of the row text,',
    '-- under the settings below): a row written again since the recovery is left alone.',
    ctx.commitTimes
      ? `-- Bound by time: SET ${AFTER_SETTING} = '<ISO time>' replays only rows committed after it (deletes have no commit time and are skipped then;\n`
        + `-- if the bad change deleted nothing, SET ${DELETES_SETTING} = 'on' replays every deletion made after T as well).`
      : '-- track_commit_timestamp was off: no row has a commit time, so the replay cannot be bounded by time (README: "Writes made after the restore time").',
    ...replaySettings(),
    ...(ctx.after ? [`SET ${AFTER_SETTING} = ${literal(ctx.after.toISOString())};`] : []),
    'BEGIN;',
  ];
  const bound = `(${AFTER_UNSET} OR a.pitr_committed_at > coalesce(nullif(current_setting(${literal(AFTER_SETTING)}, true), ''), 'infinity')::timestamptz)`;
  const keyed = ordered.filter((t) => t.replay);
  for (const t of keyed) {
    const r = t.replay!;
    const match = r.key.map((k) => `l.${ident(k)} = a.${ident(k)}`).join(' AND ');
    const asAtT = `${rowText('l', r.hashColumns)} = a.pitr_row_at_t`;
    const role = `-- needs: INSERT, UPDATE, DELETE on ${r.live} (owner ${ident(r.owner)}; the master user if it is a member of ${ident(r.owner)} or was granted them)`;
    const trig = r.triggers.length > 0 ? [`-- fires triggers ${r.triggers.map(ident).join(', ')}`] : [];
    if (t.inserted > 0) {
      lines.push('', `-- ${t.table}: ${t.inserted} row(s) inserted after T`, role, ...trig,
        `INSERT INTO ${r.live} (${r.insertColumns.map(ident).join(', ')})${r.overriding ? ' OVERRIDING SYSTEM VALUE' : ''}`,
        `SELECT ${r.insertColumns.map((c) => `a.${ident(c)}`).join(', ')} FROM ${r.kept} a`,
        ` WHERE a.pitr_change = 'inserted' AND ${bound}`,
        `   AND NOT EXISTS (SELECT 1 FROM ${r.live} l WHERE ${match});`);
    }
    if ((t.changed ?? 0) > 0 && r.updateColumns.length > 0) {
      lines.push('', `-- ${t.table}: ${t.changed} row(s) changed after T: their later version, where the row is still as at T`, role, ...trig,
        `UPDATE ${r.live} l SET ${r.updateColumns.map((c) => `${ident(c)} = a.${ident(c)}`).join(', ')}`,
        `  FROM ${r.kept} a`,
        ` WHERE a.pitr_change = 'changed' AND ${match} AND ${asAtT} AND ${bound};`);
    }
  }
  for (const t of [...keyed].reverse()) {
    const r = t.replay!;
    if (t.deleted === 0) continue;
    const match = r.key.map((k) => `l.${ident(k)} = a.${ident(k)}`).join(' AND ');
    lines.push('', `-- ${t.table}: ${t.deleted} row(s) deleted after T, where the row is still as at T (skipped when ${AFTER_SETTING} is set, unless ${DELETES_SETTING} = 'on')`,
      `-- needs: DELETE on ${r.live} (owner ${ident(r.owner)})`,
      `DELETE FROM ${r.live} l USING ${r.kept} a`,
      ` WHERE a.pitr_change = 'deleted' AND ${match} AND ${rowText('l', r.hashColumns)} = a.pitr_row_at_t AND (${AFTER_UNSET} OR ${DELETES_ON});`);
  }
  for (const t of ordered.filter((x) => !x.replay && (x.inserted > 0 || (x.changed ?? 0) > 0 || x.deleted > 0))) {
    lines.push('', `-- ${t.table} (${t.status}): no replay SQL. ${t.notes.join(' ')}`);
  }
  if (sequences.length > 0) {
    lines.push('', '-- sequences that moved past their value at T (needs: UPDATE on the sequence, or its owner)');
    for (const s of sequences) lines.push(s.setval);
  }
  lines.push('COMMIT;');
  return lines.join('\n');
}

async function writeSummary(
  client: Client, schema: string, tables: readonly TableWrites[], sequences: readonly SequenceMove[], replaySql: string,
): Promise<void> {
  await client.query(`CREATE TABLE ${qualified(schema, SUMMARY_TABLE)} (
    table_name text NOT NULL, status text NOT NULL, kept_in text, key_columns text[], inserted_after_t bigint NOT NULL, changed_after_t bigint,
    deleted_after_t bigint NOT NULL, notes text)`);
  for (const t of tables) {
    await client.query(`INSERT INTO ${qualified(schema, SUMMARY_TABLE)} VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [t.table, t.status, t.keptIn ?? null, t.key ?? null, t.inserted, t.changed ?? null, t.deleted, t.notes.join(' ') || null]);
  }
  for (const s of sequences) {
    await client.query(`INSERT INTO ${qualified(schema, SUMMARY_TABLE)} VALUES ($1, 'sequence moved after T', NULL, NULL, 0, NULL, 0, $2)`,
      [s.sequence, `${s.atT} at T, ${s.now} before the recovery; replay: ${s.setval}`]);
  }
  await client.query(`CREATE TABLE ${qualified(schema, REPLAY_TABLE)} (sql text NOT NULL)`);
  await client.query(`INSERT INTO ${qualified(schema, REPLAY_TABLE)} VALUES ($1)`, [replaySql]);
}

function describeTable(t: TableWrites): string {
  if (t.status !== 'compared') return `${t.table}: ${t.status}; ${t.notes.join(' ')}`;
  return `${t.table}: since T ${t.inserted} inserted, ${t.changed === undefined ? 'changed unknown (no key)' : `${t.changed} changed`}, ${t.deleted} deleted`
    + `${t.key ? ` (rows paired by ${t.key.map(ident).join(', ')})` : ''}${t.notes.length > 0 ? `; ${t.notes.join(' ')}` : ''}`;
}

/** The log lines after the comparison: where everything is, the replay SQL cut to a readable length, and how to drop the schema. */
export function describeRecord(r: ChangesRecord): string[] {
  const touched = r.tables.filter((t) => t.status !== 'compared' || t.inserted + (t.changed ?? 0) + t.deleted > 0);
  const lines = [
    `writes made after T in ${JSON.stringify(r.database)}: ${touched.length} of ${r.tables.length} table(s) differ, ${r.sequences.length} sequence(s) moved; rows kept in schema ${ident(r.schema)} of ${JSON.stringify(r.database)} `
      + `(one table per source table, summary in ${qualified(r.schema, SUMMARY_TABLE)}); compared in ${(r.ms / 1000).toFixed(1)} s`,
    r.commitTimes
      ? `each kept row carries its commit time (track_commit_timestamp is on): SET ${AFTER_SETTING} = '<time>' bounds the replay`
      : 'track_commit_timestamp is off: the kept rows carry no commit time and the replay cannot be bounded by time (see README "Writes made after the restore time")',
    `replay SQL (never executed by the runner) stored in ${qualified(r.schema, REPLAY_TABLE)}; get it with: psql -d ${JSON.stringify(r.database)} -Atc 'SELECT sql FROM ${qualified(r.schema, REPLAY_TABLE)}' > replay.sql`,
  ];
  const sql = r.replaySql.split('\n');
  lines.push(...sql.slice(0, LOG_REPLAY_LINES).map((l) => `  ${l}`));
  if (sql.length > LOG_REPLAY_LINES) lines.push(`  ... ${sql.length - LOG_REPLAY_LINES} more line(s) in ${qualified(r.schema, REPLAY_TABLE)}`);
  lines.push(`once you no longer need the record: DROP SCHEMA ${ident(r.schema)} CASCADE; (in ${JSON.stringify(r.database)})`);
  return lines;
}

/** Summary lines for one database's record. */
export function changesSummary(r: ChangesRecord): string[] {
  const lines = [`Writes made after the restore time in ${r.database} (from ${r.keptAs}), kept in schema ${r.schema}:`];
  for (const t of r.tables.filter((x) => x.status !== 'compared' || x.inserted + (x.changed ?? 0) + x.deleted > 0)) {
    lines.push(`  ${t.table}: ${t.status === 'compared' ? `${t.inserted} inserted, ${t.changed ?? '?'} changed, ${t.deleted} deleted${t.keptIn ? ` -> ${t.keptIn}` : ' (no key: counts only)'}` : t.status}`);
  }
  for (const s of r.sequences) lines.push(`  sequence ${s.sequence}: ${s.atT} at T -> ${s.now}`);
  lines.push(`  replay SQL (not executed): ${r.schema}.${REPLAY_TABLE}; drop when done: DROP SCHEMA ${ident(r.schema)} CASCADE;`);
  return lines;
}
