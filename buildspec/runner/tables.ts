/**
 * The runbook's table branch (TABLES, issue #12): which database the tables
 * come from, and what the summary says about them. The copy itself is
 * postgres/tables.ts, behind the TablePath port.
 */
import type { TableRecoveryResult } from './ports';
import { tableSchemaName } from './postgres/tables';
import { START_ENV, formatTableName, quoteValue, type TableMode, type TableName } from '../../src/contract';

/**
 * The one database TABLES applies to: the one DATABASES names (it must have
 * existed at T), or the instance's only database at T.
 */
export function chooseTableDatabase(requested: readonly string[] | undefined, atRestoreTime: readonly string[]): string {
  const list = atRestoreTime.map((d) => JSON.stringify(d)).join(', ') || 'none';
  if (requested) {
    // The plan allows exactly one database with TABLES.
    if (!atRestoreTime.includes(requested[0])) {
      throw new Error(`${START_ENV.DATABASES}: ${quoteValue(requested[0])} did not exist at the restore time; accepted: a database that did: ${list}. Nothing on the original was changed.`);
    }
    return requested[0];
  }
  if (atRestoreTime.length !== 1) {
    throw new Error(`${START_ENV.TABLES}: the instance had ${atRestoreTime.length} databases at the restore time (${list}), so it is not clear which one holds the tables; `
      + `accepted: set ${START_ENV.DATABASES} to exactly one of them. Nothing on the original was changed.`);
  }
  return atRestoreTime[0];
}

/** One log line for the plan. */
export function describeTableRequest(tables: readonly TableName[], mode: TableMode, stamp: string): string {
  return `tables: ${tables.map(formatTableName).join(', ')}; table mode: ${mode} (restored into the new schema ${tableSchemaName(stamp)}${mode === 'swap' ? ', then swapped in place of the live tables' : '; live tables are not written'})`;
}

/** The summary's lines for a table recovery. */
export function tableSummary(result: TableRecoveryResult): string[] {
  const lines = [`Restored beside the live tables, in schema "${result.schema}" of ${JSON.stringify(result.database)}`
    + `${result.swapped ? ', then swapped in' : ' (nothing else was written; no session was ended)'}:`];
  for (const t of result.tables) {
    lines.push(`  ${t.source} -> ${t.restoredAs}${t.partitionOf ? ` (partition of ${t.partitionOf})` : ''}: ${t.verified ? 'verified' : 'NOT verified'}, ${t.rows} rows`);
  }
  for (const item of result.leftOut) lines.push(`  left out: ${item}`);
  for (const c of result.changes) {
    lines.push(`  changes since T in ${c.table}: ${c.deleted} deleted, ${c.inserted} inserted, ${c.changed ?? 'unknown (no key)'} changed`);
  }
  for (const w of result.swapped ?? []) lines.push(`  swapped: ${w.table} is the table at T now; the live table is kept as ${w.before}; unavailable for ${w.windowMs} ms`);
  lines.push(`The report and the undo SQL (never executed) are in "${result.schema}".changes. Once you no longer need them: DROP SCHEMA "${result.schema}" CASCADE;`);
  return lines;
}
