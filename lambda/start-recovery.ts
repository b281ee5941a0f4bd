/**
 * Direct invocation: validate the request, check the source instance and its
 * restorable window, then start the recovery build. Any failure before
 * StartBuild leaves nothing started.
 */
import { Build, EnvironmentVariable, StartBuildCommand } from '@aws-sdk/client-codebuild';
import {
  DBInstance,
  DBInstanceAutomatedBackup,
  DescribeDBInstancesCommand,
  paginateDescribeDBInstanceAutomatedBackups,
} from '@aws-sdk/client-rds';
import {
  ValidDrillRequest, ValidHousekeepingRequest, ValidRecoveryRequest,
  isDrillRequest, isHousekeepingRequest, parseDrillRequest, parseHousekeepingRequest, parseRecoveryRequest,
} from './recovery-request';
import { assertClusterRecoverable, clusterRestoreWindow, describeSourceCluster } from './source-cluster';
import { stopRunningDrills } from './stop-drill';
import { TriggerDeps } from './trigger-deps';
import {
  DrillStarted,
  HousekeepingStarted,
  LATEST,
  RecoveryStarted,
  RestoreWindow,
  START_ENV,
  TRIGGER_ENV,
  assertInsideRestoreWindow,
  consoleBaseUrl,
  earliestRestorableTime,
} from '../src/contract';

export interface StartOptions {
  /**
   * Until when (ms since the epoch) a recovery may wait for a running drill
   * it stopped to get out of the way. @default now + DRILL_STOP_WAIT_MS
   */
  readonly deadline?: number;
  /** @default 5 s */
  readonly pollMs?: number;
}

/**
 * How long a recovery request waits for a stopped drill by default: under
 * the AWS CLI's 60-second read timeout, after which `aws lambda invoke`
 * gives up on the answer (and may invoke again).
 */
export const DRILL_STOP_WAIT_MS = 40_000;

export async function startRecovery(
  input: unknown, deps: TriggerDeps, options: StartOptions = {},
): Promise<RecoveryStarted | HousekeepingStarted | DrillStarted> {
  if (isHousekeepingRequest(input)) {
    return startHousekeeping(parseHousekeepingRequest(input as Record<string, unknown>, deps.config.sourceId, deps.config.sourceKind), deps);
  }
  if (isDrillRequest(input)) return startDrill(parseDrillRequest(input as Record<string, unknown>), deps);
  const request = parseRecoveryRequest(input, deps.config.sourceId, deps.config.sourceKind);
  if (deps.config.sourceKind === 'cluster') {
    const cluster = await describeSourceCluster(deps);
    assertClusterRecoverable(cluster, deps.config.sourceId);
    if (request.restoreTime !== LATEST) assertInsideRestoreWindow(request.restoreTime, clusterRestoreWindow(cluster, deps.config.sourceId), 'restoreTime');
  } else {
    const source = await describeSource(deps);
    assertRecoverable(source, deps.config);
    if (request.restoreTime !== LATEST) {
      const window = await restoreWindowOf(source, deps);
      assertInsideRestoreWindow(request.restoreTime, window, 'restoreTime');
    }
  }
  // Confirmed and checked: a running drill gives way (a running recovery never does).
  const stoppedDrills = await stopRunningDrills(deps, { deadline: options.deadline ?? Date.now() + DRILL_STOP_WAIT_MS, pollMs: options.pollMs });
  return startBuild(request, deps, stoppedDrills);
}

/** The StartBuild overrides for a request, named by the start contract. */
export function environmentOverrides(request: ValidRecoveryRequest): EnvironmentVariable[] {
  const variables: Array<[string, string]> = [
    [START_ENV.RESTORE_TIME, restoreTimeText(request)],
    [START_ENV.CONFIRM, request.confirm],
  ];
  // Left out when not requested, so a database list configured on the project still applies.
  if (request.databases) variables.push([START_ENV.DATABASES, request.databases.join(',')]);
  variables.push([START_ENV.STRATEGY, request.strategy]);
  if (request.acceptHazards.length > 0) variables.push([START_ENV.ACCEPT_HAZARDS, request.acceptHazards.join(',')]);
  // TABLES splits on commas outside double quotes, so a quoted name with a comma travels intact.
  if (request.tables) variables.push([START_ENV.TABLES, request.tables.join(',')]);
  if (request.tableMode) variables.push([START_ENV.TABLE_MODE, request.tableMode]);
  if (request.changes) variables.push([START_ENV.CHANGES, request.changes]);
  if (request.after) variables.push([START_ENV.AFTER, request.after]);
  return variables.map(([name, value]) => ({ name, value, type: 'PLAINTEXT' }));
}

/** The normalised form is passed on, so the build restores exactly the instant checked here. */
function restoreTimeText(request: ValidRecoveryRequest): string {
  return request.restoreTime === LATEST ? LATEST : request.restoreTime.toISOString();
}

async function describeSource(deps: TriggerDeps): Promise<DBInstance> {
  const id = deps.config.sourceId;
  try {
    const answer = await deps.rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }));
    const instance = answer.DBInstances?.[0];
    if (instance) return instance;
  } catch (err) {
    if ((err as Error).name !== 'DBInstanceNotFoundFault') throw err;
  }
  throw new Error(
    `${TRIGGER_ENV.SOURCE_INSTANCE_ID}: RDS instance "${id}" was not found in ${deps.config.region}; `
    + 'accepted: an existing instance (the PitrRecovery construct sets this variable). Nothing was started.',
  );
}

function assertRecoverable(source: DBInstance, config: { sourceId: string }): void {
  const id = config.sourceId;
  if (source.DBInstanceStatus !== 'available') {
    throw new Error(
      `Source instance "${id}" is "${source.DBInstanceStatus}", not "available"; a recovery writes into it, `
      + 'so wait until it is available and try again. Nothing was started.',
    );
  }
  if (!source.BackupRetentionPeriod || source.BackupRetentionPeriod <= 0) {
    throw new Error(
      `Source instance "${id}" has automated backups turned off (BackupRetentionPeriod ${source.BackupRetentionPeriod ?? 0}), `
      + 'so RDS has no point in time to restore; accepted: an instance with a backup retention period of at least 1 day. Nothing was started.',
    );
  }
  if (!source.LatestRestorableTime) {
    throw new Error(
      `Source instance "${id}" has no LatestRestorableTime yet (RDS reports one after the first automated backup completes), `
      + 'so there is nothing to restore yet. Nothing was started.',
    );
  }
}

/**
 * EarliestTime comes from the instance's automated backups; LatestRestorableTime
 * from the instance. Backups retained from an earlier, deleted instance of the
 * same name are skipped: they cannot be restored through this instance.
 */
async function restoreWindowOf(source: DBInstance, deps: TriggerDeps): Promise<RestoreWindow> {
  const id = deps.config.sourceId;
  const backups: DBInstanceAutomatedBackup[] = [];
  // RDS's own spelling of the id (lowercase), as the runner asks: a mixed-case literal matches no backup in some implementations.
  const pages = paginateDescribeDBInstanceAutomatedBackups({ client: deps.rds }, { DBInstanceIdentifier: source.DBInstanceIdentifier ?? id });
  for await (const page of pages) backups.push(...page.DBInstanceAutomatedBackups ?? []);
  const earliest = earliestRestorableTime(backups, source.DbiResourceId);
  if (!earliest) {
    throw new Error(
      `Source instance "${id}" has no automated backup with a restore window yet (RDS reports RestoreWindow.EarliestTime `
      + `after the first backup completes); accepted now: restoreTime "${LATEST}". Nothing was started.`,
    );
  }
  return { earliest, latest: source.LatestRestorableTime! };
}

/** Housekeeping needs no restore window: it only lists, and (with confirm) drops, what earlier runs kept. */
async function startHousekeeping(request: ValidHousekeepingRequest, deps: TriggerDeps): Promise<HousekeepingStarted> {
  const { projectName, region, sourceId } = deps.config;
  const variables: Array<[string, string]> = [
    [START_ENV.MODE, request.mode], [START_ENV.OLDER_THAN, request.olderThan], [START_ENV.DRY_RUN, String(request.dryRun)],
  ];
  if (request.confirm !== undefined) variables.push([START_ENV.CONFIRM, request.confirm]);
  const build = await startProjectBuild(variables.map(([name, value]) => ({ name, value, type: 'PLAINTEXT' })), deps, 'The housekeeping');
  const started: HousekeepingStarted = {
    buildId: build.id!, mode: 'housekeeping', olderThan: request.olderThan, dryRun: request.dryRun, logsUrl: logsUrlOf(build, projectName, region),
  };
  deps.log(`Started housekeeping build ${started.buildId} of "${sourceId}" (older than ${request.olderThan}${request.dryRun ? ', dry run' : ''}); logs: ${started.logsUrl}`);
  return started;
}

/** A drill: the runner reads the window and refuses anything it cannot restore, writing nothing to the original. */
async function startDrill(request: ValidDrillRequest, deps: TriggerDeps): Promise<DrillStarted> {
  const { projectName, region, sourceId } = deps.config;
  const variables: Array<[string, string]> = [[START_ENV.MODE, request.mode], [START_ENV.RESTORE_TIME, request.restoreTime]];
  if (request.databases) variables.push([START_ENV.DATABASES, request.databases.join(',')]);
  const build = await startProjectBuild(variables.map(([name, value]) => ({ name, value, type: 'PLAINTEXT' })), deps, 'The drill');
  const started: DrillStarted = { buildId: build.id!, mode: 'drill', restoreTime: request.restoreTime, logsUrl: logsUrlOf(build, projectName, region) };
  deps.log(`Started restore drill build ${started.buildId} of "${sourceId}" at ${request.restoreTime}; logs: ${started.logsUrl}`);
  return started;
}

async function startProjectBuild(overrides: EnvironmentVariable[], deps: TriggerDeps, what: string): Promise<Build> {
  const { projectName } = deps.config;
  let build: Build | undefined;
  try {
    build = (await deps.codebuild.send(new StartBuildCommand({ projectName, environmentVariablesOverride: overrides }))).build;
  } catch (err) {
    throw new Error(`StartBuild on CodeBuild project "${projectName}" failed (${(err as Error).name}: ${(err as Error).message}). ${what} was not started.`);
  }
  if (!build?.id) {
    throw new Error(`StartBuild on CodeBuild project "${projectName}" returned no build id; check the project's build history before retrying.`);
  }
  return build;
}

async function startBuild(request: ValidRecoveryRequest, deps: TriggerDeps, stoppedDrills: readonly string[]): Promise<RecoveryStarted> {
  const { projectName, region, sourceId } = deps.config;
  const overrides = environmentOverrides(request);
  const build = await startProjectBuild(overrides, deps, 'The recovery');
  const started: RecoveryStarted = {
    buildId: build.id!,
    restoreTime: restoreTimeText(request),
    logsUrl: logsUrlOf(build, projectName, region),
    ...(stoppedDrills.length > 0 ? { stoppedDrills: [...stoppedDrills] } : {}),
  };
  deps.log(
    `${stoppedDrills.length > 0 ? `Stopped restore drill build ${stoppedDrills.join(', ')} first. ` : ''}Started recovery build ${started.buildId} of "${sourceId}" to ${started.restoreTime} `
    + `(strategy ${request.strategy}, databases ${request.databases?.join(',') ?? 'all'}); logs: ${started.logsUrl}`,
  );
  return started;
}

/**
 * Right after StartBuild, CodeBuild's deep link usually points at
 * `group=null;stream=null` because the log stream does not exist yet; the
 * build's console page follows the log once it does.
 */
export function logsUrlOf(build: Build, projectName: string, region: string): string {
  const deepLink = build.logs?.deepLink;
  if (deepLink && !/(group|stream)=null/.test(deepLink)) return deepLink;
  const id = encodeURIComponent(build.id ?? '');
  return `${consoleBaseUrl(region)}/codesuite/codebuild/projects/${encodeURIComponent(projectName)}/build/${id}/log?region=${region}`;
}
