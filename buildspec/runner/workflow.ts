/**
 * The recovery runbook. `runRecovery` is the list of steps (steps.ts), with
 * the cleanup in its `finally`; the state they share is one `RunState`
 * (run-state.ts). Everything the steps touch goes through the two ports
 * (`RdsControl`, `DataPath`), so the same runbook runs on AWS, in the local
 * rehearsal and in tests.
 */
import { recordChangesStep, wantsChanges } from './changes';
import type { RecoveryPlan, StartRequest } from './plan';
import type { DatabaseCopyResult, TableRecoveryResult } from './ports';
import { newRunState, planOf, recordFailure, type RecoveryDeps, type RunState } from './run-state';
import {
  chooseDatabases, cleanUp, copyDatabases, dropDeadCopies, matchCredentials, planAndValidate, recoverTables,
  restoreTemporaryInstance, startSafetySnapshot, waitForSafetySnapshot, waitForTemporaryInstance,
} from './steps';
import { summarize } from './summary';

export { AWS_POLLING, systemClock, type Clock, type Credentials, type Polling, type RecoveryDeps } from './run-state';

/** The recovery's step names, as the build log shows them; the drill (drill.ts) reuses those of the steps it shares. */
export const RECOVERY_STEPS = {
  PLAN: 'Plan and validate',
  START_SAFETY_SNAPSHOT: 'Start safety snapshot of the original',
  RESTORE: 'Restore temporary instance at the restore time',
  WAIT: 'Wait for the temporary instance',
  CREDENTIALS: 'Match credentials to the current secret',
  WAIT_SAFETY_SNAPSHOT: 'Wait for the safety snapshot',
  CHOOSE: 'Choose databases',
  DROP_DEAD_COPIES: 'Drop in-progress copies of dead runs',
  TABLES: 'Recover tables beside the live ones',
  COPY_SWAP: 'Copy, verify and swap in',
  COPY_REPLACE: 'Copy, verify and replace',
  CHANGES: 'Record writes made after the restore time',
  CLEAN_UP: 'Clean up',
} as const;

export interface RecoveryOutcome {
  readonly plan: RecoveryPlan;
  readonly results: readonly DatabaseCopyResult[];
  /** With TABLES: the tables restored beside the live ones, and the change report. */
  readonly tables?: TableRecoveryResult;
}

/**
 * Recovers the source instance's databases to their state at the restore
 * time. Resolves only when every database was copied and verified; rejects
 * with the cause otherwise. The temporary instance and the local dump are
 * removed whatever happens.
 */
export async function runRecovery(request: StartRequest, deps: RecoveryDeps): Promise<RecoveryOutcome> {
  const run = newRunState(request, deps);
  const { log } = deps;
  log.redact(deps.credentials.password);
  try {
    await log.step(RECOVERY_STEPS.PLAN, () => planAndValidate(run));
    if (request.safetySnapshot) await log.step(RECOVERY_STEPS.START_SAFETY_SNAPSHOT, () => startSafetySnapshot(run));
    await log.step(RECOVERY_STEPS.RESTORE, () => restoreTemporaryInstance(run));
    await log.step(RECOVERY_STEPS.WAIT, () => waitForTemporaryInstance(run));
    await log.step(RECOVERY_STEPS.CREDENTIALS, () => matchCredentials(run));
    if (request.safetySnapshot) await log.step(RECOVERY_STEPS.WAIT_SAFETY_SNAPSHOT, () => waitForSafetySnapshot(run));
    await log.step(RECOVERY_STEPS.CHOOSE, () => chooseDatabases(run));
    if (deps.catalog) await log.step(RECOVERY_STEPS.DROP_DEAD_COPIES, () => dropDeadCopies(run));
    if (request.tables) await log.step(RECOVERY_STEPS.TABLES, () => recoverTables(run));
    else if (request.strategy === 'swap') await log.step(RECOVERY_STEPS.COPY_SWAP, () => copyDatabases(run));
    else await log.step(RECOVERY_STEPS.COPY_REPLACE, () => copyDatabases(run));
    if (wantsChanges(run)) await log.step(RECOVERY_STEPS.CHANGES, () => recordChangesStep(run));
  } catch (err) {
    recordFailure(run, err);
  } finally {
    await log.step(RECOVERY_STEPS.CLEAN_UP, () => cleanUp(run)).catch((err) => recordFailure(run, err));
    await summarize(run);
  }
  return outcome(run);
}

/** The result, or the first failure. */
function outcome(run: RunState): RecoveryOutcome {
  if (run.failure) throw run.failure;
  return { plan: planOf(run), results: run.results, ...(run.tableResult ? { tables: run.tableResult } : {}) };
}
