/**
 * A confirmed recovery request while a restore drill runs: the project runs
 * one build at a time (concurrent build limit 1), so StartBuild would be
 * refused until the drill ends, and a drill can run for hours. A drill
 * writes nothing to the original, so the trigger stops it (StopBuild, this
 * project only), waits until CodeBuild reports it ended and its temporary
 * instance is being deleted or gone (the recovery's plan refuses while
 * another temporary instance of the source is alive), then lets the
 * recovery start. A running recovery or housekeeping build is never stopped.
 *
 * A build is a drill when CodeBuild reports `MODE=drill` (PLAINTEXT) in the
 * build's environment (BatchGetBuilds); anything else counts as a recovery.
 */
import { BatchGetBuildsCommand, Build, ListBuildsForProjectCommand, StopBuildCommand } from '@aws-sdk/client-codebuild';
import { findTemporaryResources } from './cleanup';
import { TriggerDeps } from './trigger-deps';
import { START_ENV, type Mode } from '../src/contract';

export interface StopDrillOptions {
  /** Until when (ms since the epoch) to wait for the drill to end and its temporary instance to go. */
  readonly deadline: number;
  /** Wait between two looks. @default 5 s */
  readonly pollMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
  /** @default a timer */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** What an answer says when the drill is stopped but not yet out of the way: retry after this long. */
export const RETRY_AFTER_STOP_MINUTES = 2;
/** Longer when its temporary instance is still being created: RDS deletes it only once it exists. */
export const RETRY_AFTER_CREATING_MINUTES = 10;

/** Running builds of this project CodeBuild lists first (newest first); the limit is one at a time. */
const RECENT_BUILDS = 25;

/** A recovery request was refused because the project is busy; nothing was started. */
export class ProjectBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProjectBusyError';
  }
}

/** The mode a build runs in, as CodeBuild reports its MODE variable; undefined when not PLAINTEXT (never taken on trust). */
export function modeOfBuild(build: Build): Mode | undefined {
  const variable = build.environment?.environmentVariables?.find((v) => v.name === START_ENV.MODE);
  if (!variable) return 'recover';
  if ((variable.type ?? 'PLAINTEXT') !== 'PLAINTEXT') return undefined;
  const value = (variable.value ?? '').trim();
  return value === '' ? 'recover' : value === 'drill' || value === 'housekeeping' || value === 'recover' ? value : undefined;
}

/**
 * Stops every running drill of this project so a recovery can start, and
 * waits for it to be out of the way. Returns the ids of the drills it
 * stopped (empty when none ran). Throws ProjectBusyError when a recovery or
 * housekeeping build runs (nothing stopped), or when a stopped drill is not
 * out of the way by the deadline (it goes on being stopped: retry).
 */
export async function stopRunningDrills(deps: TriggerDeps, options: StopDrillOptions): Promise<string[]> {
  const { projectName, sourceId } = deps.config;
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const ids = (await deps.codebuild.send(new ListBuildsForProjectCommand({ projectName, sortOrder: 'DESCENDING' })))?.ids ?? [];
  const running = ids.length === 0 ? [] : await runningBuilds(deps, ids.slice(0, RECENT_BUILDS));
  if (running.length === 0) return [];

  const others = running.filter((b) => modeOfBuild(b) !== 'drill');
  if (others.length > 0) {
    const b = others[0];
    const mode = modeOfBuild(b);
    throw new ProjectBusyError(mode === 'housekeeping'
      ? `Housekeeping build ${b.id} of "${sourceId}" is running (started ${b.startTime?.toISOString() ?? 'at an unknown time'}); it only lists and drops old leftovers and is not stopped for you. `
        + `Retry once it has ended (usually minutes): aws codebuild batch-get-builds --ids ${b.id}. Nothing was started.`
      : `Recovery build ${b.id} of "${sourceId}" is running (started ${b.startTime?.toISOString() ?? 'at an unknown time'}); a running recovery is never stopped, and the project runs one build at a time. `
        + `Follow it in its log, and start another recovery once it has ended: aws codebuild batch-get-builds --ids ${b.id}. Nothing was started.`);
  }

  const drills = running.map((b) => b.id!);
  for (const id of drills) {
    await deps.codebuild.send(new StopBuildCommand({ id }));
    deps.log(`Restore drill build ${id} of "${sourceId}" was running; stopping it (StopBuild) so that the recovery can run. A drill writes nothing to the original.`);
  }

  let blocking: string[] = [];
  let creating = false;
  for (;;) {
    const still = await runningBuilds(deps, drills);
    const temporaries = (await findTemporaryResources(deps, new Set(drills), 100)).filter((r) => r.status !== 'deleting');
    blocking = [
      ...still.map((b) => `build ${b.id} is still ${b.buildStatus}${b.currentPhase ? ` (phase ${b.currentPhase})` : ''}`),
      ...temporaries.map((r) => `its temporary ${r.type} ${r.id} is ${r.status}`),
    ];
    creating = temporaries.some((r) => r.status === 'creating');
    if (blocking.length === 0) {
      deps.log(`Restore drill build ${drills.join(', ')} stopped and its temporary instance is being deleted (or gone); starting the recovery.`);
      return drills;
    }
    if (now() + (options.pollMs ?? 5_000) > options.deadline) break;
    await sleep(options.pollMs ?? 5_000);
  }
  const minutes = creating ? RETRY_AFTER_CREATING_MINUTES : RETRY_AFTER_STOP_MINUTES;
  const message = `A restore drill of "${sourceId}" was running (build ${drills.join(', ')}) and is being stopped so that this recovery can run, but it is not out of the way yet: `
    + `${blocking.join('; ')}. ${creating ? 'RDS deletes a temporary instance only once it has been created; the drill\'s cleanup keeps deleting it until it is gone. ' : ''}`
    + `Retry the same request in ${minutes} minutes. The recovery was not started, and nothing on the original was changed.`;
  deps.log(message);
  throw new ProjectBusyError(message);
}

async function runningBuilds(deps: TriggerDeps, ids: readonly string[]): Promise<Build[]> {
  const builds = (await deps.codebuild.send(new BatchGetBuildsCommand({ ids: [...ids] })))?.builds ?? [];
  // Only this project's builds: the function may read and stop no other.
  return builds.filter((b) => b.projectName === deps.config.projectName && b.buildComplete !== true && b.buildStatus === 'IN_PROGRESS');
}
