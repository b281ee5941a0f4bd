/**
 * The schema: dumped with the small tables' data under the exported snapshot
 * (pg_dump -Fd, the streamed tables' data left out), and restored before any
 * data (pre-data).
 */
import type { Client } from 'pg';
import { exactPattern } from '../names';
import { dbConninfo, libpqEnv } from '../process';
import { PHASES } from './phases';
import { pgRestore } from './restore-lists';
import type { DatabaseCopy, RestoreLists } from './types';

/**
 * Opens `exporter`'s read-only transaction on the point-in-time copy and
 * exports its snapshot: the dump, the streams and the copy's checksums all
 * read that one state.
 */
export async function exportSnapshot(exporter: Client): Promise<string> {
  await exporter.query('BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY');
  return (await exporter.query<{ id: string }>('SELECT pg_export_snapshot() AS id')).rows[0].id;
}

export function dumpSchema(copy: DatabaseCopy, snapshot: string): Promise<unknown> {
  const { source, plan, options, processes, dumpDir } = copy;
  return options.log.step(PHASES.dumpSchema(copy.db, options.jobs), () => processes.run('pg_dump', [
    '-Fd', '-j', String(options.jobs), '-Z0', '--no-sync', `--snapshot=${snapshot}`, '-f', dumpDir,
    ...plan.streamed.map((t) => `--exclude-table-data=${exactPattern(t.schema, t.name)}`),
    '-d', dbConninfo(plan.database),
  ], { env: libpqEnv(source) }));
}

export function restorePreData(copy: DatabaseCopy, lists: RestoreLists): Promise<unknown> {
  return copy.options.log.step(PHASES.preData(copy.db), () => pgRestore(copy, lists.main, 'pre-data', 1));
}
