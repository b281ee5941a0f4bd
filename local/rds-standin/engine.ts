/**
 * The state behind the RDS stand-in: DB instances that are real PostgreSQL
 * clusters, their status over time, tags, manual snapshots and the source's
 * automated backup; and Aurora PostgreSQL DB clusters (`clusters.ts`), whose
 * cluster volume is a real PostgreSQL data directory served while a writer
 * instance is up. `server.ts` puts the RDS Query API in front of it.
 *
 * Where RDS's behaviour is documented the stand-in follows it; where it is
 * not (or only observed), a `GUESS:` comment says what was assumed.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { LocalCluster, sleep } from '../cluster';
import { restorePointInTimeCopy, setRolePassword, takeAutomatedBackup } from '../pitr-copy';
import { AuroraClusters } from './clusters';
import type { StandInEngineCore, StandInFaults, StandInInstance, StandInOptions, StandInPlacement, StandInSnapshot, StandInTiming, SourceInstanceSpec } from './model';
import { FAST_TIMING } from './model';
import { RdsFault, type Tag } from './query-protocol';

// The stand-in's data types live in model.ts, so that clusters.ts needs them without importing this file (no import circle).
export * from './model';


/** Statuses in which RDS accepts ModifyDBInstance. */
const MODIFIABLE = ['available'];

export class RdsStandInEngine implements StandInEngineCore {
  readonly region: string;
  readonly accountId: string;
  readonly timing: StandInTiming;
  faults: StandInFaults;
  /** @internal Where clusters listen (used by `clusters.ts`). */
  readonly placement: StandInPlacement;
  /** @internal Every DB instance, Aurora cluster members included (used by `clusters.ts`). */
  readonly instances = new Map<string, StandInInstance>();
  private readonly snapshots = new Map<string, StandInSnapshot>();
  private readonly background = new Set<Promise<void>>();
  /** Every status each instance went through, in order (for tests). */
  readonly history = new Map<string, string[]>();
  /** Aurora PostgreSQL DB clusters, their member instances and DB cluster snapshots. */
  readonly clusters: AuroraClusters;

  constructor(options: StandInOptions = {}) {
    this.region = options.region ?? 'us-east-1';
    this.accountId = options.accountId ?? '123456789012';
    this.timing = { ...FAST_TIMING, ...options.timing };
    this.faults = options.faults ?? {};
    this.placement = options.placement ?? loopbackPlacement();
    this.clusters = new AuroraClusters(this);
  }

  // ------------------------------------------------------------ set-up (not part of the API)

  /** Creates an available source instance with automated backups; its restorable window starts now. */
  async createSourceInstance(spec: SourceInstanceSpec): Promise<StandInInstance> {
    if (this.instances.has(spec.id)) throw new RdsFault('DBInstanceAlreadyExists', 'DB instance already exists');
    const { cluster, host } = await this.placement.createSource({ username: spec.masterUsername, password: spec.masterPassword });
    try {
      const version = await cluster.sql('SHOW server_version');
      const backup = await takeAutomatedBackup(cluster, spec.masterUsername);
      const instance: StandInInstance = {
        ...this.newInstanceFields(spec.id),
        status: 'available',
        engineVersion: version.split(' ')[0],
        instanceClass: spec.instanceClass ?? 'db.t4g.micro',
        masterUsername: spec.masterUsername,
        backupRetentionPeriod: spec.backupRetentionPeriod ?? 7,
        subnetGroup: 'standin-subnets',
        securityGroups: ['sg-0standin0000000001'],
        parameterGroup: `default.postgres${version.split('.')[0]}`,
        optionGroup: `default:postgres-${version.split('.')[0]}`,
        masterUserSecretArn: spec.masterUserSecretArn,
        tags: [...spec.tags ?? []],
        cluster,
        host,
        pendingMasterPassword: false,
        automatedBackup: { dir: backup.dir, earliest: backup.time },
        deleteRequested: false,
      };
      this.instances.set(spec.id, instance);
      this.record(instance);
      return instance;
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
  }

  // ------------------------------------------------------------ reads

  /** Instances RDS would list: everything not yet gone, `deleting` included. */
  listInstances(): StandInInstance[] {
    return [...this.instances.values()];
  }

  instance(id: string): StandInInstance {
    // RDS identifiers are case-insensitive and stored in lower case.
    const instance = this.instances.get(id.toLowerCase()) ?? this.instances.get(id);
    if (!instance) throw new RdsFault('DBInstanceNotFound', `DBInstance ${id} not found.`, 404);
    return instance;
  }

  snapshot(id: string): StandInSnapshot {
    const snapshot = this.snapshots.get(id.toLowerCase());
    if (!snapshot) throw new RdsFault('DBSnapshotNotFound', `DBSnapshot ${id} not found.`, 404);
    return snapshot;
  }

  /** DeleteDBSnapshot: only an available snapshot, as RDS; its base backup goes with it. */
  async deleteSnapshot(id: string): Promise<StandInSnapshot> {
    const snapshot = this.snapshot(id);
    if (snapshot.status !== 'available') {
      throw new RdsFault('InvalidDBSnapshotState', `Cannot delete the snapshot because it is in the ${snapshot.status} state.`);
    }
    this.snapshots.delete(snapshot.id);
    if (snapshot.backupDir) await rm(snapshot.backupDir, { recursive: true, force: true });
    return snapshot;
  }

  listSnapshots(): StandInSnapshot[] {
    return [...this.snapshots.values()];
  }

  /**
   * GUESS: LatestRestorableTime is "now" (RDS usually trails by up to five
   * minutes, the WAL upload interval; the stand-in ships WAL on demand).
   */
  latestRestorableTime(instance: StandInInstance): Date | undefined {
    return instance.automatedBackup && instance.status !== 'deleting' ? new Date() : undefined;
  }

  /** The tag list of the resource `arn` names (the list itself: AddTagsToResource changes it). */
  tagsOf(arn: string): Tag[] {
    const instance = [...this.instances.values()].find((i) => i.arn === arn);
    if (instance) return instance.tags;
    const snapshot = [...this.snapshots.values()].find((s) => s.arn === arn);
    if (snapshot) return snapshot.tags;
    const clusterTags = this.clusters.tagsOf(arn);
    if (clusterTags) return clusterTags;
    // GUESS: an ARN naming nothing is answered with the not-found fault of its resource type (ListTagsForResource
    // documents DBClusterNotFoundFault, DBInstanceNotFound, DBSnapshotNotFound, ...); the message is the stand-in's.
    if (/:cluster:/.test(arn)) throw new RdsFault('DBClusterNotFoundFault', `DBCluster ${arn} not found.`, 404);
    if (/:cluster-snapshot:/.test(arn)) throw new RdsFault('DBClusterSnapshotNotFoundFault', `DBClusterSnapshot ${arn} not found.`, 404);
    if (/:snapshot:/.test(arn)) throw new RdsFault('DBSnapshotNotFound', `DBSnapshot ${arn} not found.`, 404);
    throw new RdsFault('DBInstanceNotFound', `DBInstance ${arn} not found.`, 404);
  }

  /**
   * AddTagsToResource. GUESS: a tag whose key the resource already has
   * replaces that tag's value (the API reference says only "Adds metadata
   * tags"; the user guide's "Tagging Amazon Aurora and Amazon RDS resources"
   * is the closest page).
   */
  addTags(arn: string, tags: readonly Tag[]): void {
    const list = this.tagsOf(arn);
    for (const tag of tags) {
      const at = list.findIndex((t) => t.Key === tag.Key);
      if (at >= 0) list.splice(at, 1, { ...tag });
      else list.push({ ...tag });
    }
  }

  // ------------------------------------------------------------ actions

  async createSnapshot(instanceId: string, snapshotId: string, tags: Tag[]): Promise<StandInSnapshot> {
    const instance = this.instance(instanceId);
    if (instance.dbClusterId) {
      // GUESS: refused, with this code and wording: an Aurora instance's data is its DB cluster's volume, snapshotted with
      // CreateDBClusterSnapshot (closest page: Aurora User Guide, "Creating a DB cluster snapshot").
      throw new RdsFault('InvalidDBInstanceState', `DB instance ${instance.id} is a member of DB cluster ${instance.dbClusterId}; `
        + 'snapshot the DB cluster with CreateDBClusterSnapshot instead.');
    }
    if (this.snapshots.has(snapshotId.toLowerCase())) {
      throw new RdsFault('DBSnapshotAlreadyExists', `Cannot create the snapshot because a snapshot with the identifier ${snapshotId} already exists.`);
    }
    if (instance.status !== 'available' || !instance.cluster) {
      throw new RdsFault('InvalidDBInstanceState', `Cannot create a snapshot because the database instance ${instance.id} is not currently in the available state.`);
    }
    const snapshot: StandInSnapshot = {
      id: snapshotId.toLowerCase(),
      arn: `arn:aws:rds:${this.region}:${this.accountId}:snapshot:${snapshotId.toLowerCase()}`,
      instanceId: instance.id,
      status: 'creating',
      createdAt: new Date(),
      tags: [...tags],
    };
    this.snapshots.set(snapshot.id, snapshot);
    const cluster = instance.cluster;
    // GUESS: the source stays `available` while the snapshot is taken (RDS may show `backing-up` on single-AZ instances).
    this.inBackground(async () => {
      const minimum = sleep(this.timing.snapshotMs);
      try {
        snapshot.backupDir = await cluster.baseBackup();
        await minimum;
        snapshot.status = this.faults.snapshotEndsIn ?? 'available';
      } catch (err) {
        snapshot.status = 'failed';
        this.warn(`snapshot ${snapshot.id} failed: ${(err as Error).message}`);
      }
    });
    return snapshot;
  }

  async restoreToPointInTime(request: {
    readonly sourceId: string;
    readonly targetId: string;
    readonly restoreTime?: Date;
    readonly useLatest: boolean;
    readonly port?: number;
    readonly instanceClass?: string;
    readonly subnetGroup?: string;
    readonly securityGroups: readonly string[];
    readonly parameterGroup?: string;
    readonly optionGroup?: string;
    readonly backupRetentionPeriod?: number;
    readonly tags: Tag[];
  }): Promise<StandInInstance> {
    if (request.restoreTime && request.useLatest) {
      throw new RdsFault('InvalidParameterCombination', 'Cannot specify both RestoreTime and UseLatestRestorableTime.');
    }
    if (!request.restoreTime && !request.useLatest) {
      // GUESS: RDS's wording; the API reference says one of the two is required.
      throw new RdsFault('InvalidParameterCombination', 'Either RestoreTime or UseLatestRestorableTime must be specified.');
    }
    const source = this.instance(request.sourceId);
    const targetId = request.targetId.toLowerCase();
    if (this.instances.has(targetId)) throw new RdsFault('DBInstanceAlreadyExists', 'DB instance already exists');
    const refusal = this.faults.refuseRestore;
    if (refusal) {
      this.faults = { ...this.faults, refuseRestore: undefined };
      throw new RdsFault(refusal.code, refusal.message);
    }
    if (!source.automatedBackup || source.backupRetentionPeriod === 0 || !source.cluster) {
      throw new RdsFault('PointInTimeRestoreNotEnabled', `Point-in-time restore is not enabled for DB instance ${source.id}.`);
    }
    const latest = this.latestRestorableTime(source)!;
    const target = request.useLatest ? latest : request.restoreTime!;
    if (target < source.automatedBackup.earliest || target > latest) {
      // GUESS: the message; the code InvalidRestoreFault is what RDS answers for a time outside the window.
      throw new RdsFault('InvalidRestoreFault', `Restore time ${target.toISOString()} is outside the restorable window `
        + `${source.automatedBackup.earliest.toISOString()} - ${latest.toISOString()} of DB instance ${source.id}.`);
    }
    const instance: StandInInstance = {
      ...this.newInstanceFields(targetId),
      status: 'creating',
      engineVersion: source.engineVersion,
      instanceClass: request.instanceClass ?? source.instanceClass,
      masterUsername: source.masterUsername,
      backupRetentionPeriod: request.backupRetentionPeriod ?? source.backupRetentionPeriod,
      subnetGroup: request.subnetGroup ?? source.subnetGroup,
      securityGroups: request.securityGroups.length > 0 ? [...request.securityGroups] : [...source.securityGroups],
      parameterGroup: request.parameterGroup ?? source.parameterGroup,
      optionGroup: request.optionGroup ?? source.optionGroup,
      // GUESS: a restored instance has no RDS-managed master secret of its own (the restore does not ask for one).
      masterUserSecretArn: undefined,
      tags: [...request.tags],
      requestedPort: request.port,
      pendingMasterPassword: false,
      deleteRequested: false,
    };
    this.instances.set(targetId, instance);
    this.record(instance);
    const sourceCluster = source.cluster;
    const backupDir = source.automatedBackup.dir;
    this.inBackground(async () => {
      const minimum = sleep(this.timing.creatingMs);
      let cluster: LocalCluster;
      try {
        const placed = await this.placement.restoreCopy(sourceCluster, backupDir, target, request.port);
        cluster = placed.cluster;
        instance.host = placed.host;
      } catch (err) {
        this.warn(`restore of ${targetId} failed: ${(err as Error).message}`);
        // GUESS: a restore that cannot complete ends in `failed` (RDS also uses `incompatible-restore`).
        if (!instance.deleteRequested) this.setStatus(instance, 'failed');
        else this.forget(instance);
        return;
      }
      instance.cluster = cluster;
      if (instance.deleteRequested) return this.finishDelete(instance);
      await this.faults.onCopyUp?.(targetId, cluster);
      await minimum;
      if (instance.deleteRequested) return this.finishDelete(instance);
      const ending = this.faults.restoreEndsIn;
      if (ending) return this.setStatus(instance, ending);
      // GUESS: a restored instance goes through `backing-up` (its first automated backup) before `available`,
      // even with BackupRetentionPeriod 0; the runner must wait it out either way.
      this.setStatus(instance, 'backing-up');
      await sleep(this.timing.backingUpMs);
      if (instance.status === 'backing-up') this.setStatus(instance, 'available');
    });
    return instance;
  }

  /**
   * Documented: a MasterUserPassword change is applied asynchronously as soon
   * as possible, whatever ApplyImmediately says, and shows in
   * PendingModifiedValues until it is done.
   */
  async setMasterPassword(id: string, password: string): Promise<StandInInstance> {
    const instance = this.instance(id);
    if (instance.dbClusterId) {
      // Documented (ModifyDBInstance, MasterUserPassword): doesn't apply to Amazon Aurora, "The password for the master
      // user is managed by the DB cluster". GUESS: the fault code and wording of the refusal.
      throw new RdsFault('InvalidParameterCombination', `DB instance ${instance.id} is a member of DB cluster ${instance.dbClusterId}; `
        + 'set the master user password on the DB cluster with ModifyDBCluster.');
    }
    if (!MODIFIABLE.includes(instance.status) || !instance.cluster) {
      // GUESS: RDS's wording.
      throw new RdsFault('InvalidDBInstanceState', `Database instance is not in available state (${instance.id} is ${instance.status}).`);
    }
    instance.pendingMasterPassword = true;
    const cluster = instance.cluster;
    this.inBackground(async () => {
      // GUESS: the sequence and its timing: `modifying`, then `resetting-master-credentials`, then `available`;
      // the new password works from the end of `resetting-master-credentials`.
      this.setStatus(instance, 'modifying');
      await sleep(this.timing.modifyingMs);
      if (instance.deleteRequested) return;
      this.setStatus(instance, 'resetting-master-credentials');
      await sleep(this.timing.resettingCredentialsMs);
      if (instance.deleteRequested) return;
      await setRolePassword(cluster, instance.masterUsername, password);
      instance.pendingMasterPassword = false;
      this.setStatus(instance, 'available');
    });
    return instance;
  }

  async deleteInstance(id: string, options: { readonly skipFinalSnapshot: boolean; readonly finalSnapshotId?: string }): Promise<StandInInstance> {
    const instance = this.instance(id);
    if (instance.dbClusterId) return this.clusters.deleteMember(instance);
    if (instance.status === 'deleting') {
      throw new RdsFault('InvalidDBInstanceState', `Instance ${instance.id} is already being deleted.`);
    }
    if (this.faults.refuseDeleteIn?.includes(instance.status)) {
      throw new RdsFault('InvalidDBInstanceState', `Instance ${instance.id} is currently ${instance.status}; it cannot be deleted now.`);
    }
    if (!options.skipFinalSnapshot && !options.finalSnapshotId) {
      throw new RdsFault('InvalidParameterCombination', 'FinalDBSnapshotIdentifier is required unless SkipFinalSnapshot is specified.');
    }
    if (!options.skipFinalSnapshot) throw new RdsFault('InvalidParameterValue', 'The RDS stand-in does not implement final snapshots; pass SkipFinalSnapshot=true.');
    // GUESS: RDS refuses to delete an instance that is still `creating`, even with SkipFinalSnapshot. Sources: the RDS
    // API reference's DeleteDBInstance lists InvalidDBInstanceState, "The specified DB instance isn't in the available
    // state" (HTTP 400), and names only failed/incompatible-restore/incompatible-network as deletable (with
    // SkipFinalSnapshot) outside `available`; CloudFormation stacks report "Instance <id> is currently creating - a final
    // snapshot cannot be taken" for a delete during creation. Nothing found says a creating instance is deleted without
    // a final snapshot, so the stand-in takes the stricter answer, which the cleanup must survive (the sweep).
    if (instance.status === 'creating' && !this.faults.acceptDeleteWhileCreating) {
      throw new RdsFault('InvalidDBInstanceState', `Instance ${instance.id} is currently creating; it cannot be deleted until it is available.`);
    }
    instance.deleteRequested = true;
    this.setStatus(instance, 'deleting');
    // A still-creating instance is removed by its restore task once its cluster is up.
    if (instance.cluster || instance.automatedBackup) this.inBackground(() => this.finishDelete(instance));
    return instance;
  }

  // ------------------------------------------------------------ lifetime

  /** Waits for every background task (restores, snapshots, deletions, password changes). */
  async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** Waits until `id` no longer exists (deleted and its cluster gone). */
  async waitUntilGone(id: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.instances.has(id)) {
      if (Date.now() > deadline) throw new Error(`stand-in: ${id} still exists after ${timeoutMs} ms (status ${this.instances.get(id)!.status}).`);
      await sleep(50);
    }
  }

  /**
   * Lets go of `id` without removing its cluster: it is no longer an
   * instance here and `dispose` leaves it running (the rehearsal's `--keep`).
   */
  release(id: string): LocalCluster | undefined {
    const instance = this.instance(id);
    const cluster = instance.cluster;
    instance.cluster = undefined;
    this.forget(instance);
    return cluster;
  }

  /** Stops and removes every cluster, the source's included. */
  async dispose(): Promise<void> {
    await this.settled();
    await this.clusters.dispose();
    for (const instance of this.instances.values()) {
      instance.deleteRequested = true;
      await instance.cluster?.destroy().catch((err) => this.warn(`could not remove ${instance.id}: ${(err as Error).message}`));
      instance.cluster = undefined;
    }
    this.instances.clear();
  }

  // ------------------------------------------------------------ internals

  /** @internal */
  newInstanceFields(id: string): Pick<StandInInstance, 'id' | 'arn' | 'resourceId' | 'createdAt'> {
    return {
      id,
      arn: `arn:aws:rds:${this.region}:${this.accountId}:db:${id}`,
      resourceId: `db-${randomBytes(13).toString('base64url').toUpperCase().replace(/[^A-Z0-9]/g, 'X').slice(0, 26)}`,
      createdAt: new Date(),
    };
  }

  private async finishDelete(instance: StandInInstance): Promise<void> {
    const minimum = sleep(this.timing.deletingMs);
    const cluster = instance.cluster;
    instance.cluster = undefined;
    await cluster?.destroy().catch((err) => this.warn(`could not remove the cluster of ${instance.id}: ${(err as Error).message}`));
    await minimum;
    this.forget(instance);
  }

  /** @internal */
  forget(instance: StandInInstance): void {
    if (this.instances.get(instance.id) === instance) this.instances.delete(instance.id);
    this.history.get(instance.id)?.push('(gone)');
  }

  /** @internal */
  setStatus(instance: StandInInstance, status: string): void {
    if (instance.deleteRequested && status !== 'deleting') return;
    instance.status = status;
    this.record(instance);
  }

  /** @internal */
  record(instance: StandInInstance): void {
    const seen = this.history.get(instance.id) ?? [];
    if (seen[seen.length - 1] !== instance.status) seen.push(instance.status);
    this.history.set(instance.id, seen);
  }

  /** @internal */
  inBackground(task: () => Promise<void>): void {
    const promise: Promise<void> = task()
      .catch((err) => this.warn(`background task failed: ${(err as Error).message}`))
      .finally(() => this.background.delete(promise));
    this.background.add(promise);
  }

  /** @internal */
  warn(message: string): void {
    process.stderr.write(`rds stand-in: ${message}\n`);
  }
}

/** Plain loopback clusters without TLS, every instance on 127.0.0.1. */
export function loopbackPlacement(): StandInPlacement {
  return {
    createSource: async (master) => {
      const cluster = await LocalCluster.create({ archiveWal: true, master });
      return { cluster, host: cluster.host };
    },
    restoreCopy: async (source, backupDir, target) => {
      const cluster = await restorePointInTimeCopy(source, backupDir, target);
      return { cluster, host: cluster.host };
    },
  };
}
