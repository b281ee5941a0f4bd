/**
 * The trigger Lambda. One function, two callers:
 * - an operator (or `aws lambda invoke`) with a recovery request: validate it
 *   and start the recovery build;
 * - EventBridge with a CodeBuild build state change: after a dead build,
 *   delete the temporary instances it left behind.
 *
 * Bundled by `npx projen bundle` to assets/trigger/index.js.
 */
import { CodeBuildClient } from '@aws-sdk/client-codebuild';
import { RDSClient } from '@aws-sdk/client-rds';
import { CleanupSummary, SweepSummary, cleanupAfterDeadBuild, isEventBridgeEvent, isSweepEvent, sweepTemporaryInstances } from './cleanup';
import { DRILL_STOP_WAIT_MS, startRecovery } from './start-recovery';
import { TriggerDeps, readTriggerConfig } from './trigger-deps';
import type { DrillStarted, HousekeepingStarted, RecoveryStarted } from '../src/contract';

/** Time kept back from the function's timeout to finish the last attempt and report what is left. */
export const CLEANUP_MARGIN_MS = 30_000;

/** The part of the Lambda context this function reads. */
export interface TimeBudget {
  getRemainingTimeInMillis(): number;
}

export async function handler(
  event: unknown, context?: TimeBudget,
): Promise<RecoveryStarted | HousekeepingStarted | DrillStarted | CleanupSummary | SweepSummary> {
  const deps = depsFromEnvironment();
  // The construct's schedule: temporary instances of dead builds that RDS refused to delete earlier.
  if (isSweepEvent(event)) return sweepTemporaryInstances(deps);
  if (isEventBridgeEvent(event)) {
    // Without a Lambda context (a local call) there is no known time budget: refused deletes are not retried.
    const retryDeadline = context ? Date.now() + context.getRemainingTimeInMillis() - CLEANUP_MARGIN_MS : undefined;
    return cleanupAfterDeadBuild(event, deps, { retryDeadline });
  }
  // A recovery may wait for a drill it stopped, within the default wait and the function's own time.
  const now = Date.now();
  const deadline = context ? Math.min(now + DRILL_STOP_WAIT_MS, now + context.getRemainingTimeInMillis() - CLEANUP_MARGIN_MS) : undefined;
  return startRecovery(event, deps, { deadline });
}

// Reused across warm invocations; keyed by region only because that is all the environment varies.
let clients: { region: string; rds: RDSClient; codebuild: CodeBuildClient } | undefined;

function depsFromEnvironment(): TriggerDeps {
  const config = readTriggerConfig(process.env);
  if (clients?.region !== config.region) {
    clients = { region: config.region, rds: new RDSClient({ region: config.region }), codebuild: new CodeBuildClient({ region: config.region }) };
  }
  return { config, rds: clients.rds, codebuild: clients.codebuild, log: (line) => console.log(line) };
}
