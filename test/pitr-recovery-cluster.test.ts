/**
 * The construct with an Aurora PostgreSQL DB cluster (issue #20): what it
 * takes from the cluster (VPC, security groups, secret, storage key, engine
 * major), what it sets on the project and the trigger, the cluster IAM, and
 * the synth-time errors for what it refuses.
 */
import {
  App, Duration, Stack,
  aws_ec2 as ec2,
  aws_events as events,
  aws_kms as kms,
  aws_rds as rds,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { HousekeepingSchedule } from '../src';
import { PROJECT_ENV, TRIGGER_ENV, temporaryClusterPrefix } from '../src/contract';
import { PitrRecovery, PitrRecoveryProps } from '../src/pitr-recovery';

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

/** An Aurora PostgreSQL cluster with one writer, created in the app. */
function aurora(f: Fixture, props: Partial<rds.DatabaseClusterProps> = {}): rds.DatabaseCluster {
  return new rds.DatabaseCluster(f.stack, 'Cluster', {
    engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
    writer: rds.ClusterInstance.provisioned('Writer', { instanceType: ec2.InstanceType.of(ec2.InstanceClass.R6G, ec2.InstanceSize.LARGE) }),
    vpc: f.vpc,
    credentials: rds.Credentials.fromGeneratedSecret('postgres'),
    ...props,
  });
}

function importedCluster(f: Fixture, attrs: Partial<rds.DatabaseClusterAttributes> = {}): rds.IDatabaseCluster {
  return rds.DatabaseCluster.fromDatabaseClusterAttributes(f.stack, 'Imported', {
    clusterIdentifier: 'Orders-Aurora',
    clusterEndpointAddress: 'orders-aurora.cluster-abc.eu-west-1.rds.amazonaws.com',
    port: 5432,
    securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(f.stack, 'DbSg', 'sg-0123456789abcdef0')],
    engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_15_8 }),
    ...attrs,
  });
}

function importedSecret(f: Fixture): secretsmanager.ISecret {
  return secretsmanager.Secret.fromSecretCompleteArn(f.stack, 'Creds', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-aurora-master-AbCdEf');
}

function synth(props: (f: Fixture) => Partial<PitrRecoveryProps>, f: Fixture = fixture()) {
  const given = props(f);
  const recovery = new PitrRecovery(f.stack, 'Dr', { ...(given.instance ? {} : { cluster: given.cluster ?? aurora(f) }), ...given });
  return { recovery, template: Template.fromStack(f.stack), stack: f.stack };
}

type Statement = { Sid?: string; Action: string | string[]; Resource: unknown; Effect: string; Condition?: Record<string, Record<string, unknown>> };

function statementsOf(template: Template, rolePrefix: string): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((p) => (p.Properties.Roles as Array<{ Ref: string }>).some((r) => r.Ref.startsWith(rolePrefix)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

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
const list = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);
const resourcesOf = (s: Statement) => list(s.Resource).map(render).sort();
const actionsOf = (statements: Statement[]) => [...new Set(statements.flatMap((s) => list(s.Action)))].sort();
const bySid = (statements: Statement[], sid: string) => {
  const found = statements.filter((s) => s.Sid === sid);
  expect(found).toHaveLength(1);
  return found[0];
};
const rdsArn = (resource: string, name: string) => `arn:\${AWS::Partition}:rds:eu-west-1:123456789012:${resource}:${name}`;

function projectVariables(template: Template): Record<string, unknown> {
  const [project] = Object.values(template.findResources('AWS::CodeBuild::Project'));
  const variables = project.Properties.Environment.EnvironmentVariables as Array<{ Name: string; Value: unknown }>;
  return Object.fromEntries(variables.map((v) => [v.Name, v.Value]));
}

describe('a DatabaseCluster created in the app', () => {
  test('the project and the trigger name the cluster as SOURCE_CLUSTER_ID, never SOURCE_INSTANCE_ID', () => {
    const { template } = synth(() => ({}));
    const vars = projectVariables(template);
    expect(vars[PROJECT_ENV.SOURCE_CLUSTER_ID]).toEqual({ Ref: expect.stringMatching(/^Cluster[0-9A-F]{8}$/) });
    expect(vars).not.toHaveProperty(PROJECT_ENV.SOURCE_INSTANCE_ID);
    const [fn] = Object.values(template.findResources('AWS::Lambda::Function', { Properties: { Handler: 'index.handler' } }));
    const env = fn.Properties.Environment.Variables as Record<string, unknown>;
    expect(env[TRIGGER_ENV.SOURCE_CLUSTER_ID]).toEqual({ Ref: expect.stringMatching(/^Cluster[0-9A-F]{8}$/) });
    expect(env).not.toHaveProperty(TRIGGER_ENV.SOURCE_INSTANCE_ID);
  });

  test('the build reads the cluster\'s generated secret, and the cluster admits the build on its port', () => {
    const { template } = synth(() => ({}));
    expect(projectVariables(template)[PROJECT_ENV.SECRET_ARN]).toEqual({ Ref: expect.stringMatching(/^ClusterSecretAttachment/) });
    template.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^ClusterSecurityGroup'), 'GroupId'] },
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DrProjectSecurityGroup'), 'GroupId'] },
      FromPort: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Cluster'), 'Endpoint.Port'] },
    });
  });

  test('the cluster\'s storage key: kms:CreateGrant only through RDS for AWS resources, and DescribeKey', () => {
    const f = fixture();
    const key = new kms.Key(f.stack, 'StorageKey');
    const { template } = synth(() => ({ cluster: aurora(f, { storageEncryptionKey: key }) }), f);
    const build = statementsOf(template, 'DrProjectRole');
    const grant = bySid(build, 'GrantInstanceKeyToRds');
    expect(resourcesOf(grant)).toEqual([`\${${Object.keys(template.findResources('AWS::KMS::Key'))[0]}.Arn}`]);
    expect(grant.Condition).toEqual({
      StringEquals: { 'kms:ViaService': 'rds.eu-west-1.amazonaws.com' },
      Bool: { 'kms:GrantIsForAWSResource': 'true' },
    });
    expect(list(bySid(build, 'DescribeInstanceKey').Action)).toEqual(['kms:DescribeKey']);
  });

  test('a cluster without a customer managed key gets no KMS statement and no warning', () => {
    const { template, stack } = synth(() => ({}));
    expect(statementsOf(template, 'DrProjectRole').filter((s) => s.Sid === 'GrantInstanceKeyToRds')).toEqual([]);
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('InstanceKeyUnknown'))).toEqual([]);
  });

  test('the build role gets exactly the cluster actions, and no instance restore or snapshot action', () => {
    const { template } = synth(() => ({}));
    const rdsActions = actionsOf(statementsOf(template, 'DrProjectRole')).filter((a) => a.startsWith('rds:'));
    expect(rdsActions).toEqual([
      'rds:AddTagsToResource', 'rds:CreateDBClusterSnapshot', 'rds:CreateDBInstance', 'rds:DeleteDBCluster', 'rds:DeleteDBClusterSnapshot',
      'rds:DeleteDBInstance', 'rds:DescribeDBClusterSnapshots', 'rds:DescribeDBClusters', 'rds:DescribeDBInstances', 'rds:ListTagsForResource',
      'rds:ModifyDBCluster', 'rds:RestoreDBClusterToPointInTime',
    ]);
    const triggerActions = actionsOf(statementsOf(template, 'DrTriggerRole')).filter((a) => a.startsWith('rds:'));
    expect(triggerActions).toEqual(['rds:DeleteDBCluster', 'rds:DeleteDBInstance', 'rds:DescribeDBClusters', 'rds:DescribeDBInstances', 'rds:ListTagsForResource']);
  });

  test('every write on a temporary cluster or writer is bound to the source tag; the source cluster is named only where it is read or restored from', () => {
    const { template } = synth(() => ({}));
    const build = statementsOf(template, 'DrProjectRole');
    const tag = { StringEqualsIgnoreCase: { 'rds:cluster-tag/cdk-rds-pitr:source': { Ref: expect.stringMatching(/^Cluster/) } } };
    for (const sid of ['ModifyTemporaryCluster', 'DeleteTemporaryCluster', 'CreateWriterInTemporaryCluster']) {
      expect(bySid(build, sid).Condition).toEqual(tag);
      expect(resourcesOf(bySid(build, sid))).toEqual([rdsArn('cluster', '*-pitr-*')]);
    }
    expect(bySid(build, 'DeleteTemporaryWriter').Condition).toEqual({ StringEqualsIgnoreCase: { 'rds:db-tag/cdk-rds-pitr:source': { Ref: expect.stringMatching(/^Cluster/) } } });
    const tagging = { StringEqualsIgnoreCase: { 'aws:RequestTag/cdk-rds-pitr:source': { Ref: expect.stringMatching(/^Cluster/) } } };
    for (const sid of ['RestoreTemporaryCluster', 'TagTemporaryCluster']) expect(bySid(build, sid).Condition).toEqual(tagging);
    expect(bySid(build, 'CreateTemporaryWriter').Condition).toEqual({ ...tagging, Bool: { 'rds:PubliclyAccessible': 'false' } });
    const writes = build.filter((s) => list(s.Action).some((a) => /^rds:(Modify|Delete)/.test(a)));
    for (const s of writes) expect(resourcesOf(s).filter((r) => r.includes('Cluster') && r.includes('.Arn'))).toEqual([]);
  });

  test('drills, housekeeping, outputs and metrics name the cluster', () => {
    const { template, recovery } = synth(() => ({
      drillSchedule: events.Schedule.rate(Duration.days(1)),
      housekeepingSchedule: { schedule: events.Schedule.rate(Duration.days(1)), olderThan: Duration.days(7) } as HousekeepingSchedule,
    }));
    const descriptions = Object.values(template.findResources('AWS::Events::Rule')).map((r) => render(r.Properties.Description));
    expect(descriptions).toEqual(expect.arrayContaining([
      expect.stringMatching(/^Restore drill of Aurora PostgreSQL cluster \$\{Cluster[0-9A-F]{8}\}: the recovery path onto a temporary cluster/),
      expect.stringMatching(/^Housekeeping of Aurora PostgreSQL cluster \$\{Cluster[0-9A-F]{8}\}: /),
    ]));
    const outputs = template.findOutputs('*');
    const clusterId = Object.entries(outputs).filter(([id]) => id.startsWith('DrClusterId'));
    expect(clusterId).toHaveLength(1);
    expect(clusterId[0][1]).toEqual({ Description: 'PITR recovery: the cluster recovered into (the CONFIRM value)', Value: { Ref: expect.stringMatching(/^Cluster/) } });
    expect(Object.keys(outputs).filter((id) => id.startsWith('DrInstanceId'))).toEqual([]);
    expect(Stack.of(recovery).resolve(recovery.metricDrillSucceeded().dimensions)).toEqual({ SourceInstance: { Ref: expect.stringMatching(/^Cluster/) } });
  });

  test('postgresClientVersion is checked against the cluster\'s engine major', () => {
    expect(() => synth(() => ({ postgresClientVersion: 15 }))).toThrow(/`postgresClientVersion` is 15, but the cluster runs PostgreSQL 16/);
  });
});

describe('an imported cluster', () => {
  test('with vpc and credentials: literal ARNs, the temporary prefix shortened as the runner shortens it, lowercase', () => {
    const { template } = synth((f) => ({ cluster: importedCluster(f), vpc: f.vpc, credentials: importedSecret(f) }));
    const build = statementsOf(template, 'DrProjectRole');
    const prefix = temporaryClusterPrefix('Orders-Aurora');
    expect(prefix).toBe('orders-aurora-pitr-');
    expect(resourcesOf(bySid(build, 'RestoreTemporaryCluster'))).toEqual([
      rdsArn('cluster', 'orders-aurora'), rdsArn('cluster', `${prefix}*`), rdsArn('cluster-pg', '*'), rdsArn('og', '*'), rdsArn('subgrp', '*'),
    ].sort());
    expect(resourcesOf(bySid(build, 'DeleteSafetySnapshot'))).toEqual([rdsArn('cluster-snapshot', 'orders-aurora-pre-pitr-*')]);
    expect(resourcesOf(bySid(build, 'DeleteTemporaryWriter'))).toEqual([rdsArn('db', `${prefix}*`)]);
    expect(bySid(build, 'ModifyTemporaryCluster').Condition).toEqual({ StringEqualsIgnoreCase: { 'rds:cluster-tag/cdk-rds-pitr:source': 'orders-aurora' } });
    expect(projectVariables(template)[PROJECT_ENV.SOURCE_CLUSTER_ID]).toBe('Orders-Aurora');
  });

  test('a 60-character id: temporary cluster and writer both fit 63 characters under the one prefix', () => {
    const id = 'a-very-long-aurora-cluster-identifier-that-is-sixty-chars-xyz';
    const { template } = synth((f) => ({ cluster: importedCluster(f, { clusterIdentifier: id }), vpc: f.vpc, credentials: importedSecret(f) }));
    const prefix = temporaryClusterPrefix(id);
    expect(`${prefix}20261124093000-w`.length).toBeLessThanOrEqual(63);
    expect(resourcesOf(bySid(statementsOf(template, 'DrProjectRole'), 'CreateTemporaryWriter'))[0]).toBe(rdsArn('db', `${prefix}*`));
  });

  test('the secret attribute of the import is used when `credentials` is left out', () => {
    const f = fixture();
    const { template } = synth(() => ({ cluster: importedCluster(f, { secret: importedSecret(f) }), vpc: f.vpc }), f);
    expect(projectVariables(template)[PROJECT_ENV.SECRET_ARN]).toBe('arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-aurora-master-AbCdEf');
  });

  test('its storage key cannot be known: a warning that names `instanceEncryptionKey`; with it, the grant', () => {
    const f = fixture();
    const { stack } = synth(() => ({ cluster: importedCluster(f), vpc: f.vpc, credentials: importedSecret(f) }), f);
    expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('cluster "Orders-Aurora" is encrypted.*`instanceEncryptionKey`'))).toHaveLength(1);
    const g = fixture();
    const key = kms.Key.fromKeyArn(g.stack, 'Key', 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab');
    const { template } = synth(() => ({ cluster: importedCluster(g), vpc: g.vpc, credentials: importedSecret(g), instanceEncryptionKey: key }), g);
    expect(resourcesOf(bySid(statementsOf(template, 'DrProjectRole'), 'GrantInstanceKeyToRds'))).toEqual([key.keyArn]);
  });
});

describe('an RDS-managed master secret (manageMasterUserPassword on the CfnDBCluster)', () => {
  test('the build reads the secret RDS manages, and may decrypt it with its customer key through Secrets Manager only', () => {
    const f = fixture();
    const key = new kms.Key(f.stack, 'SecretKey');
    const cfn = new rds.CfnDBCluster(f.stack, 'Managed', {
      engine: 'aurora-postgresql',
      engineVersion: '16.4',
      masterUsername: 'postgres',
      manageMasterUserPassword: true,
      masterUserSecret: { kmsKeyId: key.keyArn },
    });
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(f.stack, 'Wrapped', {
      clusterIdentifier: cfn.ref,
      port: 5432,
      securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(f.stack, 'DbSg', 'sg-0123456789abcdef0')],
    });
    const { template } = synth(() => ({ cluster, vpc: f.vpc }), f);
    expect(projectVariables(template)[PROJECT_ENV.SECRET_ARN]).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Managed/), 'MasterUserSecret.SecretArn'] });
    const decrypt = bySid(statementsOf(template, 'DrProjectRole'), 'DecryptSecret');
    expect(resourcesOf(decrypt)).toEqual([`\${${Object.keys(template.findResources('AWS::KMS::Key'))[0]}.Arn}`]);
    // The region of the managed secret's ARN, read at deploy time.
    expect(render(decrypt.Condition!.StringEquals['kms:ViaService'])).toMatch(/^secretsmanager\..*MasterUserSecret\.SecretArn.*\.amazonaws\.com$/);
  });
});

describe('synth-time errors name the prop and the value', () => {
  test('both `instance` and `cluster`', () => {
    const f = fixture();
    const instance = rds.DatabaseInstance.fromDatabaseInstanceAttributes(f.stack, 'Inst', {
      instanceIdentifier: 'orders-db', instanceEndpointAddress: 'orders-db.abc', port: 5432, securityGroups: [],
    });
    expect(() => new PitrRecovery(f.stack, 'Dr', { instance, cluster: importedCluster(f), vpc: f.vpc }))
      .toThrow(/both `instance` \(instance "orders-db"\) and `cluster` \(cluster "Orders-Aurora"\) are set; accepted: exactly one.*Nothing was created/);
  });

  test('neither', () => {
    const f = fixture();
    expect(() => new PitrRecovery(f.stack, 'Dr', { vpc: f.vpc })).toThrow(/neither `instance` nor `cluster` is set; accepted: exactly one/);
  });

  test('Aurora MySQL', () => {
    expect(() => synth((f) => ({
      cluster: aurora(f, { engine: rds.DatabaseClusterEngine.auroraMysql({ version: rds.AuroraMysqlEngineVersion.VER_3_08_0 }) }),
    }))).toThrow(/`cluster` cluster Test\/Cluster runs engine "aurora-mysql"; accepted: an Aurora PostgreSQL DB cluster \(engine "aurora-postgresql"\)/);
    expect(() => synth((f) => ({
      cluster: importedCluster(f, { engine: rds.DatabaseClusterEngine.auroraMysql({ version: rds.AuroraMysqlEngineVersion.VER_3_08_0 }) }),
      vpc: f.vpc,
      credentials: importedSecret(f),
    }))).toThrow(/`cluster` cluster "Orders-Aurora" runs engine "aurora-mysql"/);
  });

  test('a Multi-AZ DB cluster (CfnDBCluster with engine postgres and DBClusterInstanceClass), not Aurora', () => {
    const f = fixture();
    const cfn = new rds.CfnDBCluster(f.stack, 'MultiAz', {
      engine: 'postgres',
      engineVersion: '16.4',
      dbClusterInstanceClass: 'db.m6gd.large',
      allocatedStorage: 100,
      storageType: 'io1',
      iops: 1000,
      masterUsername: 'postgres',
      manageMasterUserPassword: true,
    });
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(f.stack, 'Wrapped', {
      clusterIdentifier: cfn.ref, port: 5432, securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(f.stack, 'DbSg', 'sg-0123456789abcdef0')],
    });
    expect(() => new PitrRecovery(f.stack, 'Dr', { cluster, vpc: f.vpc }))
      .toThrow(/`cluster` cluster Test\/Wrapped is a Multi-AZ DB cluster \(engine "postgres", DBClusterInstanceClass "db.m6gd.large"\), not Aurora.*Nothing was created/);
  });

  test('an imported cluster without `vpc`, without a secret, without security groups, without a port', () => {
    expect(() => synth((f) => ({ cluster: importedCluster(f), credentials: importedSecret(f) })))
      .toThrow(/`vpc` is required when `cluster` is imported \(cluster "Orders-Aurora"\)/);
    expect(() => synth((f) => ({ cluster: importedCluster(f), vpc: f.vpc })))
      .toThrow(/`credentials` is required because cluster "Orders-Aurora" has no `secret`/);
    expect(() => synth((f) => ({ cluster: importedCluster(f, { securityGroups: [] }), vpc: f.vpc, credentials: importedSecret(f) })))
      .toThrow(/cluster "Orders-Aurora" has no security groups.*`securityGroups`/);
    expect(() => synth((f) => ({ cluster: importedCluster(f, { port: undefined }), vpc: f.vpc, credentials: importedSecret(f) })))
      .toThrow(/cluster "Orders-Aurora" has no port.*`port`/);
  });

  test('nothing is left in the tree after a refused cluster', () => {
    const f = fixture();
    expect(() => new PitrRecovery(f.stack, 'Dr', { vpc: f.vpc })).toThrow();
    const dr = f.stack.node.tryFindChild('Dr');
    expect(dr?.node.children ?? []).toEqual([]);
  });
});
