/**
 * The recovery's summary, the last lines of its build log: the steps and
 * their durations, what was restored, the result, what a failed run left
 * behind on the original, and what is still kept for the source.
 */
import { changesSummaryLines } from './changes';
import { keptLines, takeInventory } from './housekeeping';
import { formatDuration } from './log';
import { keptName } from './postgres/names';
import { tableSchemaName } from './postgres/tables';
import { leftoverDeps, originalTarget, planOf, temporaryLabelOf, type RunState } from './run-state';
import { deleteSnapshotCommand, sourceNoun } from './source-kind';
import { tableSummary } from './tables';
import { LATEST } from '../../src/contract';

export async function summarize(run: RunState): Promise<void> {
  const { failure, results, tableResult } = run;
  const { log } = run.deps;
  const lines: string[] = ['', '==== Summary ====', 'Steps:', ...log.stepTable()];
  const plan = run.plan;
  if (plan) {
    const when = plan.restoreTime === LATEST ? 'the latest restorable time' : plan.restoreTime.toISOString();
    lines.push(`Source: ${plan.source.id}; restore time: ${when}; strategy: ${plan.strategy}; ${temporaryLabelOf(run)}: ${plan.temporaryInstanceId}`);
    if (results.length > 0) {
      lines.push('Restored:');
      for (const r of results) {
        lines.push(`  ${r.database}: ${r.verified ? 'verified' : 'NOT verified'}, ${r.tables} tables, ${r.rows} rows; unavailable for ${formatDuration(r.unavailableMs)}${r.keptAs ? `; pre-recovery data kept as ${JSON.stringify(r.keptAs)}` : ''}`);
      }
      const kept = results.filter((r) => r.keptAs);
      if (kept.length > 0) {
        lines.push('The pre-recovery databases hold every write made after the restore time. Once you no longer need them:');
        for (const r of kept) lines.push(`  DROP DATABASE ${quoteIdent(r.keptAs!)};`);
      }
    }
    if (tableResult) lines.push(...tableSummary(tableResult));
    lines.push(...changesSummaryLines(run));
    lines.push(plan.safetySnapshotId
      ? `Safety snapshot of the original (kept): ${plan.safetySnapshotId}; delete it when no longer needed: ${deleteSnapshotCommand(plan.source.kind, plan.safetySnapshotId)}`
      : 'Safety snapshot: off');
  }
  if (failure === undefined && tableResult) {
    lines.push(`RESULT: SUCCESS: ${tableResult.tables.length} table(s) restored and verified into schema "${tableResult.schema}"; `
      + (tableResult.swapped ? `${tableResult.swapped.length} swapped in place of the live one(s).` : 'no live table was changed.'));
  } else if (failure === undefined) {
    lines.push(`RESULT: SUCCESS: ${results.length} database(s) recovered and verified.`);
  } else {
    const step = log.steps.find((s) => s.outcome === 'failed');
    lines.push(`RESULT: FAILED${step ? ` in step "${step.name}"` : ''}: ${failure.message}`);
    lines.push(...await whatChanged(run));
  }
  lines.push(...await stillKept(run));
  for (const line of lines) log.info(line);
}

/** The last lines of every summary: what is kept for this source, and how to remove each. */
async function stillKept(run: RunState): Promise<string[]> {
  const plan = run.plan;
  const leftovers = leftoverDeps(run);
  if (!plan || !leftovers) return [];
  try {
    const inventory = await takeInventory(leftovers, plan.source.id, originalTarget(run), undefined, plan.source.kind);
    return keptLines(inventory, plan.source.id, plan.source.endpoint, run.clock.now(), plan.source.kind);
  } catch (err) {
    return [`Still kept for ${plan.source.id}: could not be listed (${(err as Error).message}).`];
  }
}

/** What a failed run left behind on the original, for the person who has to decide what next. */
async function whatChanged(run: RunState): Promise<string[]> {
  if (!run.copyStarted) return [`The original ${sourceNoun(run.plan?.source.kind)} was not changed.`];
  const plan = planOf(run);
  const { databases } = run;
  const stamp = plan.stamp;
  if (plan.tables) return [`Table recovery: ${plan.tableMode === 'swap' ? 'a live table is changed only by its swap, which commits whole or not at all (see above which were swapped); ' : 'no live table was changed; '} anything restored is in schema ${JSON.stringify(tableSchemaName(stamp))} of ${JSON.stringify(databases[0])} (see above whether it was kept).`];
  if (plan.strategy === 'swap') {
    // The data path stops at the first failure; the databases it had already swapped are the ones with a kept copy.
    let onOriginal: string[];
    try {
      onOriginal = await run.deps.data.listDatabases(originalTarget(run));
    } catch (err) {
      return [`Strategy swap: a database is renamed only after it was verified; could not list the original's databases to say which were (${(err as Error).message}). Look for <db>__before_pitr_${stamp}.`];
    }
    const swapped = databases.filter((d) => onOriginal.includes(keptName(d, stamp)));
    const untouched = databases.filter((d) => !swapped.includes(d));
    return [
      swapped.length > 0
        ? `Swapped in before the failure (recovered and verified): ${swapped.map((d) => `${JSON.stringify(d)} (pre-recovery data kept as ${JSON.stringify(keptName(d, stamp))})`).join(', ')}.`
        : 'No database was swapped.',
      untouched.length > 0 ? `Untouched on the original: ${untouched.map((d) => JSON.stringify(d)).join(', ')}.` : '',
    ].filter(Boolean);
  }
  const snapshot = plan.safetySnapshotId;
  return ['Strategy replace: a database not listed above as restored may have been dropped or partially restored on the original. '
    + (snapshot ? `Its state before this run is in the safety snapshot ${snapshot}.` : 'There is no safety snapshot (it was turned off).')];
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
