/**
 * The AWS SDK v3 adapter behind `RdsControl`: every RDS control-plane call the
 * recovery workflow makes on AWS. It translates RDS faults into messages for
 * someone reading the build log at 3 a.m. (what failed, which instance, what
 * was or was not created) and never lets a master password reach a message.
 */
import { CloudWatchClient, GetMetricStatisticsCommand } from '@aws-sdk/client-cloudwatch';
import {
  CreateDBSnapshotCommand,
  DBInstance,
  DBInstanceAutomatedBackup,
  DeleteDBInstanceCommand,
  DeleteDBSnapshotCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  ListTagsForResourceCommand,
  ModifyDBInstanceCommand,
  paginateDescribeDBInstanceAutomatedBackups,
  paginateDescribeDBInstances,
  paginateDescribeDBSnapshots,
  RDSClient,
  RestoreDBInstanceToPointInTimeCommand,
  RestoreDBInstanceToPointInTimeCommandInput,
  Tag,
} from '@aws-sdk/client-rds';
import { LATEST, PROJECT_ENV, RestoreWindow, START_ENV, TAGS, earliestRestorableTime, stampOfSafetySnapshot } from '../../../src/contract';
import type { DbEndpoint, InstanceState, OriginalStorage, RdsControl, SafetySnapshot, SourceInstance, SourceStorage, TemporaryInstanceSpec } from '../ports';
import {
  type AdapterLog, type Failure, InstanceNotFoundError, NOTHING_CREATED,
  callRds, consoleLog, nameOf, passwordCallError, rdsError, regionFromEnv, regionOf, tagList,
} from './rds-common';

export { InstanceNotFoundError } from './rds-common';
export type { AdapterLog } from './rds-common';

export interface AwsRdsControlOptions {
  /** @default - a client for the region in AWS_REGION / AWS_DEFAULT_REGION (CodeBuild sets both) */
  readonly client?: RDSClient;
  /** @default - lines go to stdout */
  readonly log?: AdapterLog;
  /** For the original's FreeStorageSpace. @default - a client for the region in AWS_REGION / AWS_DEFAULT_REGION */
  readonly cloudwatch?: CloudWatchClient;
}

/** Option groups RDS assigns when none was chosen; passing one explicitly is refused for some engines. */
const DEFAULT_OPTION_GROUP_PREFIX = 'default:';

export class AwsRdsControl implements RdsControl {
  private readonly client: RDSClient;
  private readonly log: AdapterLog;

  private cloudwatchClient?: CloudWatchClient;

  constructor(options: AwsRdsControlOptions = {}) {
    this.client = options.client ?? new RDSClient({ region: regionFromEnv() });
    this.log = options.log ?? consoleLog;
    this.cloudwatchClient = options.cloudwatch;
  }

  private cloudwatch(): CloudWatchClient {
    // Short timeouts: an unreachable CloudWatch endpoint (no NAT, no `monitoring` endpoint) must cost seconds, not minutes.
    this.cloudwatchClient ??= new CloudWatchClient({
      region: regionFromEnv(),
      maxAttempts: 2,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 10_000 },
    });
    return this.cloudwatchClient;
  }

  async describeSource(id: string): Promise<SourceInstance> {
    const db = await this.describeDbInstance(id, `${PROJECT_ENV.SOURCE_INSTANCE_ID}: `);
    const endpoint = endpointOf(db);
    if (!endpoint) {
      throw new Error(
        `${PROJECT_ENV.SOURCE_INSTANCE_ID}: RDS instance "${id}" has no endpoint yet (status "${db.DBInstanceStatus}"); `
        + 'recover into an instance that is available. Nothing was created.',
      );
    }
    return {
      id: db.DBInstanceIdentifier ?? id,
      status: db.DBInstanceStatus ?? 'unknown',
      engine: db.Engine ?? 'unknown',
      engineVersion: db.EngineVersion ?? 'unknown',
      endpoint,
      masterUsername: db.MasterUsername ?? '',
      dbSubnetGroupName: db.DBSubnetGroup?.DBSubnetGroupName,
      vpcSecurityGroupIds: (db.VpcSecurityGroups ?? []).flatMap((g) => (g.VpcSecurityGroupId ? [g.VpcSecurityGroupId] : [])),
      dbParameterGroupName: db.DBParameterGroups?.[0]?.DBParameterGroupName,
      optionGroupName: db.OptionGroupMemberships?.[0]?.OptionGroupName,
      backupRetentionPeriod: db.BackupRetentionPeriod ?? 0,
      masterUserSecretArn: db.MasterUserSecret?.SecretArn,
      clusterId: db.DBClusterIdentifier,
      storage: {
        type: db.StorageType,
        iops: db.Iops,
        throughputMiBps: db.StorageThroughput,
        allocatedGiB: db.AllocatedStorage,
        maxAllocatedGiB: db.MaxAllocatedStorage,
      },
    };
  }

  /**
   * FreeStorageSpace (the Minimum of the latest 1-minute datapoint in the
   * past 15 minutes) and what storage autoscaling may still add:
   * MaxAllocatedStorage minus AllocatedStorage. Undefined when CloudWatch has
   * no datapoint in that window.
   */
  async originalStorage(source: SourceInstance): Promise<OriginalStorage | undefined> {
    const now = new Date();
    let out;
    try {
      out = await this.cloudwatch().send(new GetMetricStatisticsCommand({
        Namespace: 'AWS/RDS',
        MetricName: 'FreeStorageSpace',
        Dimensions: [{ Name: 'DBInstanceIdentifier', Value: source.id }],
        StartTime: new Date(now.getTime() - FREE_STORAGE_WINDOW_MS),
        EndTime: now,
        Period: 60,
        Statistics: ['Minimum'],
      }));
    } catch (err) {
      const e = err as { name?: string; message?: string };
      throw new Error(`CloudWatch GetMetricStatistics AWS/RDS FreeStorageSpace for "${source.id}" failed: ${e.name ?? 'Error'}: ${e.message ?? String(err)}`);
    }
    const latest = (out.Datapoints ?? [])
      .filter((d) => d.Timestamp !== undefined && d.Minimum !== undefined)
      .sort((a, b) => b.Timestamp!.getTime() - a.Timestamp!.getTime())[0];
    if (!latest) return undefined;
    const { allocatedGiB, maxAllocatedGiB } = source.storage ?? {};
    const growableGiB = allocatedGiB !== undefined && maxAllocatedGiB !== undefined ? Math.max(0, maxAllocatedGiB - allocatedGiB) : 0;
    return { freeBytes: latest.Minimum!, growableBytes: growableGiB * GIB };
  }

  async restorableWindow(id: string): Promise<RestoreWindow> {
    const db = await this.describeDbInstance(id, `${PROJECT_ENV.SOURCE_INSTANCE_ID}: `);
    if (!db.BackupRetentionPeriod) {
      throw new Error(
        `${PROJECT_ENV.SOURCE_INSTANCE_ID}: RDS instance "${id}" has automated backups turned off (BackupRetentionPeriod 0), `
        + 'so it cannot be restored to a point in time; accepted: an instance with a backup retention period of 1 to 35 days. Nothing was created.',
      );
    }
    if (!db.LatestRestorableTime) {
      throw new Error(
        `${PROJECT_ENV.SOURCE_INSTANCE_ID}: RDS reports no LatestRestorableTime for "${id}" yet (status "${db.DBInstanceStatus}"); `
        + `the first automated backup may still be running. Try again later or use ${START_ENV.RESTORE_TIME}=${LATEST} once it exists. Nothing was created.`,
      );
    }
    const backups = await this.call(
      async () => {
        const all: DBInstanceAutomatedBackup[] = [];
        const pages = paginateDescribeDBInstanceAutomatedBackups({ client: this.client }, { DBInstanceIdentifier: id });
        for await (const page of pages) all.push(...page.DBInstanceAutomatedBackups ?? []);
        return all;
      },
      { what: `reading the automated backups of "${id}"`, outcome: NOTHING_CREATED },
    );
    const earliest = earliestRestorableTime(backups, db.DbiResourceId);
    if (!earliest) {
      throw new Error(
        `${PROJECT_ENV.SOURCE_INSTANCE_ID}: RDS reports no automated backup with a restore window for "${id}"; `
        + 'point-in-time restore needs automated backups (BackupRetentionPeriod 1 to 35 days). Nothing was created.',
      );
    }
    return { earliest: new Date(earliest), latest: new Date(db.LatestRestorableTime) };
  }

  async findInstancesByTag(key: string, value: string): Promise<InstanceState[]> {
    const found: InstanceState[] = [];
    const pages = paginateDescribeDBInstances({ client: this.client }, {});
    try {
      for await (const page of pages) {
        for (const db of page.DBInstances ?? []) {
          if (db.DBInstanceStatus === 'deleting') continue;
          const tags = db.TagList ?? (await this.tagsOf(db));
          if (tags.some((t) => t.Key === key && t.Value === value)) {
            found.push({ ...stateOf(db), buildId: tags.find((t) => t.Key === TAGS.BUILD_ID)?.Value });
          }
        }
      }
    } catch (err) {
      // Used by planning and by cleanup alike, so no claim about what was created.
      throw rdsError(err, { what: `listing RDS instances tagged ${key}=${value}` });
    }
    return found;
  }

  async startSnapshot(sourceId: string, snapshotId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    await this.call(
      () => this.client.send(new CreateDBSnapshotCommand({
        DBInstanceIdentifier: sourceId,
        DBSnapshotIdentifier: snapshotId,
        Tags: tagList(tags),
      })),
      { what: `starting the safety snapshot "${snapshotId}" of "${sourceId}"`, outcome: 'No snapshot was started.', mutating: true },
    );
  }

  async snapshotStatus(snapshotId: string): Promise<string> {
    const out = await this.call(
      () => this.client.send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: snapshotId })),
      { what: `reading the status of snapshot "${snapshotId}"` },
    );
    const status = out.DBSnapshots?.[0]?.Status;
    if (!status) throw new Error(`RDS returned no status for snapshot "${snapshotId}".`);
    return status;
  }

  /** The source's manual snapshots named `<source>-pre-pitr-<stamp>`. */
  async listSafetySnapshots(sourceId: string): Promise<SafetySnapshot[]> {
    const found: SafetySnapshot[] = [];
    await this.call(async () => {
      const pages = paginateDescribeDBSnapshots({ client: this.client }, { DBInstanceIdentifier: sourceId, SnapshotType: 'manual' });
      for await (const page of pages) {
        for (const s of page.DBSnapshots ?? []) {
          if (s.DBSnapshotIdentifier && stampOfSafetySnapshot(sourceId, s.DBSnapshotIdentifier) !== undefined) {
            found.push({ id: s.DBSnapshotIdentifier, status: s.Status ?? 'unknown', createdAt: s.SnapshotCreateTime, allocatedGiB: s.AllocatedStorage });
          }
        }
      }
    }, { what: `listing the safety snapshots of "${sourceId}"` });
    return found;
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    await this.call(
      () => this.client.send(new DeleteDBSnapshotCommand({ DBSnapshotIdentifier: snapshotId })),
      { what: `deleting the snapshot "${snapshotId}"`, outcome: `"${snapshotId}" was NOT deleted.`, mutating: true },
    );
  }

  async restoreToPointInTime(spec: TemporaryInstanceSpec): Promise<void> {
    await this.call(
      () => this.client.send(new RestoreDBInstanceToPointInTimeCommand(restoreInput(spec))),
      {
        what: `restoring "${spec.source.id}" to "${spec.id}" at ${spec.restoreTime === LATEST ? 'the latest restorable time' : spec.restoreTime.toISOString()}`,
        refused: 'RDS refused the restore',
        outcome: NOTHING_CREATED,
        mutating: true,
        hints: RESTORE_HINTS,
      },
    );
  }

  async describeInstance(id: string): Promise<InstanceState> {
    return stateOf(await this.describeDbInstance(id, ''));
  }

  async setMasterPassword(id: string, password: string): Promise<void> {
    if (!password) throw new Error(`Refusing to set an empty master password on "${id}"; the secret's "password" is empty. Nothing was changed.`);
    try {
      await this.client.send(new ModifyDBInstanceCommand({
        DBInstanceIdentifier: id,
        MasterUserPassword: password,
        ApplyImmediately: true,
      }));
    } catch (err) {
      throw passwordCallError(err, password, `Setting the master password of "${id}" failed`);
    }
  }

  async deleteInstance(id: string): Promise<void> {
    try {
      await this.client.send(new DeleteDBInstanceCommand({
        DBInstanceIdentifier: id,
        SkipFinalSnapshot: true,
        DeleteAutomatedBackups: true,
      }));
    } catch (err) {
      if (nameOf(err) === 'DBInstanceNotFoundFault') {
        this.log.info(`temporary instance ${id} does not exist (already deleted); nothing to delete`);
        return;
      }
      if (nameOf(err) === 'InvalidDBInstanceStateFault') {
        const status = await this.statusOrGone(id);
        if (status === 'gone' || status === 'deleting') {
          this.log.info(`temporary instance ${id} is ${status === 'gone' ? 'already gone' : 'already being deleted'}; nothing more to do`);
          return;
        }
      }
      throw rdsError(err, {
        what: `deleting "${id}"`,
        // The workflow's cleanup adds the command to delete it by hand.
        outcome: `"${id}" was NOT deleted.`,
      });
    }
  }

  private async statusOrGone(id: string): Promise<string> {
    try {
      return (await this.describeDbInstance(id, '')).DBInstanceStatus ?? 'unknown';
    } catch (err) {
      if (err instanceof InstanceNotFoundError) return 'gone';
      // The delete's own error is the one worth reporting.
      return 'unknown';
    }
  }

  private async tagsOf(db: DBInstance): Promise<Tag[]> {
    if (!db.DBInstanceArn) return [];
    const out = await this.client.send(new ListTagsForResourceCommand({ ResourceName: db.DBInstanceArn }));
    return out.TagList ?? [];
  }

  private async describeDbInstance(id: string, field: string): Promise<DBInstance> {
    let db: DBInstance | undefined;
    try {
      const out = await this.client.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }));
      db = out.DBInstances?.[0];
    } catch (err) {
      if (nameOf(err) !== 'DBInstanceNotFoundFault') throw rdsError(err, { what: `describing RDS instance "${id}"` });
    }
    if (!db) {
      const region = await regionOf(this.client);
      throw new InstanceNotFoundError(id, `${field}RDS instance "${id}" was not found in region ${region}; accepted: the identifier of an existing DB instance in this account and region. Nothing was created.`);
    }
    return db;
  }

  private async call<T>(fn: () => Promise<T>, failure: Failure): Promise<T> {
    return callRds(fn, failure);
  }
}

const GIB = 2 ** 30;
/** How far back to look for a FreeStorageSpace datapoint (RDS publishes one a minute). */
const FREE_STORAGE_WINDOW_MS = 15 * 60_000;
/**
 * For PostgreSQL on gp3, IOPS and throughput can be provisioned only from
 * 400 GiB; below that RDS refuses them (the baseline, 3000 IOPS and 125
 * MiB/s, is fixed).
 */
const GP3_PROVISIONED_FROM_GIB = 400;

/** Extra advice for the restore faults an operator can act on. */
const RESTORE_HINTS: Record<string, string> = {
  InvalidRestoreFault: `the restore time is probably outside the instance's restorable window; choose a time inside it or ${START_ENV.RESTORE_TIME}=${LATEST}`,
  PointInTimeRestoreNotEnabledFault: 'the source instance has automated backups turned off (BackupRetentionPeriod 0); point-in-time restore needs them',
  DBInstanceAlreadyExistsFault: 'an instance with the temporary identifier already exists; wait a second and start a new recovery (the identifier carries a timestamp)',
  InsufficientDBInstanceCapacityFault: `RDS has no capacity for this instance class in the subnet group's zones; set ${START_ENV.TEMP_INSTANCE_CLASS} to another class`,
  InstanceQuotaExceededFault: 'the account reached its DB instance quota; delete unused instances or raise the quota',
  StorageQuotaExceededFault: 'the account reached its RDS storage quota; free storage or raise the quota',
  InvalidVPCNetworkStateFault: 'the source\'s subnet group has no free addresses or is invalid',
};

function restoreInput(spec: TemporaryInstanceSpec): RestoreDBInstanceToPointInTimeCommandInput {
  const { source } = spec;
  const optionGroup = source.optionGroupName && !source.optionGroupName.startsWith(DEFAULT_OPTION_GROUP_PREFIX) ? source.optionGroupName : undefined;
  return {
    SourceDBInstanceIdentifier: source.id,
    TargetDBInstanceIdentifier: spec.id,
    ...(spec.restoreTime === LATEST ? { UseLatestRestorableTime: true } : { RestoreTime: spec.restoreTime }),
    DBSubnetGroupName: source.dbSubnetGroupName,
    VpcSecurityGroupIds: [...source.vpcSecurityGroupIds],
    DBParameterGroupName: source.dbParameterGroupName,
    ...(optionGroup ? { OptionGroupName: optionGroup } : {}),
    Port: source.endpoint.port,
    PubliclyAccessible: false,
    MultiAZ: false,
    DeletionProtection: false,
    CopyTagsToSnapshot: false,
    // The temporary instance lives for one build; backups would only add I/O and a retained-backup bill.
    BackupRetentionPeriod: 0,
    Tags: tagList(spec.tags),
    ...(spec.instanceClass ? { DBInstanceClass: spec.instanceClass } : {}),
    ...storageInput(source.storage),
    ...largerStorage(source.storage, spec.allocatedStorageGiB),
  };
}

/**
 * The source's storage type, IOPS and throughput, as far as the restore
 * accepts them, so the temporary instance is not slower than the source:
 * IOPS for io1/io2 (required there); for gp3, IOPS and throughput only from
 * 400 GiB, with the source's allocated storage so the restored volume is
 * large enough for them; nothing extra for gp2 and standard.
 */
function storageInput(storage: SourceStorage | undefined): Partial<RestoreDBInstanceToPointInTimeCommandInput> {
  const type = storage?.type;
  if (!type) return {};
  if (type === 'io1' || type === 'io2') {
    return { StorageType: type, ...(storage.iops ? { Iops: storage.iops } : {}) };
  }
  if (type === 'gp3') {
    const provisioned = (storage.allocatedGiB ?? 0) >= GP3_PROVISIONED_FROM_GIB && storage.iops !== undefined;
    return provisioned
      ? {
        StorageType: type,
        AllocatedStorage: storage.allocatedGiB,
        Iops: storage.iops,
        ...(storage.throughputMiBps ? { StorageThroughput: storage.throughputMiBps } : {}),
      }
      : { StorageType: type };
  }
  return { StorageType: type };
}

/**
 * AllocatedStorage when the spec asks for more than the source has (a
 * drill's second copy of a database). Only ever more: RDS refuses a restore
 * smaller than the source. On gp3 from 400 GiB RDS raises the baseline IOPS
 * and throughput on its own; provisioned values kept from the source stay
 * within their allowed ratio to a larger volume.
 */
function largerStorage(storage: SourceStorage | undefined, requestedGiB: number | undefined): Partial<RestoreDBInstanceToPointInTimeCommandInput> {
  if (requestedGiB === undefined || requestedGiB <= (storage?.allocatedGiB ?? 0)) return {};
  return { AllocatedStorage: Math.ceil(requestedGiB) };
}

function endpointOf(db: DBInstance): DbEndpoint | undefined {
  const host = db.Endpoint?.Address;
  const port = db.Endpoint?.Port ?? db.DbInstancePort;
  return host && port ? { host, port } : undefined;
}

function stateOf(db: DBInstance): InstanceState {
  return {
    id: db.DBInstanceIdentifier ?? '',
    status: db.DBInstanceStatus ?? 'unknown',
    endpoint: endpointOf(db),
    pendingPasswordChange: db.PendingModifiedValues?.MasterUserPassword !== undefined,
  };
}
