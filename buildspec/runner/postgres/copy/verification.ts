/** Verification: the point-in-time copy's fingerprint beside the copy, and the comparison with the restored database. */
import type { Client } from 'pg';
import type { CopyOptions, PgTarget } from '../../ports';
import { literal, qualified } from '../names';
import { connect, type PgProcesses } from '../process';
import { compareFingerprints, copyChecksum, fingerprint, fingerprintRest, listTables, tableChecksums, type Fingerprint, type TableCheck } from '../verify';
import { DEFAULT_STREAM_MIN_BYTES } from './limits';
import { PHASES } from './phases';
import { TaskQueue } from './queue';
import { withClient } from './sessions';
import type { ChecksumTasks, DatabaseCopy, DatabasePlan, PgDataPathSettings, SourceFingerprint, StreamedTable } from './types';

const MAX_REPORTED_MISMATCHES = 20;

/**
 * The point-in-time copy's fingerprint under the exported snapshot, on a
 * session of its own: `listed` (the tables and sequences to compare) comes
 * first, `done` once every table is checksummed.
 */
export function sourceFingerprint({ source, plan, processes }: DatabaseCopy, snapshot: string): SourceFingerprint {
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

/**
 * The restored tables' checksum tasks: tables of DEFAULT_STREAM_MIN_BYTES or
 * more (and the streamed ones) one by one, the others together. To be called
 * once every table's data is in: nothing writes rows after that (triggers and
 * rules are created later, in post-data; generated columns are computed by
 * the load), and the seam for tampering (`beforeVerify`) runs first. Each
 * task records its checksums in `copy.restoredTables`.
 */
export async function restoredChecksumTasks(
  copy: DatabaseCopy, sourceSide: SourceFingerprint, beforeVerify: PgDataPathSettings['beforeVerify'],
): Promise<ChecksumTasks> {
  const { target, plan, into, processes, restoredTables } = copy;
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
  if (beforeVerify) await beforeVerify(plan.database, into);
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
}

/** The verify phase: runs the checksum tasks not yet run (`unchecked`), then compares the restored database with the point-in-time copy. */
export function verifyCopy(
  copy: DatabaseCopy, sourceSide: SourceFingerprint, unchecked: ReadonlyArray<() => Promise<void>>,
): Promise<{ tables: number; rows: number }> {
  const { options } = copy;
  return options.log.step(PHASES.verify(copy.db, copy.into), async () => {
    const queue = new TaskQueue(options.jobs);
    for (const task of unchecked) queue.add(task);
    await queue.done();
    return verify(copy.target, copy.plan, copy.into, sourceSide, copy.streamChecksums, copy.restoredTables, copy.processes, options.log);
  });
}

async function verify(
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
