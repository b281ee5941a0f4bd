/**
 * The few places where recovering an RDS instance and an Aurora PostgreSQL
 * DB cluster (issue #20) differ in words or names: which variable names the
 * source, what its temporary copy is called and how to delete things by
 * hand. The workflow itself is the same for both (the cluster adapter is
 * aws/rds-cluster-control.ts).
 */
import { PROJECT_ENV, temporaryClusterId, temporaryInstanceId, type SourceKind } from '../../src/contract';

/** The project variable that names a source of this kind. */
export function sourceField(kind: SourceKind | undefined): string {
  return kind === 'cluster' ? PROJECT_ENV.SOURCE_CLUSTER_ID : PROJECT_ENV.SOURCE_INSTANCE_ID;
}

/** `instance` or `cluster`, as messages call the source. */
export function sourceNoun(kind: SourceKind | undefined): 'instance' | 'cluster' {
  return kind === 'cluster' ? 'cluster' : 'instance';
}

/** What the source is, in full: `an RDS for PostgreSQL instance`, `an Aurora PostgreSQL DB cluster`. */
export function sourceDescription(kind: SourceKind | undefined): string {
  return kind === 'cluster' ? 'an Aurora PostgreSQL DB cluster' : 'an RDS for PostgreSQL instance';
}

/** `temporary instance` or `temporary cluster` (with its writer instance), as the log calls it. */
export function temporaryLabel(kind: SourceKind | undefined): string {
  return kind === 'cluster' ? 'temporary cluster' : 'temporary instance';
}

/** The temporary copy's identifier: `<source>-pitr-<stamp>` (a cluster's is shortened so its writer's `-w` fits). */
export function temporaryIdOf(kind: SourceKind | undefined, sourceId: string, stamp: string): string {
  return kind === 'cluster' ? temporaryClusterId(sourceId, stamp) : temporaryInstanceId(sourceId, stamp);
}

/** The AWS CLI commands that delete a temporary copy by hand, without a final snapshot. */
export function deleteTemporaryCommand(kind: SourceKind | undefined, id: string, writerId: string): string {
  return kind === 'cluster'
    ? `aws rds delete-db-instance --db-instance-identifier ${writerId} --skip-final-snapshot; `
      + `aws rds delete-db-cluster --db-cluster-identifier ${id} --skip-final-snapshot --delete-automated-backups`
    : `aws rds delete-db-instance --db-instance-identifier ${id} --skip-final-snapshot --delete-automated-backups`;
}

/** The AWS CLI command that deletes a safety snapshot (a DB cluster snapshot for a cluster). */
export function deleteSnapshotCommand(kind: SourceKind | undefined, snapshotId: string): string {
  return kind === 'cluster'
    ? `aws rds delete-db-cluster-snapshot --db-cluster-snapshot-identifier ${snapshotId}`
    : `aws rds delete-db-snapshot --db-snapshot-identifier ${snapshotId}`;
}

/**
 * Why a cluster's free storage is not checked: an Aurora cluster volume
 * grows by itself as data is added (Aurora User Guide, "Managing performance
 * and scaling for Aurora DB clusters": up to 128 TiB or 64 TiB by engine
 * version), so a copy cannot run out of allocated storage.
 */
export const AURORA_STORAGE_NOTE = 'the original is an Aurora cluster, whose cluster volume grows by itself as data is added: there is no allocated storage to run out of, so free storage is not checked';
