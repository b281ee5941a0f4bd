/**
 * The two edges the recovery workflow talks to. The workflow depends on
 * these interfaces only, so the same runbook runs against AWS, against local
 * PostgreSQL clusters (the rehearsal), and in tests.
 */
import type { StepLog } from './log';
import type { Hazard, MarkedName, RestoreWindow, SourceKind, Strategy, TableMode, TableName } from '../../src/contract';

// ---------------------------------------------------------------- control plane

/**
 * What the workflow needs to know about the instance being recovered, or
 * the Aurora DB cluster (`kind: 'cluster'`, issue #20), whose endpoint is
 * its writer endpoint.
 */
export interface SourceInstance {
  readonly id: string;
  /** @default 'instance' */
  readonly kind?: SourceKind;
  readonly status: string;
  /** e.g. `postgres`, `aurora-postgresql` */
  readonly engine: string;
  readonly engineVersion: string;
  readonly endpoint: DbEndpoint;
  readonly masterUsername: string;
  readonly dbSubnetGroupName?: string;
  readonly vpcSecurityGroupIds: readonly string[];
  /** The DB parameter group (a cluster: its writer instance's). */
  readonly dbParameterGroupName?: string;
  readonly optionGroupName?: string;
  readonly backupRetentionPeriod: number;
  /** ARN of the secret RDS manages for the master password (`ManageMasterUserPassword`), if it does. */
  readonly masterUserSecretArn?: string;
  /** Storage the temporary instance should match, so that it is not slower than the source. */
  readonly storage?: SourceStorage;
  /** The DB cluster the instance belongs to (DBClusterIdentifier): a Multi-AZ DB cluster member, or Aurora. */
  readonly clusterId?: string;
  /** A cluster: its writer instance (DBClusterMembers IsClusterWriter), when it has one. */
  readonly writer?: { readonly id: string; readonly instanceClass?: string };
  /** A cluster: its DB cluster parameter group. */
  readonly clusterParameterGroupName?: string;
  /** A cluster: the KMS key of its encrypted storage; undefined when not encrypted. */
  readonly kmsKeyId?: string;
  /** A cluster with Aurora Serverless v2 capacity: its scaling range, in ACUs. */
  readonly serverlessV2Scaling?: { readonly minCapacity?: number; readonly maxCapacity?: number };
}

/** The source's storage settings, as DescribeDBInstances reports them. */
export interface SourceStorage {
  /** `gp2`, `gp3`, `io1`, `io2`, `standard`. */
  readonly type?: string;
  /** Provisioned IOPS (io1, io2, gp3). */
  readonly iops?: number;
  /** Provisioned throughput in MiB/s (gp3). */
  readonly throughputMiBps?: number;
  /** Allocated storage in GiB. */
  readonly allocatedGiB?: number;
  /** Storage autoscaling's upper limit in GiB; undefined when autoscaling is off. */
  readonly maxAllocatedGiB?: number;
}

/** Room on the original: what is free now, and how much more storage autoscaling may add. */
export interface OriginalStorage {
  readonly freeBytes: number;
  /** 0 when storage autoscaling is off or already at its maximum. */
  readonly growableBytes: number;
}

export interface DbEndpoint {
  readonly host: string;
  readonly port: number;
}

export interface TemporaryInstanceSpec {
  readonly id: string;
  readonly source: SourceInstance;
  /** A time inside the restorable window, or `'latest'` (UseLatestRestorableTime). */
  readonly restoreTime: Date | 'latest';
  readonly instanceClass?: string;
  readonly tags: Readonly<Record<string, string>>;
  /**
   * Allocated storage in GiB, when more than the source's is needed (a drill
   * copies a database on the temporary instance itself).
   * @default - the source's
   */
  readonly allocatedStorageGiB?: number;
  /**
   * A drill: restore as a copy-on-write clone where the restore allows one
   * (Aurora, at the latest restorable time); otherwise a full copy.
   * @default false - a full copy
   */
  readonly clone?: boolean;
}

export interface InstanceState {
  readonly id: string;
  readonly status: string;
  /** Which part the status is of, for the log, when the temporary "instance" has parts (an Aurora cluster and its writer). */
  readonly detail?: string;
  readonly endpoint?: DbEndpoint;
  /** Pending modifications still being applied (e.g. a master password reset). */
  readonly pendingPasswordChange?: boolean;
  /** The value of its `TAGS.BUILD_ID` tag, when listed by tag and tagged. */
  readonly buildId?: string;
}

/** A manual snapshot of the source named as a safety snapshot (`<source>-pre-pitr-<stamp>`). */
export interface SafetySnapshot {
  readonly id: string;
  readonly status: string;
  /** SnapshotCreateTime, when RDS reports one. */
  readonly createdAt?: Date;
  /** The snapshot's allocated storage (RDS reports no other size for a snapshot). */
  readonly allocatedGiB?: number;
}

/** RDS control-plane calls. One AWS SDK adapter, one local adapter. */
export interface RdsControl {
  describeSource(id: string): Promise<SourceInstance>;
  restorableWindow(id: string): Promise<RestoreWindow>;
  /** Live instances carrying the given tag (e.g. other temporary instances of this source). */
  findInstancesByTag(key: string, value: string): Promise<InstanceState[]>;
  startSnapshot(sourceId: string, snapshotId: string, tags: Readonly<Record<string, string>>): Promise<void>;
  /** Current snapshot status (`creating`, `available`, `failed`, ...). */
  snapshotStatus(snapshotId: string): Promise<string>;
  restoreToPointInTime(spec: TemporaryInstanceSpec): Promise<void>;
  describeInstance(id: string): Promise<InstanceState>;
  setMasterPassword(id: string, password: string): Promise<void>;
  /**
   * Free storage on the source and how far storage autoscaling may grow it,
   * or undefined when it cannot be measured (e.g. no recent CloudWatch
   * datapoint). Adapters that cannot measure at all leave it out.
   */
  originalStorage?(source: SourceInstance): Promise<OriginalStorage | undefined>;
  /** Deletes without a final snapshot and without automated backups; does not wait. */
  deleteInstance(id: string): Promise<void>;
  /** The source's manual snapshots named as safety snapshots. Adapters that cannot list snapshots leave it out. */
  listSafetySnapshots?(sourceId: string): Promise<SafetySnapshot[]>;
  /** Deletes a safety snapshot (housekeeping only). */
  deleteSnapshot?(snapshotId: string): Promise<void>;
}

/** CodeBuild, as far as the runner asks it anything: the state of builds of its own project. */
export interface BuildStatus {
  /**
   * The build status (`IN_PROGRESS`, `SUCCEEDED`, `FAILED`, ...) of each id
   * CodeBuild knows; ids it does not know are left out of the map.
   */
  statusOf(buildIds: readonly string[]): Promise<ReadonlyMap<string, string>>;
}

// ---------------------------------------------------------------- data plane

/** Where and how to connect. Passwords travel in the environment or a PGPASSFILE, never argv or logs. */
export interface PgTarget {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password?: string;
  /** The database used for catalog queries and CREATE/ALTER DATABASE, e.g. `postgres`. */
  readonly maintenanceDatabase: string;
  /** libpq sslmode; `verify-full` with `sslRootCert` on AWS. */
  readonly sslMode?: string;
  readonly sslRootCert?: string;
}

export interface CopyOptions {
  readonly databases: readonly string[];
  readonly strategy: Strategy;
  readonly jobs: number;
  /** Stamp shared by every name this run creates (`<db>__pitr_<stamp>`, `<db>__before_pitr_<stamp>`). */
  readonly stamp: string;
  /** Scratch space for dumps; removed afterwards. */
  readonly workDir: string;
  readonly log: StepLog;
  /** Aborted on SIGTERM/SIGINT: child processes are killed, nothing visible is changed after that. */
  readonly signal?: AbortSignal;
  /** Swap hazards the operator accepts; any other hazard the check step finds stops the copy before it writes. */
  readonly acceptHazards?: readonly Hazard[];
  /** Room on the original, measured by the control plane before the copy; undefined when it could not be measured. */
  readonly originalStorage?: OriginalStorage;
  /**
   * A restore drill: `target` is the temporary instance itself, each database
   * is restored there as `intoName(database)` and left (no swap, no replace),
   * and the read-only checks a recovery makes on the original (roles,
   * memberships, swap hazards under `strategy`, room) run against `original`.
   * @default - a recovery: `target` is the original
   */
  readonly drill?: { readonly original: PgTarget; readonly intoName: (database: string) => string };
}

export interface DatabaseCopyResult {
  readonly database: string;
  /** Under `swap`: the name the pre-recovery database was kept as. */
  readonly keptAs?: string;
  /** How long the database could not be written (swap critical section, or the whole replace). */
  readonly unavailableMs: number;
  readonly tables: number;
  readonly rows: number;
  readonly verified: boolean;
  /** A drill: the swap hazards a recovery of this database would have to accept or resolve now (none stops a drill). */
  readonly hazardsForRecovery?: readonly string[];
}

/**
 * SQLSTATEs of a login the server refused for its credentials
 * (invalid_password, invalid_authorization_specification), as opposed to a
 * server that could not be reached or whose certificate was not trusted.
 */
export const LOGIN_REFUSED_CODES: readonly string[] = ['28P01', '28000'];

/** True when `err` (from DataPath.checkLogin) says the server refused the credentials. */
export function isLoginRefused(err: unknown): boolean {
  return LOGIN_REFUSED_CODES.includes((err as { code?: string }).code ?? '');
}

/** A database on the original whose name carries the runner's marker (contract `DATABASE_MARKERS`) and that passed the catalog check. */
export interface MarkedDatabase extends MarkedName {
  readonly name: string;
  readonly sizeBytes: number;
  /** Sessions connected to it when listed. */
  readonly connections: number;
}

/** What the runner reads and drops on the original outside the copy itself. */
export interface OriginalCatalog {
  /** Databases named with a marker whose owner's privileges the connecting (master) user has; templates never. */
  listMarked(target: PgTarget): Promise<MarkedDatabase[]>;
  /** DROP DATABASE without FORCE: PostgreSQL refuses it while anyone is connected. */
  drop(target: PgTarget, name: string): Promise<void>;
}

/**
 * What the plan's pre-flight reads on the original, before the safety
 * snapshot and the restore (issue #19; preflight.ts). Read-only.
 */
export interface OriginalInspector {
  /**
   * The refusal the copy would give for the roles `database` names (owners
   * the user cannot act as), read from the database as it is now; undefined
   * when there is none. With `tables`, only the roles those tables (as they
   * are now) name.
   */
  roleRefusal(original: PgTarget, database: string, tables?: readonly TableName[]): Promise<string | undefined>;
  /** The swap hazards of recovering `database` as it is now, as the copy's check finds them. */
  hazards(original: PgTarget, database: string, strategy: Strategy, accepted: readonly Hazard[]): Promise<PreflightHazards>;
  /** Each name of TABLES, and whether it names a table in `database` now. */
  tablesNow(original: PgTarget, database: string, tables: readonly TableName[]): Promise<ReadonlyArray<TableNow>>;
  /** TABLE_MODE=swap: the reasons not to swap the live tables TABLES names now, as the swap step gives them. */
  tableSwapRefusals(original: PgTarget, database: string, tables: readonly TableName[]): Promise<string[]>;
  /** pg_database_size of `database`, or with `tables`, the total size of those tables (indexes and TOAST included). */
  sizeBytes(original: PgTarget, database: string, tables?: readonly TableName[]): Promise<number>;
}

/** A name of TABLES, and whether it names a table on the original now. */
export interface TableNow {
  readonly name: string;
  readonly found: boolean;
}

/** The swap hazards of one database (postgres/hazards.ts HazardReport). */
export interface PreflightHazards {
  readonly findings: ReadonlyArray<{ readonly database: string; readonly hazard?: Hazard; readonly message: string }>;
  readonly warnings: readonly string[];
}

/** The PostgreSQL data path. */
export interface DataPath {
  /** The pre-flight's reads on the original. @default - no pre-flight (the copy still checks everything itself) */
  readonly preflight?: OriginalInspector;
  /** Throws if `target` does not accept the credentials; the error's `code` is the SQLSTATE when the server answered. */
  checkLogin(target: PgTarget): Promise<void>;
  /** Every database except templates and `rdsadmin`. */
  listDatabases(source: PgTarget): Promise<string[]>;
  /** Roles check, disk check, dump, restore, database properties, verify, then swap or replace. */
  copy(source: PgTarget, target: PgTarget, options: CopyOptions): Promise<DatabaseCopyResult[]>;
  /**
   * Checks that the PostgreSQL clients this data path runs (pg_dump,
   * pg_restore) are of the major version of the server at `target` (`label`
   * names it in messages); resolves to a line for the log, rejects naming
   * both versions and what to do.
   * @default - not checked (a data path that runs no client)
   */
  checkClientVersion?(target: PgTarget, label: string): Promise<string>;
}

// ---------------------------------------------------------------- table recovery (TABLES, issue #12)

export interface TableRecoveryOptions {
  /** The one database the tables live in. */
  readonly database: string;
  readonly tables: readonly TableName[];
  /** The run's stamp: the tables go into the schema `pitr_<stamp>`. */
  readonly stamp: string;
  readonly log: StepLog;
  readonly signal?: AbortSignal;
  /** `swap`: after the side-by-side restore, move each restored table in place of the live one (postgres/tables-swap.ts). */
  readonly mode?: TableMode;
}

/** One table restored into `pitr_<stamp>`. */
export interface RestoredTable {
  /** `schema.table` (quoted) as it was at T. */
  readonly source: string;
  /** `pitr_<stamp>.name` (quoted) on the original. */
  readonly restoredAs: string;
  /** The partitioned table it belongs to, when it came along as a partition. */
  readonly partitionOf?: string;
  readonly rows: number;
  readonly verified: boolean;
}

/** The change report for one chosen table: the restored table at T against the live table now. */
export interface TableChanges {
  /** The live table, `schema.table` (quoted). */
  readonly table: string;
  readonly restoredAs: string;
  /** The key rows are paired by (column names), or undefined when the table has none (counts only). */
  readonly key?: readonly string[];
  readonly rowsAtT: number;
  /** Undefined when the live table does not exist. */
  readonly rowsNow?: number;
  /** In the restored table only. */
  readonly deleted: number;
  /** In the live table only. */
  readonly inserted: number;
  /** Same key, different content; undefined without a key. */
  readonly changed?: number;
  readonly notes: readonly string[];
  /** Puts back the rows deleted since T; printed and stored, never executed. */
  readonly undoInsertSql?: string;
  /** Puts back T's content of rows changed since T; printed and stored, never executed. */
  readonly undoUpdateSql?: string;
  /**
   * The live table's owner: the role whose privileges the undo SQL needs. The
   * master user runs it with them as a member of that role; without them
   * (a membership without INHERIT), after `SET ROLE <undoRole>`.
   */
  readonly undoRole?: string;
}

export interface TableRecoveryResult {
  readonly database: string;
  /** `pitr_<stamp>`. */
  readonly schema: string;
  readonly tables: readonly RestoredTable[];
  /** Objects of the chosen tables that were not restored, and why (foreign keys out of the set, triggers). */
  readonly leftOut: readonly string[];
  readonly changes: readonly TableChanges[];
  readonly verified: boolean;
  /** From the point-in-time copy being reachable to the tables verified on the original. */
  readonly copyMs: number;
  /** TABLE_MODE=swap: each table swapped in, where the live one went, and how long it was locked. */
  readonly swapped?: ReadonlyArray<{ readonly table: string; readonly before: string; readonly windowMs: number }>;
}

/** Table-level recovery into a new schema of the original (postgres/tables.ts). */
export interface TablePath {
  recoverTables(source: PgTarget, target: PgTarget, options: TableRecoveryOptions): Promise<TableRecoveryResult>;
}
