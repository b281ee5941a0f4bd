/**
 * Step 1 of the runbook: read the start contract and check it, first on its
 * own (`readStartRequest`), then against the source instance
 * (`planRecovery`). Nothing is created before both pass, and every refusal
 * names the variable, the value, what is accepted, and that nothing changed.
 */
import type { RdsControl, SourceInstance } from './ports';
import { sourceDescription, sourceField, sourceNoun, temporaryIdOf, temporaryLabel } from './source-kind';
import {
  AURORA_POSTGRES_ENGINE,
  PG_MAJORS,
  majorOfVersion,
  sourceRefFromEnv,
  type SourceKind,
  BUILD_ENV,
  CREATED_BY_VALUE,
  LATEST,
  MAX_JOBS,
  PROJECT_ENV,
  START_ENV,
  TAGS,
  assertInsideRestoreWindow,
  parseDatabaseList,
  parseHazards,
  parseRestoreTime,
  parseStrategy,
  parseTableList,
  parseTableMode,
  quoteValue,
  parseChanges,
  parseAfter,
  safetySnapshotId,
  tableScopeProblems,
  stampOf,
  type Hazard,
  type RestoreWindow,
  type Strategy,
  type TableMode,
  type TableName,
} from '../../src/contract';

/** What the person starting the recovery asked for, checked for form only. */
export interface StartRequest {
  readonly sourceId: string;
  /** `cluster` when SOURCE_CLUSTER_ID names an Aurora PostgreSQL DB cluster (issue #20). @default 'instance' */
  readonly sourceKind?: SourceKind;
  readonly restoreTime: Date | typeof LATEST;
  /** Explicit list, or undefined for "every database at the restore time". */
  readonly databases?: readonly string[];
  readonly strategy: Strategy;
  readonly jobs: number;
  readonly safetySnapshot: boolean;
  readonly force: boolean;
  /** Swap hazards the operator accepts (ACCEPT_HAZARDS). */
  readonly acceptHazards: readonly Hazard[];
  readonly tempInstanceClass?: string;
  readonly waitTimeoutMs: number;
  readonly buildId: string;
  /** TABLES: recover only these tables of one database (tables.ts); undefined recovers whole databases. */
  readonly tables?: readonly TableName[];
  readonly tableMode: TableMode;
  /** CHANGES: record the writes made after the restore time after a swap recovery (postgres/changes.ts). */
  readonly changes: boolean;
  /** AFTER: the replay SQL of those writes covers only what committed after it. */
  readonly after?: Date;
}

/** A request checked against the source: everything the runbook needs to act. */
export interface RecoveryPlan extends StartRequest {
  readonly source: SourceInstance;
  /** The restorable window when an explicit time was asked for. */
  readonly window?: RestoreWindow;
  /** Shared by every name this run creates. */
  readonly stamp: string;
  /** The temporary instance, or for a cluster source the temporary cluster (its writer is `<id>-w`). */
  readonly temporaryInstanceId: string;
  /** Undefined when the safety snapshot is turned off. */
  readonly safetySnapshotId?: string;
  /** Put on every resource this run creates; cleanup finds them by these. */
  readonly tags: Readonly<Record<string, string>>;
}

/** A refusal before anything was created; `problems` lists every bad input at once. */
export class PlanError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.length === 1
      ? `${problems[0]} Nothing was created or changed.`
      : `${problems.length} problems, nothing was created or changed:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'PlanError';
  }
}

export const DEFAULT_WAIT_TIMEOUT_MINUTES = 120;
const MAX_WAIT_TIMEOUT_MINUTES = 24 * 60;
/** RDS: letter first; letters, digits, hyphens; no `--`; no trailing hyphen; 1-63 characters. */
const INSTANCE_ID_PATTERN = /^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,62}$/;
const INSTANCE_CLASS_PATTERN = /^db\.[a-z0-9-]+\.[a-z0-9]+$/;
/** Aurora Serverless v2's instance class: a cluster's writer may take it (TEMP_INSTANCE_CLASS), an RDS instance may not. */
const SERVERLESS_V2_CLASS = 'db.serverless';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Reads the start contract from `env`. Collects every problem before
 * refusing, so a tired person fixes them in one go.
 */
export function readStartRequest(env: Env, defaults: { readonly cpus: number }): StartRequest {
  const problems: string[] = [];
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      problems.push((err as Error).message.replace(/ Nothing was created\.$/, ''));
      return undefined;
    }
  };
  const value = (name: string): string | undefined => {
    const v = env[name];
    return v === undefined || v.trim() === '' ? undefined : v.trim();
  };

  const ref = sourceRefFromEnv(env);
  const sourceKind: SourceKind = 'problem' in ref ? 'instance' : ref.kind;
  const sourceId = 'problem' in ref ? undefined : ref.id;
  const noun = sourceNoun(sourceKind);
  if ('problem' in ref) {
    problems.push(ref.problem);
  } else if (!INSTANCE_ID_PATTERN.test(ref.id) || ref.id.endsWith('-')) {
    problems.push(`${ref.field}: ${JSON.stringify(ref.id)} is not an ${ref.kind === 'cluster' ? 'Aurora DB cluster' : 'RDS instance'} identifier; accepted: 1-63 letters, digits and hyphens, starting with a letter, without "--" or a trailing hyphen.`);
  }

  const rawTime = value(START_ENV.RESTORE_TIME);
  const restoreTime = rawTime === undefined
    ? void problems.push(`${START_ENV.RESTORE_TIME}: not set; accepted: an ISO-8601 UTC time such as 2026-11-24T09:30:00Z, or "${LATEST}". There is deliberately no default.`)
    : attempt(() => parseRestoreTime(rawTime));

  const confirm = value(START_ENV.CONFIRM);
  if (sourceId !== undefined && confirm !== sourceId) {
    problems.push(confirm === undefined
      ? `${START_ENV.CONFIRM}: not set; accepted: exactly the source ${noun} identifier ${JSON.stringify(sourceId)}, to confirm that its databases will be overwritten with their state at the restore time.`
      : `${START_ENV.CONFIRM}: ${quoteValue(confirm)} does not match the source ${noun}; accepted: exactly ${JSON.stringify(sourceId)}.`);
  }

  const databases = attempt(() => parseDatabaseList(env[START_ENV.DATABASES]));
  const strategy = attempt(() => parseStrategy(value(START_ENV.STRATEGY)));
  const jobs = attempt(() => parseJobs(value(START_ENV.JOBS), defaults.cpus));
  const safetySnapshot = attempt(() => parseBoolean(START_ENV.SAFETY_SNAPSHOT, value(START_ENV.SAFETY_SNAPSHOT), true));
  const force = attempt(() => parseBoolean(START_ENV.FORCE, value(START_ENV.FORCE), false));
  const acceptHazards = attempt(() => parseHazards(value(START_ENV.ACCEPT_HAZARDS)));
  const tables = attempt(() => parseTableList(env[START_ENV.TABLES]));
  const tableMode = attempt(() => parseTableMode(value(START_ENV.TABLE_MODE)));
  if (tableMode !== undefined && (tables !== undefined || value(START_ENV.TABLES) === undefined)) {
    problems.push(...tableScopeProblems(tables, databases, tableMode));
  }
  const changes = attempt(() => parseChanges(value(START_ENV.CHANGES)));
  const after = attempt(() => parseAfter(value(START_ENV.AFTER)));
  if (strategy === 'replace' && safetySnapshot === false && force === false) {
    problems.push(`${START_ENV.STRATEGY}: "replace" drops each database before restoring it, and with ${START_ENV.SAFETY_SNAPSHOT}=false there would be no way back; accepted: leave ${START_ENV.SAFETY_SNAPSHOT} on, use "swap", or set ${START_ENV.FORCE}=true to accept that risk.`);
  }

  const tempInstanceClass = value(START_ENV.TEMP_INSTANCE_CLASS);
  const serverlessAccepted = sourceKind === 'cluster' && tempInstanceClass === SERVERLESS_V2_CLASS;
  if (tempInstanceClass !== undefined && !INSTANCE_CLASS_PATTERN.test(tempInstanceClass) && !serverlessAccepted) {
    problems.push(`${START_ENV.TEMP_INSTANCE_CLASS}: ${quoteValue(tempInstanceClass)} is not a DB instance class; accepted: a class such as db.r6g.large`
      + `${sourceKind === 'cluster' ? ` or ${SERVERLESS_V2_CLASS}` : ''}, or empty for the source's${sourceKind === 'cluster' ? ' writer\'s' : ''} class.`);
  }

  const waitField = PROJECT_ENV.WAIT_TIMEOUT_MINUTES;
  const waitMinutes = attempt(() => parseWholeNumber(waitField, value(waitField), DEFAULT_WAIT_TIMEOUT_MINUTES, MAX_WAIT_TIMEOUT_MINUTES));

  const buildId = value(BUILD_ENV.BUILD_ID);
  if (buildId === undefined) {
    problems.push(`${BUILD_ENV.BUILD_ID}: not set; accepted: the CodeBuild build id <project>:<uuid> (CodeBuild sets it; the temporary instance is tagged with it so it can always be cleaned up).`);
  }

  if (problems.length > 0) throw new PlanError(problems);
  return {
    sourceId: sourceId!,
    // Only for a cluster, so that an instance's request is exactly what it was before issue #20.
    ...(sourceKind === 'cluster' ? { sourceKind } : {}),
    restoreTime: restoreTime!,
    databases,
    strategy: strategy!,
    jobs: jobs!,
    safetySnapshot: safetySnapshot!,
    force: force!,
    acceptHazards: acceptHazards!,
    tempInstanceClass,
    waitTimeoutMs: waitMinutes! * 60_000,
    buildId: buildId!,
    tables,
    tableMode: tableMode!,
    changes: changes === 'on',
    after,
  };
}

/**
 * Checks the request against the source instance: a PostgreSQL instance
 * that is available, has automated backups, can be restored to the
 * requested time, and has no other recovery in flight.
 */
export async function planRecovery(
  request: StartRequest,
  rds: RdsControl,
  context: {
    readonly now: Date;
    readonly secretUsername: string;
    /** Where the credentials came from (SECRET_ARN: an ARN or a name), checked against an RDS-managed secret. */
    readonly secretId?: string;
  },
): Promise<RecoveryPlan> {
  const field = sourceField(request.sourceKind);
  const noun = sourceNoun(request.sourceKind);
  let source: SourceInstance;
  try {
    source = await rds.describeSource(request.sourceId);
  } catch (err) {
    throw new PlanError([`${field}: ${noun} ${JSON.stringify(request.sourceId)} could not be described (${(err as Error).message}); accepted: an existing ${sourceDescription(request.sourceKind).replace(/^an? /, '')} this build may describe.`]);
  }
  const problems: string[] = request.sourceKind === 'cluster' ? clusterProblems(request, source) : instanceProblems(source);
  if (source.status !== 'available') {
    problems.push(`${field}: ${noun} ${JSON.stringify(source.id)} is ${JSON.stringify(source.status)}; accepted: ${noun === 'cluster' ? 'a' : 'an'} ${noun} in status "available". Retry once it is.`);
  }
  if (!(source.backupRetentionPeriod > 0)) {
    problems.push(`${field}: ${noun} ${JSON.stringify(source.id)} has automated backups turned off (retention ${source.backupRetentionPeriod} days), so it cannot be restored to a point in time; accepted: a retention period of 1 day or more.`);
  }
  if (context.secretUsername !== source.masterUsername) {
    problems.push(`${PROJECT_ENV.SECRET_ARN}: the secret's username ${JSON.stringify(context.secretUsername)} is not the master user ${JSON.stringify(source.masterUsername)} of ${source.id}; accepted: the ${noun}'s master credentials.`);
  }
  if (source.masterUserSecretArn && context.secretId !== undefined && !isSameSecret(context.secretId, source.masterUserSecretArn)) {
    problems.push(`${PROJECT_ENV.SECRET_ARN}: ${JSON.stringify(context.secretId)} is not the secret RDS manages for the master password of ${source.id}; `
      + `accepted: that secret, ${source.masterUserSecretArn} (pass it to PitrRecovery as \`credentials\`, for example ${noun}.secret). `
      + 'RDS rotates a managed password, so any other copy of it goes stale.');
  }

  let window: RestoreWindow | undefined;
  if (request.restoreTime !== LATEST) {
    try {
      window = await rds.restorableWindow(source.id);
      assertInsideRestoreWindow(request.restoreTime, window);
    } catch (err) {
      problems.push((err as Error).message.replace(/ Nothing was created\.$/, ''));
    }
  }

  const others = (await rds.findInstancesByTag(TAGS.SOURCE, source.id)).filter((i) => i.status !== 'deleting');
  if (others.length > 0) {
    problems.push(`another recovery or restore drill of ${source.id} appears to be in progress: ${temporaryLabel(request.sourceKind)} ${others.map((i) => `${i.id} (${i.status})`).join(', ')} is still alive; accepted: start again once it is gone (delete it if its build has ended).`);
  }
  if (problems.length > 0) throw new PlanError(problems);

  const stamp = stampOf(context.now);
  return {
    ...request,
    source,
    window,
    stamp,
    temporaryInstanceId: temporaryIdOf(request.sourceKind, source.id, stamp),
    safetySnapshotId: request.safetySnapshot ? safetySnapshotId(source.id, stamp) : undefined,
    tags: {
      [TAGS.BUILD_ID]: request.buildId,
      [TAGS.SOURCE]: source.id,
      [TAGS.CREATED_BY]: CREATED_BY_VALUE,
    },
  };
}

/** An RDS instance source: PostgreSQL, and not a member of a DB cluster. */
function instanceProblems(source: SourceInstance): string[] {
  const field = PROJECT_ENV.SOURCE_INSTANCE_ID;
  const problems: string[] = [];
  if (source.engine !== 'postgres') {
    problems.push(`${field}: instance ${JSON.stringify(source.id)} runs engine ${JSON.stringify(source.engine)}; accepted: an RDS for PostgreSQL instance (engine "postgres").`);
  }
  if (source.clusterId) {
    // A cluster's point in time is restored as a whole cluster (RestoreDBClusterToPointInTime), not one member instance.
    problems.push(`${field}: instance ${JSON.stringify(source.id)} is a member of DB cluster ${JSON.stringify(source.clusterId)} (a Multi-AZ DB cluster or Aurora), `
      + 'whose point-in-time restores are of the whole cluster; this construct restores a single DB instance and does not recover into clusters. '
      + 'accepted: an RDS for PostgreSQL DB instance that is not part of a DB cluster (Single-AZ, or a Multi-AZ instance deployment).');
  }
  return problems;
}

/**
 * An Aurora DB cluster source (issue #20): Aurora PostgreSQL of a major the
 * runner recovers, with a writer whose class the temporary writer takes, and
 * Serverless v2 capacity when the temporary writer is to be db.serverless.
 */
function clusterProblems(request: StartRequest, source: SourceInstance): string[] {
  const field = PROJECT_ENV.SOURCE_CLUSTER_ID;
  const problems: string[] = [];
  const name = JSON.stringify(source.id);
  if (source.engine !== AURORA_POSTGRES_ENGINE) {
    const what = source.engine === 'postgres' ? ' (a Multi-AZ DB cluster of RDS for PostgreSQL, not Aurora)' : '';
    problems.push(`${field}: cluster ${name} runs engine ${JSON.stringify(source.engine)}${what}; accepted: an Aurora PostgreSQL DB cluster (engine "${AURORA_POSTGRES_ENGINE}").`);
    return problems;
  }
  const major = majorOfVersion(source.engineVersion);
  if (major === undefined || major < PG_MAJORS.oldest || major > PG_MAJORS.newest) {
    problems.push(`${field}: cluster ${name} runs Aurora PostgreSQL ${source.engineVersion} (EngineVersion); accepted: PostgreSQL ${PG_MAJORS.oldest} to ${PG_MAJORS.newest}, `
      + 'the majors whose clients this runner installs and is tested with.');
  }
  if (!source.writer) {
    problems.push(`${field}: cluster ${name} has no writer instance (DBClusterMembers lists none with IsClusterWriter); accepted: a cluster with a writer instance, `
      + 'whose endpoint the recovery writes to.');
  } else if (!request.tempInstanceClass && !source.writer.instanceClass) {
    problems.push(`${field}: the class of cluster ${name}'s writer ${JSON.stringify(source.writer.id)} is not known, and the temporary cluster's writer takes it; `
      + `accepted: set ${START_ENV.TEMP_INSTANCE_CLASS}.`);
  }
  if (request.tempInstanceClass === SERVERLESS_V2_CLASS && !source.serverlessV2Scaling) {
    problems.push(`${START_ENV.TEMP_INSTANCE_CLASS}: "${SERVERLESS_V2_CLASS}" needs a Serverless v2 capacity range on the cluster, and ${name} has none `
      + '(ServerlessV2ScalingConfiguration); accepted: a provisioned class such as db.r6g.large, or empty for the source writer\'s class.');
  }
  return problems;
}

/**
 * Whether `configured` (a complete ARN, a partial ARN without the 6-character
 * suffix Secrets Manager appends, or a secret name) names the secret whose
 * complete ARN is `completeArn`.
 */
export function isSameSecret(configured: string, completeArn: string): boolean {
  if (configured === completeArn) return true;
  const marker = ':secret:';
  const at = completeArn.indexOf(marker);
  if (at < 0) return false;
  const partialArn = completeArn.replace(/-[A-Za-z0-9]{6}$/, '');
  const name = partialArn.slice(at + marker.length);
  return configured === partialArn || configured === name;
}

function parseBoolean(field: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  const lower = value.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw new Error(`${field}: ${quoteValue(value)} is not a boolean; accepted: true | false (default ${fallback}).`);
}

function parseWholeNumber(field: string, value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = /^\d+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= max)) {
    throw new Error(`${field}: ${quoteValue(value)} is not accepted; accepted: a whole number from 1 to ${max} (default ${fallback}).`);
  }
  return n;
}

function parseJobs(value: string | undefined, cpus: number): number {
  return parseWholeNumber(START_ENV.JOBS, value, Math.max(1, Math.min(cpus, MAX_JOBS)), MAX_JOBS);
}
