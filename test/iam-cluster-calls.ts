/**
 * IAM simulation helpers for an Aurora PostgreSQL source (not a test file):
 * the calls the runner's cluster adapter sends on a cluster
 * (buildspec/runner/aws/rds-cluster-control.ts, with the inputs its
 * clusterRestoreInput and writerInput build), and the RDS commands the
 * trigger sends for a cluster source. test/iam-simulation-cluster.test.ts
 * simulates them; test/iam-simulation.test.ts counts them as covered.
 */
import type { RecordedCall } from './iam-calls';
import { CREATED_BY_VALUE, TAGS, safetySnapshotId, temporaryClusterId, temporaryWriterId } from '../src/contract';

export const REGION = 'us-east-1';
export const ACCOUNT = '123456789012';
export const PROJECT = 'DrProject0123-abcdEFGH4567';
export const BUILD_ID = `${PROJECT}:6f1c2a7e-0000-4000-8000-000000000001`;
export const STAMP = '20261124093000';
export const KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

/** The RDS commands the trigger sends for a cluster source (start, cleanup, sweep). */
export const TRIGGER_CLUSTER_COMMANDS = ['DeleteDBCluster', 'DeleteDBInstance', 'DescribeDBClusters', 'DescribeDBInstances', 'ListTagsForResource'] as const;

/** The source cluster's writer instance (any name RDS accepts; not a temporary's). */
export function sourceWriterOf(source: string): string {
  return `${source.slice(0, 50).replace(/-+$/, '')}-writer`;
}

/** The key policy of a customer managed key that lets the account's IAM policies decide (KMS allows nothing its key policy does not). */
export const KEY_POLICY = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: 'kms:*', Resource: '*' }],
};

/** The run's tags, as the runner puts them on the temporary cluster, its writer and the safety snapshot. */
export function runTags(source: string): Array<{ Key: string; Value: string }> {
  return [
    { Key: TAGS.BUILD_ID, Value: BUILD_ID }, { Key: TAGS.SOURCE, Value: source.toLowerCase() }, { Key: TAGS.CREATED_BY, Value: CREATED_BY_VALUE },
  ];
}

/**
 * The runner's calls on a cluster, in the runbook's order, with the inputs
 * its adapter builds: plan (source cluster and writer, live temporaries,
 * safety snapshots), safety snapshot, restore (full copy for a recovery,
 * copy-on-write for a drill at the latest time), the writer, the password,
 * the cleanup (writer, then cluster), and housekeeping's snapshot delete.
 */
export function runnerClusterCalls(source: string): RecordedCall[] {
  const rdsCall = (command: string, input: Record<string, any>): RecordedCall => ({ service: 'rds', command, input });
  const cluster = temporaryClusterId(source, STAMP);
  const writer = temporaryWriterId(source, STAMP);
  const snapshot = safetySnapshotId(source, STAMP);
  const arn = (type: string, id: string) => `arn:aws:rds:${REGION}:${ACCOUNT}:${type}:${id.toLowerCase()}`;
  const restore = (restoreType: string) => rdsCall('RestoreDBClusterToPointInTime', {
    SourceDBClusterIdentifier: source,
    DBClusterIdentifier: cluster,
    RestoreType: restoreType,
    ...(restoreType === 'copy-on-write' ? { UseLatestRestorableTime: true } : { RestoreToTime: '2026-11-24T09:00:00.000Z' }),
    DBSubnetGroupName: 'orders-aurora-subnets',
    VpcSecurityGroupIds: ['sg-0123456789abcdef0'],
    Port: 5432,
    KmsKeyId: KEY_ARN,
    DBClusterParameterGroupName: 'orders-aurora-cluster-params',
    DeletionProtection: false,
    CopyTagsToSnapshot: false,
    Tags: runTags(source),
  });
  return [
    rdsCall('DescribeDBClusters', { DBClusterIdentifier: source }),
    rdsCall('DescribeDBInstances', { DBInstanceIdentifier: sourceWriterOf(source) }),
    rdsCall('DescribeDBClusters', {}),
    rdsCall('ListTagsForResource', { ResourceName: arn('cluster', cluster) }),
    rdsCall('DescribeDBClusterSnapshots', { DBClusterIdentifier: source, SnapshotType: 'manual' }),
    rdsCall('ListTagsForResource', { ResourceName: arn('cluster-snapshot', snapshot) }),
    rdsCall('CreateDBClusterSnapshot', { DBClusterIdentifier: source, DBClusterSnapshotIdentifier: snapshot, Tags: runTags(source) }),
    rdsCall('DescribeDBClusterSnapshots', { DBClusterSnapshotIdentifier: snapshot }),
    restore('full-copy'),
    restore('copy-on-write'),
    rdsCall('DescribeDBClusters', { DBClusterIdentifier: cluster }),
    rdsCall('CreateDBInstance', {
      DBInstanceIdentifier: writer,
      DBClusterIdentifier: cluster,
      Engine: 'aurora-postgresql',
      DBInstanceClass: 'db.r6g.large',
      PubliclyAccessible: false,
      DBParameterGroupName: 'orders-aurora-instance-params',
      Tags: runTags(source),
    }),
    rdsCall('DescribeDBInstances', { DBInstanceIdentifier: writer }),
    rdsCall('ModifyDBCluster', { DBClusterIdentifier: cluster, MasterUserPassword: 'current-secret-password', ApplyImmediately: true }),
    rdsCall('DeleteDBInstance', { DBInstanceIdentifier: writer, SkipFinalSnapshot: true }),
    rdsCall('DeleteDBCluster', { DBClusterIdentifier: cluster, SkipFinalSnapshot: true, DeleteAutomatedBackups: true }),
    rdsCall('DeleteDBClusterSnapshot', { DBClusterSnapshotIdentifier: snapshot }),
  ];
}

/** Every command a cluster source sends, simulated by test/iam-simulation-cluster.test.ts. */
export const CLUSTER_COMMANDS: ReadonlySet<string> = new Set([...runnerClusterCalls('orders-aurora').map((c) => c.command), ...TRIGGER_CLUSTER_COMMANDS]);
