/**
 * The recovery's hook for the record of writes made after the restore time
 * (issue #21): after a successful swap, each recovered database is compared
 * with its pre-recovery copy (postgres/changes.ts). The application is back
 * by then: the downtime does not change. A failed comparison is a warning,
 * never a failed recovery: the recovery itself is done and verified.
 */
import type { StepLog } from './log';
import type { RecoveryPlan } from './plan';
import type { DatabaseCopyResult, PgTarget } from './ports';
import { changesSchemaName, changesSummary } from './postgres/changes';
import { originalTarget, planOf, temporaryTarget, type ChangesPath, type RunState } from './run-state';
import { START_ENV } from '../../src/contract';


/** Why there is no record, when there is none: the summary line. */
export function changesSkipped(plan: RecoveryPlan): string | undefined {
  if (plan.tables) return undefined;
  if (!plan.changes) return `Writes made after the restore time: not recorded (${START_ENV.CHANGES}=off); the pre-recovery databases still hold them.`;
  if (plan.strategy !== 'swap') return 'Writes made after the restore time: not recorded: strategy replace keeps no pre-recovery copy to compare with, so the writes made after the restore time are gone.';
  return undefined;
}

/**
 * Runs the comparison for every swapped database; returns the summary lines. The state at T is read on
 * `pointInTimeCopy` (the temporary instance, not yet deleted): the recovered database takes the application's writes
 * again from the swap on.
 */
export async function recordWritesAfterT(
  plan: RecoveryPlan, results: readonly DatabaseCopyResult[], original: PgTarget, pointInTimeCopy: PgTarget, changes: ChangesPath, log: StepLog,
): Promise<string[]> {
  const lines: string[] = [];
  for (const r of results.filter((x) => x.keptAs)) {
    try {
      const record = await changes.record(original, {
        database: r.database,
        keptAs: r.keptAs!,
        stamp: plan.stamp,
        log,
        after: plan.after,
        pointInTimeCopy,
        // T, when the run knows it exactly: with track_commit_timestamp on, only rows committed after it are compared in full.
        restoreTime: plan.restoreTime instanceof Date ? plan.restoreTime : undefined,
      });
      lines.push(...changesSummary(record));
    } catch (err) {
      const message = `${r.database}: the writes made after the restore time could not be recorded (${(err as Error).message}); `
        + `the recovery is complete and verified, and ${JSON.stringify(r.keptAs)} still holds those writes. `
        + `Drop schema ${JSON.stringify(changesSchemaName(plan.stamp))} in ${JSON.stringify(r.database)} if it was created.`;
      log.warn(message);
      lines.push(`Writes made after the restore time: NOT recorded for ${message}`);
    }
  }
  return lines;
}

/** True when the run records the writes made after T: a whole-database swap with CHANGES on and a ChangesPath. */
export function wantsChanges(run: RunState): boolean {
  return !run.request.tables && run.request.strategy === 'swap' && run.request.changes && run.deps.changes !== undefined;
}

/** The step after the swap: the record for each swapped database; never fails the recovery. */
export async function recordChangesStep(run: RunState): Promise<void> {
  run.changesLines = await recordWritesAfterT(planOf(run), run.results, originalTarget(run), temporaryTarget(run), run.deps.changes!, run.deps.log);
}

/** The summary's lines about the record: what was recorded, or why nothing was. */
export function changesSummaryLines(run: RunState): string[] {
  if (run.results.length === 0 || !run.plan) return [];
  const skipped = changesSkipped(run.plan);
  return [...(run.changesLines ?? []), ...(skipped ? [skipped] : [])];
}
