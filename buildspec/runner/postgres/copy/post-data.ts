/**
 * Post-data: indexes, constraints, triggers, materialized views. A streamed
 * table's own indexes and key constraints are built as soon as its data is
 * in (buildIndex, completeTable, scheduled by schedule.ts); everything else
 * in one pg_restore pass once every table's data is in (restorePostData).
 */
import { qualified } from '../names';
import { PHASES } from './phases';
import { pgRestore } from './restore-lists';
import { withClient } from './sessions';
import type { DatabaseCopy, IndexWork, RestoreLists, StreamedTable } from './types';

/** One index of a streamed table (a key constraint's as a unique index, attached later by completeTable). */
export async function buildIndex(copy: DatabaseCopy, work: IndexWork): Promise<void> {
  if (work.kind === 'entry') {
    await pgRestore(copy, work.list, '', 1);
  } else {
    await withClient(copy.target, copy.into, async (c) => {
      // As pg_restore does for an index in the database's default tablespace.
      await c.query("SET default_tablespace = ''");
      await c.query(work.createIndex);
    });
  }
}

/**
 * Once every index of a streamed table is in: the constraints built as
 * unique indexes (each takes an ACCESS EXCLUSIVE lock), the comments and
 * labels on them, and the table's statistics.
 */
export async function completeTable(copy: DatabaseCopy, lists: RestoreLists, table: StreamedTable, work: readonly IndexWork[]): Promise<void> {
  const { target, into } = copy;
  const constraints = work.flatMap((w) => (w.kind === 'constraint' ? [w.addConstraint] : []));
  if (constraints.length > 0) await withClient(target, into, async (c) => { for (const sql of constraints) await c.query(sql); });
  const labels = lists.labels.get(table.oid);
  if (labels) await pgRestore(copy, labels, '', 1);
  // Statistics as soon as the table is complete, beside other tables' work rather than all at the end.
  // (A partition's indexes come with the post-data pass: it is analyzed after that.)
  if (!table.partition) {
    await withClient(target, into, (c) => c.query(`ANALYZE ${qualified(table.schema, table.name)}`));
    copy.analyzed.add(qualified(table.schema, table.name));
  }
}

/** The post-data pass, after the streamed tables' copy (without them, the data's pg_restore includes it). */
export function restorePostData(copy: DatabaseCopy, lists: RestoreLists): Promise<unknown> {
  const { jobs } = copy.options;
  return copy.options.log.step(PHASES.postData(copy.db, jobs), () => pgRestore(copy, lists.main, 'post-data', jobs));
}
