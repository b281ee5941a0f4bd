/**
 * The copy's schedule when tables stream, on `jobs` slots (a TaskQueue):
 * - the small tables' data (one pg_restore) takes one slot while the large
 *   tables stream, one slot each;
 * - as soon as a streamed table's data is in, its indexes go ahead of the
 *   tables not yet started (the largest table's chain sets the time), side by
 *   side, largest first; the last of them completes the table (key
 *   constraints, labels, ANALYZE);
 * - once the last table's data is in, every table's checksum is queued: a
 *   streamed table's ahead of the index builds still waiting (behind them, it
 *   would still hold the table's lock when its last index is in, and the
 *   constraints, ACCESS EXCLUSIVE, and ANALYZE would wait for it with a core
 *   idle); the others behind them, off the streamed tables' chain (their
 *   constraints come with post-data, after this step).
 */
import { qualified } from '../names';
import { buildIndex, completeTable } from './post-data';
import { TaskQueue } from './queue';
import { pgRestore } from './restore-lists';
import { streamTable } from './streams';
import type { ChecksumTasks, DatabaseCopy, RestoreLists, StreamedTable } from './types';

export async function scheduleCopy(
  copy: DatabaseCopy, lists: RestoreLists, snapshot: string, checksumTasks: () => Promise<ChecksumTasks>,
): Promise<void> {
  const queue = new TaskQueue(copy.options.jobs);
  let loading = 1 + copy.plan.streamed.length;
  const loaded = async (): Promise<void> => {
    if (--loading !== 0) return;
    const { streamed, others } = await checksumTasks();
    queue.addFirst(streamed);
    for (const task of others) queue.add(task);
  };
  queue.add(async () => {
    await pgRestore(copy, lists.main, 'data', 1);
    await loaded();
  });
  for (const table of copy.plan.streamed) queue.add(() => streamThenIndex(copy, lists, table, snapshot, queue, loaded));
  await queue.done();
}

/** One streamed table: its data, then its indexes queued (before the checksums that `loaded` may queue). */
async function streamThenIndex(
  copy: DatabaseCopy, lists: RestoreLists, table: StreamedTable, snapshot: string, queue: TaskQueue, loaded: () => Promise<void>,
): Promise<void> {
  copy.streamChecksums[qualified(table.schema, table.name)] = await streamTable(copy, table, snapshot);
  const work = lists.tables.get(table.oid) ?? [];
  if (work.length === 0) {
    await loaded();
    return completeTable(copy, lists, table, work);
  }
  let left = work.length;
  queue.addFirst(work.map((w) => async () => {
    await buildIndex(copy, w);
    if (--left === 0) await completeTable(copy, lists, table, work);
  }));
  await loaded();
}
