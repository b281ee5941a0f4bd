/** The summary of one database's copy: where the pre-recovery data is kept, how long it was unavailable, what was verified. */
import { formatDuration } from '../../log';
import type { DatabaseCopyResult } from '../../ports';
import { ident } from '../names';
import type { DatabaseCopy } from './types';

export function summarize(
  copy: DatabaseCopy, verified: { tables: number; rows: number }, { unavailableMs, keptAs }: { unavailableMs: number; keptAs?: string },
): DatabaseCopyResult {
  const { plan, options: { log }, db } = copy;
  if (keptAs) {
    log.info(`${db}: the pre-recovery database is kept as ${JSON.stringify(keptAs)} with every write made after the restore time. `
      + `When it is no longer needed: DROP DATABASE ${ident(keptAs)};`);
  }
  log.info(`${db}: unavailable for ${formatDuration(unavailableMs)} (${copy.options.strategy}); verified ${verified.tables} tables, ${verified.rows} rows`);
  if (plan.hazards.leftOutEventTriggers.length > 0) {
    log.warn(`${db}: restored WITHOUT the event trigger(s) ${plan.hazards.leftOutEventTriggers.map((n) => JSON.stringify(n)).join(', ')} `
      + '(accepted hazard event-triggers): re-create them as a superuser from the point-in-time copy\'s definitions.');
  }
  return { database: plan.database, keptAs, unavailableMs, tables: verified.tables, rows: verified.rows, verified: true };
}
