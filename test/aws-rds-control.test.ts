/**
 * The AWS SDK v3 RdsControl adapter. The real wire protocol is exercised
 * against moto_server; what moto does not model (restore windows, the failing
 * statuses, RDS's refusal faults, and parameters moto ignores when they are
 * false or 0) is checked with aws-sdk-client-mock on the exact request sent.
 */
import { CloudWatchClient, GetMetricStatisticsCommand } from '@aws-sdk/client-cloudwatch';
import {
  CreateDBInstanceCommand,
  CreateDBParameterGroupCommand,
  CreateDBSubnetGroupCommand,
  CreateOptionGroupCommand,
  DBInstance,
  DBInstanceAlreadyExistsFault,
  DBInstanceNotFoundFault,
  DBSnapshotAlreadyExistsFault,
  DeleteDBInstanceCommand,
  DescribeDBInstanceAutomatedBackupsCommand,
  DescribeDBInstancesCommand,
  DescribeDBSnapshotsCommand,
  InsufficientDBInstanceCapacityFault,
  InvalidDBInstanceStateFault,
  InvalidRestoreFault,
  ListTagsForResourceCommand,
  ModifyDBInstanceCommand,
  PointInTimeRestoreNotEnabledFault,
  RDSClient,
  RDSServiceException,
  RestoreDBInstanceToPointInTimeCommand,
  CreateDBSnapshotCommand,
} from '@aws-sdk/client-rds';
import { AwsStub, mockClient } from 'aws-sdk-client-mock';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import { AdapterLog, AwsRdsControl, InstanceNotFoundError } from '../buildspec/runner/aws/rds-control';
import { PlanError, planRecovery, readStartRequest } from '../buildspec/runner/plan';
import type { SourceInstance, SourceStorage, TemporaryInstanceSpec } from '../buildspec/runner/ports';
import { CREATED_BY_VALUE, PROJECT_ENV, START_ENV, TAGS, safetySnapshotId, temporaryInstanceId } from '../src/contract';

const SAVED_ENV = { ...process.env };
const SOURCE = 'orders-db';
const SOURCE_PORT = 5433;
const SECURITY_GROUPS = ['sg-0a1b2c3d4e5f60718', 'sg-0fedcba9876543210'];
const SUBNET_GROUP = 'orders-subnets';
const PARAMETER_GROUP = 'orders-pg13';
const OPTION_GROUP = 'orders-options';
const BUILD_ID = 'orders-db-recovery:6f1c2a7e-0000-4000-8000-000000000001';
const PASSWORD = 'S3cr3t/pa ss+w0rd&=%';

function tagsFor(source: string, buildId = BUILD_ID): Record<string, string> {
  return { [TAGS.BUILD_ID]: buildId, [TAGS.SOURCE]: source, [TAGS.CREATED_BY]: CREATED_BY_VALUE };
}

/** Collects what the adapter logs, so tests can assert that a silent success was reported. */
function recordingLog(): AdapterLog & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`) };
}

afterAll(() => {
  process.env = SAVED_ENV;
});

// ---------------------------------------------------------------- moto_server

describe('against moto_server', () => {
  let moto: MotoServer;
  let motoRds: RDSClient;

  beforeAll(async () => {
    moto = await startMoto();
    // The adapter builds its own client from the environment, exactly as in CodeBuild.
    Object.assign(process.env, DUMMY_AWS_ENV, { AWS_ENDPOINT_URL: moto.endpoint });
    motoRds = new RDSClient(motoClientConfig(moto.endpoint));

    const subnets = await defaultSubnets(moto.endpoint);
    await motoRds.send(new CreateDBSubnetGroupCommand({
      DBSubnetGroupName: SUBNET_GROUP,
      DBSubnetGroupDescription: 'orders',
      SubnetIds: subnets.slice(0, 2),
    }));
    await motoRds.send(new CreateDBParameterGroupCommand({
      DBParameterGroupName: PARAMETER_GROUP,
      DBParameterGroupFamily: 'postgres13',
      Description: 'orders',
    }));
    await motoRds.send(new CreateOptionGroupCommand({
      OptionGroupName: OPTION_GROUP,
      EngineName: 'postgres',
      MajorEngineVersion: '13',
      OptionGroupDescription: 'orders',
    }));
    await motoRds.send(new CreateDBInstanceCommand({
      DBInstanceIdentifier: SOURCE,
      Engine: 'postgres',
      EngineVersion: '13.11',
      DBInstanceClass: 'db.r6g.large',
      AllocatedStorage: 100,
      MasterUsername: 'app_admin',
      MasterUserPassword: 'original-password',
      Port: SOURCE_PORT,
      BackupRetentionPeriod: 7,
      DBSubnetGroupName: SUBNET_GROUP,
      VpcSecurityGroupIds: SECURITY_GROUPS,
      DBParameterGroupName: PARAMETER_GROUP,
      OptionGroupName: OPTION_GROUP,
      PubliclyAccessible: false,
      Tags: [{ Key: 'team', Value: 'orders' }],
    }));
  });

  afterAll(async () => {
    await moto?.stop();
  });

  async function motoInstance(id: string): Promise<DBInstance> {
    const out = await motoRds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }));
    return out.DBInstances![0];
  }

  async function motoTags(arn: string): Promise<Record<string, string>> {
    const out = await motoRds.send(new ListTagsForResourceCommand({ ResourceName: arn }));
    return Object.fromEntries((out.TagList ?? []).map((t) => [t.Key, t.Value]));
  }

  test('describeSource returns what the restore must keep: network, groups, port, master user, backups', async () => {
    const source = await new AwsRdsControl().describeSource(SOURCE);
    const db = await motoInstance(SOURCE);
    expect(source).toEqual({
      id: SOURCE,
      status: 'available',
      engine: 'postgres',
      engineVersion: '13.11',
      endpoint: { host: db.Endpoint!.Address, port: SOURCE_PORT },
      masterUsername: 'app_admin',
      dbSubnetGroupName: SUBNET_GROUP,
      vpcSecurityGroupIds: SECURITY_GROUPS,
      dbParameterGroupName: PARAMETER_GROUP,
      optionGroupName: OPTION_GROUP,
      backupRetentionPeriod: 7,
      // moto models neither MasterUserSecret nor IOPS for gp2; the mock tests below cover them.
      masterUserSecretArn: undefined,
      storage: { type: db.StorageType, allocatedGiB: 100, iops: undefined, throughputMiBps: undefined, maxAllocatedGiB: undefined },
    });
    expect(source.storage?.type).toMatch(/^gp[23]$/);
    expect(source.endpoint.host).toMatch(new RegExp(`^${SOURCE}\\.`));
  });

  test('describeSource of an unknown instance names the id, the region and the variable', async () => {
    const error = await new AwsRdsControl().describeSource('no-such-db').catch((e) => e);
    expect(error).toBeInstanceOf(InstanceNotFoundError);
    expect(error.message).toContain('"no-such-db" was not found in region us-east-1');
    expect(error.message).toContain(PROJECT_ENV.SOURCE_INSTANCE_ID);
    expect(error.message).toContain('Nothing was created.');
  });

  test('restorableWindow: latest from moto\'s instance, earliest from its automated backup (moto lacks the window; a mock adds it)', async () => {
    const client = new RDSClient(motoClientConfig(moto.endpoint));
    const mock = mockClient(client);
    mock.send.callThrough();
    const earliest = new Date('2026-11-17T03:12:00Z');
    mock.on(DescribeDBInstanceAutomatedBackupsCommand).callsFake(async (input) => {
      const real = await motoRds.send(new DescribeDBInstanceAutomatedBackupsCommand(input));
      const withWindow = real.DBInstanceAutomatedBackups?.map((b) => ({ ...b, RestoreWindow: { EarliestTime: earliest } }));
      return { ...real, DBInstanceAutomatedBackups: withWindow };
    });
    // moto answers "now" as LatestRestorableTime on every call; keep the answer the adapter saw.
    let latest: Date | undefined;
    mock.on(DescribeDBInstancesCommand).callsFake(async (input) => {
      const real = await motoRds.send(new DescribeDBInstancesCommand(input));
      latest = real.DBInstances?.[0]?.LatestRestorableTime;
      return real;
    });
    const window = await new AwsRdsControl({ client }).restorableWindow(SOURCE);
    expect(latest).toBeInstanceOf(Date);
    expect(window).toEqual({ earliest, latest });
    expect(mock.commandCalls(DescribeDBInstanceAutomatedBackupsCommand)[0].args[0].input).toEqual({ DBInstanceIdentifier: SOURCE });
  });

  test('restorableWindow of an instance without automated backups is refused before anything is created', async () => {
    await motoRds.send(new CreateDBInstanceCommand({
      DBInstanceIdentifier: 'no-backups-db',
      Engine: 'postgres',
      DBInstanceClass: 'db.t4g.micro',
      AllocatedStorage: 20,
      MasterUsername: 'app_admin',
      MasterUserPassword: 'original-password',
      BackupRetentionPeriod: 0,
    }));
    await expect(new AwsRdsControl().restorableWindow('no-backups-db')).rejects.toThrow(
      `${PROJECT_ENV.SOURCE_INSTANCE_ID}: RDS instance "no-backups-db" has automated backups turned off (BackupRetentionPeriod 0)`,
    );
  });

  test('startSnapshot creates a tagged manual snapshot of the source; snapshotStatus reads its status', async () => {
    const rds = new AwsRdsControl();
    const snapshotId = safetySnapshotId(SOURCE, '20260101000000');
    await rds.startSnapshot(SOURCE, snapshotId, tagsFor(SOURCE));

    const snap = (await motoRds.send(new DescribeDBSnapshotsCommand({ DBSnapshotIdentifier: snapshotId }))).DBSnapshots![0];
    expect(snap.DBInstanceIdentifier).toBe(SOURCE);
    expect(snap.SnapshotType).toBe('manual');
    expect(await motoTags(snap.DBSnapshotArn!)).toEqual(tagsFor(SOURCE));
    expect(await rds.snapshotStatus(snapshotId)).toBe(snap.Status);
    expect(snap.Status).toBe('available');

    const again = await rds.startSnapshot(SOURCE, snapshotId, tagsFor(SOURCE)).catch((e) => e);
    expect(again.message).toContain(`starting the safety snapshot "${snapshotId}" of "${SOURCE}"`);
    expect(again.message).toContain('No snapshot was started.');
  });

  test('snapshotStatus of an unknown snapshot names it', async () => {
    const error = await new AwsRdsControl().snapshotStatus('no-such-snapshot').catch((e) => e);
    expect(error.message).toContain('"no-such-snapshot"');
    expect(error.message).toContain('DBSnapshotNotFound');
  });

  test('restoreToPointInTime creates the temporary instance in the source network with the class override and tags', async () => {
    const rds = new AwsRdsControl();
    const source = await rds.describeSource(SOURCE);
    const id = temporaryInstanceId(SOURCE, '20260101000001');
    await rds.restoreToPointInTime({
      id,
      source,
      restoreTime: new Date(Date.now() - 60 * 60 * 1000),
      instanceClass: 'db.t4g.medium',
      tags: tagsFor(SOURCE),
    });

    const db = await motoInstance(id);
    expect(db.DBInstanceIdentifier).toBe(id);
    expect(db.DBInstanceClass).toBe('db.t4g.medium');
    expect(db.Engine).toBe('postgres');
    expect(db.DBSubnetGroup?.DBSubnetGroupName).toBe(SUBNET_GROUP);
    expect(db.VpcSecurityGroups?.map((g) => g.VpcSecurityGroupId)).toEqual(SECURITY_GROUPS);
    expect(db.DBParameterGroups?.map((g) => g.DBParameterGroupName)).toEqual([PARAMETER_GROUP]);
    expect(db.OptionGroupMemberships?.map((g) => g.OptionGroupName)).toEqual([OPTION_GROUP]);
    expect(db.Endpoint?.Port).toBe(SOURCE_PORT);
    // moto ignores false/0 overrides and copies them from the source; the exact request is asserted with the mock below.
    expect(db.PubliclyAccessible).toBe(false);
    expect(db.MultiAZ).toBe(false);
    expect(db.DeletionProtection).toBe(false);
    expect(await motoTags(db.DBInstanceArn!)).toEqual(tagsFor(SOURCE));
  });

  test('restoreToPointInTime at "latest" keeps the source class when there is no override', async () => {
    const rds = new AwsRdsControl();
    const id = temporaryInstanceId(SOURCE, '20260101000002');
    await rds.restoreToPointInTime({ id, source: await rds.describeSource(SOURCE), restoreTime: 'latest', tags: tagsFor(SOURCE) });
    expect((await motoInstance(id)).DBInstanceClass).toBe('db.r6g.large');
  });

  test('restoreToPointInTime refused by RDS says so and that nothing was created', async () => {
    const rds = new AwsRdsControl();
    const source = await rds.describeSource(SOURCE);
    const id = temporaryInstanceId(SOURCE, '20260101000001'); // exists already
    const error = await rds.restoreToPointInTime({ id, source, restoreTime: 'latest', tags: tagsFor(SOURCE) }).catch((e) => e);
    expect(error.message).toMatch(/^RDS refused the restore \(restoring "orders-db" to "orders-db-pitr-20260101000001"/);
    expect(error.message).toContain('DBInstanceAlreadyExists');
    expect(error.message).toMatch(/Nothing was created\.$/);
  });

  test('findInstancesByTag returns the live instances with that tag only', async () => {
    const rds = new AwsRdsControl();
    const other = 'billing-db';
    await motoRds.send(new CreateDBInstanceCommand({
      DBInstanceIdentifier: other,
      Engine: 'postgres',
      DBInstanceClass: 'db.t4g.micro',
      AllocatedStorage: 20,
      MasterUsername: 'billing',
      MasterUserPassword: 'billing-password',
      BackupRetentionPeriod: 1,
    }));
    const otherTemp = temporaryInstanceId(other, '20260101000003');
    await rds.restoreToPointInTime({ id: otherTemp, source: await rds.describeSource(other), restoreTime: 'latest', tags: tagsFor(other) });

    const found = await rds.findInstancesByTag(TAGS.SOURCE, SOURCE);
    expect(found.map((i) => i.id).sort()).toEqual([
      temporaryInstanceId(SOURCE, '20260101000001'),
      temporaryInstanceId(SOURCE, '20260101000002'),
    ]);
    expect(found.every((i) => i.status === 'available')).toBe(true);
    expect((await rds.findInstancesByTag(TAGS.SOURCE, other)).map((i) => i.id)).toEqual([otherTemp]);
    expect(await rds.findInstancesByTag(TAGS.SOURCE, 'nobody')).toEqual([]);
  });

  test('describeInstance reports status and endpoint of the temporary instance', async () => {
    const id = temporaryInstanceId(SOURCE, '20260101000001');
    const state = await new AwsRdsControl().describeInstance(id);
    const db = await motoInstance(id);
    expect(state).toEqual({
      id,
      status: 'available',
      endpoint: { host: db.Endpoint!.Address, port: SOURCE_PORT },
      pendingPasswordChange: false,
    });
    await expect(new AwsRdsControl().describeInstance('no-such-db')).rejects.toBeInstanceOf(InstanceNotFoundError);
  });

  test('setMasterPassword is accepted; a failure names the instance and never the password', async () => {
    const rds = new AwsRdsControl();
    const id = temporaryInstanceId(SOURCE, '20260101000001');
    await rds.setMasterPassword(id, PASSWORD);
    expect((await rds.describeInstance(id)).status).toBe('available');

    const error = await rds.setMasterPassword('no-such-db', PASSWORD).catch((e) => e);
    expect(error.message).toContain('Setting the master password of "no-such-db" failed');
    expect(error.message).toContain('The password was not changed.');
    expectNoPassword(error);
  });

  test('deleteInstance removes the temporary instance; deleting it again succeeds and is logged', async () => {
    const log = recordingLog();
    const rds = new AwsRdsControl({ log });
    const id = temporaryInstanceId(SOURCE, '20260101000002');
    await rds.deleteInstance(id);
    // moto drops the instance at once; RDS would show it as "deleting" for a while.
    const after = await rds.describeInstance(id).then((s) => s.status, (e) => (e instanceof InstanceNotFoundError ? 'gone' : e));
    expect(['gone', 'deleting']).toContain(after);
    // A normal deletion is logged by the workflow; the adapter speaks only when it decides something itself.
    expect(log.lines).toEqual([]);
    expect((await rds.findInstancesByTag(TAGS.SOURCE, SOURCE)).map((i) => i.id)).toEqual([temporaryInstanceId(SOURCE, '20260101000001')]);

    await rds.deleteInstance(id);
    expect(log.lines).toEqual([`info temporary instance ${id} does not exist (already deleted); nothing to delete`]);
  });

  test('the source is still there and untouched by all of the above', async () => {
    const db = await motoInstance(SOURCE);
    expect(db.DBInstanceStatus).toBe('available');
    expect(db.DBInstanceClass).toBe('db.r6g.large');
    expect(await motoTags(db.DBInstanceArn!)).toEqual({ team: 'orders' });
  });
});

// ---------------------------------------------------------------- aws-sdk-client-mock

describe('what moto does not model (aws-sdk-client-mock)', () => {
  let client: RDSClient;
  let mock: AwsStub<any, any, any>;
  let log: ReturnType<typeof recordingLog>;
  let rds: AwsRdsControl;

  const SOURCE_INSTANCE: SourceInstance = {
    id: SOURCE,
    status: 'available',
    engine: 'postgres',
    engineVersion: '15.4',
    endpoint: { host: 'orders-db.abc.us-east-1.rds.amazonaws.com', port: SOURCE_PORT },
    masterUsername: 'app_admin',
    dbSubnetGroupName: SUBNET_GROUP,
    vpcSecurityGroupIds: SECURITY_GROUPS,
    dbParameterGroupName: PARAMETER_GROUP,
    optionGroupName: OPTION_GROUP,
    backupRetentionPeriod: 7,
  };
  const TEMP = temporaryInstanceId(SOURCE, '20261124093000');

  function spec(overrides: Partial<TemporaryInstanceSpec> = {}): TemporaryInstanceSpec {
    return { id: TEMP, source: SOURCE_INSTANCE, restoreTime: new Date('2026-11-24T09:30:00Z'), tags: tagsFor(SOURCE), ...overrides };
  }

  function fault<T extends RDSServiceException>(Fault: new (opts: any) => T, message: string): T {
    return new Fault({ message, $metadata: { httpStatusCode: 400 } });
  }

  beforeEach(() => {
    client = new RDSClient(motoClientConfig('http://127.0.0.1:9'));
    mock = mockClient(client);
    log = recordingLog();
    rds = new AwsRdsControl({ client, log });
  });

  describe('restorableWindow', () => {
    const latest = new Date('2026-11-24T10:55:00Z');

    test('earliest comes from the live automated backup, latest from the instance', async () => {
      mock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: SOURCE }).resolves({
        DBInstances: [{ DBInstanceIdentifier: SOURCE, BackupRetentionPeriod: 7, LatestRestorableTime: latest, DbiResourceId: 'db-LIVE', DBInstanceStatus: 'available' }],
      });
      mock.on(DescribeDBInstanceAutomatedBackupsCommand, { DBInstanceIdentifier: SOURCE }).resolves({
        DBInstanceAutomatedBackups: [
          // Left behind by an earlier instance with the same name.
          { DBInstanceIdentifier: SOURCE, DbiResourceId: 'db-OLD', Status: 'retained', RestoreWindow: { EarliestTime: new Date('2026-10-01T00:00:00Z'), LatestTime: new Date('2026-10-05T00:00:00Z') } },
          { DBInstanceIdentifier: SOURCE, DbiResourceId: 'db-LIVE', Status: 'active', RestoreWindow: { EarliestTime: new Date('2026-11-17T03:12:00Z'), LatestTime: latest } },
        ],
      });
      expect(await rds.restorableWindow(SOURCE)).toEqual({ earliest: new Date('2026-11-17T03:12:00Z'), latest });
    });

    test('backups turned off is refused with the reason', async () => {
      mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: SOURCE, BackupRetentionPeriod: 0, DBInstanceStatus: 'available' }] });
      const error = await rds.restorableWindow(SOURCE).catch((e) => e);
      expect(error.message).toContain(`"${SOURCE}" has automated backups turned off (BackupRetentionPeriod 0)`);
      expect(error.message).toContain('Nothing was created.');
      expect(mock.commandCalls(DescribeDBInstanceAutomatedBackupsCommand)).toHaveLength(0);
    });

    test('no automated backup with a window yet is refused', async () => {
      mock.on(DescribeDBInstancesCommand).resolves({
        DBInstances: [{ DBInstanceIdentifier: SOURCE, BackupRetentionPeriod: 7, LatestRestorableTime: latest }],
      });
      mock.on(DescribeDBInstanceAutomatedBackupsCommand).resolves({ DBInstanceAutomatedBackups: [] });
      await expect(rds.restorableWindow(SOURCE)).rejects.toThrow(`RDS reports no automated backup with a restore window for "${SOURCE}"`);
    });

    test('no LatestRestorableTime yet is refused', async () => {
      mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: SOURCE, BackupRetentionPeriod: 7, DBInstanceStatus: 'creating' }] });
      await expect(rds.restorableWindow(SOURCE)).rejects.toThrow(`RDS reports no LatestRestorableTime for "${SOURCE}" yet (status "creating")`);
    });

    test('an unknown instance names it', async () => {
      mock.on(DescribeDBInstancesCommand).rejects(fault(DBInstanceNotFoundFault, `DBInstance ${SOURCE} not found.`));
      const error = await rds.restorableWindow(SOURCE).catch((e) => e);
      expect(error).toBeInstanceOf(InstanceNotFoundError);
      expect(error.instanceId).toBe(SOURCE);
    });
  });

  describe('describeSource', () => {
    test('reports the RDS-managed master secret and the storage settings the restore must carry', async () => {
      const secretArn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-0f1e2d3c-aaaa-bbbb-cccc-0123456789ab-AbCdEf';
      mock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: SOURCE }).resolves({
        DBInstances: [{
          DBInstanceIdentifier: SOURCE,
          DBInstanceStatus: 'available',
          Engine: 'postgres',
          Endpoint: { Address: 'orders-db.abc.us-east-1.rds.amazonaws.com', Port: SOURCE_PORT },
          MasterUserSecret: { SecretArn: secretArn, SecretStatus: 'active', KmsKeyId: 'arn:aws:kms:us-east-1:123456789012:key/1234' },
          StorageType: 'gp3',
          AllocatedStorage: 500,
          MaxAllocatedStorage: 1000,
          Iops: 15000,
          StorageThroughput: 750,
        }],
      });
      const source = await rds.describeSource(SOURCE);
      expect(source.masterUserSecretArn).toBe(secretArn);
      expect(source.storage).toEqual({ type: 'gp3', allocatedGiB: 500, maxAllocatedGiB: 1000, iops: 15000, throughputMiBps: 750 });
    });
  });

  describe('a Multi-AZ DB cluster member', () => {
    test('is refused by the plan, naming the cluster, before any call that creates anything', async () => {
      // What DescribeDBInstances reports for a member of a Multi-AZ DB cluster: engine postgres, DBClusterIdentifier set.
      mock.on(DescribeDBInstancesCommand).resolves({
        DBInstances: [{
          DBInstanceIdentifier: SOURCE,
          DBInstanceStatus: 'available',
          Engine: 'postgres',
          EngineVersion: '16.4',
          MasterUsername: 'master',
          BackupRetentionPeriod: 7,
          DBClusterIdentifier: 'orders-cluster',
          Endpoint: { Address: 'orders-db.abc.us-east-1.rds.amazonaws.com', Port: SOURCE_PORT },
        }],
      });
      const request = readStartRequest({
        [PROJECT_ENV.SOURCE_INSTANCE_ID]: SOURCE, [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: SOURCE, CODEBUILD_BUILD_ID: 'p:1',
      }, { cpus: 2 });

      const refusal = planRecovery(request, rds, { now: new Date(), secretUsername: 'master' });

      await expect(refusal).rejects.toThrow(PlanError);
      await expect(refusal).rejects.toThrow(new RegExp(`SOURCE_INSTANCE_ID: instance "${SOURCE}" is a member of DB cluster "orders-cluster" \\(a Multi-AZ DB cluster or Aurora\\).*Nothing was created or changed\\.$`));
      const sent = mock.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
      expect(sent.filter((name) => /^(Create|Restore|Modify|Delete)/.test(name))).toEqual([]);
    });
  });

  describe('originalStorage (CloudWatch FreeStorageSpace)', () => {
    let cloudwatch: CloudWatchClient;
    let cwMock: AwsStub<any, any, any>;
    const GIB = 2 ** 30;

    beforeEach(() => {
      cloudwatch = new CloudWatchClient(motoClientConfig('http://127.0.0.1:9'));
      cwMock = mockClient(cloudwatch);
      rds = new AwsRdsControl({ client, log, cloudwatch });
    });

    test('asks for the Minimum of AWS/RDS FreeStorageSpace of the source over the last 15 minutes and takes the latest datapoint', async () => {
      cwMock.on(GetMetricStatisticsCommand).resolves({
        Datapoints: [
          { Timestamp: new Date('2026-11-24T09:28:00Z'), Minimum: 30 * GIB },
          { Timestamp: new Date('2026-11-24T09:30:00Z'), Minimum: 12 * GIB },
          { Timestamp: new Date('2026-11-24T09:29:00Z'), Minimum: 20 * GIB },
        ],
      });
      const source = { ...SOURCE_INSTANCE, storage: { type: 'gp3', allocatedGiB: 100, maxAllocatedGiB: 250 } };
      const before = Date.now();
      expect(await rds.originalStorage(source)).toEqual({ freeBytes: 12 * GIB, growableBytes: 150 * GIB });
      const input = cwMock.commandCalls(GetMetricStatisticsCommand)[0].args[0].input;
      expect(input).toMatchObject({
        Namespace: 'AWS/RDS',
        MetricName: 'FreeStorageSpace',
        Dimensions: [{ Name: 'DBInstanceIdentifier', Value: SOURCE }],
        Statistics: ['Minimum'],
        Period: 60,
      });
      expect(input.EndTime!.getTime() - input.StartTime!.getTime()).toBe(15 * 60_000);
      expect(input.EndTime!.getTime()).toBeGreaterThanOrEqual(before);
    });

    test('without storage autoscaling (no MaxAllocatedStorage) nothing more can grow', async () => {
      cwMock.on(GetMetricStatisticsCommand).resolves({ Datapoints: [{ Timestamp: new Date(), Minimum: 5 * GIB }] });
      const source = { ...SOURCE_INSTANCE, storage: { type: 'gp2', allocatedGiB: 100 } };
      expect(await rds.originalStorage(source)).toEqual({ freeBytes: 5 * GIB, growableBytes: 0 });
    });

    test('no datapoint in the window answers undefined (the workflow warns and goes on)', async () => {
      cwMock.on(GetMetricStatisticsCommand).resolves({ Datapoints: [] });
      expect(await rds.originalStorage(SOURCE_INSTANCE)).toBeUndefined();
    });

    test('a refused call names the metric and the instance', async () => {
      cwMock.on(GetMetricStatisticsCommand).rejects(Object.assign(new Error('User is not authorized to perform: cloudwatch:GetMetricStatistics'), { name: 'AccessDenied' }));
      await expect(rds.originalStorage(SOURCE_INSTANCE)).rejects.toThrow(
        `CloudWatch GetMetricStatistics AWS/RDS FreeStorageSpace for "${SOURCE}" failed: AccessDenied: User is not authorized`,
      );
    });
  });

  describe('restoreToPointInTime storage', () => {
    async function restoreInputFor(storage: SourceStorage) {
      mock.on(RestoreDBInstanceToPointInTimeCommand).resolves({});
      await rds.restoreToPointInTime(spec({ source: { ...SOURCE_INSTANCE, storage } }));
      return mock.commandCalls(RestoreDBInstanceToPointInTimeCommand)[0].args[0].input;
    }

    test('io1 and io2 carry the storage type and the provisioned IOPS, never a throughput', async () => {
      for (const type of ['io1', 'io2']) {
        mock.reset();
        const input = await restoreInputFor({ type, iops: 8000, allocatedGiB: 200, throughputMiBps: 250 });
        expect(input).toMatchObject({ StorageType: type, Iops: 8000 });
        expect(input).not.toHaveProperty('StorageThroughput');
        expect(input).not.toHaveProperty('AllocatedStorage');
      }
    });

    test('gp3 from 400 GiB carries IOPS, throughput and the allocated storage they need', async () => {
      const input = await restoreInputFor({ type: 'gp3', iops: 15000, throughputMiBps: 750, allocatedGiB: 500, maxAllocatedGiB: 1000 });
      expect(input).toMatchObject({ StorageType: 'gp3', Iops: 15000, StorageThroughput: 750, AllocatedStorage: 500 });
      expect(input).not.toHaveProperty('MaxAllocatedStorage');
    });

    test('gp3 below 400 GiB carries only the type: RDS refuses IOPS and throughput there (fixed baseline)', async () => {
      const input = await restoreInputFor({ type: 'gp3', iops: 3000, throughputMiBps: 125, allocatedGiB: 100 });
      expect(input.StorageType).toBe('gp3');
      expect(input).not.toHaveProperty('Iops');
      expect(input).not.toHaveProperty('StorageThroughput');
      expect(input).not.toHaveProperty('AllocatedStorage');
    });

    test('gp2 and standard carry only the type; an unknown storage leaves the restore\'s default', async () => {
      for (const type of ['gp2', 'standard']) {
        mock.reset();
        const input = await restoreInputFor({ type, allocatedGiB: 100, iops: 300 });
        expect(input.StorageType).toBe(type);
        expect(input).not.toHaveProperty('Iops');
      }
      mock.reset();
      const input = await restoreInputFor({});
      expect(input).not.toHaveProperty('StorageType');
    });
  });

  describe('restoreToPointInTime', () => {
    test('sends exactly the source network, safe defaults, no backups, tags and the class override', async () => {
      mock.on(RestoreDBInstanceToPointInTimeCommand).resolves({});
      await rds.restoreToPointInTime(spec({ instanceClass: 'db.r6g.xlarge' }));
      const calls = mock.commandCalls(RestoreDBInstanceToPointInTimeCommand);
      expect(calls).toHaveLength(1);
      expect(calls[0].args[0].input).toStrictEqual({
        SourceDBInstanceIdentifier: SOURCE,
        TargetDBInstanceIdentifier: TEMP,
        RestoreTime: new Date('2026-11-24T09:30:00Z'),
        DBSubnetGroupName: SUBNET_GROUP,
        VpcSecurityGroupIds: SECURITY_GROUPS,
        DBParameterGroupName: PARAMETER_GROUP,
        OptionGroupName: OPTION_GROUP,
        Port: SOURCE_PORT,
        PubliclyAccessible: false,
        MultiAZ: false,
        DeletionProtection: false,
        CopyTagsToSnapshot: false,
        BackupRetentionPeriod: 0,
        Tags: [
          { Key: TAGS.BUILD_ID, Value: BUILD_ID },
          { Key: TAGS.SOURCE, Value: SOURCE },
          { Key: TAGS.CREATED_BY, Value: CREATED_BY_VALUE },
        ],
        DBInstanceClass: 'db.r6g.xlarge',
      });
    });

    test('"latest" uses UseLatestRestorableTime; a default option group and a missing class are left out', async () => {
      mock.on(RestoreDBInstanceToPointInTimeCommand).resolves({});
      await rds.restoreToPointInTime(spec({ restoreTime: 'latest', source: { ...SOURCE_INSTANCE, optionGroupName: 'default:postgres-15' } }));
      const input = mock.commandCalls(RestoreDBInstanceToPointInTimeCommand)[0].args[0].input;
      expect(input.UseLatestRestorableTime).toBe(true);
      expect(input).not.toHaveProperty('RestoreTime');
      expect(input).not.toHaveProperty('OptionGroupName');
      expect(input).not.toHaveProperty('DBInstanceClass');
      expect(input.PubliclyAccessible).toBe(false);
    });

    test.each([
      ['InvalidRestoreFault', fault(InvalidRestoreFault, 'Restore time is outside the restorable window.'), 'outside the instance\'s restorable window'],
      ['PointInTimeRestoreNotEnabledFault', fault(PointInTimeRestoreNotEnabledFault, 'Point-in-time restore is not enabled.'), 'automated backups turned off'],
      ['DBInstanceAlreadyExistsFault', fault(DBInstanceAlreadyExistsFault, 'DB instance already exists'), 'already exists'],
      ['InsufficientDBInstanceCapacityFault', fault(InsufficientDBInstanceCapacityFault, 'Not enough capacity.'), START_ENV.TEMP_INSTANCE_CLASS],
    ])('a %s refusal is explained and says nothing was created', async (name, error, hint) => {
      mock.on(RestoreDBInstanceToPointInTimeCommand).rejects(error);
      const thrown = await rds.restoreToPointInTime(spec()).catch((e) => e);
      expect(thrown.message).toMatch(new RegExp(`^RDS refused the restore \\(restoring "${SOURCE}" to "${TEMP}" at 2026-11-24T09:30:00.000Z\\): ${name}: `));
      // RDS's message once, ending in one period (it already has one).
      expect(thrown.message).toContain(`${error.message.replace(/\.$/, '')}. Likely cause: `);
      expect(thrown.message).not.toContain('..');
      expect(thrown.message).toContain('Likely cause: ');
      expect(thrown.message).toContain(hint);
      expect(thrown.message).toMatch(/ Nothing was created\.$/);
    });

    test('a network or server error does not claim nothing was created', async () => {
      mock.on(RestoreDBInstanceToPointInTimeCommand).rejects(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
      const thrown = await rds.restoreToPointInTime(spec()).catch((e) => e);
      expect(thrown.message).toContain('RDS call failed while restoring');
      expect(thrown.message).toContain('TimeoutError: socket hang up.');
      expect(thrown.message).toContain('RDS may or may not have acted on the request');
      expect(thrown.message).not.toContain('Nothing was created');
    });
  });

  describe('describeInstance', () => {
    test.each(['failed', 'incompatible-restore', 'incompatible-parameters', 'incompatible-network', 'storage-full'])(
      'reports the failing status %s verbatim, without an endpoint',
      async (status) => {
        mock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: TEMP }).resolves({
          DBInstances: [{ DBInstanceIdentifier: TEMP, DBInstanceStatus: status }],
        });
        expect(await rds.describeInstance(TEMP)).toEqual({ id: TEMP, status, endpoint: undefined, pendingPasswordChange: false });
      },
    );

    test('a pending master password reset is reported', async () => {
      mock.on(DescribeDBInstancesCommand).resolves({
        DBInstances: [{
          DBInstanceIdentifier: TEMP,
          DBInstanceStatus: 'resetting-master-credentials',
          Endpoint: { Address: 'temp.abc.us-east-1.rds.amazonaws.com', Port: SOURCE_PORT },
          PendingModifiedValues: { MasterUserPassword: '****' },
        }],
      });
      expect(await rds.describeInstance(TEMP)).toEqual({
        id: TEMP,
        status: 'resetting-master-credentials',
        endpoint: { host: 'temp.abc.us-east-1.rds.amazonaws.com', port: SOURCE_PORT },
        pendingPasswordChange: true,
      });
    });
  });

  describe('findInstancesByTag', () => {
    test('follows every page, skips instances being deleted, and asks for tags only when the listing lacks them', async () => {
      const arnOf = (id: string) => `arn:aws:rds:us-east-1:123456789012:db:${id}`;
      mock.on(DescribeDBInstancesCommand, { Marker: undefined }).resolves({
        Marker: 'page-2',
        DBInstances: [
          { DBInstanceIdentifier: 'a', DBInstanceArn: arnOf('a'), DBInstanceStatus: 'available', TagList: [{ Key: TAGS.SOURCE, Value: SOURCE }] },
          { DBInstanceIdentifier: 'b', DBInstanceArn: arnOf('b'), DBInstanceStatus: 'deleting', TagList: [{ Key: TAGS.SOURCE, Value: SOURCE }] },
          { DBInstanceIdentifier: 'c', DBInstanceArn: arnOf('c'), DBInstanceStatus: 'available', TagList: [{ Key: TAGS.SOURCE, Value: 'other' }] },
        ],
      });
      mock.on(DescribeDBInstancesCommand, { Marker: 'page-2' }).resolves({
        DBInstances: [
          { DBInstanceIdentifier: 'd', DBInstanceArn: arnOf('d'), DBInstanceStatus: 'creating' },
          { DBInstanceIdentifier: 'e', DBInstanceArn: arnOf('e'), DBInstanceStatus: 'deleting' },
        ],
      });
      mock.on(ListTagsForResourceCommand, { ResourceName: arnOf('d') }).resolves({ TagList: [{ Key: TAGS.SOURCE, Value: SOURCE }] });

      const found = await rds.findInstancesByTag(TAGS.SOURCE, SOURCE);
      expect(found.map((i) => [i.id, i.status])).toEqual([['a', 'available'], ['d', 'creating']]);
      expect(mock.commandCalls(DescribeDBInstancesCommand)).toHaveLength(2);
      expect(mock.commandCalls(ListTagsForResourceCommand).map((c) => c.args[0].input.ResourceName)).toEqual([arnOf('d')]);
    });
  });

  describe('startSnapshot', () => {
    test('sends the source, the snapshot id and the tags', async () => {
      mock.on(CreateDBSnapshotCommand).resolves({});
      await rds.startSnapshot(SOURCE, safetySnapshotId(SOURCE, '20261124093000'), tagsFor(SOURCE));
      expect(mock.commandCalls(CreateDBSnapshotCommand)[0].args[0].input).toStrictEqual({
        DBInstanceIdentifier: SOURCE,
        DBSnapshotIdentifier: `${SOURCE}-pre-pitr-20261124093000`,
        Tags: [
          { Key: TAGS.BUILD_ID, Value: BUILD_ID },
          { Key: TAGS.SOURCE, Value: SOURCE },
          { Key: TAGS.CREATED_BY, Value: CREATED_BY_VALUE },
        ],
      });
    });

    test('a refusal names the snapshot', async () => {
      mock.on(CreateDBSnapshotCommand).rejects(fault(DBSnapshotAlreadyExistsFault, 'Cannot create the snapshot because a snapshot with the identifier already exists.'));
      await expect(rds.startSnapshot(SOURCE, 'snap-1', {})).rejects.toThrow(
        `RDS call failed while starting the safety snapshot "snap-1" of "${SOURCE}": DBSnapshotAlreadyExistsFault: Cannot create the snapshot`,
      );
    });
  });

  describe('setMasterPassword', () => {
    test('sends the password with ApplyImmediately', async () => {
      mock.on(ModifyDBInstanceCommand).resolves({});
      await rds.setMasterPassword(TEMP, PASSWORD);
      expect(mock.commandCalls(ModifyDBInstanceCommand)[0].args[0].input).toStrictEqual({
        DBInstanceIdentifier: TEMP,
        MasterUserPassword: PASSWORD,
        ApplyImmediately: true,
      });
      expect(log.lines.join('\n')).not.toContain(PASSWORD);
    });

    test('an error that echoes the password (plain or URL-encoded) is scrubbed and carries no cause', async () => {
      mock.on(ModifyDBInstanceCommand).rejects(Object.assign(
        new Error(`MasterUserPassword=${encodeURIComponent(PASSWORD)} rejected: "${PASSWORD}" is not valid`),
        { name: 'InvalidParameterValue', $fault: 'client', $response: { body: PASSWORD } },
      ));
      const error = await rds.setMasterPassword(TEMP, PASSWORD).catch((e) => e);
      expect(error.message).toContain(`Setting the master password of "${TEMP}" failed: InvalidParameterValue: MasterUserPassword=******** rejected`);
      expectNoPassword(error);
    });

    test('an empty password is refused before calling RDS', async () => {
      await expect(rds.setMasterPassword(TEMP, '')).rejects.toThrow('Refusing to set an empty master password');
      expect(mock.commandCalls(ModifyDBInstanceCommand)).toHaveLength(0);
    });
  });

  describe('deleteInstance', () => {
    test('skips the final snapshot, deletes automated backups, and does not wait', async () => {
      mock.on(DeleteDBInstanceCommand).resolves({});
      await rds.deleteInstance(TEMP);
      expect(mock.commandCalls(DeleteDBInstanceCommand)[0].args[0].input).toStrictEqual({
        DBInstanceIdentifier: TEMP,
        SkipFinalSnapshot: true,
        DeleteAutomatedBackups: true,
      });
      expect(mock.commandCalls(DescribeDBInstancesCommand)).toHaveLength(0);
    });

    test('an instance already being deleted counts as deleted, and the log says so', async () => {
      mock.on(DeleteDBInstanceCommand).rejects(fault(InvalidDBInstanceStateFault, `Instance ${TEMP} is already being deleted.`));
      mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: TEMP, DBInstanceStatus: 'deleting' }] });
      await rds.deleteInstance(TEMP);
      expect(log.lines).toEqual([`info temporary instance ${TEMP} is already being deleted; nothing more to do`]);
    });

    test('an instance that cannot be deleted in its state is an error that says it was NOT deleted', async () => {
      mock.on(DeleteDBInstanceCommand).rejects(fault(InvalidDBInstanceStateFault, `Instance ${TEMP} is not in a valid state.`));
      mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: TEMP, DBInstanceStatus: 'modifying' }] });
      const error = await rds.deleteInstance(TEMP).catch((e) => e);
      expect(error.message).toContain(`RDS call failed while deleting "${TEMP}": InvalidDBInstanceStateFault`);
      expect(error.message).toMatch(new RegExp(`"${TEMP}" was NOT deleted\\.$`));
      expect(log.lines).toEqual([]);
    });
  });
});

describe('configuration', () => {
  test('without a region in the environment, construction names the variable', () => {
    const saved = { ...process.env };
    delete process.env.AWS_REGION;
    delete process.env.AWS_DEFAULT_REGION;
    try {
      expect(() => new AwsRdsControl()).toThrow('AWS_REGION: not set (nor AWS_DEFAULT_REGION); accepted: an AWS region such as us-east-1');
    } finally {
      process.env = saved;
    }
  });
});

function expectNoPassword(error: unknown): void {
  const e = error as Error & { cause?: unknown };
  const everything = `${e.message}\n${e.stack}\n${JSON.stringify(e)}\n${String(e.cause)}`;
  expect(everything).not.toContain(PASSWORD);
  expect(everything).not.toContain(encodeURIComponent(PASSWORD));
  expect(e.cause).toBeUndefined();
}

/** Subnet ids of moto's default VPC (moto has one per region), via the EC2 query API; no EC2 client is installed. */
async function defaultSubnets(endpoint: string): Promise<string[]> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      // moto routes on the credential scope; it does not verify the signature.
      'authorization': `AWS4-HMAC-SHA256 Credential=${DUMMY_AWS_ENV.AWS_ACCESS_KEY_ID}/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0`,
    },
    body: 'Action=DescribeSubnets&Version=2016-11-15',
  });
  const body = await response.text();
  const ids = [...body.matchAll(/<subnetId>(subnet-[0-9a-f]+)<\/subnetId>/g)].map((m) => m[1]);
  if (ids.length < 2) throw new Error(`moto returned fewer than two default subnets: ${body.slice(0, 500)}`);
  return ids;
}
