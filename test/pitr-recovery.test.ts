import { X509Certificate } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import {
  App, Duration, Stack,
  aws_codebuild as codebuild,
  aws_ec2 as ec2,
  aws_iam as iam,
  aws_kms as kms,
  aws_logs as logs,
  aws_rds as rds,
  aws_secretsmanager as secretsmanager,
  aws_sns as sns,
} from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { PitrLabStack } from './lab-stack';
import { BUILD_ENV, DEAD_BUILD_STATES, PROJECT_ENV, START_ENV, TAGS, TRIGGER_ENV } from '../src/contract';
import { PitrRecovery, PitrRecoveryProps } from '../src/pitr-recovery';

// fs is pass-through except when a test hides the bundled runner; node's
// own fs exports cannot be spied on.
let hideBundledRunner = false;
jest.mock('fs', () => {
  const real = jest.requireActual<typeof import('fs')>('fs');
  return {
    ...real,
    existsSync: (p: fs.PathLike) => !(hideBundledRunner && /[\\/]runner[\\/]runner\.js$/.test(String(p))) && real.existsSync(p),
  };
});

const ENV = { account: '123456789012', region: 'eu-west-1' };

interface Fixture {
  readonly stack: Stack;
  readonly vpc: ec2.Vpc;
}

function fixture(): Fixture {
  const stack = new Stack(new App(), 'Test', { env: ENV });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  return { stack, vpc };
}

/** A PostgreSQL instance created in the app; `null` leaves the engine version unknown. */
function postgres(f: Fixture, version: rds.PostgresEngineVersion | null = rds.PostgresEngineVersion.VER_16): rds.DatabaseInstance {
  return new rds.DatabaseInstance(f.stack, 'Db', {
    engine: version ? rds.DatabaseInstanceEngine.postgres({ version }) : rds.DatabaseInstanceEngine.POSTGRES,
    vpc: f.vpc,
    credentials: rds.Credentials.fromGeneratedSecret('postgres'),
  });
}

function imported(f: Fixture, instanceIdentifier = 'orders-db'): rds.IDatabaseInstance {
  return rds.DatabaseInstance.fromDatabaseInstanceAttributes(f.stack, 'Imported', {
    instanceIdentifier,
    instanceEndpointAddress: `${instanceIdentifier}.abc.eu-west-1.rds.amazonaws.com`,
    port: 5432,
    securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(f.stack, 'DbSg', 'sg-0123456789abcdef0')],
    engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_15 }),
  });
}

function importedSecret(f: Fixture): secretsmanager.ISecret {
  return secretsmanager.Secret.fromSecretCompleteArn(f.stack, 'Creds',
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-db-master-AbCdEf');
}

/** The construct without synthesizing, for tests that add to the tree first. */
function build(f: Fixture = fixture()): PitrRecovery {
  return new PitrRecovery(f.stack, 'Dr', { instance: postgres(f) });
}

function synth(props: Partial<PitrRecoveryProps> = {}, f: Fixture = fixture()) {
  const recovery = new PitrRecovery(f.stack, 'Dr', { instance: props.instance ?? postgres(f), ...props });
  return { recovery, template: Template.fromStack(f.stack), stack: f.stack };
}

type Statement = { Sid?: string; Action: string | string[]; Resource: unknown; Effect: string; Condition?: unknown };

/** Every statement of every inline policy attached to the role whose logical id starts with `rolePrefix`. */
function statementsOf(template: Template, rolePrefix: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((p) => (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref.startsWith(rolePrefix)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

function bySid(statements: Statement[], sid: string): Statement {
  const found = statements.filter((s) => s.Sid === sid);
  expect(found).toHaveLength(1);
  return found[0];
}

const arnOf = (resource: string, name: string) => `arn:${'${AWS::Partition}'}:rds:eu-west-1:123456789012:${resource}:${name}`;
/** Renders a CloudFormation ARN expression (Fn::Join of strings, Refs and partition) as one string. */
function render(value: unknown): string {
  if (typeof value === 'string') return value;
  const v = value as Record<string, unknown>;
  if (v['Fn::Join']) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map(render).join(sep);
  }
  if (v.Ref) return `\${${v.Ref as string}}`;
  if (v['Fn::GetAtt']) return `\${${(v['Fn::GetAtt'] as string[]).join('.')}}`;
  return JSON.stringify(value);
}
const resourcesOf = (s: Statement) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).map(render).sort();
const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]).slice().sort();

describe('CodeBuild project', () => {
  test('runs in the VPC on Amazon Linux 2023, one build at a time, 8 hours, with its log group', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::CodeBuild::Project', {
      ConcurrentBuildLimit: 1,
      TimeoutInMinutes: 480,
      Environment: Match.objectLike({
        Image: 'aws/codebuild/amazonlinux-x86_64-standard:5.0',
        Type: 'LINUX_CONTAINER',
        ComputeType: 'BUILD_GENERAL1_MEDIUM',
        PrivilegedMode: false,
      }),
      Source: Match.objectLike({ Type: 'S3', BuildSpec: 'buildspec.yml' }),
      VpcConfig: Match.objectLike({
        SecurityGroupIds: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^DrProjectSecurityGroup'), 'GroupId'] }],
        Subnets: [{ Ref: Match.stringLikeRegexp('^VpcPrivateSubnet1') }, { Ref: Match.stringLikeRegexp('^VpcPrivateSubnet2') }],
      }),
      LogsConfig: { CloudWatchLogs: { Status: 'ENABLED', GroupName: { Ref: Match.stringLikeRegexp('^DrBuildLogs') } } },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365 });
  });

  test('source is the bundled runner as an S3 asset', () => {
    const { template } = synth();
    const project = Object.values(template.findResources('AWS::CodeBuild::Project'))[0];
    expect(render(project.Properties.Source.Location)).toMatch(/^cdk-hnb659fds-assets-123456789012-eu-west-1\/[0-9a-f]{64}\.zip$/);
  });

  test('environment carries the source id, secret ARN, CA path, wait deadline and start defaults (no client version: it is chosen at run time)', () => {
    const { template } = synth();
    const project = Object.values(template.findResources('AWS::CodeBuild::Project'))[0];
    const vars = Object.fromEntries((project.Properties.Environment.EnvironmentVariables as Array<{ Name: string; Value: unknown; Type: string }>)
      .map((v) => [v.Name, { value: v.Value, type: v.Type }]));
    expect(Object.keys(vars).sort()).toEqual([
      PROJECT_ENV.PG_CA_BUNDLE, PROJECT_ENV.SECRET_ARN, PROJECT_ENV.SOURCE_INSTANCE_ID,
      START_ENV.STRATEGY, PROJECT_ENV.WAIT_TIMEOUT_MINUTES,
    ].sort());
    expect(Object.values(vars).every((v) => v.type === 'PLAINTEXT')).toBe(true);
    expect(vars[PROJECT_ENV.SOURCE_INSTANCE_ID].value).toEqual({ Ref: expect.stringMatching(/^Db[0-9A-F]{8}$/) });
    expect(vars[PROJECT_ENV.SECRET_ARN].value).toEqual({ Ref: expect.stringMatching(/^DbSecretAttachment/) });
    expect(vars[PROJECT_ENV.PG_CA_BUNDLE].value).toMatch(/^\/.+\.pem$/);
    expect(vars[PROJECT_ENV.WAIT_TIMEOUT_MINUTES].value).toBe('240');
    expect(vars[START_ENV.STRATEGY].value).toBe('swap');
  });

  test('databases, compute type, timeout, encryption key and log retention are passed through', () => {
    const f = fixture();
    const key = new kms.Key(f.stack, 'Key');
    const { template } = synth({
      databases: ['orders', 'billing'],
      computeType: codebuild.ComputeType.LARGE,
      timeout: Duration.hours(2),
      encryptionKey: key,
      logRetention: logs.RetentionDays.ONE_MONTH,
    }, f);
    template.hasResourceProperties('AWS::CodeBuild::Project', {
      TimeoutInMinutes: 120,
      EncryptionKey: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Key'), 'Arn'] },
      Environment: Match.objectLike({
        ComputeType: 'BUILD_GENERAL1_LARGE',
        EnvironmentVariables: Match.arrayWith([
          { Name: PROJECT_ENV.WAIT_TIMEOUT_MINUTES, Type: 'PLAINTEXT', Value: '60' },
          { Name: START_ENV.DATABASES, Type: 'PLAINTEXT', Value: 'orders,billing' },
        ]),
      }),
    });
    const groups = Object.values(template.findResources('AWS::Logs::LogGroup')).map((g) => g.Properties.RetentionInDays);
    expect(groups).toEqual([30, 30]);
  });

  test('the instance admits the build on its port, and connections are the build\'s security group', () => {
    const { template, recovery } = synth();
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      IpProtocol: 'tcp',
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DbSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DrProjectSecurityGroup'), 'GroupId'] },
      FromPort: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Db[0-9A-F]{8}$'), 'Endpoint.Port'] },
    });
    expect(recovery.connections.securityGroups).toHaveLength(1);
    expect(recovery.connections.securityGroups[0].node.path).toBe('Test/Dr/Project/SecurityGroup');
  });

  test('given security groups and subnets replace the defaults', () => {
    const f = fixture();
    const sg = new ec2.SecurityGroup(f.stack, 'Mine', { vpc: f.vpc });
    const { template } = synth({ securityGroups: [sg], vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC } }, f);
    template.hasResourceProperties('AWS::CodeBuild::Project', {
      VpcConfig: Match.objectLike({
        SecurityGroupIds: [{ 'Fn::GetAtt': [Match.stringLikeRegexp('^Mine'), 'GroupId'] }],
        Subnets: [{ Ref: Match.stringLikeRegexp('^VpcPublicSubnet1') }, { Ref: Match.stringLikeRegexp('^VpcPublicSubnet2') }],
      }),
    });
    template.resourceCountIs('AWS::EC2::SecurityGroup', 2); // the instance's and "Mine"
  });
});

describe('runner IAM (CodeBuild role)', () => {
  test('literal instance id: every RDS statement, on exactly the runner\'s resources', () => {
    const f = fixture();
    const { template } = synth({ instance: imported(f), vpc: f.vpc, credentials: importedSecret(f) }, f);
    const statements = statementsOf(template, 'DrProjectRole');
    const db = arnOf('db', 'orders-db');
    const temp = arnOf('db', 'orders-db-pitr-*');
    const snaps = arnOf('snapshot', 'orders-db-pre-pitr-*');
    const expected: Record<string, [string[], string[]]> = {
      DescribeInstances: [['rds:DescribeDBInstances'], [arnOf('db', '*')]],
      ListTags: [['rds:ListTagsForResource'], [db, temp, snaps]],
      DescribeAutomatedBackups: [['rds:DescribeDBInstanceAutomatedBackups'], [arnOf('auto-backup', '*'), db]],
      DescribeSafetySnapshots: [['rds:DescribeDBSnapshots'], [db, snaps]],
      CreateSafetySnapshot: [['rds:CreateDBSnapshot'], [db, snaps]],
      DeleteSafetySnapshot: [['rds:DeleteDBSnapshot'], [snaps]],
      RestoreTemporaryInstance: [['rds:RestoreDBInstanceToPointInTime'], [db, temp, arnOf('subgrp', '*'), arnOf('og', '*'), arnOf('pg', '*')]],
      ManageTemporaryInstance: [['rds:DeleteDBInstance', 'rds:ModifyDBInstance'], [temp]],
      TagTemporaryInstance: [['rds:AddTagsToResource'], [temp]],
      TagSafetySnapshot: [['rds:AddTagsToResource'], [snaps]],
    };
    // Literal ids are bound to this source by tag as well as by name: orders-db-pitr-archive is not a temporary instance.
    const tagged = { StringEqualsIgnoreCase: { [`rds:db-tag/${TAGS.SOURCE}`]: 'orders-db' } };
    const tagging = { StringEqualsIgnoreCase: { [`aws:RequestTag/${TAGS.SOURCE}`]: 'orders-db' } };
    const conditions: Record<string, unknown> = { ManageTemporaryInstance: tagged, TagTemporaryInstance: tagging, RestoreTemporaryInstance: tagging };
    for (const [sid, [actions, resources]] of Object.entries(expected)) {
      const s = bySid(statements, sid);
      expect({ sid, actions: actionsOf(s), resources: resourcesOf(s), effect: s.Effect, condition: s.Condition })
        .toEqual({ sid, actions, resources: resources.slice().sort(), effect: 'Allow', condition: conditions[sid] });
    }
    const rdsStatements = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('rds:')));
    expect(rdsStatements.map((s) => s.Sid).sort()).toEqual(Object.keys(expected).sort());
  });

  test('a long literal id uses the runner\'s shortened temporary prefix', () => {
    const f = fixture();
    const longId = 'a-very-long-instance-identifier-that-is-sixty-chars-long-xyz';
    const { template } = synth({ instance: imported(f, longId), vpc: f.vpc, credentials: importedSecret(f) }, f);
    const s = bySid(statementsOf(template, 'DrProjectRole'), 'ManageTemporaryInstance');
    // 63 - "-pitr-".length - 14 (stamp) = 43 characters of the source, trailing hyphen dropped.
    expect(resourcesOf(s)).toEqual([arnOf('db', 'a-very-long-instance-identifier-that-is-six-pitr-*')]);
  });

  test('token instance id (created in this app): any *-pitr-* instance, bound to this source by tag conditions', () => {
    const { template } = synth();
    const statements = statementsOf(template, 'DrProjectRole');
    const id = Object.keys(template.findResources('AWS::RDS::DBInstance'))[0];
    // CloudFormation-generated ids are often longer than the 43 characters
    // the runner keeps, so the pattern cannot be built from the Ref.
    const temp = arnOf('db', '*-pitr-*');
    const snaps = `arn:\${AWS::Partition}:rds:eu-west-1:123456789012:snapshot:\${${id}}-pre-pitr-*`;
    const manage = bySid(statements, 'ManageTemporaryInstance');
    expect(resourcesOf(manage)).toEqual([temp]);
    expect(manage.Condition).toEqual({ StringEqualsIgnoreCase: { [`rds:db-tag/${TAGS.SOURCE}`]: { Ref: id } } });
    const tagTemp = bySid(statements, 'TagTemporaryInstance');
    expect(resourcesOf(tagTemp)).toEqual([temp]);
    expect(tagTemp.Condition).toEqual({ StringEqualsIgnoreCase: { [`aws:RequestTag/${TAGS.SOURCE}`]: { Ref: id } } });
    expect(resourcesOf(bySid(statements, 'TagSafetySnapshot'))).toEqual([snaps]);
    expect(resourcesOf(bySid(statements, 'RestoreTemporaryInstance'))).toContain(temp);

    const remove = bySid(statementsOf(template, 'DrTriggerRole'), 'DeleteTemporaryInstance');
    expect(resourcesOf(remove)).toEqual([temp]);
    expect(remove.Condition).toEqual({ StringEqualsIgnoreCase: { [`rds:db-tag/${TAGS.SOURCE}`]: { Ref: id } } });
  });

  test('every write on temporary instances is either literal-prefixed or tag-conditioned', () => {
    for (const template of [synth().template, (() => {
      const f = fixture();
      return synth({ instance: imported(f), vpc: f.vpc, credentials: importedSecret(f) }, f).template;
    })()]) {
      const writes = [...statementsOf(template, 'DrProjectRole'), ...statementsOf(template, 'DrTriggerRole')]
        .filter((s) => actionsOf(s).some((a) => /^rds:(Modify|Delete|AddTags)/.test(a)));
      expect(writes.length).toBeGreaterThanOrEqual(4);
      for (const w of writes) {
        const broad = resourcesOf(w).some((r) => r.includes(':db:*-pitr-*'));
        expect({ sid: w.Sid, broadWithoutCondition: broad && w.Condition === undefined }).toEqual({ sid: w.Sid, broadWithoutCondition: false });
      }
    }
  });

  test('reads the one secret; kms:Decrypt only when the secret uses a customer key', () => {
    const plain = statementsOf(synth().template, 'DrProjectRole');
    const read = plain.filter((s) => actionsOf(s).includes('secretsmanager:GetSecretValue'));
    expect(read).toHaveLength(1);
    expect(actionsOf(read[0])).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
    expect(read[0].Resource).toEqual({ Ref: expect.stringMatching(/^DbSecretAttachment/) });
    expect(plain.some((s) => actionsOf(s).includes('kms:Decrypt'))).toBe(false);

    const f = fixture();
    const key = new kms.Key(f.stack, 'SecretKey');
    const secret = new secretsmanager.Secret(f.stack, 'Cmk', { encryptionKey: key });
    const withKey = statementsOf(synth({ credentials: secret }, f).template, 'DrProjectRole');
    // The key policy admits the role; the identity statement is what this asserts.
    const template = Template.fromStack(f.stack);
    const keyPolicy = Object.values(template.findResources('AWS::KMS::Key'))[0].Properties.KeyPolicy.Statement as Statement[];
    const decrypt = [...withKey, ...keyPolicy].filter((s) => actionsOf(s).includes('kms:Decrypt'));
    expect(decrypt.length).toBeGreaterThan(0);
    expect(withKey.some((s) => actionsOf(s).includes('secretsmanager:GetSecretValue')
      && render(s.Resource) === `\${${Object.keys(template.findResources('AWS::SecretsManager::Secret')).find((k) => k.startsWith('Cmk'))}}`)).toBe(true);
  });

  test('credentialsEncryptionKey (a secret that does not carry its key): kms:Decrypt on that key, only through Secrets Manager', () => {
    const f = fixture();
    const key = kms.Key.fromKeyArn(f.stack, 'SecretKey', 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab');
    const statements = statementsOf(synth({ instance: imported(f), vpc: f.vpc, credentials: importedSecret(f), credentialsEncryptionKey: key }, f).template, 'DrProjectRole');
    const kmsStatements = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    expect(kmsStatements.map((s) => ({ actions: actionsOf(s), resources: resourcesOf(s), condition: s.Condition }))).toEqual([{
      actions: ['kms:Decrypt'],
      resources: [key.keyArn],
      condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' } },
    }]);
  });

  test('an imported key the secret carries (e.g. a managed master secret with a customer key): kms:Decrypt through Secrets Manager', () => {
    const f = fixture();
    const key = kms.Key.fromKeyArn(f.stack, 'SecretKey', 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab');
    const credentials = secretsmanager.Secret.fromSecretAttributes(f.stack, 'Managed', {
      secretCompleteArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0f1e2d3c-aaaa-bbbb-cccc-0123456789ab-AbCdEf',
      encryptionKey: key,
    });
    const statements = statementsOf(synth({ instance: imported(f), vpc: f.vpc, credentials }, f).template, 'DrProjectRole');
    expect(statements.filter((s) => actionsOf(s).includes('kms:Decrypt'))).toEqual([expect.objectContaining({
      Resource: key.keyArn,
      Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' } },
    })]);
  });

  test('the original\'s FreeStorageSpace: cloudwatch:GetMetricStatistics, alone in a policy of its own with its nag suppression', () => {
    const { template } = synth();
    const policies = Object.entries(template.findResources('AWS::IAM::Policy')).filter(([id]) => id.startsWith('DrReadFreeStorage'));
    expect(policies).toHaveLength(1);
    const [, policy] = policies[0];
    expect(policy.Properties.PolicyDocument.Statement).toEqual([
      { Sid: 'ReadFreeStorage', Effect: 'Allow', Action: 'cloudwatch:GetMetricStatistics', Resource: '*' },
    ]);
    expect((policy.Properties.Roles as Array<{ Ref: string }>).map((r) => r.Ref)).toEqual([expect.stringMatching(/^DrProjectRole/)]);
    expect(policy.Metadata.cdk_nag.rules_to_suppress).toEqual([expect.objectContaining({ id: 'AwsSolutions-IAM5', applies_to: ['Resource::*'] })]);
  });

  test('a customer managed storage key: CreateGrant (only for RDS, only for an AWS resource) and DescribeKey on that key only', () => {
    const f = fixture();
    const key = new kms.Key(f.stack, 'StorageKey');
    const statements = statementsOf(synth({ instanceEncryptionKey: key }, f).template, 'DrProjectRole');
    const kmsStatements = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kms:')));
    expect(kmsStatements.map((s) => ({ actions: actionsOf(s), resources: resourcesOf(s), conditions: s.Condition }))).toEqual([
      {
        actions: ['kms:CreateGrant'],
        resources: [expect.stringMatching(/^\$\{StorageKey[0-9A-F]{8}\.Arn\}$/)],
        conditions: { StringEquals: { 'kms:ViaService': 'rds.eu-west-1.amazonaws.com' }, Bool: { 'kms:GrantIsForAWSResource': 'true' } },
      },
      { actions: ['kms:DescribeKey'], resources: [expect.stringMatching(/^\$\{StorageKey[0-9A-F]{8}\.Arn\}$/)], conditions: undefined },
    ]);
    expect(statementsOf(synth().template, 'DrProjectRole').some((s) => actionsOf(s).some((a) => a.startsWith('kms:')))).toBe(false);
  });

  test('no mutating action is allowed on Resource "*" by any policy in the stack', () => {
    const { template } = synth({ notificationTopic: undefined });
    const readOnly = /^[a-z0-9-]+:(Describe|List|Get|BatchGet)/;
    // CodeBuild attaches these for any project in a VPC; CodeBuild creates the
    // build's network interfaces with the project role and they have no ARN beforehand.
    const codebuildVpcEni = new Set(['ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface']);
    // PutMetricData (restore drills) takes no resource-level permission: only with the condition that holds it to the drill namespace.
    const drillMetrics = (s: Statement) => actionsOf(s).join() === 'cloudwatch:PutMetricData'
      && JSON.stringify(s.Condition) === JSON.stringify({ StringEquals: { 'cloudwatch:namespace': 'CdkRdsPitr' } });
    const policies = Object.values(template.findResources('AWS::IAM::Policy'));
    const offending = policies.flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[])
      .filter((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).includes('*') && !drillMetrics(s))
      .flatMap(actionsOf)
      .filter((a) => !readOnly.test(a) && !codebuildVpcEni.has(a));
    expect(offending).toEqual([]);
  });
});

describe('trigger function', () => {
  test('Node.js 22, bundled handler, environment from the contract, own log group', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      Handler: 'index.handler',
      Environment: {
        Variables: {
          [TRIGGER_ENV.PROJECT_NAME]: { Ref: Match.stringLikeRegexp('^DrProject') },
          [TRIGGER_ENV.SOURCE_INSTANCE_ID]: { Ref: Match.stringLikeRegexp('^Db[0-9A-F]{8}$') },
        },
      },
      LoggingConfig: { LogGroup: { Ref: Match.stringLikeRegexp('^DrTriggerLogs') } },
    });
    const fn = Object.values(template.findResources('AWS::Lambda::Function'))[0];
    expect(render(fn.Properties.Code.S3Key)).toMatch(/^[0-9a-f]{64}\.zip$/);
  });

  test('role: no managed policy; StartBuild and BatchGetBuilds on its project only; describe, tags and delete as narrow as the API allows', () => {
    const f = fixture();
    const { template } = synth({ instance: imported(f), vpc: f.vpc, credentials: importedSecret(f) }, f);
    const role = Object.entries(template.findResources('AWS::IAM::Role')).find(([k]) => k.startsWith('DrTriggerRole'))![1];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const statements = statementsOf(template, 'DrTriggerRole');
    const project = Object.keys(template.findResources('AWS::CodeBuild::Project'))[0];
    const temp = arnOf('db', 'orders-db-pitr-*');
    const expected: Record<string, [string[], string[]]> = {
      StartRecoveryBuild: [['codebuild:StartBuild'], [`\${${project}.Arn}`]],
      ConfirmDeadBuild: [['codebuild:BatchGetBuilds'], [`\${${project}.Arn}`]],
      DescribeInstances: [['rds:DescribeDBInstances'], [arnOf('db', '*')]],
      ListTemporaryInstanceTags: [['rds:ListTagsForResource'], [arnOf('db', 'orders-db'), temp]],
      DescribeAutomatedBackups: [['rds:DescribeDBInstanceAutomatedBackups'], [arnOf('auto-backup', '*'), arnOf('db', 'orders-db')]],
      DeleteTemporaryInstance: [['rds:DeleteDBInstance'], [temp]],
    };
    for (const [sid, [actions, resources]] of Object.entries(expected)) {
      const s = bySid(statements, sid);
      expect({ sid, actions: actionsOf(s), resources: resourcesOf(s) }).toEqual({ sid, actions, resources: resources.slice().sort() });
    }
    const logsStatement = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
    expect(logsStatement).toHaveLength(1);
    expect(resourcesOf(logsStatement[0])).toEqual([`\${${Object.keys(template.findResources('AWS::Logs::LogGroup')).find((k) => k.startsWith('DrTriggerLogs'))}.Arn}`]);
    // Lambda's asynchronous dead-letter queue: SendMessage to the construct's own queue only.
    const sqsStatement = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('sqs:')));
    expect(sqsStatement.map((s) => ({ actions: actionsOf(s), resources: resourcesOf(s) }))).toEqual([
      { actions: ['sqs:SendMessage'], resources: [expect.stringMatching(/^\$\{DrCleanupDeadLetters[0-9A-F]{8}\.Arn\}$/)] },
    ]);
    expect(statements.map((s) => s.Sid ?? actionsOf(s)[0].split(':')[0]).sort()).toEqual([...Object.keys(expected), 'logs', 'sqs'].sort());
  });

  test('cleanup rule: this project\'s FAILED, FAULT, STOPPED and TIMED_OUT builds invoke the function', () => {
    const { template } = synth();
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        'source': ['aws.codebuild'],
        'detail-type': ['CodeBuild Build State Change'],
        'detail': { 'project-name': [{ Ref: Match.stringLikeRegexp('^DrProject') }], 'build-status': ['FAILED', 'FAULT', 'STOPPED', 'TIMED_OUT'] },
      },
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DrTrigger[0-9A-F]{8}$'), 'Arn'] } })],
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DrProjectCleanupRule'), 'Arn'] },
    });
    template.resourceCountIs('AWS::Events::Rule', 1);
  });
});

describe('notifications', () => {
  test('the topic receives started, succeeded and failed build states', () => {
    const f = fixture();
    const topic = new sns.Topic(f.stack, 'Topic');
    const { template } = synth({ notificationTopic: topic }, f);
    template.resourceCountIs('AWS::Events::Rule', 2);
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: Match.objectLike({
        detail: {
          'project-name': [{ Ref: Match.stringLikeRegexp('^DrProject') }],
          'build-status': ['IN_PROGRESS', 'SUCCEEDED', ...DEAD_BUILD_STATES],
        },
      }),
      Targets: [Match.objectLike({ Arn: { Ref: Match.stringLikeRegexp('^Topic') }, InputTransformer: Match.anyValue() })],
    });
    template.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: { Statement: [Match.objectLike({ Action: 'sns:Publish', Principal: { Service: 'events.amazonaws.com' } })] },
    });
  });
});

describe('public surface', () => {
  test('grantStartRecovery: invoke the function, StartBuild without overrides, read the build and its log group', () => {
    const f = fixture();
    const recovery = build(f);
    const user = new iam.Role(f.stack, 'Oncall', { assumedBy: new iam.AccountRootPrincipal() });
    const grant = recovery.grantStartRecovery(user);
    expect(grant.success).toBe(true);
    const template = Template.fromStack(f.stack);
    const statements = statementsOf(template, 'Oncall');
    const flat = statements.map((s) => ({ actions: actionsOf(s), resources: resourcesOf(s) }));
    const project = /^\$\{DrProject[0-9A-F]{8}\.Arn\}$/;
    expect(flat).toEqual(expect.arrayContaining([
      { actions: ['lambda:InvokeFunction'], resources: expect.arrayContaining([expect.stringMatching(/^\$\{DrTrigger[0-9A-F]{8}\.Arn\}$/)]) },
      { actions: ['codebuild:StartBuild'], resources: [expect.stringMatching(project)] },
      { actions: ['codebuild:BatchGetBuilds'], resources: [expect.stringMatching(project)] },
      { actions: expect.arrayContaining(['logs:GetLogEvents', 'logs:FilterLogEvents']), resources: [expect.stringMatching(/^\$\{DrBuildLogs[0-9A-F]{8}\.Arn\}$/)] },
    ]));
    const start = statements.find((s) => actionsOf(s).includes('codebuild:StartBuild'))!;
    expect(start.Condition).toEqual({
      'Null': expect.objectContaining({ 'codebuild:source.buildspec': 'true', 'codebuild:environment.image': 'true', 'codebuild:serviceRole': 'true' }),
      'ForAllValues:StringEquals': { 'codebuild:environment.environmentVariables.name': Object.values(START_ENV) },
    });
  });

  test('outputs: project, function, instance id and ready-to-paste command lines by default; none with outputs: false', () => {
    const f = fixture();
    const { template } = synth({ instance: imported(f), vpc: f.vpc, credentials: importedSecret(f) }, f);
    const outputs = template.findOutputs('*');
    const byName = (prefix: string) => Object.entries(outputs).find(([k]) => k.startsWith(`Dr${prefix}`))?.[1].Value;
    expect(byName('ProjectName')).toEqual({ Ref: expect.stringMatching(/^DrProject[0-9A-F]{8}$/) });
    expect(byName('TriggerFunctionName')).toEqual({ Ref: expect.stringMatching(/^DrTrigger[0-9A-F]{8}$/) });
    expect(byName('InstanceId')).toBe('orders-db');
    expect(render(byName('StartBuildCommand'))).toMatch(new RegExp('^aws codebuild start-build --region eu-west-1 --project-name \\$\\{DrProject[0-9A-F]{8}\\} '
      + `--environment-variables-override name=${START_ENV.RESTORE_TIME},value=[0-9TZ:-]+,type=PLAINTEXT name=${START_ENV.CONFIRM},value=orders-db,type=PLAINTEXT$`));
    expect(render(byName('InvokeCommand'))).toMatch(/^aws lambda invoke --region eu-west-1 --function-name \$\{DrTrigger[0-9A-F]{8}\} --cli-binary-format raw-in-base64-out --payload '\{"restoreTime":"[0-9TZ:-]+","confirm":"orders-db"\}' \/dev\/stdout$/);
    expect(Object.keys(synth({ outputs: false }).template.findOutputs('*'))).toEqual([]);
  });

  test('cleanup events that fail every retry land in one SSL-only dead-letter queue: the rule target\'s and the function\'s', () => {
    const { template, recovery } = synth();
    const queues = template.findResources('AWS::SQS::Queue');
    expect(Object.keys(queues)).toEqual([expect.stringMatching(/^DrCleanupDeadLetters[0-9A-F]{8}$/)]);
    const queueId = Object.keys(queues)[0];
    expect(queues[queueId].Properties).toEqual(expect.objectContaining({ MessageRetentionPeriod: 1_209_600, SqsManagedSseEnabled: true }));
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    template.hasResourceProperties('AWS::Events::Rule', {
      Targets: [Match.objectLike({ DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queueId, 'Arn'] } } })],
    });
    template.hasResourceProperties('AWS::Lambda::Function', { DeadLetterConfig: { TargetArn: { 'Fn::GetAtt': [queueId, 'Arn'] } } });
    expect(recovery.cleanupDeadLetterQueue.node.path).toBe('Test/Dr/CleanupDeadLetters');
  });

  test('metricFailedRecoveries is the project\'s FailedBuilds metric', () => {
    const f = fixture();
    const metric = build(f).metricFailedRecoveries({ period: Duration.minutes(1) });
    expect(metric.namespace).toBe('AWS/CodeBuild');
    expect(metric.metricName).toBe('FailedBuilds');
    expect(f.stack.resolve(metric.dimensions)).toEqual({ ProjectName: { Ref: expect.stringMatching(/^DrProject/) } });
    expect(metric.period.toSeconds()).toBe(60);
  });

  test('the construct is connectable: allowing it elsewhere opens the build\'s security group', () => {
    const f = fixture();
    const recovery = build(f);
    const other = new ec2.SecurityGroup(f.stack, 'Other', { vpc: f.vpc });
    other.connections.allowFrom(recovery, ec2.Port.tcp(443));
    Template.fromStack(f.stack).hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      FromPort: 443,
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DrProjectSecurityGroup'), 'GroupId'] },
    });
  });
});

describe('PostgreSQL client version', () => {
  const clientVersion = (template: Template) => {
    const project = Object.values(template.findResources('AWS::CodeBuild::Project'))[0];
    return (project.Properties.Environment.EnvironmentVariables as Array<{ Name: string; Value: string }>)
      .find((v) => v.Name === PROJECT_ENV.PG_CLIENT_VERSION)?.Value;
  };

  test('chosen at run time: nothing is pinned on the project, whatever the instance\'s version at synth', () => {
    const f16 = fixture();
    expect(clientVersion(synth({}, f16).template)).toBeUndefined();
    const f = fixture();
    const { template, stack } = synth({ instance: postgres(f, null) }, f);
    expect(clientVersion(template)).toBeUndefined();
    expect(Annotations.fromStack(stack).findWarning('/Test/Dr', Match.stringLikeRegexp('postgresClientVersion'))).toEqual([]);
  });

  test('an instance of a major the runner does not recover warns at synth', () => {
    const f13 = fixture();
    const { stack } = synth({ instance: postgres(f13, rds.PostgresEngineVersion.VER_13) }, f13);
    Annotations.fromStack(stack).hasWarning('/Test/Dr', Match.stringLikeRegexp('runs PostgreSQL 13; the recovery runs on PostgreSQL 15 to 18 only'));
  });

  test('the deprecated postgresClientVersion, equal to the instance\'s major, is passed on as a check, with a deprecation warning', () => {
    const f = fixture();
    const { template, stack } = synth({ postgresClientVersion: 16 }, f);
    expect(clientVersion(template)).toBe('16');
    Annotations.fromStack(stack).hasWarning('/Test/Dr', Match.stringLikeRegexp('`postgresClientVersion` is deprecated'));
  });

  test('the deprecated postgresClientVersion with an instance of unknown version is passed on as a check', () => {
    const f = fixture();
    expect(clientVersion(synth({ instance: postgres(f, null), postgresClientVersion: 18 }, f).template)).toBe('18');
  });
});

describe('synth-time errors name the prop and the value', () => {
  const expectError = (props: (f: Fixture) => Partial<PitrRecoveryProps>, message: RegExp) => {
    const f = fixture();
    expect(() => synth(props(f), f)).toThrow(message);
  };

  test('a non-PostgreSQL engine', () => {
    expectError((f) => ({
      instance: new rds.DatabaseInstance(f.stack, 'My', {
        engine: rds.DatabaseInstanceEngine.mysql({ version: rds.MysqlEngineVersion.VER_8_0 }),
        vpc: f.vpc,
      }),
    }), /`instance`.*engine "mysql".*accepted: an RDS for PostgreSQL instance/);
  });

  test('an imported instance without vpc', () => {
    expectError((f) => ({ instance: imported(f), credentials: importedSecret(f) }), /`vpc` is required when `instance` is imported \(instance "orders-db"\)/);
  });

  test('no credentials', () => {
    expectError((f) => ({ instance: imported(f), vpc: f.vpc }), /`credentials` is required because instance "orders-db" has no `secret`/);
  });

  test.each([
    [['template0'], /`databases\[0\]`: "template0" is not a database that can be recovered; accepted:/],
    [['orders', ''], /`databases\[1\]`: "" is not a database/],
    [['a,b'], /`databases\[0\]`: "a,b" cannot be passed to the build; accepted: a name without commas/],
    [[' orders'], /`databases\[0\]`: " orders" cannot be passed/],
    [['orders', 'orders'], /`databases\[1\]`: "orders" is listed twice/],
    [['x'.repeat(64)], /`databases\[0\]`: "x{64}" is not a database/],
    [[], /`databases` is an empty list/],
  ])('databases %j', (databases, message) => {
    expectError(() => ({ databases }), message);
  });

  test.each([[15], [17]])('postgresClientVersion %p on a PostgreSQL 16 instance: the client must be the server\'s major', (v) => {
    expectError(() => ({ postgresClientVersion: v }),
      new RegExp(`\`postgresClientVersion\` is ${v}, but the instance runs PostgreSQL 16; the client must be the server's major.*Accepted: 16, or leave it out`));
  });

  test.each([[14], [16.5], [0], [19]])('a postgresClientVersion the runner does not recover: %p', (v) => {
    expectError(() => ({ postgresClientVersion: v }), new RegExp(`\`postgresClientVersion\` is ${v}; accepted: a PostgreSQL major version from 15 to 18`));
  });

  test.each([[Duration.minutes(2)], [Duration.hours(37)], [Duration.seconds(90 * 60 + 30)]])('a timeout CodeBuild rejects: %s', (timeout) => {
    expectError(() => ({ timeout }), /`timeout` is .*; accepted: whole minutes from 5 to 2160/);
  });

  test('a missing bundle says how to produce it', () => {
    hideBundledRunner = true;
    try {
      expectError(() => ({}), /the bundled runner \(.*runner\.js\) is missing.*run `npx projen bundle`/);
    } finally {
      hideBundledRunner = false;
    }
  });
});

describe('buildspec', () => {
  const source = fs.readFileSync(path.join(__dirname, '..', 'buildspec', 'buildspec.yml'), 'utf8');
  const code = source.split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n');

  test('every variable it references is in the contract and set on the project', () => {
    const referenced = new Set([...code.matchAll(/\$\{?([A-Z_][A-Z0-9_]*)\}?/g)].map((m) => m[1]));
    expect(referenced.size).toBeGreaterThan(0);
    const contract = new Set<string>([...Object.values(PROJECT_ENV), ...Object.values(START_ENV), ...Object.values(BUILD_ENV)]);
    const project = Object.values(synth().template.findResources('AWS::CodeBuild::Project'))[0];
    const onProject = new Set((project.Properties.Environment.EnvironmentVariables as Array<{ Name: string }>).map((v) => v.Name));
    for (const name of referenced) {
      expect({ name, inContract: contract.has(name), onProject: onProject.has(name) }).toEqual({ name, inContract: true, onProject: true });
    }
  });

  test('Node.js 22, the client chosen and installed by install-client.sh, the shipped CA bundle, then the runner', () => {
    expect(code).toMatch(/^version: 0\.2$/m);
    expect(code).toMatch(/runtime-versions:\n\s+nodejs: 22\n/);
    expect(code).toMatch(/commands:\n\s+- bash install-client\.sh\n/);
    // Nothing is downloaded here but packages (install-client.sh): a VPC with only endpoints can still verify RDS's certificates.
    expect(code).not.toMatch(/curl|wget|https:\/\//);
    expect(code).toContain(`cp rds-ca-bundle.pem "\${${PROJECT_ENV.PG_CA_BUNDLE}}"`);
    expect(code).toMatch(/build:\n\s+commands:\n\s+- node runner\.js recover\n?$/);
  });

  test('the bundle ships this buildspec and the current RDS root certificates next to the runner', () => {
    const dir = path.join(__dirname, '..', 'assets', 'runner');
    expect(fs.readFileSync(path.join(dir, 'buildspec.yml'), 'utf8')).toBe(source);
    expect(fs.readFileSync(path.join(dir, 'install-client.sh'), 'utf8')).toBe(fs.readFileSync(path.join(__dirname, '..', 'buildspec', 'install-client.sh'), 'utf8'));
    const pems = fs.readFileSync(path.join(dir, 'rds-ca-bundle.pem'), 'utf8').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
    const subjects = pems.map((pem) => new X509Certificate(pem).subject);
    // rds-ca-rsa2048-g1, rds-ca-rsa4096-g1 and rds-ca-ecc384-g1 of the regions this test's stacks use.
    for (const region of ['us-east-1', 'eu-west-1']) {
      for (const kind of ['RSA2048', 'RSA4096', 'ECC384']) {
        expect(subjects.some((s) => s.includes(`Amazon RDS ${region} Root CA ${kind} G1`))).toBe(true);
      }
    }
    expect(pems.every((pem) => new Date(new X509Certificate(pem).validTo) > new Date())).toBe(true);
  });
});

describe('lab stack', () => {
  test('template snapshot, with asset hashes masked so handler edits do not churn it', () => {
    const template = Template.fromStack(new PitrLabStack(new App(), 'Lab')).toJSON();
    // The serializer has something to mask: both bundles are S3 assets.
    expect(JSON.stringify(template).match(/[0-9a-f]{64}\.zip/g)?.length).toBeGreaterThanOrEqual(2);
    expect(template).toMatchSnapshot();
  });

  test('the instance is private, PostgreSQL 16, backed up, destroyable', () => {
    const template = Template.fromStack(new PitrLabStack(new App(), 'Lab'));
    template.hasResource('AWS::RDS::DBInstance', {
      DeletionPolicy: 'Delete',
      Properties: Match.objectLike({
        Engine: 'postgres',
        EngineVersion: '16',
        PubliclyAccessible: false,
        BackupRetentionPeriod: 1,
        StorageEncrypted: true,
        DBSubnetGroupName: { Ref: Match.stringLikeRegexp('^InstanceSubnetGroup') },
      }),
    });
    template.hasResourceProperties('AWS::RDS::DBSubnetGroup', {
      SubnetIds: [{ Ref: Match.stringLikeRegexp('^VpcPrivateSubnet1') }, { Ref: Match.stringLikeRegexp('^VpcPrivateSubnet2') }],
    });
  });

  test('outputs are ready-to-paste start-build and invoke commands using the contract names', () => {
    const stack = new PitrLabStack(new App(), 'Lab');
    const outputs = Template.fromStack(stack).findOutputs('*');
    const start = render(outputs.StartBuildCommand.Value);
    expect(start).toMatch(new RegExp('^aws codebuild start-build --project-name \\$\\{DrProject[0-9A-F]{8}\\} --environment-variables-override '
      + `name=${START_ENV.RESTORE_TIME},value=latest,type=PLAINTEXT name=${START_ENV.CONFIRM},value=\\$\\{Instance[0-9A-F]{8}\\},type=PLAINTEXT$`));
    const invoke = render(outputs.InvokeCommand.Value);
    expect(invoke).toMatch(/^aws lambda invoke --function-name \$\{DrTrigger[0-9A-F]{8}\} --cli-binary-format raw-in-base64-out /);
    const payload = invoke.match(/--payload '([^']+)'/)![1].replace(/\$\{Instance[0-9A-F]{8}\}/, 'db-1');
    expect(JSON.parse(payload)).toEqual({ restoreTime: 'latest', confirm: 'db-1' });
  });
});
