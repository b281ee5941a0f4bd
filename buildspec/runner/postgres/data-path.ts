/**
 * The PostgreSQL data path (recovery steps 6 and 7): copy databases from the
 * point-in-time copy back into the original, verified, then swapped in.
 *
 * How the bytes move. Copying is CPU-bound, and a plain dump-then-restore
 * pays for the data twice (written to disk, read back) with the restore
 * waiting for the whole dump. Here the source's data is read under one
 * exported snapshot and:
 * - tables of at least `streamMinBytes` are streamed straight from
 *   `COPY ... TO STDOUT` on the source into `COPY ... FROM STDIN (FREEZE)` on
 *   the target (in-process, no file), so their dump and load overlap, and the
 *   stream is hashed as it flows: that is the table's checksum on the
 *   point-in-time copy, which is then not read a second time;
 * - everything else — the schema, small tables, sequences, large objects —
 *   goes through `pg_dump -Fd -Z0 -j N` and `pg_restore`, in three sections:
 *   pre-data, then data (in parallel with the streams), then post-data
 *   (indexes, constraints, triggers, materialized views) with `-j N`.
 * A streamed table's indexes are built as soon as its data is in, side by
 * side, then it is analyzed. The point-in-time copy's checksums of the other
 * tables run beside the copy from the end of the dump; each restored table's
 * checksum is taken once every table's data is in, ahead of the index builds
 * still waiting. Then ANALYZE of the rest, the comparison,
 * database-level properties, and the swap.
 */
import { mkdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { formatDuration } from '../log';
import type { StepLog } from '../log';
import { enforceHazards, findHazards, reviewHazardsForDrill, type HazardReport } from './hazards';
import { exactPattern, ident, keptName, literal, qualified, restoredName } from './names';
import { PgOriginalInspector } from './preflight';
import { PgProcesses, connect, dbConninfo, describe, libpqEnv } from './process';
import { REFERENCED_ROLES, checkRoles } from './roles';
import { EXCLUDED_DATABASES, HAZARDS } from '../../../src/contract';
import type { CopyOptions, DataPath, DatabaseCopyResult, PgTarget } from '../ports';
import {
  compareFingerprints, compareProperties, copyChecksum, CopyChecksum, copyOutSql, fingerprint, fingerprintRest, listTables, readDatabaseProperties,
  settingStatement, tableChecksums, type DatabaseProperties, type Fingerprint, type TableCheck,
} from './verify';

/** Tables at least this large are streamed source -> target instead of going through the dump directory. */
export const DEFAULT_STREAM_MIN_BYTES = 16 * 1024 * 1024;

/**
 * Streaming overlaps the source's COPY TO with the target's COPY FROM, skips
 * writing the table to the dump directory and reading it back, and gives the
 * table's checksum on the point-in-time copy from the stream itself (no
 * second read there). It was once kept to different hosts: when both servers
 * share one host's CPUs, the overlap adds contention. Since the checksum comes
 * from the stream, streaming saves CPU on one host too (measured on 2 cores,
 * skewed dataset at scale 5: 13.6 instead of 16.6 CPU seconds), so the
 * threshold is the same on every route. (Both parameters stay, for callers
 * that pass the route.)
 */
export function defaultStreamMinBytes(_source: PgTarget, _target: PgTarget): number {
  return DEFAULT_STREAM_MIN_BYTES;
}
/** Head-room on top of the estimated dump size before the disk check passes. */
export const DISK_MARGIN = 1.1;
/** How long the swap waits for sessions on the database to end before giving up (and changing nothing). */
export const TERMINATE_TIMEOUT_MS = 30_000;
const MAX_REPORTED_MISMATCHES = 20;

export interface PgDataPathSettings {
  /** @default DEFAULT_STREAM_MIN_BYTES; Infinity streams nothing, 0 every table. */
  readonly streamMinBytes?: number;
  /**
   * Runs once every table's data is in and before any checksum of the
   * restored database is taken, with its name: the seam tests use to tamper
   * with the restored data.
   */
  readonly beforeVerify?: (database: string, restoredAs: string) => Promise<void>;
}

/** A table whose data is streamed, with the columns COPY must name (generated columns excluded). */
interface StreamedTable {
  readonly oid: string;
  /** A partition: its indexes are attached to the parent's, so they wait for the post-data pass. */
  readonly partition: boolean;
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly string[];
  readonly bytes: number;
  /** Stream in COPY's binary format (built-in column types, same major version on both ends). */
  readonly binary: boolean;
}

/**
 * One index of a streamed table, built as soon as the table's data is in,
 * side by side with the table's other indexes: either an archive entry
 * (restored alone with pg_restore), or a primary key / unique constraint
 * built as a unique index and attached with `ADD CONSTRAINT ... USING INDEX`
 * once every index of the table is in (the constraint takes an ACCESS
 * EXCLUSIVE lock, which would serialize the builds).
 */
type IndexWork = (
  | { readonly kind: 'entry'; readonly list: string }
  | { readonly kind: 'constraint'; readonly createIndex: string; readonly addConstraint: string }
) & {
  /** The index's size on the point-in-time copy (the larger, the longer its build). */
  readonly bytes?: number;
};

interface RestoreLists {
  /** Everything to restore but the per-table entries. */
  readonly main: string;
  /** Streamed table OID -> its indexes and key constraints. */
  readonly tables: ReadonlyMap<string, readonly IndexWork[]>;
  /** Streamed table OID -> a list of the comments and security labels on those, restored after them. */
  readonly labels: ReadonlyMap<string, string>;
}

/** The point-in-time copy's half of the verification, running beside the copy. */
interface SourceFingerprint {
  readonly listed: Promise<{ tables: TableCheck[]; sequences: Array<{ schema: string; name: string }> }>;
  readonly done: Promise<Fingerprint>;
  /** After a failure: close its session. */
  readonly cancel: () => void;
}

/** What the checks found out about one database, before anything is written. */
interface DatabasePlan {
  readonly database: string;
  readonly restoredAs: string;
  readonly keptAs: string;
  readonly existsOnTarget: boolean;
  readonly sourceProperties: DatabaseProperties;
  readonly streamed: readonly StreamedTable[];
  readonly hazards: HazardReport;
  /** pg_database_size on the point-in-time copy, and of the database on the original (0 when it does not exist there). */
  readonly sourceBytes: number;
  readonly targetBytes: number;
}

export class PgDataPath implements DataPath {
  readonly preflight = new PgOriginalInspector();

  constructor(private readonly settings: PgDataPathSettings = {}) {}

  async checkLogin(target: PgTarget): Promise<void> {
    const client = await connect(target, target.maintenanceDatabase);
    await client.end();
  }

  async listDatabases(source: PgTarget): Promise<string[]> {
    return withClient(source, source.maintenanceDatabase, async (client) => {
      const { rows } = await client.query<{ datname: string }>(
        'SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn AND datname <> ALL($1) ORDER BY datname',
        [[...EXCLUDED_DATABASES]],
      );
      return rows.map((r) => r.datname);
    });
  }

  async copy(source: PgTarget, target: PgTarget, options: CopyOptions): Promise<DatabaseCopyResult[]> {
    if (options.databases.length === 0) throw new Error('copy: no database to copy; pass at least one database name. Nothing was changed.');
    if (!Number.isInteger(options.jobs) || options.jobs < 1) throw new Error(`copy: jobs ${options.jobs} is not a positive integer. Nothing was changed.`);
    const processes = new PgProcesses(options.signal);
    let drillHazards: ReadonlyMap<string, string[]> | undefined;
    try {
      const plans = await options.log.step('check roles, privileges, swap hazards and disk on the original', async () => {
        const out: DatabasePlan[] = [];
        for (const database of options.databases) out.push(await this.plan(source, target, database, options));
        // A drill swaps nothing: the hazards are what a recovery would meet, listed in its record, and none stops it.
        if (options.drill) drillHazards = reviewHazardsForDrill(out.map((p) => p.hazards), options.acceptHazards ?? [], options.log);
        else enforceHazards(out.map((p) => p.hazards), options.acceptHazards ?? [], options.log);
        checkOriginalStorage(out, options);
        return out;
      });
      const results: DatabaseCopyResult[] = [];
      for (const [index, plan] of plans.entries()) {
        const result = await this.copyDatabase(source, target, plan, options, processes, join(options.workDir, `pitr-dump-${options.stamp}-${index}`));
        results.push(drillHazards ? { ...result, hazardsForRecovery: drillHazards.get(plan.database) ?? [] } : result);
      }
      return results;
    } finally {
      processes.dispose();
    }
  }

  // ------------------------------------------------------------ checks

  private async plan(source: PgTarget, target: PgTarget, database: string, options: CopyOptions): Promise<DatabasePlan> {
    const restoredAs = options.drill?.intoName(database) ?? restoredName(database, options.stamp);
    // A drill writes only to the temporary instance; the checks a recovery makes on the original still run there, read-only.
    const original = options.drill?.original ?? target;
    const keptAs = keptName(database, options.stamp);
    const streamMin = this.settings.streamMinBytes ?? defaultStreamMinBytes(source, target);

    const found = await withClient(source, source.maintenanceDatabase, (c) => readDatabaseProperties(c, database));
    if (!found) {
      const names = await this.listDatabases(source);
      throw new Error(`database ${JSON.stringify(database)} does not exist on the point-in-time copy (${source.host}:${source.port}); `
        + `databases there: ${names.map((n) => JSON.stringify(n)).join(', ') || 'none'}. Nothing was written to the original.`);
    }
    const sourceProperties = found;

    const inspected = await withClient(source, database, async (client) => {
      const roles = (await client.query<{ role: string; owns: boolean }>(REFERENCED_ROLES)).rows;
      const { rows } = await client.query<{ oid: string; partition: boolean; schema: string; name: string; columns: string[]; bytes: string; builtin: boolean }>(`
        SELECT c.oid::text AS oid, c.relispartition AS partition, n.nspname AS schema, c.relname AS name, pg_table_size(c.oid)::text AS bytes,
               -- Built-in types only (OIDs below FirstNormalObjectId), and no reg* types: their binary COPY format
               -- carries no database-specific OIDs (text prints reg* values as names, binary as OIDs).
               NOT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                              AND (a.atttypid >= 16384 OR t.typname LIKE 'reg%' OR t.typname LIKE '\\_reg%')) AS builtin,
               ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        AND coalesce(to_jsonb(a) ->> 'attgenerated', '') = '' ORDER BY a.attnum)::text[] AS columns
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND c.relpersistence <> 't'
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
           AND pg_table_size(c.oid) >= $1
         ORDER BY pg_table_size(c.oid) DESC`, [Number.isFinite(streamMin) ? streamMin : Number.MAX_SAFE_INTEGER]);
      const size = Number((await client.query<{ size: string }>('SELECT pg_database_size(current_database())::text AS size')).rows[0].size);
      const version = (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v;
      return { roles, size, version, streamed: rows.map(({ builtin, ...r }) => ({ ...r, bytes: Number(r.bytes), binary: builtin })) };
    });

    const sameMajor = await withClient(target, target.maintenanceDatabase, async (client) => {
      const targetVersion = (await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0].v;
      return Math.floor(Number(targetVersion) / 10000) === Math.floor(Number(inspected.version) / 10000);
    });
    // Binary COPY is cheaper to produce and parse, but only portable between servers of the same major version.
    const streamed = inspected.streamed.map((t) => ({ ...t, binary: t.binary && sameMajor }));

    await withClient(original, original.maintenanceDatabase, async (client) => {
      await checkRoles(client, inspected.roles, { database, user: target.user, where: `${target.host}:${target.port}` });
      const taken = (await client.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname = ANY($1)', [[restoredAs, keptAs]])).rows.map((r) => r.datname);
      if (taken.length > 0) {
        throw new Error(`database ${taken.map((n) => JSON.stringify(n)).join(' and ')} already exists on the original: a run with stamp ${options.stamp} was here before. `
          + 'Use another stamp, or drop it if it is no longer needed. Nothing was written to the original.');
      }
    });

    const streamedBytes = inspected.streamed.reduce((sum, t) => sum + t.bytes, 0);
    const needed = Math.max(0, inspected.size - streamedBytes) * DISK_MARGIN;
    mkdirSync(options.workDir, { recursive: true });
    const stat = statfsSync(options.workDir);
    const free = Number(stat.bavail) * Number(stat.bsize);
    if (needed > free) {
      throw new Error(`not enough disk for the dump of ${JSON.stringify(database)} in ${options.workDir}: about ${mib(needed)} needed `
        + `(database ${mib(inspected.size)}, of which ${mib(streamedBytes)} is streamed without a file), ${mib(free)} free. `
        + 'Give the build more disk, or point the work directory elsewhere. Nothing was written to the original.');
    }
    const existsOnTarget = (await withClient(original, original.maintenanceDatabase, (c) => readDatabaseProperties(c, database))) !== undefined;
    const hazards = await withClient(original, original.maintenanceDatabase, (onTarget) => withClient(source, database, (onSource) => findHazards({
      database,
      strategy: options.strategy,
      existsOnTarget,
      // A drill restores as a recovery that accepted every hazard would (event triggers left out, say), and lists them.
      accepted: options.drill ? Object.values(HAZARDS) : options.acceptHazards ?? [],
      target: onTarget,
      source: onSource,
      onTargetDatabase: (other, fn) => withClient(original, other, fn),
    })));
    options.log.info(`${JSON.stringify(database)}: ${mib(inspected.size)}, ${inspected.roles.length} role references all present, `
      + `${streamed.length} table(s) streamed (${mib(streamedBytes)}; ${streamed.filter((t) => t.binary).length} in binary, ${streamed.filter((t) => !t.binary).length} in text COPY), `
      + `${existsOnTarget ? 'exists' : 'does not exist'} on the original`);
    const targetBytes = existsOnTarget
      ? Number((await withClient(original, original.maintenanceDatabase, (c) => c.query<{ size: string }>('SELECT pg_database_size($1)::text AS size', [database]))).rows[0].size)
      : 0;
    return { database, restoredAs, keptAs, existsOnTarget, sourceProperties, streamed, hazards, sourceBytes: inspected.size, targetBytes };
  }

  // ------------------------------------------------------------ copy

  private async copyDatabase(
    source: PgTarget, target: PgTarget, plan: DatabasePlan, options: CopyOptions, processes: PgProcesses, dumpDir: string,
  ): Promise<DatabaseCopyResult> {
    const { log } = options;
    const db = JSON.stringify(plan.database);
    // A drill restores beside the point-in-time copy's own database and never drops anything.
    const replace = options.strategy === 'replace' && !options.drill;
    // Under replace the copy is restored under the database's own name, after dropping it.
    const into = replace ? plan.database : plan.restoredAs;
    const exporter = await connect(source, plan.database);
    const state = { created: false, dropped: false };
    const sourceSides: SourceFingerprint[] = [];
    let unavailableSince: number | undefined;
    try {
      await exporter.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      const snapshot = (await exporter.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0].id;

      const create = (): Promise<void> => log.step(`${db}: create ${JSON.stringify(into)} on the ${options.drill ? 'temporary instance (drill)' : 'original'} (owner and privileges but CONNECT)`, async () => {
        processes.throwIfAborted();
        await withClient(target, adminDatabase(target, plan.database), async (c) => {
          await c.query(createDatabaseSql(into, plan.sourceProperties));
          state.created = true;
        });
        await this.applyProperties(target, plan, into, 'before restore');
      });
      // Unless the original must be dropped first (replace), which waits for a good dump, the new database is
      // created while the dump runs. Both are waited for before anything else, so a failure cleans up after both.
      const createNow = !(replace && plan.existsOnTarget);
      const first = await Promise.allSettled([
        log.step(`${db}: dump schema and small tables (pg_dump -Fd -j ${options.jobs})`, () => processes.run('pg_dump', [
          '-Fd', '-j', String(options.jobs), '-Z0', '--no-sync', `--snapshot=${snapshot}`, '-f', dumpDir,
          ...plan.streamed.map((t) => `--exclude-table-data=${exactPattern(t.schema, t.name)}`),
          '-d', dbConninfo(plan.database),
        ], { env: libpqEnv(source) })),
        createNow ? create() : Promise.resolve(),
      ]);
      for (const r of first) if (r.status === 'rejected') throw r.reason;
      const lists = await this.restoreLists(exporter, target, processes, dumpDir, plan.streamed, plan.hazards.leftOutEventTriggers.length > 0);
      // The point-in-time copy is read-only under the snapshot: its half of the verification runs from now on, beside the copy.
      const sourceSide = this.sourceFingerprint(source, plan, snapshot, processes);
      sourceSides.push(sourceSide);
      /** The restored tables' checksums, each taken once nothing writes its rows any more. */
      const restoredTables: Record<string, string> = {};
      /** The streamed tables' checksums on the point-in-time copy, taken from their streams. */
      const streamChecksums: Record<string, string> = {};
      const checksum = (tables: readonly TableCheck[]) => (): Promise<void> => withClient(target, into, async (c) => {
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        Object.assign(restoredTables, await tableChecksums(c, tables, () => processes.throwIfAborted()));
        await c.query('COMMIT');
      });
      const streamedChecksum = (table: StreamedTable) => (): Promise<void> => withClient(target, into, async (c) => {
        processes.throwIfAborted();
        await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        restoredTables[qualified(table.schema, table.name)] = await copyChecksum(c, table, plan.sourceProperties.encoding);
        await c.query('COMMIT');
      });
      /**
       * The tables' checksum tasks: tables of DEFAULT_STREAM_MIN_BYTES or more (and the streamed ones) one by one,
       * the others together. Called once every table's data is in: nothing writes rows after that (triggers and
       * rules are created later, in post-data; generated columns are computed by the load), and the seam for
       * tampering runs first.
       */
      const checksumTasks = async (): Promise<{ streamed: Array<() => Promise<void>>; others: Array<() => Promise<void>> }> => {
        if (this.settings.beforeVerify) await this.settings.beforeVerify(plan.database, into);
        const { tables } = await sourceSide.listed;
        const streamedByName = new Map(plan.streamed.map((t) => [qualified(t.schema, t.name), t]));
        const alone = (t: TableCheck): boolean => t.bytes >= DEFAULT_STREAM_MIN_BYTES || streamedByName.has(qualified(t.schema, t.name));
        const rest = tables.filter((t) => !alone(t));
        const largest = tables.filter(alone).sort((a, b) => b.bytes - a.bytes);
        return {
          streamed: largest.flatMap((t) => {
            const streamed = streamedByName.get(qualified(t.schema, t.name));
            return streamed ? [streamedChecksum(streamed)] : [];
          }),
          others: [
            ...largest.filter((t) => !streamedByName.has(qualified(t.schema, t.name))).map((t) => checksum([t])),
            ...(rest.length > 0 ? [checksum(rest)] : []),
          ],
        };
      };

      if (replace && plan.existsOnTarget) {
        processes.throwIfAborted();
        await log.step(`${db}: drop it on the original (strategy replace)`, async () => {
          unavailableSince = Date.now();
          state.dropped = true;
          await withClient(target, adminDatabase(target, plan.database), (c) => c.query(`DROP DATABASE ${ident(plan.database)} WITH (FORCE)`));
        });
        log.warn(`${db} was dropped on the original; until this copy finishes it is restorable from the pre-recovery safety snapshot.`);
      }

      if (!createNow) await create();

      const restore = (section: string, jobs: number, list = lists.main, more: string[] = []): Promise<unknown> => processes.run('pg_restore', [
        ...(section ? [`--section=${section}`] : []), ...more, '--exit-on-error', '-j', String(jobs), '-L', list, '-d', dbConninfo(into), dumpDir,
      ], { env: libpqEnv(target), captureStdout: false });

      /** Tables already analyzed (quoted qualified names). */
      const analyzed = new Set<string>();
      await log.step(`${db}: restore schema (pre-data)`, () => restore('pre-data', 1));
      let unchecked: Array<() => Promise<void>> = [];
      if (plan.streamed.length === 0) {
        // One pg_restore for data and post-data, so it builds each table's indexes as soon as its data is in.
        await log.step(`${db}: copy data, then indexes, constraints, triggers, materialized views (pg_restore -j ${options.jobs})`, () => restore('data', options.jobs, lists.main, ['--section=post-data']));
        const { streamed, others } = await checksumTasks();
        unchecked = [...streamed, ...others];
      } else {
        await log.step(`${db}: copy data (${plan.streamed.length} streamed table(s), each one's indexes as soon as its data is in; ${options.jobs} at a time)`, async () => {
          const queue = new TaskQueue(options.jobs);
          // Once the last table's data is in, every table's checksum is queued: a streamed table's ahead of the index
          // builds still waiting (behind them, it would still hold the table's lock when its last index is in, and the
          // constraints, ACCESS EXCLUSIVE, and ANALYZE would wait for it with a core idle); the others behind them,
          // off the streamed tables' chain (their constraints come with post-data, after this step).
          let loading = 1 + plan.streamed.length;
          const loaded = async (): Promise<void> => {
            if (--loading !== 0) return;
            const { streamed, others } = await checksumTasks();
            queue.addFirst(streamed);
            for (const task of others) queue.add(task);
          };
          // Small tables share one slot while large ones stream.
          queue.add(async () => {
            await restore('data', 1);
            await loaded();
          });
          for (const table of plan.streamed) {
            queue.add(async () => {
              streamChecksums[qualified(table.schema, table.name)] = await this.streamTable(source, target, plan, into, table, snapshot, processes);
              const work = lists.tables.get(table.oid) ?? [];
              // Once every index is in: the constraints built as unique indexes (each takes an ACCESS EXCLUSIVE lock).
              const finish = async (): Promise<void> => {
                const constraints = work.flatMap((w) => (w.kind === 'constraint' ? [w.addConstraint] : []));
                if (constraints.length > 0) await withClient(target, into, async (c) => { for (const sql of constraints) await c.query(sql); });
                const labels = lists.labels.get(table.oid);
                if (labels) await restore('', 1, labels);
                // Statistics as soon as the table is complete, beside other tables' work rather than all at the end.
                // (A partition's indexes come with the post-data pass: it is analyzed after that.)
                if (!table.partition) {
                  await withClient(target, into, (c) => c.query(`ANALYZE ${qualified(table.schema, table.name)}`));
                  analyzed.add(qualified(table.schema, table.name));
                }
              };
              if (work.length === 0) {
                await loaded();
                return finish();
              }
              let left = work.length;
              // The table's indexes go ahead of tables not yet started (the largest table's chain sets the time), side by
              // side, largest first; queued before the checksums that loaded() may queue.
              queue.addFirst(work.map((w) => async () => {
                if (w.kind === 'entry') {
                  await restore('', 1, w.list);
                } else {
                  await withClient(target, into, async (c) => {
                    // As pg_restore does for an index in the database's default tablespace.
                    await c.query("SET default_tablespace = ''");
                    await c.query(w.createIndex);
                  });
                }
                if (--left === 0) await finish();
              }));
              await loaded();
            });
          }
          await queue.done();
        });
        await log.step(`${db}: build indexes, constraints, triggers, materialized views (post-data, -j ${options.jobs})`, () => restore('post-data', options.jobs));
      }
      rmSync(dumpDir, { recursive: true, force: true });

      // Both only read the restored data: ANALYZE samples it, verification counts and checksums it.
      const [, verified] = await Promise.all([
        log.step(`${db}: ANALYZE${analyzed.size > 0 ? ` the rest (${analyzed.size} done)` : ''} (${options.jobs} at a time)`, () => this.analyze(target, into, analyzed, options.jobs, processes)),
        log.step(`${db}: verify ${JSON.stringify(into)} against the point-in-time copy`, async () => {
          const queue = new TaskQueue(options.jobs);
          for (const task of unchecked) queue.add(task);
          await queue.done();
          return this.verify(target, plan, into, sourceSide, streamChecksums, restoredTables, processes, log);
        }),
      ]);
      await exporter.query('COMMIT');

      await log.step(`${db}: apply database privileges, settings and comment`, () => this.applyProperties(target, plan, into, 'after verify'));

      processes.throwIfAborted();
      let unavailableMs: number;
      let keptAs: string | undefined;
      if (replace) {
        unavailableMs = unavailableSince === undefined ? 0 : Date.now() - unavailableSince;
      } else if (options.drill) {
        unavailableMs = 0;
      } else {
        ({ unavailableMs, keptAs } = await log.step(`${db}: swap in (block connections, end sessions, rename)`, () => this.swap(target, plan, log)));
      }
      state.created = false;
      if (keptAs) {
        log.info(`${db}: the pre-recovery database is kept as ${JSON.stringify(keptAs)} with every write made after the restore time. `
          + `When it is no longer needed: DROP DATABASE ${ident(keptAs)};`);
      }
      log.info(`${db}: unavailable for ${formatDuration(unavailableMs)} (${options.strategy}); verified ${verified.tables} tables, ${verified.rows} rows`);
      if (plan.hazards.leftOutEventTriggers.length > 0) {
        log.warn(`${db}: restored WITHOUT the event trigger(s) ${plan.hazards.leftOutEventTriggers.map((n) => JSON.stringify(n)).join(', ')} `
          + '(accepted hazard event-triggers): re-create them as a superuser from the point-in-time copy\'s definitions.');
      }
      return { database: plan.database, keptAs, unavailableMs, tables: verified.tables, rows: verified.rows, verified: true };
    } catch (err) {
      processes.killAll();
      for (const side of sourceSides) side.cancel();
      const outcome = await this.cleanUp(target, plan, into, state);
      throw new Error(`${(err as Error).message}\n${outcome}`);
    } finally {
      await exporter.end().catch(() => undefined);
      rmSync(dumpDir, { recursive: true, force: true });
    }
  }

  /**
   * The archive's table of contents as restore lists: the main one, minus what
   * a non-superuser cannot restore on managed PostgreSQL; and, per streamed
   * table, its own indexes and primary key/unique/exclusion constraints, so
   * they are built as soon as its data is in while other tables still stream
   * (pg_restore -j schedules a whole archive the same way). Those entries are
   * taken out of the main list.
   */
  private async restoreLists(
    source: Client, target: PgTarget, processes: PgProcesses, dumpDir: string, streamed: readonly StreamedTable[], withoutEventTriggers: boolean,
  ): Promise<RestoreLists> {
    const { stdout } = await processes.run('pg_restore', ['-l', dumpDir], { env: libpqEnv(target) });
    const superuser = await withClient(target, target.maintenanceDatabase, async (c) => (await c.query<{ su: string }>("SELECT current_setting('is_superuser') AS su")).rows[0].su === 'on');
    // COMMENT ON EXTENSION needs extension ownership the master user of RDS does not have; CREATE EXTENSION sets the comment anyway.
    const lines = stdout.split('\n')
      .filter((line) => superuser || !/^\d+; \d+ \d+ COMMENT - EXTENSION /.test(line))
      // The accepted hazard event-triggers: this user cannot create them.
      .filter((line) => !withoutEventTriggers || !/^\d+; \d+ \d+ (COMMENT - )?EVENT TRIGGER /.test(line));

    const entry = /^(\d+); \d+ (\d+) (INDEX|CONSTRAINT) /;
    const oids = lines.map((l) => entry.exec(l)?.[2]).filter((o): o is string => o !== undefined);
    const owner = new Map<string, string>();
    /** Entry OID -> size of its index on the point-in-time copy: the larger ones are built first. */
    const indexBytes = new Map<string, number>();
    const tableOids = streamed.filter((t) => !t.partition).map((t) => t.oid);
    if (oids.length > 0 && tableOids.length > 0) {
      const { rows } = await source.query<{ oid: string; rel: string; bytes: string }>(`
        SELECT indexrelid::text AS oid, indrelid::text AS rel, pg_relation_size(indexrelid)::text AS bytes
          FROM pg_index WHERE indexrelid = ANY($1::oid[]) AND indrelid = ANY($2::oid[])
        UNION ALL SELECT oid::text, conrelid::text, pg_relation_size(conindid)::text
          FROM pg_constraint WHERE oid = ANY($1::oid[]) AND contype IN ('p', 'u', 'x') AND conrelid = ANY($2::oid[])`,
      [oids, tableOids]);
      for (const r of rows) {
        owner.set(r.oid, r.rel);
        indexBytes.set(r.oid, Number(r.bytes));
      }
    }
    // Primary keys and unique constraints that can be built as a plain unique index and attached to it:
    // btree, on columns only, default ordering, immediate, in the default tablespace, neither the clustering
    // nor the replica identity index (pg_dump appends those to the constraint's entry). The index is named
    // after the constraint, as pg_dump's `ADD CONSTRAINT ... PRIMARY KEY (...)` would name it.
    const asIndex = new Map<string, IndexWork>();
    const ownedOids = [...owner.keys()];
    if (ownedOids.length > 0) {
      const { rows } = await source.query<{ oid: string; name: string; type: string; rel: string; indexdef: string }>(`
        SELECT o.oid::text AS oid, o.conname AS name, o.contype AS type, o.conrelid::regclass::text AS rel, pg_get_indexdef(o.conindid) AS indexdef
          FROM pg_constraint o JOIN pg_class i ON i.oid = o.conindid JOIN pg_index x ON x.indexrelid = o.conindid JOIN pg_am am ON am.oid = i.relam
         WHERE o.oid = ANY($1::oid[]) AND o.contype IN ('p', 'u') AND NOT o.condeferrable AND i.relname = o.conname AND i.reltablespace = 0
           AND am.amname = 'btree' AND x.indexprs IS NULL AND x.indpred IS NULL AND NOT x.indisclustered AND NOT x.indisreplident
           AND NOT EXISTS (SELECT 1 FROM unnest(x.indoption::int2[]) v WHERE v <> 0)`, [ownedOids]);
      for (const r of rows) {
        asIndex.set(r.oid, {
          kind: 'constraint',
          createIndex: r.indexdef,
          addConstraint: `ALTER TABLE ONLY ${r.rel} ADD CONSTRAINT ${ident(r.name)} ${r.type === 'p' ? 'PRIMARY KEY' : 'UNIQUE'} USING INDEX ${ident(r.name)}`,
        });
      }
    }
    const perTable = new Map<string, IndexWork[]>();
    const perTableLabels = new Map<string, string[]>();
    const main: string[] = [];
    // The comment or security label of an entry comes right after it, and has no section of its own: pg_restore
    // gives it the section of the entry before it in the list. Left in the main list without its object, it
    // would run in whatever section precedes it (pre-data, say) and fail: it goes with its table's entries.
    let labelsOf: string | undefined;
    for (const line of lines) {
      const oid = entry.exec(line)?.[2] ?? '';
      const rel = owner.get(oid);
      if (!rel && labelsOf && /^\d+; \d+ \d+ (COMMENT|SECURITY LABEL) /.test(line)) {
        perTableLabels.set(labelsOf, [...(perTableLabels.get(labelsOf) ?? []), line]);
        continue;
      }
      labelsOf = rel;
      if (!rel) {
        main.push(line);
        continue;
      }
      let work = asIndex.get(oid);
      if (!work) {
        const list = join(dumpDir, `restore-${oid}.list`);
        writeFileSync(list, `${line}\n`);
        work = { kind: 'entry', list };
      }
      perTable.set(rel, [...(perTable.get(rel) ?? []), { ...work, bytes: indexBytes.get(oid) ?? 0 }]);
    }
    const file = join(dumpDir, 'restore.list');
    writeFileSync(file, main.join('\n'));
    const labels = new Map<string, string>();
    for (const [rel, entries] of perTableLabels) {
      const list = join(dumpDir, `restore-${rel}-labels.list`);
      writeFileSync(list, entries.join('\n'));
      labels.set(rel, list);
    }
    for (const work of perTable.values()) work.sort((a, b) => (b.bytes ?? 0) - (a.bytes ?? 0));
    return { main: file, tables: perTable, labels };
  }

  /**
   * COPY TO STDOUT under the exported snapshot, into COPY FROM STDIN (FREEZE)
   * after TRUNCATE in the same transaction, in-process on two `pg`
   * connections: the bytes are hashed as they flow (the table's checksum on
   * the point-in-time copy, see CopyChecksum), which spares a second read of
   * the table there. Both sessions use the database's encoding as
   * client_encoding, so the bytes pass unconverted. Returns the checksum.
   */
  private async streamTable(
    source: PgTarget, target: PgTarget, plan: DatabasePlan, into: string, table: StreamedTable, snapshot: string, processes: PgProcesses,
  ): Promise<string> {
    const name = qualified(table.schema, table.name);
    const encoding = `SET client_encoding = ${literal(plan.sourceProperties.encoding)}`;
    const clients: Client[] = [];
    const close = (): void => {
      for (const c of clients) void c.end().catch(() => undefined);
    };
    const untrack = processes.track(close);
    try {
      const reader = await connect(source, plan.database);
      clients.push(reader);
      const writer = await connect(target, into);
      clients.push(writer);
      processes.throwIfAborted();
      await reader.query(`BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT ${literal(snapshot)}; ${encoding}`);
      await writer.query(`${encoding}; BEGIN; TRUNCATE ONLY ${name}`);
      const checksum = new CopyChecksum();
      const out = reader.query(copyTo(copyOutSql(table)));
      const load = writer.query(copyFrom(`COPY ${name} (${table.columns.map(ident).join(', ')}) FROM STDIN (${table.binary ? 'FORMAT binary, ' : ''}FREEZE)`));
      await pipeline(out, checksum.passThrough(), load);
      if (load.rowCount !== out.rowCount) throw new Error(`${out.rowCount} rows read, ${load.rowCount} written`);
      await writer.query('COMMIT');
      await reader.query('COMMIT');
      return checksum.result(out.rowCount);
    } catch (err) {
      processes.throwIfAborted();
      throw new Error(`copying table ${name} failed: ${(err as Error).message}`);
    } finally {
      untrack();
      close();
    }
  }

  /**
   * The point-in-time copy's fingerprint under the exported snapshot, on a
   * session of its own: `listed` (the tables and sequences to compare) comes
   * first, `done` once every table is checksummed.
   */
  private sourceFingerprint(source: PgTarget, plan: DatabasePlan, snapshot: string, processes: PgProcesses): SourceFingerprint {
    let client: Client | undefined;
    let cancelled = false;
    let listedOk!: (v: { tables: TableCheck[]; sequences: Array<{ schema: string; name: string }> }) => void;
    let listedFailed!: (err: unknown) => void;
    const listed = new Promise<{ tables: TableCheck[]; sequences: Array<{ schema: string; name: string }> }>((resolve, reject) => {
      listedOk = resolve;
      listedFailed = reject;
    });
    const done = (async () => {
      client = await connect(source, plan.database);
      try {
        if (cancelled) throw new Error('cancelled');
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
        await client.query(`SET TRANSACTION SNAPSHOT ${literal(snapshot)}`);
        const tables = await listTables(client);
        const sequences = (await client.query<{ schema: string; name: string }>(`
          SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`)).rows;
        listedOk({ tables, sequences });
        // A streamed table's checksum is taken from its stream (streamTable), not by reading it a second time.
        const streamed = new Set(plan.streamed.map((t) => qualified(t.schema, t.name)));
        const read = tables.filter((t) => !streamed.has(qualified(t.schema, t.name)));
        const result = await fingerprint(client, read, sequences, () => processes.throwIfAborted());
        await client.query('COMMIT');
        return result;
      } finally {
        await client.end().catch(() => undefined);
      }
    })();
    done.catch((err) => listedFailed(err));
    listed.catch(() => undefined);
    return {
      listed,
      done,
      cancel: () => {
        cancelled = true;
        void client?.end().catch(() => undefined);
      },
    };
  }

  private async verify(
    target: PgTarget, plan: DatabasePlan, into: string, sourceSide: SourceFingerprint, streamChecksums: Readonly<Record<string, string>>,
    restoredTables: Record<string, string>, processes: PgProcesses, log: CopyOptions['log'],
  ): Promise<{ tables: number; rows: number }> {
    const { tables, sequences } = await sourceSide.listed;
    const restored: Fingerprint = await withClient(target, into, async (c) => {
      await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      return { tables: restoredTables, ...await fingerprintRest(c, sequences, () => processes.throwIfAborted()) };
    });
    const read = await sourceSide.done;
    // Every streamed table must have its stream's checksum: one without would be compared as `none`, and fail.
    const copy: Fingerprint = { ...read, tables: { ...read.tables, ...streamChecksums } };
    const mismatches = compareFingerprints(copy, restored);
    if (mismatches.length > 0) {
      const shown = mismatches.slice(0, MAX_REPORTED_MISMATCHES);
      const more = mismatches.length > shown.length ? `\n  ... and ${mismatches.length - shown.length} more` : '';
      throw new Error(`verification failed: ${JSON.stringify(into)} differs from ${JSON.stringify(plan.database)} on the point-in-time copy:\n  ${shown.join('\n  ')}${more}`);
    }
    const rows = Object.values(copy.tables).reduce((sum, v) => sum + Number(v.split('/')[0]), 0);
    log.info(`${JSON.stringify(plan.database)}: equal — ${tables.length} tables (${rows} rows): row counts + content checksums `
      + `(${Object.keys(streamChecksums).length} of them over the COPY stream as it flowed); `
      + `${sequences.length} sequences: values; ${copy.largeObjects.split('/')[0]} large objects: data, owner, privileges; `
      + `${Object.keys(copy.objects).length} kinds of schema objects: counts`);
    return { tables: tables.length, rows };
  }

  /**
   * ANALYZE, as `vacuumdb -Z` would, of every table and materialized view
   * (system catalogs included) but those in `done`, on `jobs` sessions. A
   * relation the user may not analyze is skipped with a warning by the
   * server, as under vacuumdb.
   */
  private async analyze(target: PgTarget, into: string, done: ReadonlySet<string>, jobs: number, processes: PgProcesses): Promise<void> {
    const relations = await withClient(target, into, async (c) => (await c.query<{ schema: string; name: string }>(`
      SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' ORDER BY c.relpages DESC`)).rows.map((r) => qualified(r.schema, r.name)).filter((n) => !done.has(n)));
    let next = 0;
    // One transaction per session: one commit (and WAL flush) per session, not per relation.
    await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, relations.length)) }, () => withClient(target, into, async (c) => {
      await c.query('BEGIN');
      while (next < relations.length) {
        processes.throwIfAborted();
        await c.query(`ANALYZE ${relations[next++]}`);
      }
      await c.query('COMMIT');
    })));
  }

  /**
   * Database-level properties of the point-in-time copy, in two phases.
   * Before the restore: the owner and every privilege except other roles' CONNECT, because
   * restoring object ownership as a non-superuser needs them (e.g. a schema
   * owner must have CREATE on the database). CONNECT stays withheld so
   * applications cannot reach the half-restored database. After
   * verification: CONNECT, settings, connection limit and comment — settings
   * such as default_transaction_read_only would get in the restore's way —
   * and then all of it is compared with the point-in-time copy.
   */
  private async applyProperties(target: PgTarget, plan: DatabasePlan, into: string, phase: 'before restore' | 'after verify'): Promise<void> {
    const p = plan.sourceProperties;
    const name = ident(into);
    const grantee = (g: string): string => (g === 'PUBLIC' ? g : ident(g));
    const grant = (a: DatabaseProperties['acl'][number]): string => `GRANT ${a.privilege} ON DATABASE ${name} TO ${grantee(a.grantee)}${a.grantable ? ' WITH GRANT OPTION' : ''}`;
    const otherConnect = (a: DatabaseProperties['acl'][number]): boolean => a.privilege === 'CONNECT' && a.grantee !== p.owner;
    const ownerConnects = p.acl.some((a) => a.privilege === 'CONNECT' && a.grantee === p.owner);
    const statements: string[] = [];
    if (phase === 'before restore') {
      statements.push(`ALTER DATABASE ${name} OWNER TO ${ident(p.owner)}`);
      const everyone = [...new Set(['PUBLIC', p.owner, ...p.acl.map((a) => a.grantee)])];
      statements.push(`REVOKE ALL ON DATABASE ${name} FROM ${everyone.map(grantee).join(', ')}`);
      statements.push(...p.acl.filter((a) => !otherConnect(a)).map(grant));
      // The restore connects through its membership in the owner role.
      if (!ownerConnects) statements.push(`GRANT CONNECT ON DATABASE ${name} TO ${ident(p.owner)}`);
    } else {
      if (!ownerConnects) statements.push(`REVOKE CONNECT ON DATABASE ${name} FROM ${ident(p.owner)}`);
      statements.push(...p.acl.filter(otherConnect).map(grant));
      if (p.connectionLimit !== -1) statements.push(`ALTER DATABASE ${name} CONNECTION LIMIT ${Number(p.connectionLimit)}`);
      for (const { role, config } of p.settings) for (const entry of config) statements.push(settingStatement(into, role, entry));
      statements.push(`COMMENT ON DATABASE ${name} IS ${p.comment === null ? 'NULL' : literal(p.comment)}`);
    }
    await withClient(target, adminDatabase(target, plan.database), async (client) => {
      for (const sql of statements) {
        await client.query(sql).catch((err: Error) => {
          throw new Error(`applying the database properties failed at \`${sql}\`: ${err.message}`);
        });
      }
      if (phase === 'before restore') return;
      const restored = await readDatabaseProperties(client, into);
      const differences = compareProperties(p, restored!);
      if (differences.length > 0) throw new Error(`database properties of ${JSON.stringify(into)} differ from the point-in-time copy:\n  ${differences.join('\n  ')}`);
    });
  }

  /**
   * The critical section: block new connections to the live database, end its
   * sessions, and rename both databases in one transaction. Returns how long
   * the live database refused connections.
   */
  private async swap(target: PgTarget, plan: DatabasePlan, log: StepLog): Promise<{ unavailableMs: number; keptAs?: string }> {
    return withClient(target, adminDatabase(target, plan.database), async (client) => {
      const live = ident(plan.database);
      const restored = ident(plan.restoredAs);
      if (!plan.existsOnTarget) {
        await client.query(`ALTER DATABASE ${restored} RENAME TO ${live}`);
        return { unavailableMs: 0 };
      }
      const started = Date.now();
      await client.query(`ALTER DATABASE ${live} ALLOW_CONNECTIONS false`);
      try {
        for (;;) {
          // Sessions of superusers cannot be ended by a non-superuser (the RDS master user): leave them to leave, within the timeout.
          await client.query(`SELECT pg_terminate_backend(a.pid) FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
                               WHERE a.datname = ANY($1) AND a.pid <> pg_backend_pid()
                                 AND (NOT r.rolsuper OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))`, [[plan.database, plan.restoredAs]]);
          try {
            await client.query('BEGIN');
            await client.query(`ALTER DATABASE ${live} RENAME TO ${ident(plan.keptAs)}`);
            await client.query(`ALTER DATABASE ${restored} RENAME TO ${live}`);
            await client.query('COMMIT');
            break;
          } catch (err) {
            await client.query('ROLLBACK').catch(() => undefined);
            // 55006: object_in_use — a session is still ending, or one slipped in; anything else is real.
            if ((err as { code?: string }).code !== '55006' || Date.now() - started > TERMINATE_TIMEOUT_MS) throw err;
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }
      } catch (err) {
        const reopen = `ALTER DATABASE ${live} ALLOW_CONNECTIONS true`;
        // The session may be the thing that failed: reopen on a fresh one if need be, and only claim what worked.
        const reopenOnFreshSession = (): Promise<boolean> => withClient(target, adminDatabase(target, plan.database), (c) => c.query(reopen))
          .then(() => true, () => false);
        const reopened = await client.query(reopen).then(() => true, reopenOnFreshSession);
        const what = (err as { code?: string }).code === '55006'
          ? `could not end the sessions on ${JSON.stringify(plan.database)} within ${TERMINATE_TIMEOUT_MS / 1000} s (sessions of superusers or other roles the user cannot signal?)`
          : 'failed before the renames';
        throw new Error(`the swap ${what}: ${(err as Error).message}. Nothing was renamed. `
          + (reopened ? `${JSON.stringify(plan.database)} accepts connections again.` : `${JSON.stringify(plan.database)} MAY STILL REFUSE CONNECTIONS: run ${reopen};`));
      }
      const unavailableMs = Date.now() - started;
      // The swap is committed: from here on nothing may throw, or the caller would report the original as unchanged.
      // The kept database stays open so the post-restore-time writes can be read and reconciled.
      const reopenKept = `ALTER DATABASE ${ident(plan.keptAs)} ALLOW_CONNECTIONS true`;
      await client.query(reopenKept).catch((err: Error) => {
        log.warn(`${JSON.stringify(plan.keptAs)} (the pre-recovery data) still refuses connections (${err.message}); to read it, run ${reopenKept};`);
      });
      return { unavailableMs, keptAs: plan.keptAs };
    });
  }

  /** After a failure: drop the half-made database, and say what state the original is in. */
  private async cleanUp(target: PgTarget, plan: DatabasePlan, into: string, state: { created: boolean; dropped: boolean }): Promise<string> {
    let dropped = '';
    if (state.created) {
      try {
        await withClient(target, adminDatabase(target, plan.database), (c) => c.query(`DROP DATABASE IF EXISTS ${ident(into)} WITH (FORCE)`));
        dropped = `The partly restored database ${JSON.stringify(into)} was dropped. `;
      } catch (err) {
        dropped = `The partly restored database ${JSON.stringify(into)} could not be dropped (${(err as Error).message}); drop it by hand: DROP DATABASE ${ident(into)} WITH (FORCE); `;
      }
    }
    if (state.dropped) {
      return `${dropped}Strategy replace: ${JSON.stringify(plan.database)} was dropped on the original; restore it from the pre-recovery safety snapshot or run the copy again.`;
    }
    return `${dropped}${JSON.stringify(plan.database)} on the original was not changed.`;
  }
}

/**
 * Room on the original for what the copy writes, before anything is
 * written: under swap each database's copy sits beside the live one; under
 * replace the live one is dropped first, so only growth needs room. The
 * copy's size is the point-in-time copy's pg_database_size (indexes are
 * rebuilt compactly; WAL and temporary files of index builds take some
 * more, hence the margin). Storage autoscaling may add room, but only when
 * free space is already low and at most every few hours, so a copy that
 * fits only with it is allowed with a warning; one that cannot fit even then
 * is refused.
 */
export function checkOriginalStorage(
  plans: ReadonlyArray<Pick<DatabasePlan, 'database' | 'sourceBytes' | 'targetBytes'>>, options: Pick<CopyOptions, 'originalStorage' | 'strategy' | 'log'>,
): void {
  const storage = options.originalStorage;
  if (!storage) return;
  const needed = plans.reduce((sum, p) => sum + (options.strategy === 'swap' ? p.sourceBytes : Math.max(0, p.sourceBytes - p.targetBytes)), 0) * DISK_MARGIN;
  const what = `${options.strategy === 'swap' ? 'the copies beside the live databases need' : "the replaced databases' growth needs"} about ${mib(needed)} `
    + `(${plans.map((p) => `${JSON.stringify(p.database)} ${mib(p.sourceBytes)}`).join(', ')}, plus ${Math.round((DISK_MARGIN - 1) * 100)}%)`;
  if (needed <= storage.freeBytes) {
    options.log.info(`storage on the original: ${what}; ${mib(storage.freeBytes)} free`);
    return;
  }
  if (needed <= storage.freeBytes + storage.growableBytes) {
    options.log.warn(`storage on the original: ${what}, more than the ${mib(storage.freeBytes)} free; it fits only if storage autoscaling grows the instance `
      + `(up to ${mib(storage.growableBytes)} more) in time, which RDS does only when free space is already low and at most every few hours.`);
    return;
  }
  throw new Error(`not enough storage on the original: ${what}, but only ${mib(storage.freeBytes)} is free`
    + `${storage.growableBytes > 0 ? ` and storage autoscaling may add at most ${mib(storage.growableBytes)}` : ' and storage autoscaling is off or at its maximum'}. `
    + 'Increase the instance\'s allocated storage (aws rds modify-db-instance --allocated-storage ... --apply-immediately), recover fewer databases at a time, '
    + `${options.strategy === 'swap' ? 'or use strategy replace (the pre-recovery safety snapshot is then the way back), ' : ''}then run again. Nothing was written to the original.`);
}

function createDatabaseSql(name: string, p: DatabaseProperties): string {
  const parts = [`CREATE DATABASE ${ident(name)} TEMPLATE template0 ENCODING ${literal(p.encoding)}`,
    `LC_COLLATE ${literal(p.collate)} LC_CTYPE ${literal(p.ctype)}`];
  if (p.localeProvider === 'i') parts.push(`LOCALE_PROVIDER icu ICU_LOCALE ${literal(p.iculocale ?? '')}`);
  return parts.join(' ');
}

async function withClient<T>(target: PgTarget, database: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = await connect(target, database);
  try {
    return await fn(client);
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code && !e.message.includes(target.host)) e.message = `${e.message} (${describe(target, database)})`;
    throw e;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Runs tasks at most `limit` at a time, in queue order; a running task may
 * queue more, at the back or ahead of everything waiting. `done()` resolves
 * once nothing is queued or running, and rejects at the first failure without
 * waiting for the others (the caller kills their processes); no further task
 * starts after it.
 */
export class TaskQueue {
  private readonly waiting: Array<() => void> = [];
  private running = 0;
  private pending = 0;
  private failed = false;
  private readonly settled: Promise<void>;
  private resolve!: () => void;
  private reject!: (err: unknown) => void;

  constructor(private readonly limit: number) {
    this.settled = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Nobody may be waiting on done() yet when a task fails.
    this.settled.catch(() => undefined);
  }

  /** Queues `task` behind everything waiting. */
  add(task: () => Promise<unknown>): void {
    this.enqueue([task], false);
  }

  /** Queues `tasks`, in order, ahead of everything waiting. */
  addFirst(tasks: ReadonlyArray<() => Promise<unknown>>): void {
    this.enqueue(tasks, true);
  }

  done(): Promise<void> {
    if (this.pending === 0 && !this.failed) this.resolve();
    return this.settled;
  }

  private enqueue(tasks: ReadonlyArray<() => Promise<unknown>>, first: boolean): void {
    const starts = tasks.map((task) => (): void => {
      this.running++;
      task().catch((err) => {
        if (!this.failed) this.reject(err);
        this.failed = true;
      }).finally(() => {
        this.running--;
        this.pending--;
        if (this.pending === 0 && !this.failed) this.resolve();
        this.next();
      });
    });
    this.pending += starts.length;
    if (first) this.waiting.unshift(...starts);
    else this.waiting.push(...starts);
    this.next();
  }

  private next(): void {
    while (!this.failed && this.running < this.limit && this.waiting.length > 0) this.waiting.shift()!();
  }
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/**
 * The database to connect to for renaming or dropping `busy`: the maintenance
 * database, unless that is `busy` itself (recovering `postgres`), since
 * PostgreSQL cannot close, rename or drop the database a session is in.
 */
export function adminDatabase(target: PgTarget, busy: string): string {
  if (target.maintenanceDatabase !== busy) return target.maintenanceDatabase;
  return busy === 'template1' ? 'postgres' : 'template1';
}
