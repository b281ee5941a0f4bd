/**
 * Aurora PostgreSQL DB clusters in the RDS stand-in (issue #20): the source
 * cluster, point-in-time restores (full copy and copy-on-write clone), the
 * writer instance added with CreateDBInstance, the master password set with
 * ModifyDBCluster, DB cluster snapshots, and the deletes.
 *
 * How a cluster is played: the Aurora cluster volume is a real PostgreSQL
 * data directory (a `LocalCluster`); its server runs only while the DB
 * cluster has a writer instance that is not being created or deleted, so a
 * restored cluster's endpoint serves nothing until its writer is up. The
 * cluster endpoint, the reader endpoint and the writer's own endpoint are
 * that one server (the stand-in has no readers).
 *
 * Documented behaviour is followed and says where it is written (the RDS API
 * reference as shipped in @aws-sdk/client-rds's model documentation, or the
 * Aurora User Guide). Anything else is a `GUESS:` naming what was assumed and
 * the page it is closest to.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { StandInEngineCore, StandInInstance } from './model';
import { RdsFault, type Tag } from './query-protocol';
import { LocalCluster, sleep } from '../cluster';
import { setRolePassword, takeAutomatedBackup } from '../pitr-copy';

export const AURORA_ENGINE = 'aurora-postgresql';
export type RestoreType = 'full-copy' | 'copy-on-write';
export const RESTORE_TYPES: readonly RestoreType[] = ['full-copy', 'copy-on-write'];

export interface ServerlessV2Scaling {
  readonly MinCapacity: number;
  readonly MaxCapacity: number;
}

export interface SourceClusterSpec {
  readonly id: string;
  readonly masterUsername: string;
  readonly masterPassword: string;
  /** The writer instance's identifier. @default `<id>-instance-1` */
  readonly writerId?: string;
  /** The writer's class; `db.serverless` needs `serverlessV2`. @default db.r6g.large, or db.serverless with serverlessV2 */
  readonly writerClass?: string;
  readonly serverlessV2?: ServerlessV2Scaling;
  readonly backupRetentionPeriod?: number;
  /** ARN of the RDS-managed master secret (ManageMasterUserPassword), when the cluster has one. */
  readonly masterUserSecretArn?: string;
  readonly kmsKeyId?: string;
  readonly tags?: readonly Tag[];
}

export interface StandInDbCluster {
  readonly id: string;
  readonly arn: string;
  readonly resourceId: string;
  status: string;
  readonly createdAt: Date;
  readonly engineVersion: string;
  readonly masterUsername: string;
  readonly backupRetentionPeriod: number;
  readonly subnetGroup: string;
  readonly securityGroups: readonly string[];
  readonly parameterGroup: string;
  readonly kmsKeyId: string;
  readonly storageEncrypted: boolean;
  readonly masterUserSecretArn?: string;
  readonly serverlessV2?: ServerlessV2Scaling;
  /** How a restored cluster was made, and from what (absent on the source). */
  readonly restore?: { readonly type: RestoreType; readonly sourceId: string; readonly time: Date; readonly useLatest: boolean };
  /** Shared by a copy-on-write clone and its source (DescribeDBClusters CloneGroupId). */
  cloneGroupId?: string;
  tags: Tag[];
  /** The port asked for at restore time (reported; the volume listens where the placement put it). */
  readonly requestedPort?: number;
  /** The cluster volume, once restored: a data directory whose server runs while a writer is up. */
  volume?: LocalCluster;
  host?: string;
  /** Whether the volume's server is running. */
  serving: boolean;
  /** A ModifyDBCluster password not applied yet (memory only; never reported). */
  pendingPassword?: string;
  /** Only the source has one: its automated backup (base backup + WAL archive). */
  automatedBackup?: { readonly dir: string; readonly earliest: Date };
  deleteRequested: boolean;
  /** Set once its removal has started (the volume is being destroyed). */
  finishing?: boolean;
}

export interface StandInClusterSnapshot {
  readonly id: string;
  readonly arn: string;
  readonly clusterId: string;
  status: string;
  readonly createdAt: Date;
  readonly tags: Tag[];
  backupDir?: string;
}

/** The VPC's default security group, which a restore without VpcSecurityGroupIds gets. */
export const DEFAULT_SECURITY_GROUP = 'sg-0default0000000000';
/** Aurora PostgreSQL's default port, reported for a restore without Port. */
export const AURORA_POSTGRES_DEFAULT_PORT = 5432;

/** Statuses of a DB cluster in which a member may be created, a snapshot taken, the cluster modified. */
const CLUSTER_READY = ['available'];

export class AuroraClusters {
  private readonly clusters = new Map<string, StandInDbCluster>();
  private readonly snapshots = new Map<string, StandInClusterSnapshot>();
  /** Every status each DB cluster went through, in order (for tests). */
  readonly history = new Map<string, string[]>();

  constructor(private readonly engine: StandInEngineCore) {}

  // ------------------------------------------------------------ set-up (not part of the API)

  /**
   * Creates an available source DB cluster with one available writer and
   * automated backups; its restorable window starts now.
   */
  async createSourceCluster(spec: SourceClusterSpec): Promise<StandInDbCluster> {
    const id = spec.id.toLowerCase();
    if (this.clusters.has(id)) throw new RdsFault('DBClusterAlreadyExistsFault', `DB cluster ${id} already exists.`);
    const writerId = (spec.writerId ?? `${id}-instance-1`).toLowerCase();
    if (this.engine.instances.has(writerId)) throw new RdsFault('DBInstanceAlreadyExists', 'DB instance already exists');
    const { cluster: volume, host } = await this.engine.placement.createSource({ username: spec.masterUsername, password: spec.masterPassword });
    try {
      const version = (await volume.sql('SHOW server_version')).split(' ')[0];
      const backup = await takeAutomatedBackup(volume, spec.masterUsername);
      const major = version.split('.')[0];
      const cluster: StandInDbCluster = {
        ...this.newClusterFields(id),
        status: 'available',
        engineVersion: version,
        masterUsername: spec.masterUsername,
        backupRetentionPeriod: spec.backupRetentionPeriod ?? 7,
        subnetGroup: 'standin-subnets',
        securityGroups: ['sg-0standin0000000001'],
        parameterGroup: `default.aurora-postgresql${major}`,
        kmsKeyId: spec.kmsKeyId ?? `arn:aws:kms:${this.engine.region}:${this.engine.accountId}:key/00000000-0000-4000-8000-00000000a001`,
        storageEncrypted: true,
        masterUserSecretArn: spec.masterUserSecretArn,
        serverlessV2: spec.serverlessV2,
        tags: [...spec.tags ?? []],
        volume,
        host,
        serving: true,
        automatedBackup: { dir: backup.dir, earliest: backup.time },
        deleteRequested: false,
      };
      this.clusters.set(id, cluster);
      this.record(cluster);
      const writer = this.newMember(cluster, writerId, spec.writerClass ?? (spec.serverlessV2 ? 'db.serverless' : 'db.r6g.large'), []);
      writer.status = 'available';
      this.engine.instances.set(writerId, writer);
      this.engine.record(writer);
      return cluster;
    } catch (err) {
      await volume.destroy();
      throw err;
    }
  }

  // ------------------------------------------------------------ reads

  listClusters(): StandInDbCluster[] {
    return [...this.clusters.values()];
  }

  cluster(id: string): StandInDbCluster {
    const cluster = this.clusters.get(id.toLowerCase());
    if (!cluster) throw new RdsFault('DBClusterNotFoundFault', `DBCluster ${id} not found.`, 404);
    return cluster;
  }

  /** The DB cluster's members (DBClusterMembers), in creation order. */
  members(cluster: StandInDbCluster): StandInInstance[] {
    return this.engine.listInstances().filter((i) => i.dbClusterId === cluster.id);
  }

  snapshot(id: string): StandInClusterSnapshot {
    const snapshot = this.snapshots.get(id.toLowerCase());
    if (!snapshot) throw new RdsFault('DBClusterSnapshotNotFoundFault', `DBClusterSnapshot ${id} not found.`, 404);
    return snapshot;
  }

  listSnapshots(): StandInClusterSnapshot[] {
    return [...this.snapshots.values()];
  }

  /**
   * GUESS: as for instances (engine.ts), LatestRestorableTime is "now" (AWS trails by minutes); closest page: the API
   * reference's DBCluster LatestRestorableTime, "The latest time to which a database can be restored with point-in-time restore".
   */
  latestRestorableTime(cluster: StandInDbCluster): Date | undefined {
    return cluster.automatedBackup && cluster.status !== 'deleting' ? new Date() : undefined;
  }

  /** The tag list of a DB cluster or DB cluster snapshot ARN, or undefined. */
  tagsOf(arn: string): Tag[] | undefined {
    return [...this.clusters.values()].find((c) => c.arn === arn)?.tags ?? [...this.snapshots.values()].find((s) => s.arn === arn)?.tags;
  }

  /**
   * Where clients reach the cluster, once restored. GUESS: the endpoint
   * (a DNS name on AWS) is reported from the moment the volume exists,
   * writer or not, and connecting to it fails until a writer is up
   * (Aurora User Guide, "Amazon Aurora endpoint connections": the cluster
   * endpoint "connects to the current primary DB instance").
   */
  endpointOf(cluster: StandInDbCluster): { readonly host: string; readonly port: number } | undefined {
    return cluster.volume && cluster.host ? { host: cluster.host, port: cluster.volume.port } : undefined;
  }

  // ------------------------------------------------------------ actions

  /**
   * RestoreDBClusterToPointInTime. Documented (API reference): RestoreType
   * `full-copy` (the default) or `copy-on-write` (a clone); RestoreToTime
   * "Can't be specified if the RestoreType parameter is copy-on-write" and
   * not with UseLatestRestorableTime, and one of the two is required; the
   * action "only restores the DB cluster, not the DB instances" (the new
   * cluster has none). Aurora User Guide, "Cloning a volume": "You can't
   * create a clone from an Aurora DB cluster that has no DB instances".
   */
  async restoreToPointInTime(request: {
    readonly sourceId: string;
    readonly targetId: string;
    readonly restoreType?: string;
    readonly restoreTime?: Date;
    readonly useLatest: boolean;
    readonly port?: number;
    readonly subnetGroup?: string;
    readonly securityGroups: readonly string[];
    readonly parameterGroup?: string;
    readonly kmsKeyId?: string;
    readonly serverlessV2?: ServerlessV2Scaling;
    readonly tags: Tag[];
  }): Promise<StandInDbCluster> {
    const restoreType = (request.restoreType ?? 'full-copy') as RestoreType;
    if (!RESTORE_TYPES.includes(restoreType)) {
      throw new RdsFault('InvalidParameterValue', `Invalid RestoreType ${JSON.stringify(request.restoreType)}; valid values: ${RESTORE_TYPES.join(', ')}.`);
    }
    if (request.restoreTime && request.useLatest) {
      throw new RdsFault('InvalidParameterCombination', 'Cannot specify both RestoreToTime and UseLatestRestorableTime.');
    }
    if (!request.restoreTime && !request.useLatest) {
      throw new RdsFault('InvalidParameterCombination', 'Either RestoreToTime or UseLatestRestorableTime must be specified.');
    }
    if (request.restoreTime && restoreType === 'copy-on-write') {
      // Documented constraint (above). GUESS: the code InvalidParameterCombination and the wording.
      throw new RdsFault('InvalidParameterCombination', 'RestoreToTime cannot be specified with RestoreType copy-on-write; '
        + 'a clone is made at the latest restorable time (UseLatestRestorableTime).');
    }
    const source = this.cluster(request.sourceId);
    const targetId = request.targetId.toLowerCase();
    if (this.clusters.has(targetId)) throw new RdsFault('DBClusterAlreadyExistsFault', `DB cluster ${targetId} already exists.`);
    const refusal = this.engine.faults.refuseClusterRestore;
    if (refusal) {
      this.engine.faults = { ...this.engine.faults, refuseClusterRestore: undefined };
      throw new RdsFault(refusal.code, refusal.message);
    }
    if (source.status !== 'available' && source.status !== 'backing-up') {
      // GUESS: a source that is not available (deleting, stopped, ...) cannot be restored from; the fault is
      // InvalidDBClusterStateFault, listed for this action.
      throw new RdsFault('InvalidDBClusterStateFault', `DB cluster ${source.id} is ${source.status}; it cannot be restored from now.`);
    }
    if (!source.automatedBackup || !source.volume) {
      // GUESS: a cluster without automated backups (here: a restored cluster) is answered with
      // DBClusterAutomatedBackupNotFoundFault, listed for this action.
      throw new RdsFault('DBClusterAutomatedBackupNotFoundFault', `No automated backup found for DB cluster ${source.id}.`, 404);
    }
    if (restoreType === 'copy-on-write' && !this.members(source).some((m) => m.status !== 'deleting')) {
      // Documented limitation (above). GUESS: the fault code and wording.
      throw new RdsFault('InvalidDBClusterStateFault', `DB cluster ${source.id} has no DB instances; a clone can be made only of a cluster with at least one.`);
    }
    const latest = this.latestRestorableTime(source)!;
    const target = request.useLatest ? latest : request.restoreTime!;
    if (target < source.automatedBackup.earliest || target > latest) {
      // GUESS: the message; InvalidRestoreFault is the code listed for this action, as for instances.
      throw new RdsFault('InvalidRestoreFault', `Restore time ${target.toISOString()} is outside the restorable window `
        + `${source.automatedBackup.earliest.toISOString()} - ${latest.toISOString()} of DB cluster ${source.id}.`);
    }
    const cluster: StandInDbCluster = {
      ...this.newClusterFields(targetId),
      status: 'creating',
      engineVersion: source.engineVersion,
      masterUsername: source.masterUsername,
      backupRetentionPeriod: source.backupRetentionPeriod,
      // Documented (API reference): without DBClusterParameterGroupName "the default DB cluster parameter group for the
      // specified engine is used", without Port "the default port for the engine", and the new cluster "is created with
      // the default DB security group". GUESS: without DBSubnetGroupName, the source's subnet group (not documented).
      subnetGroup: request.subnetGroup ?? source.subnetGroup,
      securityGroups: request.securityGroups.length > 0 ? [...request.securityGroups] : [DEFAULT_SECURITY_GROUP],
      parameterGroup: request.parameterGroup ?? `default.aurora-postgresql${source.engineVersion.split('.')[0]}`,
      // Documented (KmsKeyId): without one, a restore of an encrypted cluster "is encrypted using the KMS key that was
      // used to encrypt the source DB cluster".
      kmsKeyId: request.kmsKeyId ?? source.kmsKeyId,
      storageEncrypted: source.storageEncrypted,
      // GUESS: a restored cluster has no RDS-managed master secret of its own, and no Serverless v2 scaling
      // configuration unless the request gives one (CreateDBInstance with db.serverless then fails, as observed on AWS:
      // "Set the Serverless v2 scaling configuration on the parent DB cluster before creating a Serverless v2 DB instance").
      masterUserSecretArn: undefined,
      serverlessV2: request.serverlessV2,
      restore: { type: restoreType, sourceId: source.id, time: target, useLatest: request.useLatest },
      tags: [...request.tags],
      requestedPort: request.port,
      serving: false,
      deleteRequested: false,
    };
    if (restoreType === 'copy-on-write') {
      source.cloneGroupId ??= randomUuidLike();
      cluster.cloneGroupId = source.cloneGroupId;
    }
    this.clusters.set(targetId, cluster);
    this.record(cluster);
    const sourceVolume = source.volume;
    const backupDir = source.automatedBackup.dir;
    this.engine.inBackground(async () => {
      // GUESS: the statuses of a restore: `creating`, then `available` (Aurora User Guide, "DB cluster status"; no
      // `backing-up` step, unlike the stand-in's instances); a clone is faster (Aurora User Guide, "Cloning a volume":
      // "designed to be fast"). A restore that cannot complete ends in `failed` as a guess, as for instances.
      const minimum = sleep(restoreType === 'copy-on-write' ? this.engine.timing.cloneCreatingMs : this.engine.timing.creatingMs);
      try {
        const placed = await this.engine.placement.restoreCopy(sourceVolume, backupDir, target, request.port);
        cluster.volume = placed.cluster;
        cluster.host = placed.host;
        cluster.serving = true;
      } catch (err) {
        this.engine.warn(`restore of DB cluster ${targetId} failed: ${(err as Error).message}`);
        if (!cluster.deleteRequested) this.setStatus(cluster, 'failed');
        else this.forget(cluster);
        return;
      }
      await this.engine.faults.onCopyUp?.(targetId, cluster.volume);
      // The volume serves nothing until a writer is created.
      await this.stopServing(cluster);
      await minimum;
      if (cluster.deleteRequested) return this.finishDelete(cluster);
      const ending = this.engine.faults.clusterRestoreEndsIn;
      this.setStatus(cluster, ending ?? 'available');
    });
    return cluster;
  }

  /**
   * CreateDBInstance with DBClusterIdentifier: the cluster's writer (the
   * first member is the writer). Documented (RestoreDBClusterToPointInTime):
   * "You can create DB instances only after the RestoreDBClusterToPointInTime
   * action has completed and the DB cluster is available"; InvalidDBClusterStateFault
   * is the code CreateDBInstance lists for a cluster in the wrong state.
   */
  async createMember(request: {
    readonly instanceId: string;
    readonly clusterId: string;
    readonly instanceClass: string;
    readonly engine: string;
    readonly tags: Tag[];
  }): Promise<StandInInstance> {
    const cluster = this.cluster(request.clusterId);
    const id = request.instanceId.toLowerCase();
    if (this.engine.instances.has(id)) throw new RdsFault('DBInstanceAlreadyExists', 'DB instance already exists');
    if (request.engine !== AURORA_ENGINE) {
      // GUESS: the code and wording; the Engine of a cluster's instance must be the cluster's (API reference, Engine).
      throw new RdsFault('InvalidParameterCombination', `The engine name requested for your DB instance (${request.engine}) doesn't match `
        + `the engine name of your DB cluster (${AURORA_ENGINE}).`);
    }
    if (!CLUSTER_READY.includes(cluster.status) || !cluster.volume) {
      throw new RdsFault('InvalidDBClusterStateFault', `DB cluster ${cluster.id} is ${cluster.status}; DB instances can be added only when it is available.`);
    }
    if (request.instanceClass === 'db.serverless' && !cluster.serverlessV2) {
      // Observed on AWS (the message is AWS's, as reported in public Terraform issues); not in the API reference.
      throw new RdsFault('InvalidDBClusterStateFault', 'Set the Serverless v2 scaling configuration on the parent DB cluster before creating a Serverless v2 DB instance.');
    }
    const member = this.newMember(cluster, id, request.instanceClass, request.tags);
    this.engine.instances.set(id, member);
    this.engine.record(member);
    this.engine.inBackground(async () => {
      // GUESS: a new member goes `creating` -> `available` (Aurora User Guide, "Viewing DB instance status in an Aurora
      // cluster" lists both), and the DB cluster stays `available` meanwhile.
      const minimum = sleep(this.engine.timing.creatingMs);
      try {
        await this.startServing(cluster);
        if (cluster.pendingPassword !== undefined && cluster.status === 'available') await this.applyPassword(cluster);
      } catch (err) {
        this.engine.warn(`writer ${id} of ${cluster.id} failed to start: ${(err as Error).message}`);
        if (!member.deleteRequested) this.engine.setStatus(member, 'failed');
        return;
      }
      await minimum;
      if (member.deleteRequested) return;
      this.engine.setStatus(member, 'available');
    });
    return member;
  }

  /**
   * DeleteDBInstance on a member. Refused while `creating`, as for every
   * instance (engine.ts's GUESS). GUESS: the DB cluster's volume stops
   * serving once no member is left that is not being deleted, and the
   * member is gone after `deleting`.
   */
  async deleteMember(member: StandInInstance): Promise<StandInInstance> {
    if (member.status === 'deleting') throw new RdsFault('InvalidDBInstanceState', `Instance ${member.id} is already being deleted.`);
    if (this.engine.faults.refuseDeleteIn?.includes(member.status)) {
      throw new RdsFault('InvalidDBInstanceState', `Instance ${member.id} is currently ${member.status}; it cannot be deleted now.`);
    }
    if (member.status === 'creating' && !this.engine.faults.acceptDeleteWhileCreating) {
      throw new RdsFault('InvalidDBInstanceState', `Instance ${member.id} is currently creating; it cannot be deleted until it is available.`);
    }
    // GUESS: neither SkipFinalSnapshot nor FinalDBSnapshotIdentifier is needed for an Aurora member (its data and snapshots
    // are the cluster's; closest page: Aurora User Guide, "Deleting a DB instance from an Aurora DB cluster").
    member.deleteRequested = true;
    this.engine.setStatus(member, 'deleting');
    const cluster = this.clusters.get(member.dbClusterId!);
    this.engine.inBackground(async () => {
      const minimum = sleep(this.engine.timing.deletingMs);
      if (cluster && !this.members(cluster).some((m) => !m.deleteRequested)) await this.stopServing(cluster);
      await minimum;
      this.engine.forget(member);
    });
    return member;
  }

  /**
   * ModifyDBCluster MasterUserPassword. Documented (API reference,
   * ModifyDBCluster MasterUserPassword): 8 to 41 characters, any printable
   * ASCII except "/", """ and "@". GUESS: the statuses `modifying`, then
   * `resetting-master-credentials` (both in the Aurora User Guide's "DB
   * cluster status"), then `available`, with PendingModifiedValues.MasterUserPassword
   * set until the password works; a cluster without a running writer keeps it
   * pending until its writer starts. Accepted only while `available`
   * (InvalidDBClusterStateFault otherwise).
   */
  async setMasterPassword(id: string, password: string): Promise<StandInDbCluster> {
    const cluster = this.cluster(id);
    if (password.length < 8 || password.length > 41 || /[^\x20-\x7e]|[/"@]/.test(password)) {
      throw new RdsFault('InvalidParameterValue', 'The parameter MasterUserPassword is not a valid password: it must be 8 to 41 printable ASCII '
        + 'characters other than /, " and @.');
    }
    if (!CLUSTER_READY.includes(cluster.status)) {
      throw new RdsFault('InvalidDBClusterStateFault', `DB cluster ${cluster.id} is ${cluster.status}; it can be modified only when it is available.`);
    }
    cluster.pendingPassword = password;
    this.engine.inBackground(async () => {
      this.setStatus(cluster, 'modifying');
      await sleep(this.engine.timing.modifyingMs);
      if (cluster.deleteRequested) return;
      this.setStatus(cluster, 'resetting-master-credentials');
      await sleep(this.engine.timing.resettingCredentialsMs);
      if (cluster.deleteRequested) return;
      if (cluster.serving) await this.applyPassword(cluster);
      this.setStatus(cluster, 'available');
    });
    return cluster;
  }

  /**
   * DeleteDBCluster. Documented (API reference): FinalDBSnapshotIdentifier is
   * required unless SkipFinalSnapshot. AWS answers a cluster that still has
   * members with InvalidDBClusterStateFault "Cluster cannot be deleted, it
   * still contains DB instances in non-deleting state." (AWS's message, as
   * moto reproduces it after checking it against AWS: getmoto/moto#6998), so
   * members that are `deleting` do not block it; the cluster stays `deleting`
   * until they are gone. GUESS: a cluster that is still `creating` is refused
   * (as the stand-in's instances are; engine.ts), which the cleanup sweep must
   * survive.
   */
  async deleteCluster(id: string, options: { readonly skipFinalSnapshot: boolean; readonly finalSnapshotId?: string }): Promise<StandInDbCluster> {
    const cluster = this.cluster(id);
    if (cluster.status === 'deleting') throw new RdsFault('InvalidDBClusterStateFault', `DB cluster ${cluster.id} is already being deleted.`);
    if (!options.skipFinalSnapshot && !options.finalSnapshotId) {
      throw new RdsFault('InvalidParameterCombination', 'FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.');
    }
    if (options.skipFinalSnapshot && options.finalSnapshotId) {
      throw new RdsFault('InvalidParameterCombination', 'FinalDBSnapshotIdentifier cannot be specified when SkipFinalSnapshot is true.');
    }
    if (!options.skipFinalSnapshot) throw new RdsFault('InvalidParameterValue', 'The RDS stand-in does not implement final snapshots; pass SkipFinalSnapshot=true.');
    if (this.members(cluster).some((m) => m.status !== 'deleting')) {
      throw new RdsFault('InvalidDBClusterStateFault', 'Cluster cannot be deleted, it still contains DB instances in non-deleting state.');
    }
    if (cluster.status === 'creating' && !this.engine.faults.acceptClusterDeleteWhileCreating) {
      throw new RdsFault('InvalidDBClusterStateFault', `DB cluster ${cluster.id} is currently creating; it cannot be deleted until it is available.`);
    }
    cluster.deleteRequested = true;
    this.setStatus(cluster, 'deleting');
    // A cluster still being restored is removed by its restore task once its volume is up.
    if (cluster.volume || cluster.automatedBackup) this.engine.inBackground(() => this.finishDelete(cluster));
    return cluster;
  }

  /**
   * CreateDBClusterSnapshot: only of an `available` cluster
   * (InvalidDBClusterStateFault otherwise, as the action lists). GUESS: the
   * cluster stays `available` while the snapshot is `creating` (Aurora
   * snapshots the cluster volume), and the snapshot becomes `available`.
   * Not like AWS: the stand-in snapshots a volume only while it is served.
   */
  async createSnapshot(clusterId: string, snapshotId: string, tags: Tag[]): Promise<StandInClusterSnapshot> {
    const cluster = this.cluster(clusterId);
    if (this.snapshots.has(snapshotId.toLowerCase())) {
      throw new RdsFault('DBClusterSnapshotAlreadyExistsFault', `Cannot create the snapshot because a snapshot with the identifier ${snapshotId} already exists.`);
    }
    if (!CLUSTER_READY.includes(cluster.status) || !cluster.volume) {
      throw new RdsFault('InvalidDBClusterStateFault', `DB cluster ${cluster.id} is ${cluster.status}; a snapshot can be taken only when it is available.`);
    }
    if (!cluster.serving) {
      throw new RdsFault('InvalidParameterValue', `The RDS stand-in snapshots a DB cluster only while it has a writer; ${cluster.id} has none.`);
    }
    const snapshot: StandInClusterSnapshot = {
      id: snapshotId.toLowerCase(),
      arn: `arn:aws:rds:${this.engine.region}:${this.engine.accountId}:cluster-snapshot:${snapshotId.toLowerCase()}`,
      clusterId: cluster.id,
      status: 'creating',
      createdAt: new Date(),
      tags: [...tags],
    };
    this.snapshots.set(snapshot.id, snapshot);
    const volume = cluster.volume;
    this.engine.inBackground(async () => {
      const minimum = sleep(this.engine.timing.snapshotMs);
      try {
        snapshot.backupDir = await volume.baseBackup();
        await minimum;
        snapshot.status = this.engine.faults.clusterSnapshotEndsIn ?? 'available';
      } catch (err) {
        snapshot.status = 'failed';
        this.engine.warn(`cluster snapshot ${snapshot.id} failed: ${(err as Error).message}`);
      }
    });
    return snapshot;
  }

  /** DeleteDBClusterSnapshot. Documented: "The DB cluster snapshot must be in the available state to be deleted." */
  async deleteSnapshot(id: string): Promise<StandInClusterSnapshot> {
    const snapshot = this.snapshot(id);
    if (snapshot.status !== 'available') {
      throw new RdsFault('InvalidDBClusterSnapshotStateFault', `Cannot delete the snapshot because it is in the ${snapshot.status} state.`);
    }
    this.snapshots.delete(snapshot.id);
    if (snapshot.backupDir) await rm(snapshot.backupDir, { recursive: true, force: true });
    return snapshot;
  }

  // ------------------------------------------------------------ lifetime

  async waitUntilGone(id: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.clusters.has(id)) {
      if (Date.now() > deadline) throw new Error(`stand-in: DB cluster ${id} still exists after ${timeoutMs} ms (status ${this.clusters.get(id)!.status}).`);
      await sleep(50);
    }
  }

  /** Lets go of `id`'s volume (and its members) without removing it: the rehearsal's `--keep`. Starts it if stopped. */
  async release(id: string): Promise<LocalCluster | undefined> {
    const cluster = this.cluster(id);
    const volume = cluster.volume;
    if (volume && !cluster.serving) await volume.start();
    cluster.volume = undefined;
    for (const member of this.members(cluster)) this.engine.forget(member);
    this.forget(cluster);
    return volume;
  }

  async dispose(): Promise<void> {
    for (const cluster of this.clusters.values()) {
      cluster.deleteRequested = true;
      await cluster.volume?.destroy().catch((err) => this.engine.warn(`could not remove DB cluster ${cluster.id}: ${(err as Error).message}`));
      cluster.volume = undefined;
    }
    this.clusters.clear();
  }

  // ------------------------------------------------------------ internals

  private newClusterFields(id: string): Pick<StandInDbCluster, 'id' | 'arn' | 'resourceId' | 'createdAt'> {
    return {
      id,
      arn: `arn:aws:rds:${this.engine.region}:${this.engine.accountId}:cluster:${id}`,
      resourceId: `cluster-${randomBytes(13).toString('base64url').toUpperCase().replace(/[^A-Z0-9]/g, 'X').slice(0, 26)}`,
      createdAt: new Date(),
    };
  }

  private newMember(cluster: StandInDbCluster, id: string, instanceClass: string, tags: readonly Tag[]): StandInInstance {
    const major = cluster.engineVersion.split('.')[0];
    return {
      ...this.engine.newInstanceFields(id),
      status: 'creating',
      engineVersion: cluster.engineVersion,
      instanceClass,
      masterUsername: cluster.masterUsername,
      backupRetentionPeriod: cluster.backupRetentionPeriod,
      subnetGroup: cluster.subnetGroup,
      securityGroups: [...cluster.securityGroups],
      parameterGroup: `default.aurora-postgresql${major}`,
      optionGroup: `default:aurora-postgresql-${major}`,
      tags: [...tags],
      pendingMasterPassword: false,
      deleteRequested: false,
      dbClusterId: cluster.id,
    };
  }

  private async startServing(cluster: StandInDbCluster): Promise<void> {
    if (cluster.serving || !cluster.volume) return;
    cluster.serving = true;
    try {
      await cluster.volume.start();
    } catch (err) {
      cluster.serving = false;
      throw err;
    }
  }

  private async stopServing(cluster: StandInDbCluster): Promise<void> {
    if (!cluster.serving || !cluster.volume) return;
    cluster.serving = false;
    await cluster.volume.stop();
  }

  private async applyPassword(cluster: StandInDbCluster): Promise<void> {
    const password = cluster.pendingPassword;
    if (password === undefined || !cluster.volume) return;
    await setRolePassword(cluster.volume, cluster.masterUsername, password);
    if (cluster.pendingPassword === password) cluster.pendingPassword = undefined;
  }

  private async finishDelete(cluster: StandInDbCluster): Promise<void> {
    if (cluster.finishing) return;
    cluster.finishing = true;
    const minimum = sleep(this.engine.timing.deletingMs);
    while (this.members(cluster).length > 0) await sleep(25);
    const volume = cluster.volume;
    cluster.volume = undefined;
    cluster.serving = false;
    await volume?.destroy().catch((err) => this.engine.warn(`could not remove the volume of DB cluster ${cluster.id}: ${(err as Error).message}`));
    await minimum;
    this.forget(cluster);
  }

  private forget(cluster: StandInDbCluster): void {
    if (this.clusters.get(cluster.id) === cluster) this.clusters.delete(cluster.id);
    this.history.get(cluster.id)?.push('(gone)');
  }

  private setStatus(cluster: StandInDbCluster, status: string): void {
    if (cluster.deleteRequested && status !== 'deleting') return;
    cluster.status = status;
    this.record(cluster);
  }

  private record(cluster: StandInDbCluster): void {
    const seen = this.history.get(cluster.id) ?? [];
    if (seen[seen.length - 1] !== cluster.status) seen.push(cluster.status);
    this.history.set(cluster.id, seen);
  }
}

function randomUuidLike(): string {
  const hex = randomBytes(16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
