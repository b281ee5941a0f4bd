/**
 * The start checks for an Aurora PostgreSQL source (issue #20): where an
 * instance is read with DescribeDBInstances and its automated backups, a
 * cluster is read with DescribeDBClusters, whose answer carries both ends of
 * the restorable window (EarliestRestorableTime, LatestRestorableTime).
 */
import { DBCluster, DescribeDBClustersCommand } from '@aws-sdk/client-rds';
import { TriggerDeps } from './trigger-deps';
import { AURORA_POSTGRES_ENGINE, LATEST, RestoreWindow, TRIGGER_ENV } from '../src/contract';

export async function describeSourceCluster(deps: TriggerDeps): Promise<DBCluster> {
  const id = deps.config.sourceId;
  try {
    const answer = await deps.rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: id }));
    const cluster = answer.DBClusters?.[0];
    if (cluster) return cluster;
  } catch (err) {
    if ((err as Error).name !== 'DBClusterNotFoundFault') throw err;
  }
  throw new Error(
    `${TRIGGER_ENV.SOURCE_CLUSTER_ID}: Aurora DB cluster "${id}" was not found in ${deps.config.region}; `
    + 'accepted: an existing Aurora PostgreSQL DB cluster (the PitrRecovery construct sets this variable). Nothing was started.',
  );
}

/** What must hold before a recovery writes into the cluster: the same rules as for an instance. */
export function assertClusterRecoverable(cluster: DBCluster, id: string): void {
  if (cluster.Engine !== AURORA_POSTGRES_ENGINE) {
    throw new Error(
      `Source cluster "${id}" runs engine "${cluster.Engine}"; accepted: an Aurora PostgreSQL DB cluster (engine "${AURORA_POSTGRES_ENGINE}"). Nothing was started.`,
    );
  }
  if (cluster.Status !== 'available') {
    throw new Error(
      `Source cluster "${id}" is "${cluster.Status}", not "available"; a recovery writes into it, `
      + 'so wait until it is available and try again. Nothing was started.',
    );
  }
  if (!cluster.BackupRetentionPeriod || cluster.BackupRetentionPeriod <= 0) {
    throw new Error(
      `Source cluster "${id}" has no backup retention period (BackupRetentionPeriod ${cluster.BackupRetentionPeriod ?? 0}), `
      + 'so RDS has no point in time to restore; accepted: a cluster with a backup retention period of at least 1 day. Nothing was started.',
    );
  }
  if (!cluster.LatestRestorableTime) {
    throw new Error(
      `Source cluster "${id}" has no LatestRestorableTime yet (RDS reports one once the cluster's continuous backup has started), `
      + 'so there is nothing to restore yet. Nothing was started.',
    );
  }
}

/** The window DescribeDBClusters reports; an instant outside it is refused before anything starts. */
export function clusterRestoreWindow(cluster: DBCluster, id: string): RestoreWindow {
  if (!cluster.EarliestRestorableTime) {
    throw new Error(
      `Source cluster "${id}" reports no EarliestRestorableTime yet; accepted now: restoreTime "${LATEST}". Nothing was started.`,
    );
  }
  return { earliest: cluster.EarliestRestorableTime, latest: cluster.LatestRestorableTime! };
}
