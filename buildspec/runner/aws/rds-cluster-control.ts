/**
 * The AWS SDK v3 adapter behind `RdsControl` for an Aurora PostgreSQL DB
 * cluster (issue #20). The workflow stays the instance runbook: here "the
 * temporary instance" is the temporary DB cluster `<source>-pitr-<stamp>`
 * together with its one writer instance `<source>-pitr-<stamp>-w`, and its
 * identifier is the cluster's.
 *
 * Aurora facts this adapter relies on (sources in the report of issue #20):
 * - RestoreDBClusterToPointInTime creates the cluster only; its instances are
 *   created with CreateDBInstance, and only once the restored cluster is
 *   available. So the writer is requested by `describeInstance`, the wait
 *   step's poll, the first time it sees the cluster available.
 * - RestoreToTime can't be combined with RestoreType copy-on-write: a clone
 *   (a drill's choice) is possible at the latest restorable time only.
 * - DeleteDBCluster is accepted as soon as the cluster's instances are all
 *   `deleting`.
 */
import {
  CreateDBClusterSnapshotCommand,
  CreateDBInstanceCommand,
  CreateDBInstanceCommandInput,
  DBCluster,
  DBInstance,
  DeleteDBClusterCommand,
  DeleteDBClusterSnapshotCommand,
  DeleteDBInstanceCommand,
  DescribeDBClustersCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBInstancesCommand,
  ListTagsForResourceCommand,
  ModifyDBClusterCommand,
  paginateDescribeDBClusters,
  paginateDescribeDBClusterSnapshots,
  RDSClient,
  RestoreDBClusterToPointInTimeCommand,
  RestoreDBClusterToPointInTimeCommandInput,
  Tag,
} from '@aws-sdk/client-rds';
import {
  AURORA_POSTGRES_ENGINE, CLEANUP_SWEEP_MINUTES, LATEST, PROJECT_ENV, RestoreWindow, START_ENV, TAGS, TEMP_WRITER_SUFFIX, stampOfSafetySnapshot,
} from '../../../src/contract';
import type { DbEndpoint, InstanceState, RdsControl, SafetySnapshot, SourceInstance, TemporaryInstanceSpec } from '../ports';
import {
  type AdapterLog, InstanceNotFoundError, NOTHING_CREATED, callRds, consoleLog, nameOf, passwordCallError, rdsError, regionFromEnv, regionOf, tagList,
} from './rds-common';

export interface AwsRdsClusterControlOptions {
  /** @default - a client for the region in AWS_REGION / AWS_DEFAULT_REGION (CodeBuild sets both) */
  readonly client?: RDSClient;
  /** @default - lines go to stdout */
  readonly log?: AdapterLog;
  /** Waits between tries of DeleteDBCluster. @default - a timer */
  readonly sleep?: (ms: number) => Promise<void>;
}

/** The class of an Aurora Serverless v2 instance. */
export const SERVERLESS_V2_CLASS = 'db.serverless';

/**
 * How often DeleteDBCluster is tried while RDS still counts an instance of
 * the available cluster as not being deleted, and how long between tries:
 * RDS accepts the delete as soon as every instance is `deleting`, so this
 * only covers the moment between the two calls (3 minutes at most).
 */
export const CLUSTER_DELETE_RETRY = { tries: 13, everyMs: 15_000 } as const;

/**
 * How many polls may ask for the writer before a refusal ends the run. Only
 * answers that say "not yet" are asked again: InvalidDBClusterStateFault (the
 * cluster reads `available` a moment before RDS accepts instances in it;
 * not documented either way), throttling, and errors where RDS gave no
 * answer or failed itself (the request may have gone through: a later DBInstanceAlreadyExists
 * then counts as requested). Giving up costs the whole restore, so a few
 * polls are cheap.
 */
export const WRITER_ATTEMPTS = 5;
const WRITER_RETRY_FAULTS = ['InvalidDBClusterStateFault', 'Throttling', 'ThrottlingException'];

/** The writer instance of the temporary cluster `clusterId` (contract `temporaryWriterId`). */
export function writerIdOf(clusterId: string): string {
  return `${clusterId}${TEMP_WRITER_SUFFIX}`;
}

const FIELD = `${PROJECT_ENV.SOURCE_CLUSTER_ID}: `;

export class AwsRdsClusterControl implements RdsControl {
  private readonly client: RDSClient;
  private readonly log: AdapterLog;
  private readonly sleep: (ms: number) => Promise<void>;
  /** The writer each cluster this adapter restored still needs, until it is requested. */
  private readonly pendingWriters = new Map<string, CreateDBInstanceCommandInput>();
  /** Requests of the writer refused "for now" so far, by cluster. */
  private readonly writerAttempts = new Map<string, number>();

  constructor(options: AwsRdsClusterControlOptions = {}) {
    this.client = options.client ?? new RDSClient({ region: regionFromEnv() });
    this.log = options.log ?? consoleLog;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async describeSource(id: string): Promise<SourceInstance> {
    const cluster = await this.describeCluster(id, FIELD);
    const endpoint = endpointOf(cluster);
    if (!endpoint) {
      throw new Error(
        `${FIELD}Aurora DB cluster "${id}" has no writer endpoint yet (status "${cluster.Status}"); `
        + 'recover into a cluster that is available. Nothing was created.',
      );
    }
    const writerMember = (cluster.DBClusterMembers ?? []).find((m) => m.IsClusterWriter && m.DBInstanceIdentifier);
    let writer: DBInstance | undefined;
    if (writerMember) {
      const out = await callRds(
        () => this.client.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: writerMember.DBInstanceIdentifier })),
        { what: `describing the writer instance "${writerMember.DBInstanceIdentifier}" of Aurora DB cluster "${id}"`, outcome: NOTHING_CREATED },
      );
      writer = out.DBInstances?.[0];
    }
    const scaling = cluster.ServerlessV2ScalingConfiguration;
    const parameterGroup = writer?.DBParameterGroups?.[0]?.DBParameterGroupName;
    return {
      id: cluster.DBClusterIdentifier ?? id,
      kind: 'cluster',
      status: cluster.Status ?? 'unknown',
      engine: cluster.Engine ?? 'unknown',
      engineVersion: cluster.EngineVersion ?? 'unknown',
      endpoint,
      masterUsername: cluster.MasterUsername ?? '',
      dbSubnetGroupName: cluster.DBSubnetGroup,
      vpcSecurityGroupIds: (cluster.VpcSecurityGroups ?? []).flatMap((g) => (g.VpcSecurityGroupId ? [g.VpcSecurityGroupId] : [])),
      dbParameterGroupName: parameterGroup,
      clusterParameterGroupName: cluster.DBClusterParameterGroup,
      backupRetentionPeriod: cluster.BackupRetentionPeriod ?? 0,
      masterUserSecretArn: cluster.MasterUserSecret?.SecretArn,
      kmsKeyId: cluster.StorageEncrypted ? cluster.KmsKeyId : undefined,
      ...(writerMember ? { writer: { id: writerMember.DBInstanceIdentifier!, instanceClass: writer?.DBInstanceClass } } : {}),
      ...(scaling && (scaling.MinCapacity !== undefined || scaling.MaxCapacity !== undefined)
        ? { serverlessV2Scaling: { minCapacity: scaling.MinCapacity, maxCapacity: scaling.MaxCapacity } }
        : {}),
    };
  }

  /** EarliestRestorableTime .. LatestRestorableTime of DescribeDBClusters. */
  async restorableWindow(id: string): Promise<RestoreWindow> {
    const cluster = await this.describeCluster(id, FIELD);
    if (!cluster.BackupRetentionPeriod) {
      throw new Error(
        `${FIELD}Aurora DB cluster "${id}" reports no backup retention period (BackupRetentionPeriod ${cluster.BackupRetentionPeriod ?? 'missing'}), `
        + 'so it cannot be restored to a point in time; accepted: a cluster with a backup retention period of 1 to 35 days. Nothing was created.',
      );
    }
    if (!cluster.LatestRestorableTime || !cluster.EarliestRestorableTime) {
      throw new Error(
        `${FIELD}RDS reports no ${cluster.LatestRestorableTime ? 'EarliestRestorableTime' : 'LatestRestorableTime'} for "${id}" yet (status "${cluster.Status}"); `
        + `the first backup may still be running. Try again later or use ${START_ENV.RESTORE_TIME}=${LATEST} once it exists. Nothing was created.`,
      );
    }
    return { earliest: new Date(cluster.EarliestRestorableTime), latest: new Date(cluster.LatestRestorableTime) };
  }

  /** Temporary clusters carrying the tag (DBCluster TagList), except those being deleted. */
  async findInstancesByTag(key: string, value: string): Promise<InstanceState[]> {
    const found: InstanceState[] = [];
    const pages = paginateDescribeDBClusters({ client: this.client }, {});
    try {
      for await (const page of pages) {
        for (const cluster of page.DBClusters ?? []) {
          if (cluster.Status === 'deleting') continue;
          const tags = cluster.TagList ?? (await this.tagsOf(cluster));
          if (tags.some((t) => t.Key === key && t.Value === value)) {
            found.push({
              id: cluster.DBClusterIdentifier ?? '',
              status: cluster.Status ?? 'unknown',
              endpoint: endpointOf(cluster),
              buildId: tags.find((t) => t.Key === TAGS.BUILD_ID)?.Value,
            });
          }
        }
      }
    } catch (err) {
      // Used by planning and by cleanup alike, so no claim about what was created.
      throw rdsError(err, { what: `listing Aurora DB clusters tagged ${key}=${value}` });
    }
    return found;
  }

  async startSnapshot(sourceId: string, snapshotId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    await callRds(
      () => this.client.send(new CreateDBClusterSnapshotCommand({
        DBClusterIdentifier: sourceId,
        DBClusterSnapshotIdentifier: snapshotId,
        Tags: tagList(tags),
      })),
      { what: `starting the safety snapshot (DB cluster snapshot) "${snapshotId}" of "${sourceId}"`, outcome: 'No snapshot was started.', mutating: true },
    );
  }

  async snapshotStatus(snapshotId: string): Promise<string> {
    const out = await callRds(
      () => this.client.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: snapshotId })),
      { what: `reading the status of DB cluster snapshot "${snapshotId}"` },
    );
    const status = out.DBClusterSnapshots?.[0]?.Status;
    if (!status) throw new Error(`RDS returned no status for DB cluster snapshot "${snapshotId}".`);
    return status;
  }

  /** The source's manual DB cluster snapshots named `<source>-pre-pitr-<stamp>`. */
  async listSafetySnapshots(sourceId: string): Promise<SafetySnapshot[]> {
    const found: SafetySnapshot[] = [];
    await callRds(async () => {
      const pages = paginateDescribeDBClusterSnapshots({ client: this.client }, { DBClusterIdentifier: sourceId, SnapshotType: 'manual' });
      for await (const page of pages) {
        for (const s of page.DBClusterSnapshots ?? []) {
          if (s.DBClusterSnapshotIdentifier && stampOfSafetySnapshot(sourceId, s.DBClusterSnapshotIdentifier) !== undefined) {
            found.push({ id: s.DBClusterSnapshotIdentifier, status: s.Status ?? 'unknown', createdAt: s.SnapshotCreateTime, allocatedGiB: s.AllocatedStorage });
          }
        }
      }
    }, { what: `listing the safety snapshots (DB cluster snapshots) of "${sourceId}"` });
    return found;
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    await callRds(
      () => this.client.send(new DeleteDBClusterSnapshotCommand({ DBClusterSnapshotIdentifier: snapshotId })),
      { what: `deleting the DB cluster snapshot "${snapshotId}"`, outcome: `"${snapshotId}" was NOT deleted.`, mutating: true },
    );
  }

  /**
   * RestoreDBClusterToPointInTime into `spec.id`. Its writer is requested by
   * `describeInstance` once the cluster is available (RDS creates instances
   * in a restored cluster only then).
   */
  async restoreToPointInTime(spec: TemporaryInstanceSpec): Promise<void> {
    // Checked before anything is created: without a class there would be a cluster no writer can join.
    const writer = writerInput(spec);
    const input = clusterRestoreInput(spec);
    const when = spec.restoreTime === LATEST ? 'the latest restorable time' : spec.restoreTime.toISOString();
    await callRds(
      () => this.client.send(new RestoreDBClusterToPointInTimeCommand(input)),
      {
        what: `restoring Aurora DB cluster "${spec.source.id}" to "${spec.id}" at ${when}`,
        refused: 'RDS refused the restore',
        outcome: NOTHING_CREATED,
        mutating: true,
        hints: RESTORE_HINTS,
      },
    );
    this.pendingWriters.set(spec.id, writer);
    if (input.RestoreType === 'copy-on-write') {
      // Aurora makes a full copy instead, without an error, once a volume has 15 copy-on-write clones (Aurora User Guide, "Limitations of Aurora cloning").
      this.log.info(`temporary cluster ${spec.id}: requested as a copy-on-write clone of ${spec.source.id} at the latest restorable time (it shares the source's `
        + 'storage pages until either side writes; RDS makes a full copy instead when the source already has 15 clones)');
    } else if (spec.clone) {
      this.log.info(`temporary cluster ${spec.id}: a full copy, because RDS makes a copy-on-write clone only at the latest restorable time, not at ${when}`);
    }
    this.log.info(`temporary cluster ${spec.id}: its writer ${writer.DBInstanceIdentifier} (${writer.DBInstanceClass}) is requested once the cluster is available`);
  }

  /**
   * The temporary cluster and its writer as one: `available` only when both
   * are; otherwise the status of the first that is not (the cluster first),
   * with `detail` naming which. The endpoint is the cluster's writer
   * endpoint. Requests the writer the first time the cluster is available.
   */
  async describeInstance(id: string): Promise<InstanceState> {
    const cluster = await this.describeCluster(id, '');
    const clusterStatus = cluster.Status ?? 'unknown';
    const base = {
      id,
      endpoint: endpointOf(cluster),
      pendingPasswordChange: cluster.PendingModifiedValues?.MasterUserPassword !== undefined,
    };
    if (clusterStatus !== 'available') return { ...base, status: clusterStatus, detail: `cluster ${id}` };
    const writerId = writerIdOf(id);
    const writer = await this.describeWriter(writerId);
    if (!writer) {
      const input = this.pendingWriters.get(id);
      if (!input) return { ...base, status: 'incomplete', detail: `its writer ${writerId} does not exist` };
      const attempt = (this.writerAttempts.get(id) ?? 0) + 1;
      try {
        await this.client.send(new CreateDBInstanceCommand(input));
      } catch (err) {
        const name = nameOf(err);
        // No answer, or RDS's own failure (5xx): the request may have gone through.
        const noAnswer = (err as { $fault?: string }).$fault !== 'client';
        if (name === 'DBInstanceAlreadyExistsFault' && attempt > 1) {
          this.log.info(`writer ${writerId}: RDS already has it (an earlier request went through)`);
        } else if ((WRITER_RETRY_FAULTS.includes(name) || noAnswer) && attempt < WRITER_ATTEMPTS) {
          this.writerAttempts.set(id, attempt);
          this.log.warn(`writer ${writerId}: RDS refused it for now (${name}: ${(err as Error).message}); asking again at the next poll (attempt ${attempt} of ${WRITER_ATTEMPTS})`);
          return { ...base, status: 'creating', detail: `writer ${writerId} to be requested again` };
        } else {
          this.pendingWriters.delete(id);
          throw this.writerError(id, input, err);
        }
      }
      this.pendingWriters.delete(id);
      this.writerAttempts.delete(id);
      return { ...base, status: 'creating', detail: `writer ${writerId} requested` };
    }
    const writerStatus = writer.DBInstanceStatus ?? 'unknown';
    if (writerStatus !== 'available') return { ...base, id: writerId, status: writerStatus, detail: `writer ${writerId}` };
    return { ...base, status: 'available' };
  }

  async setMasterPassword(id: string, password: string): Promise<void> {
    if (!password) throw new Error(`Refusing to set an empty master password on "${id}"; the secret's "password" is empty. Nothing was changed.`);
    try {
      await this.client.send(new ModifyDBClusterCommand({
        DBClusterIdentifier: id,
        MasterUserPassword: password,
        ApplyImmediately: true,
      }));
    } catch (err) {
      throw passwordCallError(err, password, `Setting the master password of the temporary cluster "${id}" failed`);
    }
  }

  /**
   * Deletes the temporary cluster `id`: its writer (and any other instance
   * in it) first, then the cluster, without a final snapshot and with its
   * automated backups. Does not wait for either to be gone. Already gone, or
   * already being deleted, counts as deleted.
   */
  async deleteInstance(id: string): Promise<void> {
    let cluster: DBCluster;
    try {
      cluster = await this.describeCluster(id, '');
    } catch (err) {
      if (err instanceof InstanceNotFoundError) {
        this.log.info(`temporary cluster ${id} does not exist (already deleted); nothing to delete`);
        return;
      }
      throw err;
    }
    if (cluster.Status === 'deleting') {
      this.log.info(`temporary cluster ${id} is already being deleted; nothing more to do`);
      return;
    }
    // The writer is named even when the cluster does not list it yet (its CreateDBInstance may have just been accepted).
    const listed = (cluster.DBClusterMembers ?? []).flatMap((m) => (m.DBInstanceIdentifier ? [m.DBInstanceIdentifier] : []));
    const members = new Set([writerIdOf(id), ...listed]);
    for (const member of members) await this.deleteMember(id, member);
    await this.deleteCluster(id);
  }

  private async deleteMember(clusterId: string, instanceId: string): Promise<void> {
    try {
      await this.client.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: instanceId, SkipFinalSnapshot: true }));
      this.log.info(`temporary cluster ${clusterId}: deletion of its instance ${instanceId} requested`);
    } catch (err) {
      if (nameOf(err) === 'DBInstanceNotFoundFault') return;
      if (nameOf(err) === 'InvalidDBInstanceStateFault' && (await this.writerStatusOrGone(instanceId)) === 'deleting') return;
      throw rdsError(err, {
        what: `deleting the instance "${instanceId}" of the temporary cluster "${clusterId}"`,
        outcome: `"${instanceId}" and the cluster "${clusterId}" were NOT deleted (RDS deletes a cluster only once its instances are being deleted).`,
      });
    }
  }

  private async deleteCluster(id: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.client.send(new DeleteDBClusterCommand({ DBClusterIdentifier: id, SkipFinalSnapshot: true, DeleteAutomatedBackups: true }));
        return;
      } catch (err) {
        if (nameOf(err) === 'DBClusterNotFoundFault') {
          this.log.info(`temporary cluster ${id} is already gone; nothing more to do`);
          return;
        }
        if (nameOf(err) !== 'InvalidDBClusterStateFault') throw clusterNotDeleted(err, id);
        const status = await this.clusterStatusOrGone(id);
        if (status === 'gone' || status === 'deleting') {
          this.log.info(`temporary cluster ${id} is ${status === 'gone' ? 'already gone' : 'already being deleted'}; nothing more to do`);
          return;
        }
        // `available` with instances not yet counted as deleting: the moment between the two calls. Any other status will not change soon.
        if (status !== 'available' || attempt >= CLUSTER_DELETE_RETRY.tries) throw clusterNotDeleted(err, id);
        this.log.info(`temporary cluster ${id}: RDS does not delete it yet (${(err as Error).message}); trying again in ${CLUSTER_DELETE_RETRY.everyMs / 1000} s`);
        await this.sleep(CLUSTER_DELETE_RETRY.everyMs);
      }
    }
  }

  private writerError(clusterId: string, input: CreateDBInstanceCommandInput, err: unknown): Error {
    return rdsError(err, {
      what: `creating the writer instance "${input.DBInstanceIdentifier}" (${input.DBInstanceClass}) in the temporary cluster "${clusterId}"`,
      refused: 'RDS refused the writer instance',
      outcome: `The temporary cluster "${clusterId}" exists without a writer; the cleanup deletes it (tag ${TAGS.BUILD_ID}). The original was not changed.`,
      mutating: true,
      hints: WRITER_HINTS,
    });
  }

  private async describeWriter(writerId: string): Promise<DBInstance | undefined> {
    try {
      const out = await this.client.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: writerId }));
      return out.DBInstances?.[0];
    } catch (err) {
      if (nameOf(err) === 'DBInstanceNotFoundFault') return undefined;
      throw rdsError(err, { what: `describing the writer instance "${writerId}"` });
    }
  }

  private async writerStatusOrGone(instanceId: string): Promise<string> {
    try {
      return (await this.describeWriter(instanceId))?.DBInstanceStatus ?? 'gone';
    } catch {
      // The delete's own error is the one worth reporting.
      return 'unknown';
    }
  }

  private async clusterStatusOrGone(id: string): Promise<string> {
    try {
      return (await this.describeCluster(id, '')).Status ?? 'unknown';
    } catch (err) {
      return err instanceof InstanceNotFoundError ? 'gone' : 'unknown';
    }
  }

  private async tagsOf(cluster: DBCluster): Promise<Tag[]> {
    if (!cluster.DBClusterArn) return [];
    const out = await this.client.send(new ListTagsForResourceCommand({ ResourceName: cluster.DBClusterArn }));
    return out.TagList ?? [];
  }

  private async describeCluster(id: string, field: string): Promise<DBCluster> {
    let cluster: DBCluster | undefined;
    try {
      const out = await this.client.send(new DescribeDBClustersCommand({ DBClusterIdentifier: id }));
      cluster = out.DBClusters?.[0];
    } catch (err) {
      if (nameOf(err) !== 'DBClusterNotFoundFault') throw rdsError(err, { what: `describing Aurora DB cluster "${id}"` });
    }
    if (!cluster) {
      const region = await regionOf(this.client);
      throw new InstanceNotFoundError(id, `${field}Aurora DB cluster "${id}" was not found in region ${region}; accepted: the identifier of an existing `
        + 'Aurora PostgreSQL DB cluster in this account and region. Nothing was created.');
    }
    return cluster;
  }
}

/** Extra advice for the restore faults an operator can act on. */
const RESTORE_HINTS: Record<string, string> = {
  InvalidRestoreFault: `the restore time is probably outside the cluster's restorable window; choose a time inside it or ${START_ENV.RESTORE_TIME}=${LATEST}`,
  DBClusterAlreadyExistsFault: 'a cluster with the temporary identifier already exists; wait a second and start a new recovery (the identifier carries a timestamp)',
  DBClusterQuotaExceededFault: 'the account reached its DB cluster quota; delete unused clusters or raise the quota',
  StorageQuotaExceededFault: 'the account reached its RDS storage quota; free storage or raise the quota',
  InsufficientStorageClusterCapacityFault: 'RDS has no storage capacity for the cluster right now; retry later',
  InvalidVPCNetworkStateFault: 'the source\'s subnet group has no free addresses or is invalid',
  KMSKeyNotAccessibleFault: 'the build\'s role may not use the source cluster\'s KMS key (kms:CreateGrant, kms:DescribeKey)',
};

const WRITER_HINTS: Record<string, string> = {
  InsufficientDBInstanceCapacityFault: `RDS has no capacity for this instance class in the subnet group's zones; set ${START_ENV.TEMP_INSTANCE_CLASS} to another class`,
  InstanceQuotaExceededFault: 'the account reached its DB instance quota; delete unused instances or raise the quota',
  InvalidParameterCombination: `the instance class may not be offered for this engine version; set ${START_ENV.TEMP_INSTANCE_CLASS} to another class`,
};

function clusterNotDeleted(err: unknown, id: string): Error {
  return rdsError(err, {
    what: `deleting the temporary cluster "${id}"`,
    // The workflow's cleanup adds the commands to delete it by hand.
    outcome: `"${id}" was NOT deleted; once this build has ended, the trigger's cleanup sweep tries again every ${CLEANUP_SWEEP_MINUTES} minutes.`,
  });
}

/**
 * The restore of the temporary cluster: the source's network, port, KMS
 * key, cluster parameter group and Serverless v2 range; never deletion
 * protection; the run's tags. A full copy, except a clone when asked for
 * and possible (latest restorable time only). The engine version is the
 * source's: the call takes none.
 */
export function clusterRestoreInput(spec: TemporaryInstanceSpec): RestoreDBClusterToPointInTimeCommandInput {
  const { source } = spec;
  const clone = spec.clone === true && spec.restoreTime === LATEST;
  const scaling = source.serverlessV2Scaling;
  return {
    SourceDBClusterIdentifier: source.id,
    DBClusterIdentifier: spec.id,
    RestoreType: clone ? 'copy-on-write' : 'full-copy',
    ...(spec.restoreTime === LATEST ? { UseLatestRestorableTime: true } : { RestoreToTime: spec.restoreTime }),
    DBSubnetGroupName: source.dbSubnetGroupName,
    VpcSecurityGroupIds: [...source.vpcSecurityGroupIds],
    Port: source.endpoint.port,
    ...(source.kmsKeyId ? { KmsKeyId: source.kmsKeyId } : {}),
    ...(source.clusterParameterGroupName ? { DBClusterParameterGroupName: source.clusterParameterGroupName } : {}),
    ...(scaling ? { ServerlessV2ScalingConfiguration: { MinCapacity: scaling.minCapacity, MaxCapacity: scaling.maxCapacity } } : {}),
    DeletionProtection: false,
    CopyTagsToSnapshot: false,
    Tags: tagList(spec.tags),
  };
}

/**
 * The temporary cluster's one writer: TEMP_INSTANCE_CLASS when set, else
 * the source writer's class (`db.serverless` for a Serverless v2 writer).
 */
export function writerInput(spec: TemporaryInstanceSpec): CreateDBInstanceCommandInput {
  const instanceClass = spec.instanceClass ?? spec.source.writer?.instanceClass;
  if (!instanceClass) {
    throw new Error(`${FIELD}Aurora DB cluster "${spec.source.id}" has no writer instance whose class the temporary cluster's writer could take; `
      + `accepted: a cluster with a writer instance, or ${START_ENV.TEMP_INSTANCE_CLASS} set. Nothing was created.`);
  }
  const parameterGroup = spec.source.dbParameterGroupName;
  return {
    DBInstanceIdentifier: writerIdOf(spec.id),
    DBClusterIdentifier: spec.id,
    Engine: AURORA_POSTGRES_ENGINE,
    DBInstanceClass: instanceClass,
    PubliclyAccessible: false,
    // RDS assigns `default.<family>` when none is given; passing a default group by name is refused for some engines.
    ...(parameterGroup && !parameterGroup.startsWith('default.') ? { DBParameterGroupName: parameterGroup } : {}),
    Tags: tagList(spec.tags),
  };
}

function endpointOf(cluster: DBCluster): DbEndpoint | undefined {
  const host = cluster.Endpoint;
  const port = cluster.Port;
  return host && port ? { host, port } : undefined;
}
