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
 *
 * The phases live in postgres/copy/, one module each, named after the log
 * lines of copy/phases.ts: checks.ts, schema.ts (dump schema, pre-data),
 * create.ts, table-data.ts with streams.ts and schedule.ts (copy data),
 * post-data.ts, analyze.ts, verification.ts, properties.ts, swap.ts,
 * cleanup.ts, summary.ts.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { CopyOptions, DataPath, DatabaseCopyResult, PgTarget } from '../ports';
import { checkClientMatchesServer } from './client-version';
import { analyzeTheRest } from './copy/analyze';
import { checkOriginalStorage, listDatabases, planDatabase } from './copy/checks';
import { cleanUp } from './copy/cleanup';
import { createDatabase, dropForReplace } from './copy/create';
import { PHASES } from './copy/phases';
import { restorePostData } from './copy/post-data';
import { applyDatabaseProperties } from './copy/properties';
import { settleAll } from './copy/queue';
import { restoreLists } from './copy/restore-lists';
import { dumpSchema, exportSnapshot, restorePreData } from './copy/schema';
import { summarize } from './copy/summary';
import { swapIn } from './copy/swap';
import { copyData } from './copy/table-data';
import type { DatabaseCopy, DatabasePlan, PgDataPathSettings } from './copy/types';
import { restoredChecksumTasks, sourceFingerprint, verifyCopy } from './copy/verification';
import { enforceHazards, reviewHazardsForDrill } from './hazards';
import { PgOriginalInspector } from './preflight';
import { PgProcesses, connect } from './process';

export { DEFAULT_STREAM_MIN_BYTES, DISK_MARGIN, TERMINATE_TIMEOUT_MS, defaultStreamMinBytes } from './copy/limits';
export { TaskQueue } from './copy/queue';
export { adminDatabase } from './copy/sessions';
export type { PgDataPathSettings } from './copy/types';

export class PgDataPath implements DataPath {
  /** The plan's pre-flight reads on the original (issue #19). */
  readonly preflight = new PgOriginalInspector();

  constructor(private readonly settings: PgDataPathSettings = {}) {}

  async checkLogin(target: PgTarget): Promise<void> {
    const client = await connect(target, target.maintenanceDatabase);
    await client.end();
  }

  checkClientVersion(target: PgTarget, label: string): Promise<string> {
    return checkClientMatchesServer(target, label, this.settings.clientVersion);
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
      const plans = await options.log.step(PHASES.checks(), async () => {
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
        const copy = databaseCopy(source, target, plan, options, processes, join(options.workDir, `pitr-dump-${options.stamp}-${index}`));
        const result = await this.copyDatabase(copy);
        results.push(drillHazards ? { ...result, hazardsForRecovery: drillHazards.get(plan.database) ?? [] } : result);
      }
      return results;
    } finally {
      processes.dispose();
    }
  }

  /** One database, phase by phase in the order of the log (copy/phases.ts). */
  private async copyDatabase(copy: DatabaseCopy): Promise<DatabaseCopyResult> {
    const { plan, processes, dumpDir } = copy;
    const exporter = await connect(copy.source, plan.database);
    let stopSourceSide = (): void => undefined;
    try {
      const snapshot = await exportSnapshot(exporter);
      // Unless the original must be dropped first (replace), which waits for a good dump, the new database is
      // created while the dump runs. Both are waited for before anything else, so a failure cleans up after both.
      const dropFirst = copy.replace && plan.existsOnTarget;
      await settleAll([dumpSchema(copy, snapshot), dropFirst ? Promise.resolve() : createDatabase(copy)]);
      const lists = await restoreLists(exporter, copy);
      // The point-in-time copy is read-only under the snapshot: its half of the verification runs from now on, beside the copy.
      const sourceSide = sourceFingerprint(copy, snapshot);
      stopSourceSide = sourceSide.cancel;
      const unavailableSince = dropFirst ? await dropForReplace(copy) : undefined;
      if (dropFirst) await createDatabase(copy);
      await restorePreData(copy, lists);
      const unchecked = await copyData(copy, lists, snapshot, () => restoredChecksumTasks(copy, sourceSide, this.settings.beforeVerify));
      if (plan.streamed.length > 0) await restorePostData(copy, lists);
      rmSync(dumpDir, { recursive: true, force: true });
      // Both only read the restored data: ANALYZE samples it, verification counts and checksums it.
      const [, verified] = await Promise.all([analyzeTheRest(copy), verifyCopy(copy, sourceSide, unchecked)]);
      await exporter.query('COMMIT');
      await applyDatabaseProperties(copy);
      const swapped = await swapIn(copy, unavailableSince);
      return summarize(copy, verified, swapped);
    } catch (err) {
      processes.killAll();
      stopSourceSide();
      throw new Error(`${(err as Error).message}\n${await cleanUp(copy)}`);
    } finally {
      await exporter.end().catch(() => undefined);
      rmSync(dumpDir, { recursive: true, force: true });
    }
  }
}

function databaseCopy(
  source: PgTarget, target: PgTarget, plan: DatabasePlan, options: CopyOptions, processes: PgProcesses, dumpDir: string,
): DatabaseCopy {
  // A drill restores beside the point-in-time copy's own database and never drops anything.
  const replace = options.strategy === 'replace' && !options.drill;
  return {
    source,
    target,
    plan,
    options,
    processes,
    dumpDir,
    replace,
    db: JSON.stringify(plan.database),
    // Under replace the copy is restored under the database's own name, after dropping it.
    into: replace ? plan.database : plan.restoredAs,
    state: { created: false, dropped: false },
    restoredTables: {},
    streamChecksums: {},
    analyzed: new Set(),
  };
}
