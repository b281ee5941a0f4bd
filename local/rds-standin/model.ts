/**
 * The RDS stand-in's data types (engine.ts holds the state and behaviour):
 * timing, faults, placement, instances and snapshots, and `StandInEngineCore`,
 * the part of the engine that the Aurora DB clusters (clusters.ts) use.
 * They are here, not in engine.ts, so that clusters.ts and engine.ts do not
 * import each other.
 */
import type { LocalCluster } from '../cluster';
import type { Tag } from './query-protocol';

/** Minimum time spent in each transitional status. Real RDS takes minutes; tests take milliseconds. */
export interface StandInTiming {
  /** `creating`: at least this long, and until the point-in-time copy is up. */
  readonly creatingMs: number;
  readonly backingUpMs: number;
  /** `modifying` after ModifyDBInstance, before `resetting-master-credentials`. */
  readonly modifyingMs: number;
  readonly resettingCredentialsMs: number;
  /** `deleting`: at least this long, and until the cluster is gone. */
  readonly deletingMs: number;
  /** A manual snapshot stays `creating` at least this long, and until its base backup is taken. */
  readonly snapshotMs: number;
  /** A copy-on-write clone stays `creating` at least this long (a full copy: `creatingMs`). */
  readonly cloneCreatingMs: number;
}

export const FAST_TIMING: StandInTiming = {
  creatingMs: 200, backingUpMs: 200, modifyingMs: 150, resettingCredentialsMs: 150, deletingMs: 200, snapshotMs: 100, cloneCreatingMs: 100,
};

/** Failures to inject; tests change them between calls. */
export interface StandInFaults {
  /** The next RestoreDBInstanceToPointInTime is refused with this fault; nothing is created. */
  refuseRestore?: { readonly code: string; readonly message: string };
  /** A temporary instance ends in this status (e.g. `failed`) instead of `available`. */
  restoreEndsIn?: string;
  /** DeleteDBInstance is refused with InvalidDBInstanceState while the instance is in one of these statuses. */
  refuseDeleteIn?: readonly string[];
  /** Accept DeleteDBInstance on a `creating` instance (refused by default, as RDS is assumed to; see deleteInstance). */
  acceptDeleteWhileCreating?: boolean;
  /** The safety snapshot ends in this status instead of `available`. */
  snapshotEndsIn?: string;
  /** Runs once a point-in-time copy is up, before its instance (or DB cluster) leaves `creating`. */
  onCopyUp?: (id: string, cluster: LocalCluster) => Promise<void>;
  /** The next RestoreDBClusterToPointInTime is refused with this fault; nothing is created. */
  refuseClusterRestore?: { readonly code: string; readonly message: string };
  /** A restored DB cluster ends in this status (e.g. `failed`) instead of `available`. */
  clusterRestoreEndsIn?: string;
  /** Accept DeleteDBCluster on a `creating` DB cluster (refused by default; see deleteDbCluster). */
  acceptClusterDeleteWhileCreating?: boolean;
  /** A DB cluster snapshot ends in this status instead of `available`. */
  clusterSnapshotEndsIn?: string;
}

/** A cluster and the host its clients use (the instance's endpoint address). */
export interface PlacedCluster {
  readonly cluster: LocalCluster;
  readonly host: string;
}

/** Where instances listen and how they serve TLS. */
export interface StandInPlacement {
  /** Starts the source instance's cluster (WAL archiving, RDS-like master user). */
  createSource(master: { readonly username: string; readonly password: string }): Promise<PlacedCluster>;
  /** Brings up a point-in-time copy of `source`, listening on `port` when it is free. */
  restoreCopy(source: LocalCluster, backupDir: string, target: Date, port: number | undefined): Promise<PlacedCluster>;
}

export interface StandInOptions {
  readonly region?: string;
  readonly accountId?: string;
  readonly timing?: Partial<StandInTiming>;
  readonly faults?: StandInFaults;
  readonly placement?: StandInPlacement;
}

export interface SourceInstanceSpec {
  readonly id: string;
  readonly masterUsername: string;
  readonly masterPassword: string;
  readonly instanceClass?: string;
  readonly backupRetentionPeriod?: number;
  /** ARN of the RDS-managed master secret, when the instance has one (ManageMasterUserPassword). */
  readonly masterUserSecretArn?: string;
  readonly tags?: readonly Tag[];
}

export interface StandInInstance {
  readonly id: string;
  readonly arn: string;
  readonly resourceId: string;
  status: string;
  readonly engineVersion: string;
  readonly instanceClass: string;
  readonly masterUsername: string;
  readonly createdAt: Date;
  readonly backupRetentionPeriod: number;
  readonly subnetGroup: string;
  readonly securityGroups: readonly string[];
  readonly parameterGroup: string;
  readonly optionGroup: string;
  readonly masterUserSecretArn?: string;
  tags: Tag[];
  /** The port asked for at restore time (RDS keeps it). */
  readonly requestedPort?: number;
  cluster?: LocalCluster;
  /** The endpoint address of `cluster`. */
  host?: string;
  pendingMasterPassword: boolean;
  /** Only the source has one: its automated backup. */
  automatedBackup?: { readonly dir: string; readonly earliest: Date };
  /** Set by DeleteDBInstance; the instance disappears once its cluster is gone. */
  deleteRequested: boolean;
  /** An Aurora DB cluster's member: its DB cluster (whose volume it serves; `cluster` stays unset). */
  readonly dbClusterId?: string;
}

export interface StandInSnapshot {
  readonly id: string;
  readonly arn: string;
  readonly instanceId: string;
  status: string;
  readonly createdAt: Date;
  readonly tags: Tag[];
  backupDir?: string;
}

/** What clusters.ts uses of the engine (RdsStandInEngine implements it). */
export interface StandInEngineCore {
  readonly region: string;
  readonly accountId: string;
  readonly timing: StandInTiming;
  faults: StandInFaults;
  readonly placement: StandInPlacement;
  readonly instances: Map<string, StandInInstance>;
  listInstances(): StandInInstance[];
  newInstanceFields(id: string): Pick<StandInInstance, 'id' | 'arn' | 'resourceId' | 'createdAt'>;
  forget(instance: StandInInstance): void;
  setStatus(instance: StandInInstance, status: string): void;
  record(instance: StandInInstance): void;
  inBackground(task: () => Promise<void>): void;
  warn(message: string): void;
}
