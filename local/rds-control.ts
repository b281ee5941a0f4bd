/**
 * The RDS control plane, played by local PostgreSQL clusters: the rehearsal
 * and the tests run the real runbook through it.
 *
 * - The source "instance" is a `LocalCluster` with a WAL archive and an
 *   RDS-like master user (not a superuser).
 * - Its "automated backup" is a base backup taken by `create`; the
 *   restorable window runs from then to now.
 * - `restoreToPointInTime` is a real point-in-time recovery (base backup +
 *   WAL archive + `recovery_target_time`) into a new cluster, started in the
 *   background: the instance is `creating`, then `available`. It keeps the
 *   master password it had at the restore time, as on RDS.
 * - A snapshot is a base backup; `restoreSnapshot` brings one up.
 * - Tags live in memory. The master user owns the `postgres` database, as on RDS.
 *
 * `faults` injects failures for tests; the AWS adapter has nothing like it.
 */
import { rm, statfs } from 'node:fs/promises';
import { LocalCluster, SECOND_HOST, sleep } from './cluster';
import { restorePointInTimeCopy, setRolePassword, takeAutomatedBackup } from './pitr-copy';
import type { BuildStatus, InstanceState, OriginalStorage, RdsControl, SafetySnapshot, SourceInstance, TemporaryInstanceSpec } from '../buildspec/runner/ports';
import { LATEST, TAGS, stampOfSafetySnapshot, type RestoreWindow } from '../src/contract';

export interface LocalFaults {
  /** `restoreToPointInTime` rejects with this message and creates nothing (like InvalidRestoreFault). */
  readonly refuseRestore?: string;
  /** The temporary instance ends in this status (e.g. `failed`) instead of `available`. */
  readonly restoreEndsIn?: string;
  /** The safety snapshot ends in this status (e.g. `failed`) instead of `available`. */
  readonly snapshotEndsIn?: string;
  /** Runs once the point-in-time copy is up, before it reports `available`. */
  readonly onTemporaryInstanceUp?: (id: string, cluster: LocalCluster) => Promise<void>;
  /** `originalStorage` answers nothing, like CloudWatch without a recent FreeStorageSpace datapoint. */
  readonly storageUnmeasured?: boolean;
}

export interface LocalRdsControlOptions {
  /** The instance to recover into: created with `archiveWal` and `master`. */
  readonly source: LocalCluster;
  readonly sourceId: string;
  readonly masterUsername: string;
  /** Overrides of what `describeSource` reports (e.g. `{ engine: 'mysql' }` to test refusals). */
  readonly sourceOverrides?: Partial<SourceInstance>;
  /**
   * Where temporary instances listen: another host than the source by
   * default, as on RDS, so the data path takes its two-host route.
   * @default SECOND_HOST
   */
  readonly temporaryHost?: string;
  /** Reported as the source's RDS-managed master secret (`MasterUserSecret`). @default - the password is not managed by RDS */
  readonly masterUserSecretArn?: string;
  /** What "storage autoscaling" may still add to the source, in bytes. @default 0 */
  readonly growableBytes?: number;
  /** How long a master password change stays pending. @default 300 */
  readonly passwordChangeDelayMs?: number;
  readonly faults?: LocalFaults;
}

interface LocalInstance {
  readonly id: string;
  status: string;
  readonly tags: Readonly<Record<string, string>>;
  cluster?: LocalCluster;
  pendingPasswordChange: boolean;
  deleted: boolean;
}

interface LocalSnapshot {
  status: string;
  createdAt: Date;
  backupDir?: string;
}

/** A mutating call, recorded so tests can assert what was (not) created. */
export interface LocalCall {
  readonly action: 'startSnapshot' | 'restoreToPointInTime' | 'setMasterPassword' | 'deleteInstance' | 'deleteSnapshot';
  readonly id: string;
  readonly detail?: Readonly<Record<string, unknown>>;
}

export class LocalRdsControl implements RdsControl {
  /** Takes the "automated backup" that anchors the restorable window. */
  static async create(options: LocalRdsControlOptions): Promise<LocalRdsControl> {
    if (!options.source.archiveDir) throw new Error('LocalRdsControl: the source cluster must be created with archiveWal.');
    const backup = await takeAutomatedBackup(options.source, options.masterUsername);
    return new LocalRdsControl(options, backup.dir, backup.time);
  }

  readonly calls: LocalCall[] = [];
  /** Failures to inject from now on (tests change them between runs). */
  faults: LocalFaults;
  private readonly instances = new Map<string, LocalInstance>();
  private readonly snapshots = new Map<string, LocalSnapshot>();
  private readonly background = new Set<Promise<void>>();

  private constructor(private readonly options: LocalRdsControlOptions, private readonly backupDir: string, private readonly backupTime: Date) {
    this.faults = options.faults ?? {};
  }

  get source(): LocalCluster {
    return this.options.source;
  }

  async describeSource(id: string): Promise<SourceInstance> {
    this.assertSource(id);
    const version = await this.source.sql('SHOW server_version');
    return {
      id,
      status: 'available',
      engine: 'postgres',
      engineVersion: version,
      endpoint: { host: this.source.host, port: this.source.port },
      masterUsername: this.options.masterUsername,
      dbSubnetGroupName: 'local',
      vpcSecurityGroupIds: [],
      dbParameterGroupName: 'local',
      backupRetentionPeriod: 7,
      ...(this.options.masterUserSecretArn ? { masterUserSecretArn: this.options.masterUserSecretArn } : {}),
      ...this.options.sourceOverrides,
    };
  }

  /** Free space of the file system holding the source's data directory (the local FreeStorageSpace). */
  async originalStorage(source: SourceInstance): Promise<OriginalStorage | undefined> {
    this.assertSource(source.id);
    if (this.faults.storageUnmeasured) return undefined;
    // The base directory holds the data directory: same file system, and readable when the data directory (0700, postgres) is not.
    const fs = await statfs(this.source.baseDir);
    return { freeBytes: fs.bavail * fs.bsize, growableBytes: this.options.growableBytes ?? 0 };
  }

  async restorableWindow(id: string): Promise<RestoreWindow> {
    this.assertSource(id);
    return { earliest: this.backupTime, latest: new Date() };
  }

  async findInstancesByTag(key: string, value: string): Promise<InstanceState[]> {
    return [...this.instances.values()].filter((i) => !i.deleted && i.tags[key] === value).map((i) => this.stateOf(i));
  }

  async startSnapshot(sourceId: string, snapshotId: string, tags: Readonly<Record<string, string>>): Promise<void> {
    this.assertSource(sourceId);
    if (this.snapshots.has(snapshotId)) throw new Error(`DBSnapshotAlreadyExists: snapshot ${snapshotId} already exists.`);
    this.calls.push({ action: 'startSnapshot', id: snapshotId, detail: { tags } });
    const snapshot: LocalSnapshot = { status: 'creating', createdAt: new Date() };
    this.snapshots.set(snapshotId, snapshot);
    this.inBackground(async () => {
      try {
        snapshot.backupDir = await this.source.baseBackup();
        snapshot.status = this.faults.snapshotEndsIn ?? 'available';
      } catch {
        snapshot.status = 'failed';
      }
    });
  }

  async snapshotStatus(snapshotId: string): Promise<string> {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot) throw new Error(`DBSnapshotNotFound: snapshot ${snapshotId} not found.`);
    return snapshot.status;
  }

  /** Every snapshot of the source named `<source>-pre-pitr-<stamp>`; all local snapshots are of the source. */
  async listSafetySnapshots(sourceId: string): Promise<SafetySnapshot[]> {
    this.assertSource(sourceId);
    return [...this.snapshots.entries()]
      .filter(([id]) => stampOfSafetySnapshot(sourceId, id) !== undefined)
      .map(([id, s]) => ({ id, status: s.status, createdAt: s.createdAt }));
  }

  async deleteSnapshot(snapshotId: string): Promise<void> {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot) throw new Error(`DBSnapshotNotFound: snapshot ${snapshotId} not found.`);
    if (snapshot.status !== 'available') throw new Error(`InvalidDBSnapshotState: snapshot ${snapshotId} is ${snapshot.status}.`);
    this.calls.push({ action: 'deleteSnapshot', id: snapshotId });
    this.snapshots.delete(snapshotId);
    if (snapshot.backupDir) await rm(snapshot.backupDir, { recursive: true, force: true });
  }

  /** Moves a snapshot's creation time back (tests of age selection; RDS has no such call). */
  backdateSnapshot(snapshotId: string, createdAt: Date): void {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot) throw new Error(`DBSnapshotNotFound: snapshot ${snapshotId} not found.`);
    snapshot.createdAt = createdAt;
  }

  async restoreToPointInTime(spec: TemporaryInstanceSpec): Promise<void> {
    this.assertSource(spec.source.id);
    this.calls.push({ action: 'restoreToPointInTime', id: spec.id, detail: { restoreTime: spec.restoreTime, instanceClass: spec.instanceClass, tags: spec.tags, allocatedStorageGiB: spec.allocatedStorageGiB } });
    if (this.faults.refuseRestore) throw new Error(this.faults.refuseRestore);
    const existing = this.instances.get(spec.id);
    if (existing && !existing.deleted) throw new Error(`DBInstanceAlreadyExists: instance ${spec.id} already exists.`);
    if (spec.restoreTime !== LATEST) {
      const window = await this.restorableWindow(spec.source.id);
      if (spec.restoreTime < window.earliest || spec.restoreTime > window.latest) {
        throw new Error(`InvalidRestoreFault: restore time ${spec.restoreTime.toISOString()} is outside the restorable window ${window.earliest.toISOString()} .. ${window.latest.toISOString()}.`);
      }
    }
    const instance: LocalInstance = { id: spec.id, status: 'creating', tags: { ...spec.tags }, pendingPasswordChange: false, deleted: false };
    this.instances.set(spec.id, instance);
    this.inBackground(async () => {
      try {
        const host = this.options.temporaryHost ?? SECOND_HOST;
        const cluster = await restorePointInTimeCopy(this.source, this.backupDir, spec.restoreTime, { host });
        instance.cluster = cluster;
        if (instance.deleted) return await this.destroy(instance);
        await this.faults.onTemporaryInstanceUp?.(spec.id, cluster);
        instance.status = this.faults.restoreEndsIn ?? 'available';
      } catch (err) {
        if (!instance.deleted) instance.status = 'failed';
        process.stderr.write(`local adapter: restore of ${spec.id} failed: ${(err as Error).message}\n`);
      }
    });
  }

  async describeInstance(id: string): Promise<InstanceState> {
    const instance = this.instances.get(id);
    if (!instance || instance.deleted) throw new Error(`DBInstanceNotFound: instance ${id} not found.`);
    return this.stateOf(instance);
  }

  async setMasterPassword(id: string, password: string): Promise<void> {
    const instance = this.instances.get(id);
    if (!instance || instance.deleted) throw new Error(`DBInstanceNotFound: instance ${id} not found.`);
    if (instance.status !== 'available' || !instance.cluster) throw new Error(`InvalidDBInstanceState: instance ${id} is ${instance.status}.`);
    this.calls.push({ action: 'setMasterPassword', id });
    instance.status = 'resetting-master-credentials';
    instance.pendingPasswordChange = true;
    const cluster = instance.cluster;
    this.inBackground(async () => {
      await sleep(this.options.passwordChangeDelayMs ?? 300);
      if (instance.deleted) return;
      await setRolePassword(cluster, this.options.masterUsername, password);
      instance.pendingPasswordChange = false;
      instance.status = 'available';
    });
  }

  async deleteInstance(id: string): Promise<void> {
    const instance = this.instances.get(id);
    if (!instance || instance.deleted) throw new Error(`DBInstanceNotFound: instance ${id} not found.`);
    this.calls.push({ action: 'deleteInstance', id });
    instance.deleted = true;
    instance.status = 'deleting';
    // A still-creating instance is destroyed by its restore task when the cluster comes up.
    if (instance.cluster) this.inBackground(() => this.destroy(instance));
  }

  /** The point-in-time copy behind a temporary instance, while it exists (for tests). */
  temporaryCluster(id: string): LocalCluster | undefined {
    const instance = this.instances.get(id);
    return instance && !instance.deleted ? instance.cluster : undefined;
  }

  /** Ids of temporary instances not deleted yet. */
  liveInstanceIds(): string[] {
    return [...this.instances.values()].filter((i) => !i.deleted).map((i) => i.id);
  }

  /** Brings a safety snapshot up as a new cluster: the original as it was when the snapshot was taken. */
  async restoreSnapshot(snapshotId: string): Promise<LocalCluster> {
    const snapshot = this.snapshots.get(snapshotId);
    if (!snapshot?.backupDir || snapshot.status !== 'available') throw new Error(`snapshot ${snapshotId} is not available (${snapshot?.status ?? 'not found'}).`);
    return this.source.recoverTo(snapshot.backupDir, 'immediate');
  }

  /** Waits for every background task (restores, snapshots, deletions) to finish. */
  async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  /** Destroys every temporary instance still up; the source is the caller's. */
  async dispose(): Promise<void> {
    await this.settled();
    for (const instance of this.instances.values()) {
      instance.deleted = true;
      await this.destroy(instance);
    }
  }

  private async destroy(instance: LocalInstance): Promise<void> {
    const cluster = instance.cluster;
    instance.cluster = undefined;
    await cluster?.destroy();
  }

  private inBackground(task: () => Promise<void>): void {
    const promise: Promise<void> = task()
      .catch((err) => {
        process.stderr.write(`local adapter: background task failed: ${(err as Error).message}\n`);
      })
      .finally(() => this.background.delete(promise));
    this.background.add(promise);
  }

  private stateOf(instance: LocalInstance): InstanceState {
    return {
      id: instance.id,
      status: instance.status,
      endpoint: instance.cluster && instance.status !== 'creating' ? { host: instance.cluster.host, port: instance.cluster.port } : undefined,
      pendingPasswordChange: instance.pendingPasswordChange,
      buildId: instance.tags[TAGS.BUILD_ID],
    };
  }

  private assertSource(id: string): void {
    if (id !== this.options.sourceId) throw new Error(`DBInstanceNotFound: instance ${id} not found (the local instance is ${this.options.sourceId}).`);
  }
}

/**
 * CodeBuild's build states, played locally: the tests and the rehearsal set
 * which builds are running; ids never set are unknown, as to CodeBuild.
 */
export class LocalBuilds implements BuildStatus {
  private readonly states = new Map<string, string>();

  set(buildId: string, status: string): void {
    this.states.set(buildId, status);
  }

  async statusOf(buildIds: readonly string[]): Promise<ReadonlyMap<string, string>> {
    return new Map(buildIds.flatMap((id) => (this.states.has(id) ? [[id, this.states.get(id)!] as const] : [])));
  }
}
