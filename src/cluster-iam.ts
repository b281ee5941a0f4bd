/**
 * IAM for an Aurora PostgreSQL source (issue #20): what the runner's cluster
 * adapter and the trigger Lambda call, each on the narrowest resource RDS
 * authorizes it against (Service Authorization Reference, "Actions defined
 * by Amazon RDS"), bound by the same tag conditions as for instances.
 */
import { ArnFormat, Stack, Token, aws_iam as iam, aws_rds as rds } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { SAFETY_SNAPSHOT_INFIX, TAGS, TEMP_INSTANCE_INFIX, safetySnapshotId, temporaryClusterPrefix } from './contract';

/**
 * The RDS ARNs the cluster policies name. The temporary cluster
 * `<source>-pitr-<stamp>` and its writer `<source>-pitr-<stamp>-w` share one
 * prefix (`temporaryClusterPrefix`). With a token id (a cluster created in
 * the app) the prefix is only known at deploy time, so the patterns cover
 * any `*-pitr-*` cluster or instance and the tag conditions bind them to this
 * source, as RecoveryArns does for instances.
 */
export class ClusterArns {
  public readonly source: string;
  public readonly temporaryClusters: string;
  public readonly temporaryWriters: string;
  /** The final snapshot DeleteDBCluster would take of a temporary cluster (the runner and the trigger skip it). */
  public readonly temporaryFinalSnapshots: string;
  public readonly snapshots: string;
  public readonly allClusters: string;
  public readonly allInstances: string;
  /** Groups the restore names (subnet group, cluster parameter group, option group); RDS authorizes it against each. */
  public readonly restoreGroups: string[];
  /** Groups CreateDBInstance may name for the writer (DB parameter group, subnet group, option group). */
  public readonly writerGroups: string[];
  /** Only clusters tagged as this source's temporaries. */
  public readonly taggedTemporaryCluster: Record<string, unknown>;
  /** Only instances tagged as this source's temporaries. */
  public readonly taggedTemporaryWriter: Record<string, unknown>;
  /** Tag-on-create must tag the new cluster or writer with this source. */
  public readonly taggingTemporary: Record<string, unknown>;

  constructor(scope: Construct, cluster: rds.IDatabaseCluster) {
    const stack = Stack.of(scope);
    const id = cluster.clusterIdentifier;
    const arn = (resource: string, resourceName: string) =>
      stack.formatArn({ service: 'rds', resource, resourceName, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    const literal = !Token.isUnresolved(id);
    // RDS stores identifiers in lowercase, and so do its ARNs and the runner's tags.
    const name = literal ? id.toLowerCase() : id;
    const temporary = literal ? `${temporaryClusterPrefix(id)}*` : `*${TEMP_INSTANCE_INFIX}*`;
    this.source = literal ? arn('cluster', name) : cluster.clusterArn;
    this.temporaryClusters = arn('cluster', temporary);
    this.temporaryWriters = arn('db', temporary);
    this.temporaryFinalSnapshots = arn('cluster-snapshot', temporary);
    this.snapshots = arn('cluster-snapshot', literal ? safetySnapshotId(id, '*') : `${id}${SAFETY_SNAPSHOT_INFIX}*`);
    this.allClusters = arn('cluster', '*');
    this.allInstances = arn('db', '*');
    this.restoreGroups = [arn('subgrp', '*'), arn('cluster-pg', '*'), arn('og', '*')];
    this.writerGroups = [arn('pg', '*'), arn('subgrp', '*'), arn('og', '*')];
    this.taggedTemporaryCluster = { StringEqualsIgnoreCase: { [`rds:cluster-tag/${TAGS.SOURCE}`]: name } };
    this.taggedTemporaryWriter = { StringEqualsIgnoreCase: { [`rds:db-tag/${TAGS.SOURCE}`]: name } };
    this.taggingTemporary = { StringEqualsIgnoreCase: { [`aws:RequestTag/${TAGS.SOURCE}`]: name } };
  }
}

/** Deleting a temporary cluster and its writer: the trigger's cleanup and the runner's `finally` alike. */
function deleteTemporaryStatements(arns: ClusterArns): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'DeleteTemporaryWriter',
      actions: ['rds:DeleteDBInstance'],
      resources: [arns.temporaryWriters],
      conditions: arns.taggedTemporaryWriter,
    }),
    new iam.PolicyStatement({
      sid: 'DeleteTemporaryCluster',
      actions: ['rds:DeleteDBCluster'],
      resources: [arns.temporaryClusters],
      conditions: arns.taggedTemporaryCluster,
    }),
    // The Service Authorization Reference lists cluster-snapshot as a resource DeleteDBCluster requires (its final
    // snapshot). The runner and the trigger skip it; were one ever named, it could only carry the temporary's name.
    new iam.PolicyStatement({ sid: 'TemporaryClusterFinalSnapshot', actions: ['rds:DeleteDBCluster'], resources: [arns.temporaryFinalSnapshots] }),
  ];
}

/** What the recovery runner calls on a cluster. */
export function clusterRunnerStatements(arns: ClusterArns): iam.PolicyStatement[] {
  return [
    // The source's restore window and engine, and finding live temporary clusters by tag, list clusters; read-only.
    new iam.PolicyStatement({ sid: 'DescribeClusters', actions: ['rds:DescribeDBClusters'], resources: [arns.allClusters] }),
    // The source writer's class and the temporary writer's status; read-only.
    new iam.PolicyStatement({ sid: 'DescribeInstances', actions: ['rds:DescribeDBInstances'], resources: [arns.allInstances] }),
    new iam.PolicyStatement({
      sid: 'ListTags',
      actions: ['rds:ListTagsForResource'],
      resources: [arns.source, arns.temporaryClusters, arns.temporaryWriters, arns.snapshots],
    }),
    new iam.PolicyStatement({ sid: 'DescribeSafetySnapshots', actions: ['rds:DescribeDBClusterSnapshots'], resources: [arns.source, arns.snapshots] }),
    new iam.PolicyStatement({ sid: 'CreateSafetySnapshot', actions: ['rds:CreateDBClusterSnapshot'], resources: [arns.source, arns.snapshots] }),
    // Housekeeping (MODE=housekeeping, after CONFIRM): this source's safety snapshots only.
    new iam.PolicyStatement({ sid: 'DeleteSafetySnapshot', actions: ['rds:DeleteDBClusterSnapshot'], resources: [arns.snapshots] }),
    // The restore reuses the source's subnet group and cluster parameter group (and the engine's default option
    // group); their names are only known at run time and nothing here can change them.
    new iam.PolicyStatement({
      sid: 'RestoreTemporaryCluster',
      actions: ['rds:RestoreDBClusterToPointInTime'],
      resources: [arns.source, arns.temporaryClusters, ...arns.restoreGroups],
      // Only restores tagged as this source's temporary cluster, so cleanup can always find them.
      conditions: arns.taggingTemporary,
    }),
    // A private writer only (the runner passes PubliclyAccessible false), tagged as this source's temporary.
    new iam.PolicyStatement({
      sid: 'CreateTemporaryWriter',
      actions: ['rds:CreateDBInstance'],
      resources: [arns.temporaryWriters, ...arns.writerGroups],
      conditions: { ...arns.taggingTemporary, Bool: { 'rds:PubliclyAccessible': 'false' } },
    }),
    // The writer joins only a cluster tagged as this source's temporary: never the source or any other cluster.
    new iam.PolicyStatement({
      sid: 'CreateWriterInTemporaryCluster',
      actions: ['rds:CreateDBInstance'],
      resources: [arns.temporaryClusters],
      conditions: arns.taggedTemporaryCluster,
    }),
    // The master password of the temporary cluster (ModifyDBCluster MasterUserPassword); never of another cluster.
    new iam.PolicyStatement({
      sid: 'ModifyTemporaryCluster',
      actions: ['rds:ModifyDBCluster'],
      resources: [arns.temporaryClusters],
      conditions: arns.taggedTemporaryCluster,
    }),
    ...deleteTemporaryStatements(arns),
    // Tag-on-create: RDS authorizes the tags of the restore, the writer and the snapshot as AddTagsToResource.
    new iam.PolicyStatement({
      sid: 'TagTemporaryCluster',
      actions: ['rds:AddTagsToResource'],
      resources: [arns.temporaryClusters, arns.temporaryWriters],
      conditions: arns.taggingTemporary,
    }),
    new iam.PolicyStatement({ sid: 'TagSafetySnapshot', actions: ['rds:AddTagsToResource'], resources: [arns.snapshots] }),
  ];
}

/** What the trigger function calls on a cluster source, besides CodeBuild: the start checks and the cleanup. */
export function clusterTriggerStatements(arns: ClusterArns): iam.PolicyStatement[] {
  return [
    // The start reads the source cluster (status, restore window); cleanup lists clusters and instances by tag; read-only.
    new iam.PolicyStatement({ sid: 'DescribeClusters', actions: ['rds:DescribeDBClusters'], resources: [arns.allClusters] }),
    new iam.PolicyStatement({ sid: 'DescribeInstances', actions: ['rds:DescribeDBInstances'], resources: [arns.allInstances] }),
    new iam.PolicyStatement({
      sid: 'ListTemporaryTags',
      actions: ['rds:ListTagsForResource'],
      resources: [arns.source, arns.temporaryClusters, arns.temporaryWriters],
    }),
    ...deleteTemporaryStatements(arns),
  ];
}

/** cdk-nag `applies_to` patterns of the wildcards in one role's cluster statements, with the reason for each. */
export function clusterNagFindings(
  rdsArn: (resource: string) => { regex: string }, role: 'build' | 'trigger',
): Array<{ reason: string; applies_to: Array<{ regex: string }> }> {
  const common = [
    {
      reason: 'rds:DescribeDBClusters and rds:DescribeDBInstances without an identifier (the source, its writer, temporary clusters found by tag) '
        + 'are authorized on cluster:* and db:*; read-only.',
      applies_to: [rdsArn('cluster:\\*'), rdsArn('db:\\*')],
    },
    {
      reason: 'Temporary clusters and their writers (<source>-pitr-<stamp>, <source>-pitr-<stamp>-w) are named at run time; every write on them '
        + 'also requires the cdk-rds-pitr:source tag of this source. cluster-snapshot:<…>-pitr-* is only the final snapshot DeleteDBCluster '
        + 'names, which is skipped.',
      applies_to: [rdsArn('cluster:[^:]*-pitr-\\*'), rdsArn('db:[^:]*-pitr-\\*'), rdsArn('cluster-snapshot:[^:]*-pitr-\\*')],
    },
  ];
  if (role === 'trigger') return common;
  return [
    ...common,
    {
      reason: 'The pre-recovery safety snapshots of this cluster (<source>-pre-pitr-<stamp>), named at run time.',
      applies_to: [rdsArn('cluster-snapshot:[^:]+-pre-pitr-\\*')],
    },
    {
      reason: 'Only rds:RestoreDBClusterToPointInTime and the temporary writer\'s rds:CreateDBInstance, which RDS authorizes on the existing '
        + 'subnet, parameter and option groups they reuse (read from the source at run time; the actions cannot change them).',
      applies_to: [rdsArn('(subgrp|og|pg|cluster-pg):\\*')],
    },
  ];
}
