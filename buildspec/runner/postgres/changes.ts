/**
 * Writes made after the restore time (issue #21): after a whole-database
 * recovery with `swap`, the state at T is compared with the pre-recovery
 * database `<db>__before_pitr_<stamp>` (its state when the recovery started),
 * and the difference is kept in a schema `pitr_<stamp>_after` of the
 * recovered database, with SQL that replays it. The state at T is read on
 * the point-in-time copy while the run has it: the application writes to
 * the recovered database again from the swap on. The runner never executes
 * the replay SQL. Nothing is written to the pre-recovery database: it is
 * only read, in one read-only snapshot.
 *
 * PostgreSQL cannot join across databases, so what is needed is brought over
 * in two passes:
 * 1. per keyed table, the key and a hash of every row on both sides
 *    (64 bits, each column taken so that content that differs hashes
 *    apart: rowHashOf) are paired by key: inserted, changed, deleted. A key of
 *    one integer column: both sides send their (key, hash) pairs packed, key
 *    range by key range, and the runner sorts and pairs them
 *    (changes-merge.ts). Any other key (or a mass change): the pre-recovery
 *    side's pairs stream (COPY TO STDOUT -> COPY FROM STDIN) into a
 *    temporary table where the state at T is read, and one full join there
 *    pairs them;
 * 2. only the inserted and changed rows are then read in full from the
 *    pre-recovery table (keys passed as JSON), with their commit time when
 *    `track_commit_timestamp` is on, into `pitr_<stamp>_after.<table>`.
 * A keyless table is compared by content (EXCEPT ALL over the row text):
 * counts only, no replay SQL.
 *
 * With track_commit_timestamp on and T known (RESTORE_TIME, not `latest`),
 * pass 1 hashes only the pre-recovery rows committed after T minus a margin
 * (commitTimeFilter, differingRowsSince): a row committed before T is exactly
 * as at T. Every key still crosses (they find the rows deleted after T).
 * Tables where a row could change without a newer commit time (a column
 * whose text changes through the catalog, columns retyped, reordered, or dropped before live
 * ones after T) are compared in full, and so is every table when the keys do
 * not agree with the commit times. The log says which and why.
 *
 * Row text is compared under the runner's fixed session settings
 * (process.ts SESSION_SETTINGS); the replay SQL sets the same ones, so the
 * md5 it checks ("the row is still as at T") is computed the same way.
 */
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { KeyHashChunks, MERGE_KEY_TYPES, type MergeResult, RANGE_ROWS, keyCuts, keyRanges, mergeByKey, packedRow } from './changes-merge';
import { derivedName, ident, literal, qualified } from './names';
import { SESSION_SETTINGS, connect } from './process';
import { type KeyEquality, agreedEqualities, isOneOf, keyEqualities, keyMatch, rowKeyColumns, rowKeys } from './row-key';
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
 * The record's cost as a share of the copy's time, from `npx projen bench --changes`, rounded up: by row version 20%,
 * by content or through the commit-time filter 24 to 25% (bench/results/2026-12-05-changes-row-versions*.md, medians
 * on a shared 2-core machine; earlier versions 24 to 32%). A drill cannot know which way a recovery's record will
 * go, and a cold record took about 7% longer: the estimate stays above the slowest of them. Both read every row once
 * per side; the record hashes instead of writing.
 */
export const CHANGES_COST_OF_COPY = 0.35;

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
  /**
   * T, the time the point-in-time copy was restored to, when the run knows it (a RESTORE_TIME, not `latest`). With
   * track_commit_timestamp on, it lets the comparison skip the rows committed before it (see commitTimeFilter).
   */
  readonly restoreTime?: Date;
  /** How long before T a commit still counts as possibly after T. @default COMMIT_TIME_MARGIN_MS */
  readonly commitTimeMarginMs?: number;
  /** Rows per key range when a table keyed by an integer is read (changes-merge.ts). @default RANGE_ROWS */
  readonly rangeRows?: number;
  /** Differing rows of a table paired in the runner beyond which the server pairs it. @default MAX_DIFFERING_IN_RUNNER */
  readonly maxDifferingInRunner?: number;
  /**
   * The point-in-time copy (the temporary instance), while it lives: the state at T is read there, where nobody
   * writes. Without it (MODE=changes, once the copy is gone) the recovered database is read as it is then, and rows
   * the application wrote there since the recovery look like writes that differ from T's.
   */
  readonly pointInTimeCopy?: PgTarget;
  /**
   * Pair rows by row version first where the state at T is read on the point-in-time copy (rowVersionCheck); false
   * compares every row by content (tests of the other comparisons). @default true
   */
  readonly rowVersions?: boolean;
  /** Rows whose version differs beyond which a table is compared by content instead. @default ROW_VERSION_MAX_DIFFERING */
  readonly rowVersionMaxDiffering?: number;
}

/**
 * Rows whose version differs from T's, in a table compared by row version, beyond which the table is compared by
 * content in full instead (rewritten after T: VACUUM FULL or CLUSTER move every row): looking each of them up by key
 * on both sides would cost more than hashing every row.
 */
export const ROW_VERSION_MAX_DIFFERING = 20_000;

/**
 * Rows committed less than this before T are compared in full, as if written after T: a recovery to T stops at the
 * first commit record *in WAL order* whose time is after T, and a commit takes its time a moment before its record
 * is written, so a commit stamped a little before T can sit after the stopping point; a clock step is covered too.
 */
export const COMMIT_TIME_MARGIN_MS = 5 * 60_000;

/**
 * Differing rows a table paired in the runner may have (its keys, md5s and hashes are kept in memory, a few hundred
 * bytes each): beyond it, the server pairs the table in temporary tables, whatever the size.
 */
export const MAX_DIFFERING_IN_RUNNER = 250_000;

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
  /** Rows of the pre-recovery table whose content was compared with T's, and how many it has (keyed tables). */
  readonly rowsCompared?: number;
  readonly rowsBefore?: number;
  /** Why every row was compared when the commit-time filter was on for the database. */
  readonly fullBecause?: string;
  /** Key ranges its rows were read in, when paired by an integer key in the runner (1 up to `rangeRows` rows). */
  readonly keyRanges?: number;
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
  /** How the rows before the recovery were chosen for comparison: every row, or only those committed after T (and why). */
  readonly comparison: string;
  /** Rows of the pre-recovery copy whose content was compared with T's (all of them unless row versions or the commit-time filter left some out). */
  readonly rowsCompared: number;
  /** Rows of the pre-recovery copy in the compared tables. */
  readonly rowsBefore: number;
  readonly replaySql: string;
  readonly ms: number;
}

interface Column {
  readonly name: string;
  readonly type: string;
  readonly generated: boolean;
  /** A virtual generated column (PostgreSQL 18): computed when read, never stored. */
  readonly virtual: boolean;
  readonly identityAlways: boolean;
  readonly notNull: boolean;
  /** Its number in the table (a column dropped and added again gets a new one). */
  readonly attnum: number;
  /** How the row hash takes the column (hashTerm). */
  readonly hashAs: HashAs;
  /** The base type's binary output function (`send`: the row hash takes its bytes). */
  readonly sendFunction: string;
  /** The base type's own 64-bit hash function, where SQL can call it on the value as the row hash takes it; else null. */
  readonly hashFunction: string | null;
  /** The type (and an array's element type) has binary input and output: it can cross in a binary COPY. */
  readonly binaryIo: boolean;
  /** Its text can change through the catalog with no write to the row: an enum label, a composite, a range, a reg* name. */
  readonly catalogText: boolean;
  /**
   * What the catalog says of such a column's values, where it can be compared between the two sides (JSON): an enum's
   * `labels` ([OID, name]), a composite's `fields` ([number, name, type, dropped]; plain base types only). Null for
   * other catalog-dependent types.
   */
  readonly catalogDefinition: string | null;
}

/**
 * How a column goes into the row hash, so that two values that differ in content hash apart (but for a 64-bit
 * collision):
 * - `value`: as it is, where the type's hash takes the whole value (types of at most 32 bits, uuid, bytea);
 * - `value-c`: the string types under the "C" collation (a nondeterministic collation hashes Bob and bob alike);
 * - `send`: its binary form (int8, timestamp, timestamptz, time: their hash folds 64 bits into 32);
 * - `numeric-signed`: numeric with a scale (every value has the same scale) as it is, and whether it is below zero:
 *   its hash takes the digits and the weight but not the sign, and hashes NaN like its seed (NaN < 0 is false);
 *   about 4 times cheaper than its text (2-3 ms against 9-10 ms per 185 k rows);
 * - `text`: its text. A type's own hash calls equal what differs: numeric ignores the scale and the sign (1.0, 1.00
 *   and -1.0) and hashes NaN as NULL, float8 0 and -0, interval 1 day and 24 hours, citext Bob and bob, an array its
 *   bounds; an enum hashes by its label's OID, which a restore renumbers;
 * - `bpchar`: unconstrained character by its output (its hash and `::text` drop trailing blanks);
 * - `output`: as a quoted literal of its output (a domain over a domain, whose base type this does not resolve, and
 *   a column retyped after T).
 */
type HashAs = 'value' | 'value-c' | 'send' | 'numeric-signed' | 'text' | 'bpchar' | 'output';

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

interface ColumnRow {
  readonly name: string;
  readonly type: string;
  readonly generated: string;
  readonly identity: string;
  readonly notnull: boolean;
  readonly attnum: number;
  readonly hash_as: HashAs;
  readonly send: string;
  readonly hash_fn: string | null;
  readonly binary_io: boolean;
  readonly catalog_text: boolean;
  readonly catalog_def: string | null;
}

async function columnsOf(client: Client, oid: number): Promise<Column[]> {
  // A domain is taken as its base type and typmod (one level: a domain over a domain goes by its output); an array by
  // its text (its hash ignores the bounds), and its element type says whether the text can change through the catalog.
  // '"char"' is the one-byte type; 'char' would read as character (bpchar).
  // Named: prepared once per session (row-key.ts says why).
  const { rows } = await client.query<ColumnRow>({
    name: 'pitr-columns',
    text: `
    SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attgenerated::text AS generated, a.attidentity::text AS identity,
           a.attnotnull AS notnull, a.attnum::int AS attnum,
           CASE WHEN t.typtype = 'd' AND bt.typtype = 'd' THEN 'output'
                WHEN bt.typcategory = 'A' THEN 'text'
                WHEN bt.oid = ANY ('{int2,int4,oid,bool,"\\"char\\"",date,uuid,bytea}'::regtype[]) THEN 'value'
                WHEN bt.oid = ANY ('{int8,timestamp,timestamptz,time}'::regtype[]) THEN 'send'
                WHEN bt.oid = 'numeric'::regtype AND tm.typmod >= 0 THEN 'numeric-signed'
                WHEN bt.oid = ANY ('{text,varchar,name}'::regtype[]) OR (bt.oid = 'bpchar'::regtype AND tm.typmod >= 0) THEN 'value-c'
                WHEN bt.oid = 'bpchar'::regtype THEN 'bpchar'
                ELSE 'text' END AS hash_as,
           (SELECT p.proname::text FROM pg_proc p WHERE p.oid = bt.typsend) AS send,
           -- bool, date and bytea have hashes of their own only for internal calls; int8 is hashed in two halves (hashTerm).
           CASE bt.oid WHEN 'int2'::regtype THEN 'hashint2extended' WHEN 'int4'::regtype THEN 'hashint4extended'
                       WHEN 'oid'::regtype THEN 'hashoidextended' WHEN '"char"'::regtype THEN 'hashcharextended'
                       WHEN 'uuid'::regtype THEN 'uuid_hash_extended' WHEN 'int8'::regtype THEN 'hashint8extended'
                       WHEN 'text'::regtype THEN 'hashtextextended' WHEN 'varchar'::regtype THEN 'hashtextextended'
                       WHEN 'name'::regtype THEN 'hashnameextended' WHEN 'bpchar'::regtype THEN 'hashbpcharextended' END AS hash_fn,
           -- A composite's fields and a range's subtype may lack binary I/O of their own: text for those.
           (t.typsend <> 0 AND t.typreceive <> 0 AND et.typsend <> 0 AND et.typreceive <> 0 AND et.typtype NOT IN ('c', 'r', 'm')) AS binary_io,
           (et.typtype <> 'b' OR et.oid::regtype::text LIKE 'reg%' OR et.oid = 'aclitem'::regtype) AS catalog_text,
           CASE WHEN et.typtype = 'e' THEN (SELECT json_build_object('labels', json_agg(json_build_array(e.oid, e.enumlabel) ORDER BY e.oid))::text
                                              FROM pg_enum e WHERE e.enumtypid = et.oid HAVING count(*) > 0)
                WHEN et.typtype = 'c' AND NOT EXISTS (
                  SELECT 1 FROM pg_attribute fa JOIN pg_type ft ON ft.oid = fa.atttypid
                   WHERE fa.attrelid = et.typrelid AND fa.attnum > 0 AND NOT fa.attisdropped
                     AND (ft.typtype <> 'b' OR ft.typelem <> 0 OR ft.oid::regtype::text LIKE 'reg%' OR ft.oid = 'aclitem'::regtype))
                THEN (SELECT json_build_object('fields', json_agg(json_build_array(fa.attnum, fa.attname, format_type(fa.atttypid, fa.atttypmod), fa.attisdropped)
                                                 ORDER BY fa.attnum))::text
                        FROM pg_attribute fa WHERE fa.attrelid = et.typrelid AND fa.attnum > 0 HAVING count(*) > 0) END AS catalog_def
      FROM pg_attribute a
      JOIN pg_type t ON t.oid = a.atttypid
      JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
      JOIN pg_type et ON et.oid = CASE WHEN bt.typcategory = 'A' AND bt.typelem <> 0 THEN bt.typelem ELSE bt.oid END
      CROSS JOIN LATERAL (SELECT CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod) tm
     WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    values: [oid],
  });
  return rows.map((r) => ({
    name: r.name,
    type: r.type,
    generated: r.generated !== '',
    virtual: r.generated === 'v',
    identityAlways: r.identity === 'a',
    notNull: r.notnull,
    attnum: r.attnum,
    hashAs: r.hash_as,
    sendFunction: r.send,
    hashFunction: r.hash_fn,
    binaryIo: r.binary_io,
    catalogText: r.catalog_text,
    catalogDefinition: r.catalog_def,
  }));
}

/**
 * A column's term in the row hash, the same SQL on both sides. A column whose type differs between them (retyped
 * after T) goes by its output on both. `direct`: a bigint, never NULL, the column's own hash seeded by its place in the
 * row (`seed`); `inRecord`: a field of the one hash_record_extended the row's other columns share (rowHashOf).
 */
function hashTerm(alias: string, before: Column, atT: Column, seed: number): { direct: string } | { inRecord: string } {
  const c = `${alias}.${ident(before.name)}`;
  const as: HashAs = before.type === atT.type ? before.hashAs : 'output';
  // A NULL hashes as a constant of its own place (the hash functions return NULL for NULL).
  const hash = (fn: string, value: string, at = seed): string => `coalesce(pg_catalog.${fn}(${value}, ${at}), ${nullHash(at)})`;
  switch (as) {
    case 'value': return before.hashFunction ? { direct: hash(before.hashFunction, c) } : { inRecord: c };
    // text, varchar, name and char(n): each has its own hash.
    case 'value-c': return { direct: hash(before.hashFunction!, `${c} COLLATE "C"`) };
    case 'send':
      // int8's own hash takes the low 32 bits XOR the high ones: with the high ones hashed apart, no bit is lost.
      if (before.hashFunction === 'hashint8extended') return { direct: `${hash('hashint8extended', c)} # ${hash('hashint4extended', `(${c} >> 32)::int4`, -seed)}` };
      return { inRecord: `pg_catalog.${before.sendFunction}(${c})` };
    case 'numeric-signed': return { direct: `${hash('hash_numeric_extended', c)} # CASE WHEN ${c} < 0 THEN ${SIGN_HASH} ELSE 0 END` };
    case 'bpchar': return { direct: hash('hashtextextended', `pg_catalog.textin(pg_catalog.bpcharout(${c})) COLLATE "C"`) };
    // %L: NULL stays distinct from any value (%s would give '').
    case 'output': return { direct: hash('hashtextextended', `pg_catalog.format('%L', ${c}) COLLATE "C"`) };
    default: return { direct: hash('hashtextextended', `${c}::text COLLATE "C"`) };
  }
}

/** What a NULL in the column at `seed` hashes as: a constant of its own per place (golden-ratio multiples, as int8). */
function nullHash(seed: number): string {
  return BigInt.asIntN(64, 0x9e3779b97f4a7c15n * BigInt(seed)).toString();
}

/** XORed into a numeric's hash when it is below zero (its hash ignores the sign). */
const SIGN_HASH = '6917529027641081857';

/**
 * The row hash over `cols` (a bigint, never NULL): the columns' own hashes, each seeded by its place, XORed, with one
 * hash_record_extended for the columns that have no hash callable from SQL (bool, date, bytea, the 64-bit time types
 * by their binary form). A hash_record_extended over every column cost about twice as much on the bench's rows (it
 * builds a row and takes it apart again: 25 against 14 ms per 92 k rows).
 */
function rowHashOf(alias: string, cols: readonly Column[], atTByName: ReadonlyMap<string, Column>): string {
  const direct: string[] = [];
  const inRecord: string[] = [];
  cols.forEach((c, i) => {
    const term = hashTerm(alias, c, atTByName.get(c.name)!, i + 1);
    if ('direct' in term) direct.push(term.direct);
    else inRecord.push(term.inRecord);
  });
  if (inRecord.length > 0) direct.push(`pg_catalog.hash_record_extended(ROW(${inRecord.join(', ')}), 0)`);
  return direct.length > 0 ? `(${direct.join(' # ')})` : '0::int8';
}

/** A live table's own triggers (the replay fires them), by its quoted name. */
async function triggersOf(client: Client, relation: string): Promise<string[]> {
  return (await client.query<{ name: string }>({
    name: 'pitr-triggers', text: 'SELECT tgname AS name FROM pg_trigger WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY 1', values: [relation],
  })).rows.map((r) => r.name);
}

/** A worker's sessions: the pre-recovery database (read only), the state at T, and the recovered database (written). */
interface TableSessions {
  readonly before: Client;
  /** The point-in-time copy's database while it lives; else the recovered database, on a session of its own. */
  readonly atT: Client;
  readonly now: Client;
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

/** Whether the pre-recovery rows can be chosen by commit time (only rows committed after `since` compared), and why (not). */
export interface CommitTimeFilter {
  readonly since?: Date;
  readonly why: string;
}

/** Whether rows are paired by row version first (rowVersionCheck), and the comparison's description when they are. */
export interface RowVersionCheck {
  readonly on: boolean;
  readonly why: string;
  /** Tables of the point-in-time copy (by OID) written since its recovery: their row versions are not T's. */
  readonly writtenOnCopy?: ReadonlySet<number>;
}

/**
 * Row versions first. The point-in-time copy is a physical copy of the instance at T (RDS restores its storage and
 * replays its log, as the stand-in's copy does), and nobody writes to its tables. So a row nobody wrote since T is
 * the very same row version on both sides: the same place in the table (`ctid`) and the same inserting transaction
 * (`xmin`). Both sides send each row's key and a hash of those two (cheaper than a hash of its content), and only
 * the rows whose version differs (written since T, or moved) are then compared by content. A transaction id names
 * one transaction only until the instance's counter wraps (2^32 ids): after that an old frozen row's xmin can be the
 * id of a transaction after T, so the instance must have used fewer than 2^32 (read on the pre-recovery side, whose
 * counter is the furthest along).
 */
export async function rowVersionCheck(before: Client, instance: Client, atT: Client | undefined, wanted: boolean): Promise<RowVersionCheck> {
  if (!wanted) return { on: false, why: 'row versions not used (rowVersions false)' };
  if (!atT) return { on: false, why: 'the point-in-time copy is gone, and the recovered database is a logical copy: row versions say nothing' };
  const next = BigInt((await before.query<{ n: string }>('SELECT pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot())::text AS n')).rows[0].n);
  if (next >= 2n ** 32n) {
    return { on: false, why: `the instance has used ${next} transaction ids, more than 2^32: its xmins repeat, so a row version does not name a row` };
  }
  // A physical copy keeps the instance's system identifier; a logical copy, or another instance, has its own. Read on
  // sessions outside a transaction (`instance`: the recovered database's), where a refusal aborts nothing.
  const identifier = async (c: Client): Promise<string | Error> =>
    c.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_catalog.pg_control_system()').then((r) => r.rows[0].id, (err: Error) => err);
  const [ours, theirs] = await Promise.all([identifier(instance), identifier(atT)]);
  if (ours instanceof Error || theirs instanceof Error) {
    return { on: false, why: `the system identifiers that would show the point-in-time copy is a physical copy cannot be read (${String(ours instanceof Error ? ours.message : (theirs as Error).message)})` };
  }
  if (ours !== theirs) return { on: false, why: `the point-in-time copy is not a physical copy of this instance (system identifiers ${ours} and ${theirs})` };
  // Nobody should write to the copy's tables, but a scheduled job or a subscription on it could: its own transaction
  // ids reuse the numbers the original gave its writes after T. Its statistics start at zero with its recovery.
  const { rows } = await atT.query<{ oid: number }>('SELECT relid::int AS oid FROM pg_catalog.pg_stat_user_tables WHERE n_tup_ins + n_tup_upd + n_tup_del > 0');
  return {
    on: true,
    writtenOnCopy: new Set(rows.map((r) => r.oid)),
    why: 'rows whose version (ctid, xmin) is the same on the point-in-time copy and before the recovery are as at T (the copy is a physical copy of the '
      + 'instance at T, and its transaction id counter never wrapped); the others, and every table not keyed by one integer column, compared by content, '
      + 'and every key checked for deletions',
  };
}

/**
 * The common columns whose text may have changed through the catalog since T with no write to their rows: those of
 * catalog-dependent types (Column.catalogText), but an enum whose labels at T are all still there unchanged (labels
 * added since change no row of T's), or a composite of plain fields whose fields are the same on both sides.
 */
function catalogTextChanged(p: Pass1): Column[] {
  const atTByName = new Map(p.atTCols.map((c) => [c.name, c]));
  return p.beforeCols.filter((c) => {
    if (!p.common.includes(c.name) || !c.catalogText) return false;
    const atT = atTByName.get(c.name)!;
    if (c.catalogDefinition === null || atT.catalogDefinition === null) return true;
    const before = JSON.parse(c.catalogDefinition) as { labels?: unknown[] };
    const then = JSON.parse(atT.catalogDefinition) as { labels?: unknown[] };
    // An enum's labels at T must all be there still; a composite's fields must all be the same.
    if (then.labels && before.labels) {
      const labels = new Set(before.labels.map((e) => JSON.stringify(e)));
      return !then.labels.every((e) => labels.has(JSON.stringify(e)));
    }
    return c.catalogDefinition !== atT.catalogDefinition;
  });
}

/** A row version's hash: its place in the table, seeded by its inserting transaction (xmin, below 2^32: rowVersionCheck). */
const rowVersionHash = (alias: string): string => `pg_catalog.hashtidextended(${alias}.ctid, ${alias}.xmin::text::int8)`;

/**
 * Why a table's row versions cannot be trusted: another table under its name (another OID), a table written on the
 * copy, or columns whose content can change with no new version: virtual generated ones, a column dropped and added
 * again (a new column number) or retyped after T, and the catalog's for an enum label renamed or a composite or range
 * type altered.
 */
function rowVersionRefusal(p: Pass1, atTOid: number, writtenOnCopy: ReadonlySet<number>): string | undefined {
  // A physical copy keeps every relation's OID: another OID is another table under this name (renamed or recreated after T).
  if (atTOid !== p.b.oid) return `not the same table as at T (OID ${p.b.oid} before the recovery, ${atTOid} at T: recreated, or renamed into place, after T)`;
  if (writtenOnCopy.has(atTOid)) return 'written on the point-in-time copy since its recovery (a scheduled job or a subscription there?): its row versions are not all T\'s';
  const virtual = p.beforeCols.filter((c) => p.common.includes(c.name) && c.virtual);
  if (virtual.length > 0) return `virtual generated columns (${virtual.map((c) => ident(c.name)).join(', ')}): their expression can change with no new row version`;
  const catalogText = catalogTextChanged(p);
  if (catalogText.length > 0) {
    return `columns whose text can change through the catalog with no new row version (an enum label renamed, a composite or range type altered): ${catalogText.map((c) => ident(c.name)).join(', ')}`;
  }
  const beforeByName = new Map(p.beforeCols.map((c) => [c.name, c]));
  const moved = p.atTCols.filter((c) => {
    const b = beforeByName.get(c.name);
    return b !== undefined && (b.attnum !== c.attnum || b.type !== c.type);
  });
  if (moved.length > 0) return `columns dropped and added again, or retyped, after T (${moved.map((c) => ident(c.name)).join(', ')}): their rows keep their versions`;
  return undefined;
}

/**
 * The commit-time filter for the whole database. A row of the pre-recovery copy whose transaction committed at or
 * before T is exactly as it was at T (MVCC never changes a row version in place; any write makes a new version with
 * the writer's xid as xmin), so with track_commit_timestamp on, only rows committed after T - margin, or without a
 * commit time, need their content compared. Rows deleted after T leave nothing to filter: their keys are compared apart.
 * The xid alone cannot separate them (README "The xid at T"), and a row applied by logical replication carries its
 * publisher's commit time, so those (replication origin set) are always compared.
 */
export async function commitTimeFilter(
  before: Client, commitTimes: boolean, restoreTime: Date | undefined, marginMs: number,
): Promise<CommitTimeFilter> {
  const full = 'every row compared';
  if (!commitTimes) return { why: `${full}: track_commit_timestamp is off, so rows written after T cannot be told from older ones by their commit time` };
  if (!restoreTime) return { why: `${full}: the restore time is not known here (RESTORE_TIME latest, or MODE=changes), so there is no T to filter by` };
  const version = Number((await before.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v);
  if (version < 140000) return { why: `${full}: PostgreSQL ${Math.floor(version / 10000)} has no pg_xact_commit_timestamp_origin (14 and later), needed to tell rows applied by logical replication` };
  const since = new Date(restoreTime.getTime() - marginMs);
  return {
    since,
    why: `rows committed before ${since.toISOString()} (T ${restoreTime.toISOString()} minus ${Math.round(marginMs / 1000)} s) are as at T, by their commit time `
      + '(track_commit_timestamp is on); rows committed after it, without a commit time, or applied by replication are compared in full, and every key is checked for deletions',
  };
}

/**
 * SQL true for a row of alias `x` committed (locally) at or before `since`: the filter leaves it out. A row without a
 * commit time (NULL: committed while track_commit_timestamp was off, or older than the oldest commit time kept) is
 * not. The time is tested first (cheap), the origin (a record built per call) only for the rows the time leaves out.
 */
const committedBefore = (xid: string, since: Date): string =>
  `(coalesce(pg_xact_commit_timestamp(${xid}) <= ${literal(since.toISOString())}::timestamptz, false) AND (pg_xact_commit_timestamp_origin(${xid})).roident = 0)`;

/**
 * SQL true for a row of alias `x` of `source` NOT committed (locally) before `since`. The commit time and origin are
 * looked up once per distinct xmin of the table (a transaction usually writes many rows), then matched by hash.
 */
const committedAfter = (x: string, source: string, since: Date): string =>
  `${x}.xmin IN (SELECT n.xid FROM (SELECT DISTINCT xmin AS xid FROM ONLY ${source}) n WHERE NOT ${committedBefore('n.xid', since)})`;

const rowText = (alias: string, cols: readonly string[]): string => `md5(ROW(${cols.map((c) => `${alias}.${ident(c)}`).join(', ')})::text)`;

/** Sessions opened side by side (a round trip and a backend start each); if one cannot be opened, the others are closed. */
async function connectAll(to: ReadonlyArray<readonly [PgTarget, string]>): Promise<Client[]> {
  const opened = await Promise.allSettled(to.map(([t, database]) => connect(t, database)));
  const failed = opened.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (!failed) return opened.map((o) => (o as PromiseFulfilledResult<Client>).value);
  await Promise.all(opened.map((o) => (o.status === 'fulfilled' ? o.value.end().catch(() => undefined) : undefined)));
  throw failed.reason;
}

/**
 * Compares `database` (at T: on the point-in-time copy when given, else the
 * recovered database itself) with `keptAs` (before the recovery) on `target`
 * and writes the record into `pitr_<stamp>_after` of `database`.
 */
export async function recordChanges(target: PgTarget, options: ChangesOptions): Promise<ChangesRecord> {
  const started = Date.now();
  const { database, keptAs, stamp, log } = options;
  const schema = changesSchemaName(stamp);
  // After the swap the application writes to the recovered database: the state at T is read on the point-in-time
  // copy instead, when the run still has it. The record is written into the recovered database either way.
  const [before, now, atTMain] = await connectAll([[target, keptAs], [target, database], [options.pointInTimeCopy ?? target, database]]);
  try {
    const exists = await now.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
    if (exists.rowCount) throw new Error(`schema ${ident(schema)} already exists in ${JSON.stringify(database)}: the record of this run was already written. Drop it first (DROP SCHEMA ${ident(schema)} CASCADE) to write it again.`);
    // One snapshot of the pre-recovery database for every read: nothing is written there.
    await before.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const commitTimes = (await before.query<{ on: string }>("SELECT current_setting('track_commit_timestamp') AS on")).rows[0].on === 'on';
    const filter = await commitTimeFilter(before, commitTimes, options.restoreTime, options.commitTimeMarginMs ?? COMMIT_TIME_MARGIN_MS);
    const versions = await rowVersionCheck(before, now, options.pointInTimeCopy ? atTMain : undefined, options.rowVersions ?? true);
    const comparison = versions.on ? `${versions.why}${filter.since ? `; where they cannot be used, ${filter.why}` : ''}` : filter.why;
    log.info(`comparison: ${comparison}`);
    if (!versions.on && options.pointInTimeCopy) log.info(`row versions not used: ${versions.why}`);
    if (options.pointInTimeCopy) {
      log.info('the state at T is read on the point-in-time copy, which nobody writes to (the application is back on the recovered database)');
    } else {
      log.warn(`the point-in-time copy is gone: the state at T is read on ${JSON.stringify(database)} as it is now, so rows written there since the recovery `
        + 'count as writes made after T, and the replay would undo them: check the kept rows before replaying');
    }
    const [beforeTables, atTTables] = [await tablesOf(before), await tablesOf(atTMain)];
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
    let logged = 0;
    const limits = {
      rangeRows: options.rangeRows ?? RANGE_ROWS,
      maxDifferingInRunner: options.maxDifferingInRunner ?? MAX_DIFFERING_IN_RUNNER,
      rowVersionMaxDiffering: options.rowVersionMaxDiffering ?? ROW_VERSION_MAX_DIFFERING,
    };
    const worker = async (): Promise<void> => {
      // A session of its own even on the recovered database (MODE=changes): reads there stay out of the transaction that writes the record.
      const [wBefore, wNow, wAtT] = await connectAll([[target, keptAs], [target, database], [options.pointInTimeCopy ?? target, database]]);
      try {
        const sessions: TableSessions = { before: wBefore, atT: wAtT, now: wNow };
        await wBefore.query(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${literal(snapshot)}`);
        for (let i = next++; i < atTTables.length; i = next++) {
          const t = atTTables[i];
          const b = beforeByName.get(key(t));
          if (!b) {
            const rows = Number((await wAtT.query<{ n: string }>(`SELECT count(*) AS n FROM ONLY ${qualified(t.schema, t.name)}`)).rows[0].n);
            slots[i] = {
              table: formatTableName({ schema: t.schema, table: t.name }),
              status: 'dropped after T',
              inserted: 0,
              deleted: rows,
              notes: [`the table existed at T and not before the recovery: dropped or renamed after T (its ${rows} rows at T are back; nothing to replay).`],
            };
          } else {
            // A table's writes commit together: one commit (and WAL flush) per table and side, not one per statement.
            // On the live recovered database (MODE=changes) the reads take no transaction: no lock held on the application's tables.
            const writers = options.pointInTimeCopy ? [wNow, wAtT] : [wNow];
            await Promise.all(writers.map((c) => c.query('BEGIN')));
            slots[i] = await compareTable(sessions, t, b, schema, names[i], commitTimes, filter.since, versions.on ? versions : undefined, limits);
            await Promise.all(writers.map((c) => c.query('COMMIT')));
          }
          // The lines follow the tables' order, whatever order the workers finish in: the log reads the same every run.
          while (logged < slots.length && slots[logged] !== undefined) log.info(describeTable(slots[logged++]));
        }
        await wBefore.query('COMMIT');
      } finally {
        await wBefore.end().catch(() => undefined);
        await wAtT.end().catch(() => undefined);
        await wNow.end().catch(() => undefined);
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
    const sequences = await sequenceMoves(before, atTMain);
    await before.query('COMMIT');
    for (const s of sequences) log.info(`sequence ${s.sequence}: ${s.atT} at T, ${s.now} before the recovery`);

    const edges = await foreignKeys(atTMain);
    const replaySql = replayScript({ database, keptAs, schema, stamp, commitTimes, after: options.after }, foreignKeyOrder(
      results.map((r, i) => ({ ...r, oid: atTTables[i]?.oid ?? -1 - i })), edges), sequences);
    await writeSummary(now, schema, results, sequences, replaySql);
    const tables = results.map(({ replay: _, ...r }) => r);
    const rowsBefore = tables.reduce((n, t) => n + (t.rowsBefore ?? 0), 0);
    const rowsCompared = tables.reduce((n, t) => n + (t.rowsCompared ?? 0), 0);
    const record: ChangesRecord = {
      database, keptAs, schema, tables, sequences, commitTimes, comparison, rowsCompared, rowsBefore, replaySql, ms: Date.now() - started,
    };
    for (const line of describeRecord(record)) log.info(line);
    return record;
  } catch (err) {
    await before.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await before.end().catch(() => undefined);
    await atTMain.end().catch(() => undefined);
    await now.end().catch(() => undefined);
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
  readonly keyEq: readonly KeyEquality[];
  /** Columns written by INSERT (at T and before the recovery, not generated now). */
  readonly insertColumns: readonly string[];
  /** Columns written by UPDATE (as insertColumns, minus the key and GENERATED ALWAYS identities). */
  readonly updateColumns: readonly string[];
  /** Columns the md5 of "the row as at T" covers. */
  readonly hashColumns: readonly string[];
  /** Columns kept as text (keptAsText), with the type at T the replay casts them to. */
  readonly castTo?: Readonly<Record<string, string>>;
  readonly overriding: boolean;
  readonly triggers: readonly string[];
}

async function compareTable(
  sessions: TableSessions, t: Table, b: Table, schema: string, keptName: string, commitTimes: boolean, since: Date | undefined,
  rowVersions: RowVersionCheck | undefined, limits: Pick<Pass1, 'rangeRows' | 'maxDifferingInRunner' | 'rowVersionMaxDiffering'>,
): Promise<TableWrites & { replay?: TableReplay }> {
  const { rangeRows, maxDifferingInRunner, rowVersionMaxDiffering } = limits;
  const { before, atT, now } = sessions;
  const table = formatTableName({ schema: t.schema, table: t.name });
  const live = qualified(t.schema, t.name);
  // The catalog reads of both databases at once (one round trip each side at a time): per-table round trips are a
  // good part of the record's time once the rows themselves are compared cheaply.
  // The key's equalities are read as soon as T's key is known, beside the other catalog reads.
  const keyAtT = rowKeyColumns(atT, t.oid);
  const keyEqualitiesRead = keyAtT.then(async (k) => (k
    ? agreedEqualities(...await Promise.all([keyEqualities(before, b.oid, k), keyEqualities(atT, t.oid, k)]))
    : []));
  keyEqualitiesRead.catch(() => undefined);
  const [atTCols, beforeCols, key, beforeKeys, triggers] = await Promise.all([
    columnsOf(atT, t.oid), columnsOf(before, b.oid), keyAtT, rowKeys(before, b.oid), triggersOf(now, live),
  ]);
  const beforeByName = new Map(beforeCols.map((c) => [c.name, c]));
  const common = atTCols.filter((c) => beforeByName.has(c.name)).map((c) => c.name);
  const notes: string[] = [];
  const onlyAtT = atTCols.filter((c) => !beforeByName.has(c.name)).map((c) => ident(c.name));
  const onlyBefore = beforeCols.filter((c) => !atTCols.some((a) => a.name === c.name)).map((c) => ident(c.name));
  if (onlyAtT.length > 0) notes.push(`columns dropped after T (left out of the comparison and the replay): ${onlyAtT.join(', ')}.`);
  if (onlyBefore.length > 0) notes.push(`columns added after T (kept with the rows, left out of the replay, which gives them their defaults): ${onlyBefore.join(', ')}.`);
  // Rows are paired by T's key only where it is a key before the recovery too: a key that is no longer unique or NOT
  // NULL there (dropped or loosened after T) would pair a second row of one key with the first, and the replay would
  // overwrite one with the other.
  if (!key || !key.every((k) => beforeByName.has(k)) || !isOneOf(key, beforeKeys)) {
    const keyList = key?.map(ident).join(', ');
    notes.push(!key
      ? 'no primary key or unique key over NOT NULL columns: rows cannot be paired, so "changed" cannot be told from "deleted and inserted"; counts by content only, no replay SQL.'
      : !key.every((k) => beforeByName.has(k))
        ? `the key (${keyList}) is not in the table before the recovery: rows cannot be paired; counts by content only, no replay SQL.`
        : `the key (${keyList}) is not a primary key or a unique key over NOT NULL columns before the recovery (dropped, or made to allow NULL, `
          + 'after T): rows cannot be paired; counts by content only, no replay SQL.');
    await atT.query('DROP TABLE IF EXISTS pg_temp.pitr_stage; CREATE TEMP TABLE pitr_stage (r text)');
    await stream(before, atT, `COPY (SELECT ROW(${common.map((c) => `x.${ident(c)}`).join(', ')})::text FROM ONLY ${qualified(b.schema, b.name)} x) TO STDOUT`, 'COPY pg_temp.pitr_stage (r) FROM STDIN');
    const rowsNow = `SELECT ROW(${common.map((c) => `x.${ident(c)}`).join(', ')})::text FROM ONLY ${live} x`;
    const count = async (sql: string): Promise<number> => Number((await atT.query<{ n: string }>(`SELECT count(*) AS n FROM (${sql}) d`)).rows[0].n);
    const inserted = await count(`SELECT r FROM pg_temp.pitr_stage EXCEPT ALL ${rowsNow}`);
    const deleted = await count(`${rowsNow} EXCEPT ALL SELECT r FROM pg_temp.pitr_stage`);
    await atT.query('DROP TABLE pg_temp.pitr_stage');
    return { table, status: 'compared', inserted, deleted, notes };
  }

  // Pass 1: which rows differ, into pg_temp.pitr_want (pitr_change, the key, pitr_row_at_t). The row hash is 64 bits,
  // each column taken so that rows that differ in content differ in it (rowHashOf, hashTerm).
  const keyCols = key.map((k) => beforeByName.get(k)!);
  const keyEq = await keyEqualitiesRead;
  const atTByName = new Map(atTCols.map((c) => [c.name, c]));
  const hashOf = (alias: string, cols: readonly string[]): string => rowHashOf(alias, cols.map((c) => beforeByName.get(c)!), atTByName);
  const rowHash = (alias: string): string => hashOf(alias, common);
  // Paired in the runner, by an integer key compared exactly: the key need not be hashed too.
  const nonKey = common.filter((c) => !key.includes(c));
  const mergeHash = nonKey.length > 0 ? (alias: string): string => hashOf(alias, nonKey) : rowHash;
  const pass: Pass1 = {
    before,
    atT,
    b,
    live,
    key,
    keyCols,
    keyEq,
    common,
    rowHash,
    mergeHash,
    atTCols,
    beforeCols,
    rangeRows,
    maxDifferingInRunner,
    rowVersionMaxDiffering,
  };
  // The table the rows are kept in is created on the recovered database while pass 1 reads the other two.
  const kept = qualified(schema, keptName);
  const asText = keptAsText(beforeCols, atTByName, key);
  const keptCreated = now.query(`CREATE TABLE ${kept} (pitr_change text, pitr_committed_at timestamptz, pitr_row_at_t text, ${beforeCols.map((c) => `${ident(c.name)} ${asText.has(c.name) ? 'text' : c.type}`).join(', ')});
    COMMENT ON TABLE ${kept} IS ${literal(`cdk-rds-pitr: ${table} rows inserted or changed after T (their version before the recovery) and the keys of rows deleted after T; pitr_row_at_t is the md5 of the row at T.`)};
    ${beforeCols.filter((c) => asText.has(c.name)).map((c) => `COMMENT ON COLUMN ${kept}.${ident(c.name)} IS ${literal(`cdk-rds-pitr: kept as text, its output before the recovery (type ${c.type} then, ${atTByName.get(c.name)?.type ?? 'not in the table'} at T)`)};`).join(' ')}`);
  keptCreated.catch(() => undefined);

  // Why every row was compared by content, when row versions (and then commit times) could not be used for it.
  let fullBecause: string | undefined;
  let versionsNotUsed: string | undefined;
  let compared: Compared | undefined;
  // One integer key: the runner pairs the two key-ordered streams itself, no temporary copy of every key (changes-merge.ts).
  const atTKey = atTCols.find((c) => c.name === key[0]);
  const merge = key.length === 1 && MERGE_KEY_TYPES.includes(keyCols[0].type) && atTKey !== undefined && MERGE_KEY_TYPES.includes(atTKey.type);
  if (rowVersions && merge) {
    const outcome = rowVersionRefusal(pass, t.oid, rowVersions.writtenOnCopy ?? new Set()) ?? await mergedRows(pass, { rowVersions: true });
    if (typeof outcome === 'string') versionsNotUsed = fullBecause = outcome;
    else compared = outcome;
  }
  if (!compared && since) {
    const refusal = filterRefusal(pass) ?? await droppedColumnsRefusal(before, b.oid, since);
    const outcome = refusal ?? (merge ? await mergedRows(pass, { since }) : await differingRowsSince(pass, since));
    if (typeof outcome === 'string') {
      fullBecause = outcome;
    } else {
      compared = outcome;
      fullBecause = undefined;
      if (versionsNotUsed) notes.push(`row versions not used (${versionsNotUsed}): rows committed after T compared by content.`);
    }
  }
  if (!compared) {
    const outcome = merge ? await mergedRows(pass, {}) : await differingRows(pass);
    if (typeof outcome === 'string') throw new Error(`${table}: ${outcome}`);
    compared = outcome;
  }
  // Pass 2: the full post-T rows of the inserted and changed keys, into pitr_<stamp>_after.<name> of the recovered
  // database, with their kind and the md5 of their row at T; the keys of the deleted rows. pg_temp.pitr_want is where
  // the rows at T are read (the point-in-time copy, while it lives); it crosses as JSON, a batch at a time.
  const differences = compared.differences ?? await wantTable(atT, key);
  await keptCreated;
  const { inserted, changed, deleted } = differences;
  const cols = beforeCols.map((c) => ident(c.name)).join(', ');
  const keyList = key.map(ident).join(', ');
  const committed = commitTimes ? 'pg_xact_commit_timestamp(x.xmin)' : 'NULL::timestamptz';
  const wanted = (json: string): string => `json_to_recordset(${literal(json)}) AS j(pitr_change text, pitr_row_at_t text, ${keyCols.map((c) => `${ident(c.name)} ${c.type}`).join(', ')})`;
  for (let offset = 0; offset < inserted + changed + deleted; offset += FETCH_BATCH) {
    const json = await differences.batch(offset);
    await stream(before, now,
      `COPY (SELECT j.pitr_change, j.pitr_row_at_t, ${committed}, ${beforeCols.map((c) => `x.${ident(c.name)}`).join(', ')}
        FROM ${wanted(json)} JOIN ONLY ${qualified(b.schema, b.name)} x ON ${keyMatch('x', 'j', key, keyEq)}
       WHERE j.pitr_change <> 'deleted') TO STDOUT`,
      `COPY ${kept} (pitr_change, pitr_row_at_t, pitr_committed_at, ${cols}) FROM STDIN`);
    await now.query(`INSERT INTO ${kept} (pitr_change, pitr_row_at_t, ${keyList}) SELECT j.pitr_change, j.pitr_row_at_t, ${key.map((k) => `j.${ident(k)}`).join(', ')}
      FROM ${wanted(json)} WHERE j.pitr_change = 'deleted'`);
  }
  await differences.done();

  // The replay casts the columns kept as text back to their type at T; say so where that can fail: the column was
  // retyped, or its type's values (an enum's labels, a composite's fields) are not the same on both sides.
  const castMayFail = common.filter((c) => {
    const then = atTByName.get(c)!;
    const was = beforeByName.get(c)!;
    return asText.has(c) && (was.type !== then.type || was.catalogDefinition === null || was.catalogDefinition !== then.catalogDefinition);
  });
  if (castMayFail.length > 0 && inserted + changed > 0) {
    notes.push(`columns ${castMayFail.map(ident).join(', ')} are kept as text (retyped after T, or their type's values changed): the replay casts them `
      + 'to their type at T, and stops where a value does not exist there (an enum label added or renamed after T): edit those kept rows first.');
  }
  const insertColumns = common.filter((c) => !atTByName.get(c)!.generated);
  const generated = common.filter((c) => atTByName.get(c)!.generated);
  if (generated.length > 0) notes.push(`generated columns ${generated.map(ident).join(', ')} are computed by the table, not replayed.`);
  const identityAlways = insertColumns.filter((c) => atTByName.get(c)!.identityAlways);
  if (identityAlways.length > 0) notes.push(`identity columns ${identityAlways.map(ident).join(', ')} (GENERATED ALWAYS): the inserts use OVERRIDING SYSTEM VALUE; updates leave them.`);
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
    ...compared,
    fullBecause,
    replay: {
      live,
      kept,
      owner: t.owner,
      key,
      keyEq,
      insertColumns,
      hashColumns: common,
      overriding: identityAlways.length > 0,
      triggers,
      updateColumns: insertColumns.filter((c) => !key.includes(c) && !atTByName.get(c)!.identityAlways),
      castTo: Object.fromEntries(common.filter((c) => asText.has(c)).map((c) => [c, atTByName.get(c)!.type])),
    },
  };
}

/**
 * The columns a table's kept rows hold as text (their output before the recovery), not in their type: the recovered
 * database is at T, where a type created after T does not exist yet, an enum may lack a label added or renamed
 * since (its input fails), a composite type may have other fields. So: columns added after T, columns retyped after
 * T, and columns whose text can change through the catalog (Column.catalogText); not the key's, which pair rows (a key
 * of such a type still fails). The replay casts them back to the type at T: a value that is not valid input there
 * (a label renamed after T) stops it, and the table's note says so.
 */
function keptAsText(beforeCols: readonly Column[], atTByName: ReadonlyMap<string, Column>, key: readonly string[]): Set<string> {
  return new Set(beforeCols.filter((c) => !key.includes(c.name) && (atTByName.get(c.name)?.type !== c.type || c.catalogText)).map((c) => c.name));
}

/**
 * The rows of a table that differ (pass 1's result): how many of each kind, and the rows a batch at a time as a JSON
 * array of {pitr_change, pitr_row_at_t, the key's columns}, in key order.
 */
interface Differences {
  readonly inserted: number;
  readonly changed: number;
  readonly deleted: number;
  batch(offset: number): Promise<string>;
  done(): Promise<void>;
}

/** What pass 1 found: the rows compared, and the differences when they are in the runner (else in pg_temp.pitr_want). */
interface Compared {
  readonly rowsCompared: number;
  readonly rowsBefore: number;
  readonly keyRanges?: number;
  readonly differences?: Differences;
}

/** The differences pass 1 left in pg_temp.pitr_want of `atT` (pitr_change, the key, pitr_row_at_t); dropped when done. */
async function wantTable(atT: Client, key: readonly string[]): Promise<Differences> {
  const { rows } = await atT.query<{ c: string; n: string }>('SELECT pitr_change AS c, count(*) AS n FROM pg_temp.pitr_want GROUP BY 1');
  const counts = new Map(rows.map((r) => [r.c, Number(r.n)]));
  return {
    inserted: counts.get('inserted') ?? 0,
    changed: counts.get('changed') ?? 0,
    deleted: counts.get('deleted') ?? 0,
    batch: async (offset) => (await atT.query<{ j: string }>(`SELECT coalesce(json_agg(w), '[]')::text AS j
      FROM (SELECT * FROM pg_temp.pitr_want ORDER BY ${key.map(ident).join(', ')} OFFSET ${offset} LIMIT ${FETCH_BATCH}) w`)).rows[0].j,
    done: async () => {
      await atT.query('DROP TABLE IF EXISTS pg_temp.pitr_stage; DROP TABLE IF EXISTS pg_temp.pitr_keys; DROP TABLE pg_temp.pitr_want');
    },
  };
}

/** What pass 1 works with, for one keyed table. */
interface Pass1 {
  readonly before: Client;
  /** Where the rows at T are read, and pass 1's temporary tables live: the point-in-time copy, or the recovered database. */
  readonly atT: Client;
  /** The pre-recovery table. */
  readonly b: Table;
  /** The table at T, quoted. */
  readonly live: string;
  readonly key: readonly string[];
  /** The key's columns as the pre-recovery table has them. */
  readonly keyCols: readonly Column[];
  /** How they are matched (keyEqualities). */
  readonly keyEq: readonly KeyEquality[];
  /** Columns in both tables, in the order of the table at T. */
  readonly common: readonly string[];
  readonly rowHash: (alias: string) => string;
  /** The row hash without the key, for mergedRows (its integer key is compared exactly), on both sides alike. */
  readonly mergeHash: (alias: string) => string;
  readonly atTCols: readonly Column[];
  readonly beforeCols: readonly Column[];
  readonly rangeRows: number;
  /** Differing rows a table paired in the runner may have before the server pairs it instead. */
  readonly maxDifferingInRunner: number;
  /** Rows whose version differs from T's beyond which a table compared by row version is compared by content instead. */
  readonly rowVersionMaxDiffering: number;
}

/**
 * Every row of the pre-recovery table: its key and hash stream into pg_temp.pitr_stage, and one full join on the
 * key pairs them with the rows at T: only before (inserted after T), only at T (deleted after T), both with another
 * hash (changed).
 */
async function differingRows(p: Pass1): Promise<{ rowsCompared: number; rowsBefore: number }> {
  const { before, atT, b, live, key, keyCols, rowHash } = p;
  const format = copyFormat(keyCols);
  await atT.query('DROP TABLE IF EXISTS pg_temp.pitr_stage; DROP TABLE IF EXISTS pg_temp.pitr_keys; DROP TABLE IF EXISTS pg_temp.pitr_want; '
    + `CREATE TEMP TABLE pitr_stage (${keyCols.map((c) => `${ident(c.name)} ${c.type}`).join(', ')}, pitr_h bigint)`);
  const rows = await stream(before, atT,
    `COPY (SELECT ${key.map((k) => `x.${ident(k)}`).join(', ')}, ${rowHash('x')} FROM ONLY ${qualified(b.schema, b.name)} x) TO STDOUT${format}`,
    `COPY pg_temp.pitr_stage (${key.map(ident).join(', ')}, pitr_h) FROM STDIN${format}`);
  await atT.query('ANALYZE pg_temp.pitr_stage');
  const match = keyMatch('r', 's', key, p.keyEq);
  await atT.query(`CREATE TEMP TABLE pitr_want AS
    SELECT CASE WHEN s.pitr_h IS NULL THEN 'deleted' WHEN r.ctid IS NULL THEN 'inserted' ELSE 'changed' END AS pitr_change,
           ${key.map((k) => `coalesce(s.${ident(k)}, r.${ident(k)}) AS ${ident(k)}`).join(', ')},
           CASE WHEN r.ctid IS NULL THEN NULL ELSE ${rowText('r', p.common)} END AS pitr_row_at_t
      FROM pg_temp.pitr_stage s FULL JOIN ONLY ${live} r ON ${match}
     WHERE s.pitr_h IS NULL OR r.ctid IS NULL OR s.pitr_h <> ${rowHash('r')}`);
  return { rowsCompared: rows, rowsBefore: rows };
}

/**
 * Pass 1 for a table keyed by one integer column (smallint, integer, bigint): both sides send (key, hash) packed,
 * key range after key range, and the runner sorts and walks them side by side (changes-merge.ts); only the keys that
 * differ go into pg_temp.pitr_stage. With `since` (the commit-time filter) the pre-recovery side hashes only the
 * rows committed after it, and the side at T sends keys alone: the rows paired with a hashed one are hashed
 * afterwards, in SQL, a handful.
 */
async function mergedRows(p: Pass1, mode: { readonly since?: Date; readonly rowVersions?: boolean }): Promise<Compared | string> {
  const { before, atT, b, live, key } = p;
  const { since, rowVersions } = mode;
  // By row version: both sides hash each row's version, not its content; the content of the versions that differ is
  // hashed afterwards, a handful (rowVersionCheck).
  const rowHash = rowVersions ? rowVersionHash : p.mergeHash;
  const contentHash = p.mergeHash;
  const k = ident(key[0]);
  const source = qualified(b.schema, b.name);
  const ranges = await keyRangesOf(p, key[0]);
  const where = (alias: string, range: number): string => (ranges[range] ? ` WHERE ${ranges[range].split('$k').join(`${alias}.${k}`)}` : '');
  // The commit-time filter, range by range: the range's keys, xmins and row addresses first; the commit time and
  // origin looked up once per distinct xmin; the hash computed only for the rows committed after it.
  const beforeSql = since
    ? (range: number): string => `WITH c AS MATERIALIZED (SELECT x.${k} AS k, x.xmin AS xid, x.ctid AS tid FROM ONLY ${source} x${where('x', range)}),
        late AS MATERIALIZED (SELECT d.xid FROM (SELECT DISTINCT xid FROM c) d WHERE NOT ${committedBefore('d.xid', since)})
      SELECT string_agg(${packedRow('key-maybe-hash', 'c.k', `CASE WHEN c.xid IN (SELECT xid FROM late) THEN (SELECT ${rowHash('x')} FROM ONLY ${source} x WHERE x.ctid = c.tid) END`)}, ''::bytea) FROM c`
    : (range: number): string => `SELECT string_agg(${packedRow('key-hash', `x.${k}`, rowHash('x'))}, ''::bytea) FROM ONLY ${source} x${where('x', range)}`;
  const atTSql = (range: number): string =>
    `SELECT string_agg(${packedRow(since ? 'key' : 'key-hash', `r.${k}`, rowHash('r'))}, ''::bytea) FROM ONLY ${live} r${where('r', range)}`;
  // Each range in the order its rows lie in the table (sequential or bitmap scan): an index scan per row cost as
  // much as hashing the row. The runner sorts.
  await Promise.all([before.query('SET enable_indexscan = off'), atT.query('SET enable_indexscan = off')]);
  let merged: MergeResult;
  try {
    merged = await mergeByKey(
      new KeyHashChunks((range) => packedChunk(before, beforeSql(range)), ranges.length, since ? 'key-maybe-hash' : 'key-hash'),
      new KeyHashChunks((range) => packedChunk(atT, atTSql(range)), ranges.length, since ? 'key' : 'key-hash'),
      !since, p.maxDifferingInRunner);
  } finally {
    // After a failed read the transaction is aborted and RESET fails too: the read's error is the one to report.
    await Promise.all([before.query('RESET enable_indexscan').catch(() => undefined), atT.query('RESET enable_indexscan').catch(() => undefined)]);
  }
  // A mass change after T (the usual disaster): more differing rows than the runner keeps in memory. The server pairs
  // the table instead, in temporary tables, as for any other key.
  if (merged.tooMany) return since ? differingRowsSince(p, since) : differingRows(p);
  const versionsDiffer = rowVersions ? merged.differ.filter((d) => d.kind === 'changed').map((d) => d.key) : [];
  if (versionsDiffer.length > p.rowVersionMaxDiffering) {
    return `${versionsDiffer.length} row versions differ from T's (more than ${p.rowVersionMaxDiffering}: rewritten after T, by VACUUM FULL or CLUSTER?)`;
  }
  if (since && merged.unhashedOnlyBefore > 0) {
    return `${merged.unhashedOnlyBefore} row(s) committed before ${since.toISOString()} have a key that does not exist at T: the commit times do not match this restore time`;
  }
  // The rows at T of the keys that differ (all but the inserted ones), looked up through the key's index: the md5
  // the replay checks ("the row is still as at T"), and the hash a paired row is compared by.
  const atTRows = new Map<string, { m: string; h: string }>();
  const lookUp = merged.differ.filter((d) => d.kind !== 'inserted').map((d) => d.key);
  for (let i = 0; i < lookUp.length; i += FETCH_BATCH) {
    const { rows } = await atT.query<{ k: string; m: string; h: string }>(`SELECT r.${k}::text AS k, ${rowText('r', p.common)} AS m, ${contentHash('r')}::text AS h
      FROM ONLY ${live} r WHERE r.${k} = ANY($1::bigint[])`, [lookUp.slice(i, i + FETCH_BATCH)]);
    for (const r of rows) atTRows.set(r.k, r);
  }
  // By row version: the content hash before the recovery of the rows whose version differs.
  const beforeHashes = new Map<string, string>();
  for (let i = 0; i < versionsDiffer.length; i += FETCH_BATCH) {
    const { rows } = await before.query<{ k: string; h: string }>(`SELECT x.${k}::text AS k, ${contentHash('x')}::text AS h
      FROM ONLY ${source} x WHERE x.${k} = ANY($1::bigint[])`, [versionsDiffer.slice(i, i + FETCH_BATCH)]);
    for (const r of rows) beforeHashes.set(r.k, r.h);
  }
  const want: Array<Record<string, string | null>> = [];
  for (const d of merged.differ) {
    const at = atTRows.get(d.key);
    // A paired row (the commit-time filter hashed it before the recovery only) changed if its hash at T differs. A
    // row gone by the lookup (only when T is read on the live recovered database, MODE=changes) has no md5 at T: the
    // replay's check then never matches, and leaves the row alone.
    if (d.kind === 'paired' && at?.h === d.hash) continue;
    // A row whose version differs (by row version) changed if its content hash differs: written again as it was, or
    // moved, it did not.
    if (rowVersions && d.kind === 'changed' && at !== undefined && at.h === beforeHashes.get(d.key)) continue;
    want.push({ pitr_change: d.kind === 'paired' ? 'changed' : d.kind, pitr_row_at_t: d.kind === 'inserted' ? null : at?.m ?? null, [key[0]]: d.key });
  }
  const count = (kind: string): number => want.filter((w) => w.pitr_change === kind).length;
  const differences: Differences = {
    inserted: count('inserted'),
    changed: count('changed'),
    deleted: count('deleted'),
    batch: async (offset) => JSON.stringify(want.slice(offset, offset + FETCH_BATCH)),
    done: async () => undefined,
  };
  return { rowsCompared: rowVersions ? versionsDiffer.length : merged.hashed, rowsBefore: merged.rowsBefore, keyRanges: ranges.length, differences };
}

/**
 * The key ranges of a table (keyRanges), from both sides' row estimates and key bounds and the key's histogram at T
 * (keyCuts). Read from the catalog and the key's index only: nothing is analyzed or written.
 */
async function keyRangesOf(p: Pass1, key: string): Promise<string[]> {
  type Bounds = { min: string | null; max: string | null; histogram: string | null };
  const side = async (client: Client, relation: string, histogram: boolean): Promise<Bounds & { rows: number }> => {
    const { rows } = await client.query<Bounds & { tuples: number; pages: number; bytes: number }>(`
      SELECT c.reltuples::float8 AS tuples, c.relpages::float8 AS pages, pg_relation_size(c.oid)::float8 AS bytes,
             (SELECT min(x.${ident(key)})::text FROM ONLY ${relation} x) AS min, (SELECT max(x.${ident(key)})::text FROM ONLY ${relation} x) AS max,
             ${histogram ? `(SELECT s.histogram_bounds::text FROM pg_stats s
                WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = $2 AND NOT s.inherited)` : 'NULL'} AS histogram
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::regclass`, histogram ? [relation, key] : [relation]);
    const r = rows[0];
    // The planner's estimate: rows per page as last counted, times the pages now; without a count, 64 bytes a row.
    const estimate = r.tuples > 0 && r.pages > 0 ? (r.tuples / r.pages) * (r.bytes / 8192) : r.bytes / 64;
    return { rows: estimate, min: r.min, max: r.max, histogram: r.histogram };
  };
  const [atT, before] = await Promise.all([side(p.atT, p.live, true), side(p.before, qualified(p.b.schema, p.b.name), false)]);
  const bounds = (x: { min: string | null; max: string | null }): { min: bigint; max: bigint } | null =>
    (x.min === null || x.max === null ? null : { min: BigInt(x.min), max: BigInt(x.max) });
  const histogram = (atT.histogram ?? '').replace(/^\{|\}$/g, '').split(',').filter((v) => v !== '');
  const cuts = keyCuts({
    rowsAtT: atT.rows,
    rowsBefore: before.rows,
    atT: bounds(atT),
    before: bounds(before),
    histogram: histogram.every((v) => /^-?\d+$/.test(v)) ? histogram.map((v) => BigInt(v)) : [],
  }, p.rangeRows);
  return keyRanges('$k', cuts);
}

/** One packed chunk (changes-merge.ts): the single bytea a chunk query returns, read by COPY (FORMAT binary); null for no rows. */
async function packedChunk(client: Client, sql: string): Promise<Buffer | null> {
  const parts: Buffer[] = [];
  for await (const part of client.query(copyTo(`COPY (${sql}) TO STDOUT (FORMAT binary)`))) parts.push(part as Buffer);
  const bytes = Buffer.concat(parts);
  // Header (signature, flags, extension), one row of one field (count, length, bytes), trailer.
  if (bytes.length < 19 || bytes.toString('latin1', 0, 11) !== 'PGCOPY\n\xff\r\n\0') throw new Error('not a binary COPY stream');
  const row = 19 + bytes.readInt32BE(15);
  if (bytes.readInt16BE(row) !== 1) throw new Error(`unexpected ${bytes.readInt16BE(row)} field(s) in a packed chunk`);
  const length = bytes.readInt32BE(row + 2);
  return length < 0 ? null : bytes.subarray(row + 6, row + 6 + length);
}

/**
 * Why the commit-time filter cannot be trusted for this table, from its columns: a row keeps its xmin through
 * schema changes that need no rewrite, so a change there could alter row text without a newer commit time.
 */
function filterRefusal(p: Pass1): string | undefined {
  const catalogText = catalogTextChanged(p);
  if (catalogText.length > 0) {
    return `columns whose text can change through the catalog with no write to the row (an enum label renamed, a composite or range type altered): ${catalogText.map((c) => ident(c.name)).join(', ')}`;
  }
  const beforeByName = new Map(p.beforeCols.map((c) => [c.name, c]));
  const changedType = p.atTCols.filter((c) => beforeByName.has(c.name) && beforeByName.get(c.name)!.type !== c.type);
  if (changedType.length > 0) return `column types changed after T (${changedType.map((c) => ident(c.name)).join(', ')}): a type change without a rewrite keeps the rows' commit times`;
  const order = p.beforeCols.filter((c) => p.common.includes(c.name)).map((c) => c.name);
  if (order.join('\u0000') !== p.common.join('\u0000')) return 'the columns are in another order than at T (dropped and added again after T?): an added column does not rewrite the rows';
  return undefined;
}

/**
 * A column dropped and added again with the same name and type after T changes every row's value without touching
 * the rows. The added column comes after every dropped one: refuse when a dropped column lies before a live one,
 * unless it was dropped (its catalog row committed) before `since`.
 */
async function droppedColumnsRefusal(before: Client, oid: number, since: Date): Promise<string | undefined> {
  const { rows } = await before.query<{ n: string }>(`
    SELECT count(*) AS n FROM pg_attribute d
     WHERE d.attrelid = $1::oid AND d.attisdropped AND d.attnum > 0
       AND d.attnum < (SELECT max(attnum) FROM pg_attribute WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped)
       AND NOT ${committedBefore('d.xmin', since)}`, [oid]);
  const n = Number(rows[0].n);
  return n > 0 ? `${n} dropped column(s) before live ones, dropped after ${since.toISOString()} or at an unknown time: a column dropped and added again keeps the rows' commit times` : undefined;
}

/**
 * The commit-time filter, in one pass like differingRows: every key of the pre-recovery table streams over (keys are
 * what find the rows deleted after T), but the hash only for the rows committed after `since` (or without a local
 * commit time); the others are as at T, so neither side hashes them. The filter is checked on the way: a key it left
 * out must exist at T. Returns why it fell back when it does not; the caller then compares every row.
 */
async function differingRowsSince(p: Pass1, since: Date): Promise<{ rowsCompared: number; rowsBefore: number } | string> {
  const { before, atT, b, live, key, keyCols, rowHash } = p;
  const keyList = (alias: string): string => key.map((k) => `${alias}.${ident(k)}`).join(', ');
  await atT.query('DROP TABLE IF EXISTS pg_temp.pitr_stage; DROP TABLE IF EXISTS pg_temp.pitr_keys; DROP TABLE IF EXISTS pg_temp.pitr_want; '
    + `CREATE TEMP TABLE pitr_stage (${keyCols.map((c) => `${ident(c.name)} ${c.type}`).join(', ')}, pitr_h bigint)`);
  const format = copyFormat(keyCols);
  const rowsBefore = await stream(before, atT,
    `COPY (SELECT ${keyList('x')}, CASE WHEN ${committedAfter('x', qualified(b.schema, b.name), since)} THEN ${rowHash('x')} END FROM ONLY ${qualified(b.schema, b.name)} x) TO STDOUT${format}`,
    `COPY pg_temp.pitr_stage (${key.map(ident).join(', ')}, pitr_h) FROM STDIN${format}`);
  await atT.query('ANALYZE pg_temp.pitr_stage');
  const match = keyMatch('r', 's', key, p.keyEq);
  // Only at T: deleted after T. Only before: inserted after T (hashed, or the filter was wrong). Both, hashed: changed if the hash differs.
  await atT.query(`CREATE TEMP TABLE pitr_want AS
    SELECT CASE WHEN s.ctid IS NULL THEN 'deleted' WHEN r.ctid IS NULL THEN 'inserted' ELSE 'changed' END AS pitr_change,
           ${key.map((k) => `coalesce(s.${ident(k)}, r.${ident(k)}) AS ${ident(k)}`).join(', ')},
           CASE WHEN r.ctid IS NULL THEN NULL ELSE ${rowText('r', p.common)} END AS pitr_row_at_t,
           s.ctid IS NOT NULL AND s.pitr_h IS NULL AS pitr_unhashed
      FROM pg_temp.pitr_stage s FULL JOIN ONLY ${live} r ON ${match}
     WHERE s.ctid IS NULL OR r.ctid IS NULL OR (s.pitr_h IS NOT NULL AND s.pitr_h <> ${rowHash('r')})`);
  const { rows } = await atT.query<{ wrong: string; hashed: string }>(
    'SELECT (SELECT count(*) FROM pg_temp.pitr_want WHERE pitr_unhashed) AS wrong, (SELECT count(pitr_h) FROM pg_temp.pitr_stage) AS hashed');
  const wrong = Number(rows[0].wrong);
  if (wrong > 0) return `${wrong} row(s) committed before ${since.toISOString()} have a key that does not exist at T: the commit times do not match this restore time`;
  await atT.query('ALTER TABLE pg_temp.pitr_want DROP COLUMN pitr_unhashed');
  return { rowsCompared: Number(rows[0].hashed), rowsBefore };
}

/** Pass 1's COPY format for a key: binary where its types have binary input and output (not every extension type does). */
function copyFormat(keyCols: readonly Column[]): string {
  return keyCols.every((c) => c.binaryIo) ? ' (FORMAT binary)' : '';
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

/** A kept column's value in the replay (alias `a`): cast back to its type at T where it is kept as text (keptAsText). */
function keptValue(r: TableReplay, column: string): string {
  const type = r.castTo?.[column];
  return type ? `a.${ident(column)}::${type}` : `a.${ident(column)}`;
}

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
    '-- under the settings below): a row written again since the recovery is left alone. Updates leave key columns as they',
    '-- are: a key changed in content only (citext Bob to bob, the same key) keeps its content at T (rewriting a key would',
    '-- cascade to referencing rows before their own updates); the kept row shows the later one.',
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
    const match = keyMatch('l', 'a', r.key, r.keyEq);
    const asAtT = `${rowText('l', r.hashColumns)} = a.pitr_row_at_t`;
    const role = `-- needs: INSERT, UPDATE, DELETE on ${r.live} (owner ${ident(r.owner)}; the master user if it is a member of ${ident(r.owner)} or was granted them)`;
    const trig = r.triggers.length > 0 ? [`-- fires triggers ${r.triggers.map(ident).join(', ')}`] : [];
    if (t.inserted > 0) {
      lines.push('', `-- ${t.table}: ${t.inserted} row(s) inserted after T`, role, ...trig,
        `INSERT INTO ${r.live} (${r.insertColumns.map(ident).join(', ')})${r.overriding ? ' OVERRIDING SYSTEM VALUE' : ''}`,
        `SELECT ${r.insertColumns.map((c) => keptValue(r, c)).join(', ')} FROM ${r.kept} a`,
        ` WHERE a.pitr_change = 'inserted' AND ${bound}`,
        `   AND NOT EXISTS (SELECT 1 FROM ${r.live} l WHERE ${match});`);
    }
    if ((t.changed ?? 0) > 0 && r.updateColumns.length > 0) {
      lines.push('', `-- ${t.table}: ${t.changed} row(s) changed after T: their later version, where the row is still as at T`, role, ...trig,
        `UPDATE ${r.live} l SET ${r.updateColumns.map((c) => `${ident(c)} = ${keptValue(r, c)}`).join(', ')}`,
        `  FROM ${r.kept} a`,
        ` WHERE a.pitr_change = 'changed' AND ${match} AND ${asAtT} AND ${bound};`);
    }
  }
  for (const t of [...keyed].reverse()) {
    const r = t.replay!;
    if (t.deleted === 0) continue;
    const match = keyMatch('l', 'a', r.key, r.keyEq);
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
  const how = [
    ...(t.key ? [`rows paired by ${t.key.map(ident).join(', ')}`] : []),
    ...(t.rowsBefore !== undefined ? [`${t.rowsCompared} of ${t.rowsBefore} row(s) compared by content${t.fullBecause ? `, every row: ${t.fullBecause}` : ''}`] : []),
  ];
  return `${t.table}: since T ${t.inserted} inserted, ${t.changed === undefined ? 'changed unknown (no key)' : `${t.changed} changed`}, ${t.deleted} deleted`
    + `${how.length > 0 ? ` (${how.join('; ')})` : ''}${t.notes.length > 0 ? `; ${t.notes.join(' ')}` : ''}`;
}

/** The log lines after the comparison: where everything is, the replay SQL cut to a readable length, and how to drop the schema. */
export function describeRecord(r: ChangesRecord): string[] {
  const touched = r.tables.filter((t) => t.status !== 'compared' || t.inserted + (t.changed ?? 0) + t.deleted > 0);
  const lines = [
    `writes made after T in ${JSON.stringify(r.database)}: ${touched.length} of ${r.tables.length} table(s) differ, ${r.sequences.length} sequence(s) moved; rows kept in schema ${ident(r.schema)} of ${JSON.stringify(r.database)} `
      + `(one table per source table, summary in ${qualified(r.schema, SUMMARY_TABLE)}); compared in ${(r.ms / 1000).toFixed(1)} s, `
      + `${r.rowsCompared} of ${r.rowsBefore} row(s) of the keyed tables by content (${r.comparison})`,
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
