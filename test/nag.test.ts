/**
 * cdk-nag AwsSolutions on the lab stack: zero unsuppressed findings. Each
 * suppression names one resource path, the finding it covers, and why; a
 * suppression that no longer matches a finding fails the test too, so the
 * list cannot go stale.
 */
import { App, Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, NagPackSuppression, NagSuppressions } from 'cdk-nag';
import { PitrLabStack } from './lab-stack';

interface Suppressions {
  readonly path: string;
  readonly suppressions: NagPackSuppression[];
}

/** `Resource::<arn>` findings of IAM5, as cdk-nag renders tokens (`<LogicalId>`). */
const rdsArn = (resource: string) => `Resource::arn:<AWS::Partition>:rds:<AWS::Region>:<AWS::AccountId>:${resource}`;
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const rdsArnOfSource = (resource: string, suffix: string) =>
  ({ regex: `/^${escape(rdsArn(resource))}<Instance[0-9A-F]{8}>${escape(suffix)}$/` });

const TEMP_INSTANCES = 'Temporary instances (<source>-pitr-<stamp>, source shortened to fit 63 characters): the stamp is known only at run time, and '
  + 'so is the generated source id, so writes are bound to this source by the cdk-rds-pitr:source tag condition instead.';
const LISTING = 'rds:DescribeDBInstances without an identifier (finding temporary instances by tag) is authorized against db:*; read-only.';
const AUTO_BACKUP = 'rds:DescribeDBInstanceAutomatedBackups is authorized against the automated backup ARN (ab-...), not known before deploy; read-only.';

const SUPPRESSIONS: Suppressions[] = [
  // ---- the lab's own instance: a throwaway target, not part of the construct
  {
    path: '/Lab/Instance/Resource',
    suppressions: [
      { id: 'AwsSolutions-RDS3', reason: 'Lab instance: single-AZ keeps the throwaway lab cheap; PITR does not depend on Multi-AZ.' },
      { id: 'AwsSolutions-RDS10', reason: 'Lab instance: it must be destroyed after the integ run, which deletion protection would block.' },
      { id: 'AwsSolutions-RDS11', reason: 'Lab instance: the port is not a control; the instance is private and only the recovery build\'s security group is admitted.' },
    ],
  },
  {
    path: '/Lab/Instance/Secret/Resource',
    suppressions: [{ id: 'AwsSolutions-SMG4', reason: 'Lab secret lives for one integ run; rotation needs a rotation function that this lab does not test.' }],
  },
  // ---- the construct
  {
    path: '/Lab/Dr/Project/Resource',
    suppressions: [{
      id: 'AwsSolutions-CB4',
      reason: 'The project produces no artifacts (NO_ARTIFACTS) and logs to CloudWatch; users who want a customer key pass `encryptionKey`. The lab uses the one-line default.',
    }],
  },
  {
    path: '/Lab/Dr/Trigger/Resource',
    suppressions: [{
      id: 'AwsSolutions-L1',
      reason: 'Pinned to Node.js 22: the oldest supported aws-cdk-lib (2.176.0) has no newer Node.js runtime, and the handler bundle targets node22.',
    }],
  },
  {
    path: '/Lab/Dr/Project/PolicyDocument/Resource',
    suppressions: [{
      id: 'AwsSolutions-IAM5',
      reason: 'aws-cdk-lib adds CodeBuild\'s documented VPC permissions for any project in a VPC: the network interfaces have no ARN before CodeBuild creates them, and the EC2 Describe calls do not support resource-level permissions.',
      appliesTo: ['Resource::*'],
    }],
  },
  {
    path: '/Lab/Dr/Project/Role/DefaultPolicy/Resource',
    suppressions: [
      {
        id: 'AwsSolutions-IAM5',
        reason: 'aws-cdk-lib\'s read grant on the runner asset (one object in the bootstrap bucket) for the build\'s S3 source.',
        appliesTo: ['Action::s3:GetObject*', 'Action::s3:GetBucket*', 'Action::s3:List*'],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason: 'aws-cdk-lib\'s CreateNetworkInterfacePermission for a VPC project, conditioned on the project\'s subnets and on codebuild.amazonaws.com.',
        appliesTo: ['Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:network-interface/*'],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason: 'aws-cdk-lib\'s default grants for the project\'s own default log group and its own report groups (<project>-*).',
        appliesTo: [
          { regex: '/^Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:\\/aws\\/codebuild\\/<DrProject[0-9A-F]{8}>:\\*$/' },
          { regex: '/^Resource::arn:<AWS::Partition>:codebuild:<AWS::Region>:<AWS::AccountId>:report-group\\/<DrProject[0-9A-F]{8}>-\\*$/' },
        ],
      },
      { id: 'AwsSolutions-IAM5', reason: LISTING, appliesTo: [rdsArn('db:*')] },
      { id: 'AwsSolutions-IAM5', reason: AUTO_BACKUP, appliesTo: [rdsArn('auto-backup:*')] },
      { id: 'AwsSolutions-IAM5', reason: TEMP_INSTANCES, appliesTo: [rdsArn('db:*-pitr-*')] },
      {
        id: 'AwsSolutions-IAM5',
        reason: 'The pre-recovery safety snapshots of this source (<source>-pre-pitr-<stamp>), named at run time.',
        appliesTo: [rdsArnOfSource('snapshot:', '-pre-pitr-*')],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason: 'Only for rds:RestoreDBInstanceToPointInTime, which RDS authorizes against the existing subnet, option and parameter groups '
          + 'the restore reuses; their names are read from the source at run time, and the action cannot change them.',
        appliesTo: [rdsArn('subgrp:*'), rdsArn('og:*'), rdsArn('pg:*')],
      },
    ],
  },
  {
    path: '/Lab/Dr/TriggerRole/DefaultPolicy/Resource',
    suppressions: [
      { id: 'AwsSolutions-IAM5', reason: LISTING, appliesTo: [rdsArn('db:*')] },
      { id: 'AwsSolutions-IAM5', reason: AUTO_BACKUP, appliesTo: [rdsArn('auto-backup:*')] },
      { id: 'AwsSolutions-IAM5', reason: TEMP_INSTANCES, appliesTo: [rdsArn('db:*-pitr-*')] },
    ],
  },
];

interface Finding {
  readonly path: string;
  /** e.g. `AwsSolutions-IAM5[Resource::*]` or `AwsSolutions-RDS3` */
  readonly finding: string;
}

function nagFindings(suppress: boolean): Finding[] {
  const app = new App();
  const stack = new PitrLabStack(app, 'Lab');
  if (suppress) applySuppressions(stack);
  Aspects.of(stack).add(new AwsSolutionsChecks({ verbose: true }));
  const annotations = Annotations.fromStack(stack);
  const pattern = Match.stringLikeRegexp('AwsSolutions-');
  return [...annotations.findError('*', pattern), ...annotations.findWarning('*', pattern)]
    .map((m) => ({ path: m.id, finding: String(m.entry.data).match(/^AwsSolutions-[A-Za-z0-9]+(\[[^\]]*\])?/)![0] }));
}

function applySuppressions(stack: Stack): void {
  for (const { path, suppressions } of SUPPRESSIONS) {
    NagSuppressions.addResourceSuppressionsByPath(stack, path, suppressions);
  }
}

function covers(suppression: NagPackSuppression, finding: string): boolean {
  const [rule, applies] = finding.match(/^([^[]+)(?:\[(.*)\])?$/)!.slice(1);
  if (rule !== suppression.id) return false;
  if (applies === undefined || suppression.appliesTo === undefined) return applies === undefined || suppression.appliesTo === undefined;
  return suppression.appliesTo.some((a) => (typeof a === 'string'
    ? a === applies
    : new RegExp(a.regex.slice(1, a.regex.lastIndexOf('/'))).test(applies)));
}

describe('cdk-nag AwsSolutions on the lab stack', () => {
  test('no unsuppressed finding', () => {
    expect(nagFindings(true)).toEqual([]);
  });

  test('every suppression has a reason and still covers a real finding on its path', () => {
    const findings = nagFindings(false);
    expect(findings.length).toBeGreaterThan(0);
    for (const { path, suppressions } of SUPPRESSIONS) {
      for (const suppression of suppressions) {
        expect(suppression.reason.length).toBeGreaterThanOrEqual(40);
        const used = findings.some((f) => f.path === path && covers(suppression, f.finding));
        const which = { path, id: suppression.id, appliesTo: suppression.appliesTo };
        expect({ ...which, used }).toEqual({ ...which, used: true });
      }
    }
  });

  test('every finding is on a path with a written suppression (none on the whole stack)', () => {
    const paths = new Set(SUPPRESSIONS.map((s) => s.path));
    const uncovered = nagFindings(false).filter((f) => !paths.has(f.path) || !SUPPRESSIONS
      .find((s) => s.path === f.path)!.suppressions.some((s) => covers(s, f.finding)));
    expect(uncovered).toEqual([]);
  });
});
