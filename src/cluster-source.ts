/**
 * What the construct needs from an Aurora PostgreSQL DB cluster (issue #20):
 * its `CfnDBCluster` when the app defines it, the synth-time checks of its
 * engine, and its VPC, secret, storage key and PostgreSQL major.
 */
import {
  Annotations, ArnFormat, CfnResource, Reference, Stack, Token, Tokenization,
  aws_ec2 as ec2,
  aws_rds as rds,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { AURORA_POSTGRES_ENGINE } from './contract';

/** `cluster "orders"`, or the construct path when the id is a token. */
export function describeCluster(cluster: rds.IDatabaseCluster): string {
  const id = cluster.clusterIdentifier;
  return Token.isUnresolved(id) ? `cluster ${cluster.node.path}` : `cluster "${id}"`;
}

/**
 * The `AWS::RDS::DBCluster` of `cluster` when this app defines it: the
 * cluster's own default child (`DatabaseCluster`), or the resource an
 * imported cluster's identifier refers to (`fromDatabaseClusterAttributes`
 * with `clusterIdentifier: cfnCluster.ref`, how an app wraps a `CfnDBCluster`,
 * e.g. a Multi-AZ DB cluster, which has no L2). Matched by resource type
 * rather than instanceof, which a second copy of aws-cdk-lib would defeat.
 */
export function cfnClusterOf(cluster: rds.IDatabaseCluster): rds.CfnDBCluster | undefined {
  const isCluster = (x: unknown): x is rds.CfnDBCluster =>
    CfnResource.isCfnResource(x) && x.cfnResourceType === rds.CfnDBCluster.CFN_RESOURCE_TYPE_NAME;
  const child = cluster.node.defaultChild;
  if (isCluster(child)) return child;
  const id = cluster.clusterIdentifier;
  if (!Token.isUnresolved(id)) return undefined;
  // Only an identifier that is one lone reference ({ Ref: ... }) names a resource.
  const fragments = Tokenization.reverseString(id);
  const token = fragments.length === 1 ? fragments.firstToken : undefined;
  if (token && Reference.isReference(token) && isCluster(token.target)) return token.target;
  return undefined;
}

/**
 * Refuses, at synth time, any DB cluster the runner cannot recover: a
 * non-PostgreSQL Aurora engine and a Multi-AZ DB cluster (engine `postgres`
 * or `mysql`, with `DBClusterInstanceClass`: RDS, not Aurora).
 */
export function checkClusterEngine(cluster: rds.IDatabaseCluster): void {
  const cfn = cfnClusterOf(cluster);
  const what = `PitrRecovery: \`cluster\` ${describeCluster(cluster)}`;
  const accepted = `accepted: an Aurora PostgreSQL DB cluster (engine "${AURORA_POSTGRES_ENGINE}"), or pass an RDS for PostgreSQL DB instance as \`instance\``;
  const instanceClass = cfn?.dbClusterInstanceClass;
  const cfnEngine = cfn?.engine;
  const engines = [cluster.engine?.engineType, cfnEngine].filter((e): e is string => e !== undefined && !Token.isUnresolved(e));
  if (instanceClass !== undefined || engines.some((e) => e === 'postgres' || e === 'mysql')) {
    throw new Error(`${what} is a Multi-AZ DB cluster (engine "${engines[0] ?? 'unknown'}"${instanceClass !== undefined ? `, DBClusterInstanceClass ${JSON.stringify(instanceClass)}` : ''}), `
      + `not Aurora: its point-in-time restore and instances work differently, and the recovery does not support it; ${accepted}. Nothing was created.`);
  }
  const other = engines.find((e) => e !== AURORA_POSTGRES_ENGINE);
  if (other !== undefined) {
    throw new Error(`${what} runs engine "${other}"; ${accepted}. Nothing was created.`);
  }
}

/** The cluster's PostgreSQL major when synth knows it (the engine version of a DatabaseCluster). */
export function clusterMajorVersion(cluster: rds.IDatabaseCluster): number | undefined {
  const major = cluster.engine?.engineVersion?.majorVersion;
  if (major === undefined || Token.isUnresolved(major)) return undefined;
  const value = Number(major);
  return Number.isFinite(value) ? value : undefined;
}

export function clusterVpcOf(cluster: rds.IDatabaseCluster): ec2.IVpc {
  const vpc = (cluster as { vpc?: ec2.IVpc }).vpc;
  if (!vpc) {
    throw new Error(`PitrRecovery: \`vpc\` is required when \`cluster\` is imported (${describeCluster(cluster)}): the recovery build must run `
      + 'in a VPC that reaches the cluster. Pass the cluster\'s VPC as `vpc`. Nothing was created.');
  }
  return vpc;
}

/**
 * The build reaches the writer endpoint only if the cluster admits its
 * security group, on the cluster's port: an imported cluster must say both.
 */
export function checkClusterConnections(cluster: rds.IDatabaseCluster): void {
  const { connections } = cluster;
  if (connections.securityGroups.length === 0) {
    throw new Error(`PitrRecovery: ${describeCluster(cluster)} has no security groups, so the recovery build cannot be admitted to it; accepted: `
      + 'import the cluster with `securityGroups` (DatabaseCluster.fromDatabaseClusterAttributes), the groups its instances use. Nothing was created.');
  }
  if (connections.defaultPort === undefined) {
    throw new Error(`PitrRecovery: ${describeCluster(cluster)} has no port, so the recovery build cannot be admitted to it; accepted: import the cluster `
      + 'with `port` (DatabaseCluster.fromDatabaseClusterAttributes, 5432 unless changed). Nothing was created.');
  }
}

/**
 * The master secret: `credentials`, else the cluster's own secret
 * (`DatabaseCluster`, or the `secret` attribute of an imported one), else
 * the secret RDS manages when the app's `CfnDBCluster` sets
 * `manageMasterUserPassword`. Also the KMS key RDS encrypts that managed
 * secret with, when the app names one (`masterUserSecret.kmsKeyId`).
 */
export function clusterSecretOf(scope: Construct, cluster: rds.IDatabaseCluster): { secret: secretsmanager.ISecret; managedKeyArn?: string } {
  const own = (cluster as { secret?: secretsmanager.ISecret }).secret;
  if (own) return { secret: own };
  const cfn = cfnClusterOf(cluster);
  if (cfn && cfn.manageMasterUserPassword === true) {
    const secret = secretsmanager.Secret.fromSecretCompleteArn(scope, 'ManagedMasterSecret', cfn.attrMasterUserSecretSecretArn);
    const keyId = (cfn.masterUserSecret as rds.CfnDBCluster.MasterUserSecretProperty | undefined)?.kmsKeyId;
    return { secret, managedKeyArn: keyId === undefined ? undefined : keyArnOf(scope, keyId, 'masterUserSecret.kmsKeyId', cluster) };
  }
  throw new Error(`PitrRecovery: \`credentials\` is required because ${describeCluster(cluster)} has no \`secret\`; accepted: a Secrets Manager `
    + 'secret with the master `username` and `password` (the JSON RDS and rds.Credentials write), or the secret RDS manages '
    + '(`manageMasterUserPassword`). Nothing was created.');
}

/**
 * The ARN of the customer managed key that encrypts the cluster's storage,
 * as far as synth can know it: `explicit`, else the `KmsKeyId` of the app's
 * `CfnDBCluster`. Undefined when there is none, with a warning when it
 * cannot be known (as instanceKeyArn does for instances).
 */
export function clusterKeyArn(scope: Construct, cluster: rds.IDatabaseCluster, explicit: string | undefined): string | undefined {
  if (explicit) return explicit;
  const cfn = cfnClusterOf(cluster);
  if (!cfn) {
    Annotations.of(scope).addWarningV2('cdk-rds-pitr:InstanceKeyUnknown',
      `PitrRecovery: whether ${describeCluster(cluster)} is encrypted with a customer managed KMS key cannot be known at synth time `
      + '(an imported cluster). If it is, pass that key as `instanceEncryptionKey`: without kms:CreateGrant on it the restore of the temporary '
      + 'cluster fails. Acknowledge this warning for an unencrypted cluster or one encrypted with the AWS managed key aws/rds.');
    return undefined;
  }
  const keyId = cfn.kmsKeyId;
  if (keyId === undefined) {
    if (cfn.snapshotIdentifier !== undefined || cfn.sourceDbClusterIdentifier !== undefined) {
      Annotations.of(scope).addWarningV2('cdk-rds-pitr:InstanceKeyUnknown',
        `PitrRecovery: ${describeCluster(cluster)} is created from a snapshot or another cluster, and takes that one's KMS key, which is not `
        + 'known at synth time. If it is a customer managed key, pass it as `instanceEncryptionKey`: without kms:CreateGrant on it the restore '
        + 'of the temporary cluster fails.');
    }
    return undefined;
  }
  return keyArnOf(scope, keyId, 'kmsKeyId', cluster);
}

function keyArnOf(scope: Construct, keyId: string, field: string, cluster: rds.IDatabaseCluster): string {
  if (Token.isUnresolved(keyId) || keyId.startsWith('arn:')) return keyId;
  if (keyId.startsWith('alias/')) {
    throw new Error(`PitrRecovery: ${describeCluster(cluster)} names its KMS key (${field}) by the alias ${JSON.stringify(keyId)}, which an IAM policy `
      + 'cannot name; accepted: pass the key as `instanceEncryptionKey` (or `credentialsEncryptionKey` for the secret), with kms.Key.fromKeyArn. '
      + 'Nothing was created.');
  }
  return Stack.of(scope).formatArn({ service: 'kms', resource: 'key', resourceName: keyId, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
}
