/**
 * EventBridge invocation: after a recovery build ended in one of
 * DEAD_BUILD_STATES, delete the temporary instances it left behind, so a
 * killed build never leaves a paid instance running. Deletes nothing else.
 * For an Aurora source (issue #20) that is the temporary cluster's writer
 * instance and then the temporary cluster itself (no final snapshot).
 *
 * The event is only a hint: anyone allowed to invoke the function can send
 * one. Before deleting, CodeBuild itself must confirm that the build exists,
 * belongs to this project and is complete in a dead state, so a forged event
 * cannot delete the temporary instance of a recovery that is still running.
 */
import { BatchGetBuildsCommand, Build } from '@aws-sdk/client-codebuild';
import {
  DeleteDBClusterCommand, DeleteDBInstanceCommand, DescribeDBClustersCommand, DescribeDBInstancesCommand, ListTagsForResourceCommand, Tag,
  paginateDescribeDBClusters, paginateDescribeDBInstances,
} from '@aws-sdk/client-rds';
import { TriggerDeps } from './trigger-deps';
import {
  BUILD_STATE_CHANGE,
  CLEANUP_SWEEP,
  CLEANUP_SWEEP_MINUTES,
  DEAD_BUILD_STATES,
  TAGS,
  codeBuildIdOf,
  temporaryClusterPrefix,
  temporaryInstancePrefix,
} from '../src/contract';

/**
 * What a dead build may have left: a temporary instance (of an instance
 * source, or the writer of a temporary cluster), or a temporary cluster.
 */
export interface TemporaryResource {
  readonly type: 'instance' | 'cluster';
  readonly id: string;
  /** DBInstanceStatus or the cluster's Status, as listed. */
  readonly status?: string;
  /** The value of its TAGS.BUILD_ID tag. */
  readonly buildId: string;
}

/** The fields of a CodeBuild "Build State Change" event this function reads. */
export interface BuildStateChangeEvent {
  readonly 'source': string;
  readonly 'detail-type': string;
  readonly 'detail': {
    readonly 'build-status'?: string;
    readonly 'project-name'?: string;
    /** The build ARN: `arn:aws:codebuild:<region>:<account>:build/<project>:<uuid>`. */
    readonly 'build-id'?: string;
  };
}

export interface CleanupSummary {
  /** Temporary instances (and, for an Aurora source, temporary clusters) whose deletion was requested by this invocation. */
  readonly deleted: string[];
  /** Why nothing was deleted, when the event or CodeBuild's answer is not a dead build of this project. */
  readonly ignored?: string;
}

export interface CleanupOptions {
  /** DescribeDBInstances page size (20-100). @default 100 */
  readonly pageSize?: number;
  /**
   * Until when (ms since the epoch, on the `now` clock) a delete that RDS
   * refuses because the instance is in a transitional state (creating,
   * modifying, backing-up...) is tried again. The handler sets it from the
   * Lambda's remaining time. @default no retries: refused deletes fail at once
   */
  readonly retryDeadline?: number;
  /** Wait between attempts on refused deletes. @default 30 s */
  readonly retryIntervalMs?: number;
  /** @default Date.now */
  readonly now?: () => number;
  /** @default a timer */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** Transitional states last minutes, not seconds: asking more often only adds log lines. */
export const DEFAULT_RETRY_INTERVAL_MS = 30_000;

/**
 * The RDS errors for a delete refused because of the resource's current
 * state. A cluster refuses while it still holds an instance that is not
 * being deleted (InvalidDBClusterStateFault), so its delete is retried like
 * an instance's after its writer's delete was accepted.
 */
const INVALID_STATE = new Set(['InvalidDBInstanceStateFault', 'InvalidDBClusterStateFault']);

/** True for anything shaped like an EventBridge event, as opposed to a recovery request. */
export function isEventBridgeEvent(event: unknown): event is BuildStateChangeEvent {
  return typeof event === 'object' && event !== null
    && 'detail-type' in event && 'source' in event
    && typeof (event as { detail?: unknown }).detail === 'object';
}

export async function cleanupAfterDeadBuild(
  event: BuildStateChangeEvent,
  deps: TriggerDeps,
  options: CleanupOptions = {},
): Promise<CleanupSummary> {
  const ignored = reasonToIgnore(event, deps.config.projectName);
  if (ignored) {
    deps.log(`Ignored event: ${ignored}. Nothing was deleted.`);
    return { deleted: [], ignored };
  }
  const buildId = codeBuildIdOf(event.detail['build-id']!);
  const confirmed = await confirmDeadBuild(buildId, deps);
  if ('ignored' in confirmed) {
    deps.log(`Ignored event for build ${buildId}: ${confirmed.ignored}. Nothing was deleted.`);
    return { deleted: [], ignored: confirmed.ignored };
  }
  // Match tags against CodeBuild's own id and ARN, not the event's spelling of them.
  const { build } = confirmed;
  const tagValues = new Set([build.id!, ...(build.arn ? [build.arn] : [])]);
  const leftovers = await findTemporaryResources(deps, tagValues, options.pageSize ?? 100);
  deps.log(`Build ${build.id} ended ${build.buildStatus} (confirmed by CodeBuild); temporary ${deps.config.sourceKind === 'cluster' ? 'instances and clusters' : 'instances'} `
    + `tagged with it: ${leftovers.map((r) => r.id).join(', ') || 'none'}.`);
  return deleteAll(leftovers, build.id!, deps, options);
}

/** CodeBuild's word on the build: a complete, dead build of this project, or why not. */
type Confirmation = { readonly build: Build } | { readonly ignored: string };

async function confirmDeadBuild(buildId: string, deps: TriggerDeps): Promise<Confirmation> {
  const projectName = deps.config.projectName;
  // The function may only read builds of its own project; asking about another one would be denied, not answered.
  if (!buildId.startsWith(`${projectName}:`)) {
    return { ignored: `build id "${buildId}" is not a build of the recovery project "${projectName}" (accepted: "${projectName}:<uuid>")` };
  }
  let builds: Build[];
  try {
    builds = (await deps.codebuild.send(new BatchGetBuildsCommand({ ids: [buildId] }))).builds ?? [];
  } catch (err) {
    // Throwing makes EventBridge's asynchronous invocation retry the event.
    throw new Error(
      `Cleanup after build ${buildId}: could not confirm the build's state with CodeBuild BatchGetBuilds `
      + `(${(err as Error).name}: ${(err as Error).message}). Nothing was deleted; the event will be retried.`,
    );
  }
  const build = builds.find((b) => b.id === buildId);
  if (!build) return { ignored: `CodeBuild does not know build "${buildId}"` };
  if (build.projectName !== projectName) {
    return { ignored: `CodeBuild says build "${buildId}" belongs to project "${build.projectName}", not the recovery project "${projectName}"` };
  }
  if (build.buildComplete !== true || !(DEAD_BUILD_STATES as readonly (string | undefined)[]).includes(build.buildStatus)) {
    return {
      ignored: `CodeBuild says build "${buildId}" is ${build.buildStatus} (complete: ${build.buildComplete === true}); `
        + `only a complete build that is ${DEAD_BUILD_STATES.join(', ')} is cleaned up`,
    };
  }
  return { build };
}

function reasonToIgnore(event: BuildStateChangeEvent, projectName: string): string | undefined {
  const { source, detail } = event;
  if (source !== BUILD_STATE_CHANGE.SOURCE || event['detail-type'] !== BUILD_STATE_CHANGE.DETAIL_TYPE) {
    return `source "${source}" / detail-type "${event['detail-type']}" is not a CodeBuild build state change`;
  }
  if (detail['project-name'] !== projectName) {
    return `build of project "${detail['project-name']}", not the recovery project "${projectName}"`;
  }
  const status = detail['build-status'];
  if (!(DEAD_BUILD_STATES as readonly (string | undefined)[]).includes(status)) {
    return `build status "${status}" is not one of ${DEAD_BUILD_STATES.join(', ')}`;
  }
  if (typeof detail['build-id'] !== 'string' || detail['build-id'] === '') {
    return `the event has no build-id (${JSON.stringify(detail['build-id'])})`;
  }
  return undefined;
}

/**
 * Two independent guards: the identifier must have the temporary prefix of
 * this project's source, and the build-id tag must name the dead build. The
 * source itself never qualifies, nor does any instance of a source cluster.
 * Instances come first: a temporary cluster is deleted after its writer.
 */
export async function findTemporaryResources(deps: TriggerDeps, buildIds: ReadonlySet<string>, pageSize: number): Promise<TemporaryResource[]> {
  return (await temporaryResourcesOfSource(deps, pageSize)).filter((t) => buildIds.has(t.buildId));
}

/** Every instance (and cluster) named as a temporary of this source and tagged with a build id. */
async function temporaryResourcesOfSource(deps: TriggerDeps, pageSize: number): Promise<TemporaryResource[]> {
  const { sourceId: source, sourceKind } = deps.config;
  const cluster = sourceKind === 'cluster';
  const prefix = cluster ? temporaryClusterPrefix(source) : temporaryInstancePrefix(source);
  const named = (id: string | undefined) => id !== undefined && id.toLowerCase() !== source.toLowerCase() && id.toLowerCase().startsWith(prefix);
  const found: TemporaryResource[] = [];
  for await (const page of paginateDescribeDBInstances({ client: deps.rds, pageSize }, {})) {
    for (const instance of page.DBInstances ?? []) {
      if (!named(instance.DBInstanceIdentifier)) continue;
      // A temporary cluster's writer lives in a temporary cluster: an instance of any other cluster is never one.
      if (cluster && !named(instance.DBClusterIdentifier)) continue;
      const buildId = buildIdOf(instance.TagList ?? await tagsOf(instance.DBInstanceArn, deps));
      if (buildId) found.push({ type: 'instance', id: instance.DBInstanceIdentifier!, status: instance.DBInstanceStatus, buildId });
    }
  }
  if (!cluster) return found;
  for await (const page of paginateDescribeDBClusters({ client: deps.rds, pageSize }, {})) {
    for (const c of page.DBClusters ?? []) {
      if (!named(c.DBClusterIdentifier)) continue;
      const buildId = buildIdOf(c.TagList ?? await tagsOf(c.DBClusterArn, deps));
      if (buildId) found.push({ type: 'cluster', id: c.DBClusterIdentifier!, status: c.Status, buildId });
    }
  }
  return found;
}

function buildIdOf(tags: Tag[]): string | undefined {
  return tags.find((t) => t.Key === TAGS.BUILD_ID)?.Value;
}

/** What one sweep did. */
export interface SweepSummary {
  /** Deletion requested by this sweep. */
  readonly deleted: string[];
  /** Refused by RDS for now (being created, modified...); the next sweep tries again. */
  readonly waiting: string[];
}

/** True for the scheduled sweep's input (CLEANUP_SWEEP). */
export function isSweepEvent(event: unknown): boolean {
  return typeof event === 'object' && event !== null && (event as Record<string, unknown>).cleanup === CLEANUP_SWEEP.cleanup;
}

/**
 * The scheduled sweep: deletes every temporary instance of this source whose
 * build CodeBuild confirms is complete and dead (DEAD_BUILD_STATES), however
 * long ago it died. A delete RDS refuses for now is not waited for: the next
 * sweep, CLEANUP_SWEEP_MINUTES later, tries again, until the instance is
 * gone. Instances of running, succeeded or unknown builds are left alone.
 */
export async function sweepTemporaryInstances(deps: TriggerDeps, options: { readonly pageSize?: number } = {}): Promise<SweepSummary> {
  const { projectName } = deps.config;
  const candidates = (await temporaryResourcesOfSource(deps, options.pageSize ?? 100)).filter((t) => t.status !== 'deleting');
  const ids = [...new Set(candidates.map((t) => codeBuildIdOf(t.buildId)).filter((id) => id.startsWith(`${projectName}:`)))];
  const dead = new Map<string, string>();
  for (let i = 0; i < ids.length; i += 100) {
    const answer = await deps.codebuild.send(new BatchGetBuildsCommand({ ids: ids.slice(i, i + 100) }));
    for (const b of answer?.builds ?? []) {
      const isDead = (DEAD_BUILD_STATES as readonly (string | undefined)[]).includes(b.buildStatus);
      if (b.id && b.projectName === projectName && b.buildComplete === true && isDead) {
        dead.set(b.id, b.buildStatus!);
      }
    }
  }
  const deleted: string[] = [];
  const waiting: string[] = [];
  const failures: string[] = [];
  for (const resource of candidates) {
    const { id, buildId } = resource;
    const status = dead.get(codeBuildIdOf(buildId));
    if (!status) continue;
    const attempt = await attemptDelete(resource, deps);
    if (attempt.kind === 'requested') {
      deleted.push(id);
      deps.log(`Sweep: deleting ${id}, left by build ${buildId} (${status}); not waiting for it to finish.`);
    } else if (attempt.kind === 'refused') {
      waiting.push(id);
      deps.log(`Sweep: ${id}, left by build ${buildId} (${status}), is ${resource.status}; RDS refused to delete it for now `
        + `(${attempt.error.name}: ${attempt.error.message}). The next sweep, in ${CLEANUP_SWEEP_MINUTES} minutes, tries again.`);
    } else if (attempt.kind === 'failed') {
      failures.push(`${id} (${attempt.error.name}: ${attempt.error.message})`);
    }
  }
  if (failures.length > 0) {
    throw new Error(`Cleanup sweep: could not delete ${failures.join('; ')}. Deletion requested for: ${deleted.join(', ') || 'none'}. `
      + `The next sweep tries again in ${CLEANUP_SWEEP_MINUTES} minutes; to delete by hand: ${byHand(deps)}`);
  }
  if (deleted.length === 0 && waiting.length === 0) deps.log(`Sweep: no temporary ${deps.config.sourceKind === 'cluster' ? 'cluster or instance' : 'instance'} of a dead build is left.`);
  return { deleted, waiting };
}

/** DescribeDBInstances and DescribeDBClusters normally include TagList; older responses may not. */
async function tagsOf(arn: string | undefined, deps: TriggerDeps): Promise<Tag[]> {
  const answer = await deps.rds.send(new ListTagsForResourceCommand({ ResourceName: arn }));
  return answer.TagList ?? [];
}

/** The commands that delete what is left by hand, for the source's kind. */
function byHand(deps: TriggerDeps): string {
  return deps.config.sourceKind === 'cluster'
    ? 'aws rds delete-db-instance --db-instance-identifier <writer id>, then aws rds delete-db-cluster --db-cluster-identifier <cluster id> --skip-final-snapshot'
    : 'aws rds delete-db-instance --db-instance-identifier <id> --skip-final-snapshot --delete-automated-backups';
}

/** Outcome of one DeleteDBInstance attempt. */
type Attempt =
  | { readonly kind: 'requested' }
  | { readonly kind: 'gone' }
  | { readonly kind: 'refused'; readonly error: Error }
  | { readonly kind: 'failed'; readonly error: Error };

async function attemptDelete(resource: TemporaryResource, deps: TriggerDeps): Promise<Attempt> {
  const { type, id } = resource;
  try {
    if (type === 'cluster') {
      // No final snapshot: the cluster is a throwaway copy of the source (its writer's delete came first).
      await deps.rds.send(new DeleteDBClusterCommand({ DBClusterIdentifier: id, SkipFinalSnapshot: true, DeleteAutomatedBackups: true }));
    } else if (deps.config.sourceKind === 'cluster') {
      // A cluster's writer: snapshots and backups belong to the cluster, so the instance takes neither option.
      await deps.rds.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: id }));
    } else {
      // No final snapshot and no retained backups: the instance is a throwaway copy of the source.
      await deps.rds.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: id, SkipFinalSnapshot: true, DeleteAutomatedBackups: true }));
    }
    return { kind: 'requested' };
  } catch (err) {
    const error = err as Error;
    if (error.name === 'DBInstanceNotFoundFault' || error.name === 'DBClusterNotFoundFault') return { kind: 'gone' };
    return INVALID_STATE.has(error.name) ? { kind: 'refused', error } : { kind: 'failed', error };
  }
}

/** The resource's status now; undefined once RDS no longer knows it. */
async function currentStatus(resource: TemporaryResource, deps: TriggerDeps): Promise<string | undefined> {
  const { type, id } = resource;
  try {
    if (type === 'cluster') {
      const answer = await deps.rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: id }));
      return answer.DBClusters?.[0]?.Status ?? 'unknown';
    }
    const answer = await deps.rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }));
    return answer.DBInstances?.[0]?.DBInstanceStatus ?? 'unknown';
  } catch (err) {
    if ((err as Error).name === 'DBInstanceNotFoundFault' || (err as Error).name === 'DBClusterNotFoundFault') return undefined;
    return `unknown (${type === 'cluster' ? 'DescribeDBClusters' : 'DescribeDBInstances'} failed: ${(err as Error).name})`;
  }
}

/**
 * Every instance is tried once first, so one stuck instance cannot keep the
 * others from being deleted (a temporary cluster comes after its writer).
 * Deletes refused because of a transitional state are then retried every
 * interval until the deadline, since the event's own retries (two, within
 * minutes) can all land inside a state lasting longer.
 */
async function deleteAll(resources: TemporaryResource[], buildId: string, deps: TriggerDeps, options: CleanupOptions): Promise<CleanupSummary> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const interval = options.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS;
  const deadline = options.retryDeadline ?? now();
  const deleted: string[] = [];
  const failures: string[] = [];
  const settle = (id: string, attempt: Attempt): void => {
    if (attempt.kind === 'requested') {
      deleted.push(id);
      deps.log(`Deleting ${id} (tagged ${TAGS.BUILD_ID}=${buildId}); not waiting for it to finish.`);
    } else if (attempt.kind === 'gone') {
      deps.log(`${id} is already gone.`);
    } else if (attempt.kind === 'failed') {
      failures.push(`${id} (${attempt.error.name}: ${attempt.error.message})`);
    }
  };

  let refused = new Map<string, { resource: TemporaryResource; error: Error }>();
  for (const resource of resources) {
    const id = resource.id;
    if (resource.status === 'deleting') {
      deps.log(`${id} is already being deleted.`);
      continue;
    }
    const attempt = await attemptDelete(resource, deps);
    if (attempt.kind === 'refused') refused.set(id, { resource, error: attempt.error });
    else settle(id, attempt);
  }

  let round = 0;
  while (refused.size > 0) {
    // Another attempt only if it can happen before the deadline.
    const outOfTime = now() + interval > deadline;
    const waiting = new Map<string, { resource: TemporaryResource; status: string }>();
    for (const [id, { resource, error }] of refused) {
      const status = await currentStatus(resource, deps);
      if (status === undefined) {
        deps.log(`${id} is already gone.`);
      } else if (status === 'deleting') {
        deps.log(`${id} is already being deleted.`);
      } else {
        waiting.set(id, { resource, status });
        if (outOfTime) {
          failures.push(`${id} (${error.name}: ${error.message}; status ${status}, still refused after ${round + 1} attempt(s))`);
        }
      }
    }
    if (outOfTime || waiting.size === 0) break;
    round += 1;
    for (const [id, { status }] of waiting) {
      deps.log(`${id} is ${status}; RDS refused to delete it (${refused.get(id)!.error.name}). Retry ${round} in ${interval / 1000} s `
        + `(retrying until ${new Date(deadline).toISOString()}).`);
    }
    await sleep(interval);
    const next = new Map<string, { resource: TemporaryResource; error: Error }>();
    for (const [id, { resource }] of waiting) {
      const attempt = await attemptDelete(resource, deps);
      if (attempt.kind === 'refused') next.set(id, { resource, error: attempt.error });
      else settle(id, attempt);
    }
    refused = next;
  }

  if (failures.length > 0) {
    // Throwing makes Lambda retry the event, which deletes what is still left.
    throw new Error(
      `Cleanup after build ${buildId}: could not delete ${failures.join('; ')}. `
      + `Deletion requested for: ${deleted.join(', ') || 'none'}. The event will be retried, and the cleanup sweep tries again every ${CLEANUP_SWEEP_MINUTES} minutes `
      + 'until the instance is gone (RDS refuses to delete an instance while it is being created, which lasts as long as the restore); if neither can, delete the remaining instances by hand '
      + `(${byHand(deps)}).`,
    );
  }
  return { deleted };
}
