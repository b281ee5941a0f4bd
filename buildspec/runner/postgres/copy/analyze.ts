/** ANALYZE: statistics for every relation the copy did not analyze already. */
import type { PgTarget } from '../../ports';
import { qualified } from '../names';
import type { PgProcesses } from '../process';
import { PHASES } from './phases';
import { withClient } from './sessions';
import type { DatabaseCopy } from './types';

/** ANALYZE of every relation not yet analyzed (a streamed table is analyzed as soon as it is complete). */
export function analyzeTheRest(copy: DatabaseCopy): Promise<void> {
  const { options } = copy;
  return options.log.step(PHASES.analyze(copy.db, copy.analyzed.size, options.jobs),
    () => analyze(copy.target, copy.into, copy.analyzed, options.jobs, copy.processes));
}

/**
 * ANALYZE, as `vacuumdb -Z` would, of every table and materialized view
 * (system catalogs included) but those in `done`, on `jobs` sessions. A
 * relation the user may not analyze is skipped with a warning by the
 * server, as under vacuumdb.
 */
async function analyze(target: PgTarget, into: string, done: ReadonlySet<string>, jobs: number, processes: PgProcesses): Promise<void> {
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
