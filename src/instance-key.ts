import { Annotations, ArnFormat, CfnResource, Stack, Token, aws_iam as iam, aws_kms as kms, aws_rds as rds } from 'aws-cdk-lib';
import { Construct } from 'constructs';

/**
 * The ARN of the customer managed key that encrypts the instance's storage,
 * as far as synth can know it: the `instanceEncryptionKey` prop, else the
 * `KmsKeyId` of a `CfnDBInstance` in this app (where `storageEncryptionKey`
 * ends up; aws-cdk-lib does not expose the key on the instance). Undefined
 * when there is none (unencrypted, or the AWS managed key `aws/rds`), with a
 * warning when it cannot be known.
 */
export function instanceKeyArn(scope: Construct, instance: rds.IDatabaseInstance, explicit: kms.IKey | undefined): string | undefined {
  if (explicit) return explicit.keyArn;
  const child = instance.node.defaultChild;
  // By resource type rather than instanceof, which a second copy of aws-cdk-lib in the app would defeat.
  const cfn = CfnResource.isCfnResource(child) && child.cfnResourceType === rds.CfnDBInstance.CFN_RESOURCE_TYPE_NAME
    ? child as rds.CfnDBInstance : undefined;
  if (!cfn) {
    Annotations.of(scope).addWarningV2('cdk-rds-pitr:InstanceKeyUnknown',
      `PitrRecovery: whether ${describeInstance(instance)} is encrypted with a customer managed KMS key cannot be known at synth time `
      + '(an imported instance). If it is, pass that key as `instanceEncryptionKey`: without kms:CreateGrant on it the restore of the temporary '
      + 'instance fails. Acknowledge this warning for an unencrypted instance or one encrypted with the AWS managed key aws/rds.');
    return undefined;
  }
  const keyId = cfn.kmsKeyId;
  if (keyId === undefined) {
    if (cfn.dbSnapshotIdentifier !== undefined || cfn.sourceDbInstanceIdentifier !== undefined || cfn.dbClusterSnapshotIdentifier !== undefined) {
      Annotations.of(scope).addWarningV2('cdk-rds-pitr:InstanceKeyUnknown',
        `PitrRecovery: ${describeInstance(instance)} is created from a snapshot or another instance, and takes that one's KMS key, which is not `
        + 'known at synth time. If it is a customer managed key, pass it as `instanceEncryptionKey`: without kms:CreateGrant on it the restore '
        + 'of the temporary instance fails.');
    }
    return undefined;
  }
  if (Token.isUnresolved(keyId) || keyId.startsWith('arn:')) return keyId;
  if (keyId.startsWith('alias/')) {
    throw new Error(`PitrRecovery: ${describeInstance(instance)} names its KMS key by the alias ${JSON.stringify(keyId)}, which an IAM policy cannot name; `
      + 'accepted: pass the key as `instanceEncryptionKey` (kms.Key.fromKeyArn with the key ARN). Nothing was created.');
  }
  // A key id: an ARN of this stack's account and region (RDS takes a key of the instance's region).
  return Stack.of(scope).formatArn({ service: 'kms', resource: 'key', resourceName: keyId, arnFormat: ArnFormat.SLASH_RESOURCE_NAME });
}

/**
 * What restoring with the instance's key needs (RDS User Guide, "AWS KMS key
 * management"): kms:CreateGrant, only for a grant RDS makes on the caller's
 * behalf (`kms:ViaService`, `kms:GrantIsForAWSResource`), and kms:DescribeKey.
 */
export function instanceKeyStatements(scope: Construct, keyArn: string): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'GrantInstanceKeyToRds',
      actions: ['kms:CreateGrant'],
      resources: [keyArn],
      conditions: {
        StringEquals: { 'kms:ViaService': `rds.${Stack.of(scope).region}.amazonaws.com` },
        Bool: { 'kms:GrantIsForAWSResource': 'true' },
      },
    }),
    new iam.PolicyStatement({ sid: 'DescribeInstanceKey', actions: ['kms:DescribeKey'], resources: [keyArn] }),
  ];
}

function describeInstance(instance: rds.IDatabaseInstance): string {
  const id = instance.instanceIdentifier;
  return Token.isUnresolved(id) ? `instance ${instance.node.path}` : `instance "${id}"`;
}
