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
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { formatDuration } from '../log';
import { PgProcesses, connect, dbConninfo, libpqEnv } from './process';
import type { CopyOptions, DataPath, DatabaseCopyResult, PgTarget } from '../ports';
import { analyze } from './copy/analyze';
import { checkOriginalStorage, listDatabases, planDatabase } from './copy/checks';
import { cleanUp } from './copy/cleanup';
import { createDatabaseSql } from './copy/create';
import { DEFAULT_STREAM_MIN_BYTES } from './copy/limits';
import { applyProperties } from './copy/properties';
import { TaskQueue } from './copy/queue';
import { restoreLists } from './copy/restore-lists';
import { adminDatabase, withClient } from './copy/sessions';
import { streamTable } from './copy/streams';
import { swap } from './copy/swap';
import type { DatabasePlan, PgDataPathSettings, SourceFingerprint, StreamedTable } from './copy/types';
import { sourceFingerprint, verify } from './copy/verification';
import { enforceHazards, reviewHazardsForDrill } from './hazards';
import { exactPattern, ident, qualified } from './names';
import { copyChecksum, tableChecksums, type TableCheck } from './verify';

export { DEFAULT_STREAM_MIN_BYTES, DISK_MARGIN, TERMINATE_TIMEOUT_MS, defaultStreamMinBytes } from './copy/limits';
export { TaskQueue } from './copy/queue';
export { adminDatabase } from './copy/sessions';
export type { PgDataPathSettings } from './copy/types';

export class PgDataPath implements DataPath {
  constructor(private readonly settings: PgDataPathSettings = {}) {}

  async checkLogin(target: PgTarget): Promise<void> {
    const client = await connect(target, target.maintenanceDatabase);
    await client.end();
  }

  async listDatabases(source: PgTarget): Promise<string[]> {
    return listDatabases(source);
  }

  async copy(source: PgTarget, target: PgTarget, options: CopyOptions): Promise<DatabaseCopyResult[]> {
    if (options.databases.length === 0) throw new Error('copy: no database to copy; pass at least one database name. Nothing was changed.');
    if (!Number.isInteger(options.jobs) || options.jobs < 1) throw new Error(`copy: jobs ${options.jobs} is not a positive integer. Nothing was changed.`);
    const processes = new PgProcesses(options.signal);
    let drillHazards: ReadonlyMap<string, string[]> | undefined;
    try {
      const plans = await options.log.step('check roles, privileges, swap hazards and disk on the original', async () => {
        const out: DatabasePlan[] = [];
        for (const database of options.databases) out.push(await planDatabase(this.settings, source, target, database, options));
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
        await applyProperties(target, plan, into, 'before restore');
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
      const lists = await restoreLists(exporter, target, processes, dumpDir, plan.streamed, plan.hazards.leftOutEventTriggers.length > 0);
      // The point-in-time copy is read-only under the snapshot: its half of the verification runs from now on, beside the copy.
      const sourceSide = sourceFingerprint(source, plan, snapshot, processes);
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
              streamChecksums[qualified(table.schema, table.name)] = await streamTable(source, target, plan, into, table, snapshot, processes);
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
        log.step(`${db}: ANALYZE${analyzed.size > 0 ? ` the rest (${analyzed.size} done)` : ''} (${options.jobs} at a time)`, () => analyze(target, into, analyzed, options.jobs, processes)),
        log.step(`${db}: verify ${JSON.stringify(into)} against the point-in-time copy`, async () => {
          const queue = new TaskQueue(options.jobs);
          for (const task of unchecked) queue.add(task);
          await queue.done();
          return verify(target, plan, into, sourceSide, streamChecksums, restoredTables, processes, log);
        }),
      ]);
      await exporter.query('COMMIT');

      await log.step(`${db}: apply database privileges, settings and comment`, () => applyProperties(target, plan, into, 'after verify'));

      processes.throwIfAborted();
      let unavailableMs: number;
      let keptAs: string | undefined;
      if (replace) {
        unavailableMs = unavailableSince === undefined ? 0 : Date.now() - unavailableSince;
      } else if (options.drill) {
        unavailableMs = 0;
      } else {
        ({ unavailableMs, keptAs } = await log.step(`${db}: swap in (block connections, end sessions, rename)`, () => swap(target, plan, log)));
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
      const outcome = await cleanUp(target, plan, into, state);
      throw new Error(`${(err as Error).message}\n${outcome}`);
    } finally {
      await exporter.end().catch(() => undefined);
      rmSync(dumpDir, { recursive: true, force: true });
    }
  }
}
