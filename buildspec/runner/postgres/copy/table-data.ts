/**
 * Copy data: the small tables' data from the dump (pg_restore), the large
 * tables' streamed (streams.ts), side by side as schedule.ts orders them.
 */
import { PHASES } from './phases';
import { pgRestore } from './restore-lists';
import { scheduleCopy } from './schedule';
import type { ChecksumTasks, DatabaseCopy, RestoreLists } from './types';

/**
 * Copies every table's data; `checksumTasks` is called once all of it is
 * in. Returns the checksum tasks still to run: without streamed tables all
 * of them; with streamed tables, the schedule has run them already.
 */
export async function copyData(
  copy: DatabaseCopy, lists: RestoreLists, snapshot: string, checksumTasks: () => Promise<ChecksumTasks>,
): Promise<Array<() => Promise<void>>> {
  const { plan, options } = copy;
  if (plan.streamed.length === 0) {
    // One pg_restore for data and post-data, so it builds each table's indexes as soon as its data is in.
    await options.log.step(PHASES.copyDataAndPostData(copy.db, options.jobs),
      () => pgRestore(copy, lists.main, 'data', options.jobs, ['--section=post-data']));
    const { streamed, others } = await checksumTasks();
    return [...streamed, ...others];
  }
  await options.log.step(PHASES.copyData(copy.db, plan.streamed.length, options.jobs), () => scheduleCopy(copy, lists, snapshot, checksumTasks));
  return [];
}
