/**
 * The Aurora DB cluster adapter behind RdsControl (issue #20), on the exact
 * requests it sends (aws-sdk-client-mock): what a restore of the temporary
 * cluster carries (full copy or clone), its writer's class, the combined
 * status of the cluster and its writer, the password kept out of messages,
 * the order of the deletes and "already gone", and the cluster snapshots.
 * The plan's and client-major's handling of SOURCE_CLUSTER_ID is at the end.
 */
import {
  CreateDBClusterSnapshotCommand,
  CreateDBInstanceCommand,
  DBCluster,
  DBClusterNotFoundFault,
  DBInstanceAlreadyExistsFault,
  DBInstanceNotFoundFault,
  DeleteDBClusterCommand,
  DeleteDBClusterSnapshotCommand,
  DeleteDBInstanceCommand,
  DescribeDBClustersCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBInstancesCommand,
  InsufficientDBInstanceCapacityFault,
  InvalidDBClusterStateFault,
  InvalidDBInstanceStateFault,
  InvalidRestoreFault,
  ListTagsForResourceCommand,
  ModifyDBClusterCommand,
  RDSClient,
  RDSServiceException,
  RestoreDBClusterToPointInTimeCommand,
} from '@aws-sdk/client-rds';
import { AwsStub, mockClient } from 'aws-sdk-client-mock';
import { motoClientConfig } from './moto';
import { AwsRdsClusterControl, CLUSTER_DELETE_RETRY, writerIdOf } from '../buildspec/runner/aws/rds-cluster-control';
import { InstanceNotFoundError, type AdapterLog } from '../buildspec/runner/aws/rds-common';
import { chooseClientMajor } from '../buildspec/runner/client-major';
import { PlanError, planRecovery, readStartRequest } from '../buildspec/runner/plan';
import type { SourceInstance, TemporaryInstanceSpec } from '../buildspec/runner/ports';
import {
  AURORA_POSTGRES_ENGINE, BUILD_ENV, CREATED_BY_VALUE, PROJECT_ENV, START_ENV, TAGS, safetySnapshotId, temporaryClusterId, temporaryWriterId,
} from '../src/contract';

const SOURCE = 'orders-aurora';
const WRITER = 'orders-aurora-instance-1';
const PORT = 5433;
const SECURITY_GROUPS = ['sg-0a1b2c3d4e5f60718', 'sg-0fedcba9876543210'];
const SUBNET_GROUP = 'orders-subnets';
const CLUSTER_PARAMETER_GROUP = 'orders-apg16-cluster';
const PARAMETER_GROUP = 'orders-apg16';
const KMS_KEY = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-0f1e2d3c-aaaa-bbbb-cccc-0123456789ab-AbCdEf';
const ENDPOINT = 'orders-aurora.cluster-abc.us-east-1.rds.amazonaws.com';
const BUILD_ID = 'orders-aurora-recovery:6f1c2a7e-0000-4000-8000-000000000001';
const STAMP = '20261124093000';
const TEMP = temporaryClusterId(SOURCE, STAMP);
const TEMP_WRITER = temporaryWriterId(SOURCE, STAMP);
const TEMP_ENDPOINT = `${TEMP}.cluster-abc.us-east-1.rds.amazonaws.com`;
const PASSWORD = 'S3cr3t/pa ss+w0rd&=%';
const T = new Date('2026-11-24T09:30:00Z');

const TAG_VALUES = { [TAGS.BUILD_ID]: BUILD_ID, [TAGS.SOURCE]: SOURCE, [TAGS.CREATED_BY]: CREATED_BY_VALUE };
const TAG_LIST = [
  { Key: TAGS.BUILD_ID, Value: BUILD_ID },
  { Key: TAGS.SOURCE, Value: SOURCE },
  { Key: TAGS.CREATED_BY, Value: CREATED_BY_VALUE },
];

/** What DescribeDBClusters reports for the source: an encrypted, provisioned Aurora PostgreSQL 16 cluster with one writer and one reader. */
function sourceCluster(overrides: Partial<DBCluster> = {}): DBCluster {
  return {
    DBClusterIdentifier: SOURCE,
    DBClusterArn: `arn:aws:rds:us-east-1:123456789012:cluster:${SOURCE}`,
    Status: 'available',
    Engine: AURORA_POSTGRES_ENGINE,
    EngineVersion: '16.4',
    Endpoint: ENDPOINT,
    ReaderEndpoint: 'orders-aurora.cluster-ro-abc.us-east-1.rds.amazonaws.com',
    Port: PORT,
    MasterUsername: 'app_admin',
    DBSubnetGroup: SUBNET_GROUP,
    VpcSecurityGroups: SECURITY_GROUPS.map((id) => ({ VpcSecurityGroupId: id, Status: 'active' })),
    DBClusterParameterGroup: CLUSTER_PARAMETER_GROUP,
    TagList: [{ Key: 'team', Value: 'orders' }],
    StorageEncrypted: true,
    KmsKeyId: KMS_KEY,
    BackupRetentionPeriod: 7,
    EarliestRestorableTime: new Date('2026-11-17T03:12:00Z'),
    LatestRestorableTime: new Date('2026-11-24T10:55:00Z'),
    DBClusterMembers: [
      { DBInstanceIdentifier: 'orders-aurora-instance-2', IsClusterWriter: false },
      { DBInstanceIdentifier: WRITER, IsClusterWriter: true },
    ],
    ...overrides,
  };
}

const SOURCE_CLUSTER: SourceInstance = {
  id: SOURCE,
  kind: 'cluster',
  status: 'available',
  engine: AURORA_POSTGRES_ENGINE,
  engineVersion: '16.4',
  endpoint: { host: ENDPOINT, port: PORT },
  masterUsername: 'app_admin',
  dbSubnetGroupName: SUBNET_GROUP,
  vpcSecurityGroupIds: SECURITY_GROUPS,
  dbParameterGroupName: PARAMETER_GROUP,
  clusterParameterGroupName: CLUSTER_PARAMETER_GROUP,
  kmsKeyId: KMS_KEY,
  backupRetentionPeriod: 7,
  writer: { id: WRITER, instanceClass: 'db.r6g.large' },
};

const SERVERLESS_SOURCE: SourceInstance = {
  ...SOURCE_CLUSTER,
  writer: { id: WRITER, instanceClass: 'db.serverless' },
  serverlessV2Scaling: { minCapacity: 0.5, maxCapacity: 16 },
};

function spec(overrides: Partial<TemporaryInstanceSpec> = {}): TemporaryInstanceSpec {
  return { id: TEMP, source: SOURCE_CLUSTER, restoreTime: T, tags: TAG_VALUES, ...overrides };
}

function fault<E extends RDSServiceException>(Fault: new (opts: any) => E, message: string): E {
  return new Fault({ message, $metadata: { httpStatusCode: 400 } });
}

function recordingLog(): AdapterLog & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`) };
}

/** The command names sent, in order. */
function sent(mock: AwsStub<any, any, any>): string[] {
  return mock.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name);
}

let client: RDSClient;
let mock: AwsStub<any, any, any>;
let log: ReturnType<typeof recordingLog>;
let sleeps: number[];
let rds: AwsRdsClusterControl;

beforeEach(() => {
  client = new RDSClient(motoClientConfig('http://127.0.0.1:9'));
  mock = mockClient(client);
  log = recordingLog();
  sleeps = [];
  rds = new AwsRdsClusterControl({ client, log, sleep: async (ms) => { sleeps.push(ms); } });
});

describe('describeSource', () => {
  test('reads the cluster (writer endpoint, network, groups, KMS key, backups, managed secret) and its writer\'s class', async () => {
    mock.on(DescribeDBClustersCommand, { DBClusterIdentifier: SOURCE }).resolves({
      DBClusters: [sourceCluster({ MasterUserSecret: { SecretArn: SECRET_ARN, SecretStatus: 'active' } })],
    });
    mock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: WRITER }).resolves({
      DBInstances: [{ DBInstanceIdentifier: WRITER, DBInstanceClass: 'db.r6g.large', DBParameterGroups: [{ DBParameterGroupName: PARAMETER_GROUP }] }],
    });
    expect(await rds.describeSource(SOURCE)).toStrictEqual({ ...SOURCE_CLUSTER, masterUserSecretArn: SECRET_ARN });
    expect(sent(mock)).toEqual(['DescribeDBClustersCommand', 'DescribeDBInstancesCommand']);
  });

  test('a Serverless v2 cluster reports its capacity range and the db.serverless writer; an unencrypted one no KMS key', async () => {
    mock.on(DescribeDBClustersCommand).resolves({
      DBClusters: [sourceCluster({
        StorageEncrypted: false, KmsKeyId: undefined, ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 16 },
      })],
    });
    mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: WRITER, DBInstanceClass: 'db.serverless' }] });
    const source = await rds.describeSource(SOURCE);
    expect(source.writer).toEqual({ id: WRITER, instanceClass: 'db.serverless' });
    expect(source.serverlessV2Scaling).toEqual({ minCapacity: 0.5, maxCapacity: 16 });
    expect(source.kmsKeyId).toBeUndefined();
    expect(source.dbParameterGroupName).toBeUndefined();
  });

  test('a cluster without a writer is described (the plan refuses it) without asking for an instance', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [sourceCluster({ DBClusterMembers: [] })] });
    const source = await rds.describeSource(SOURCE);
    expect(source.writer).toBeUndefined();
    expect(sent(mock)).toEqual(['DescribeDBClustersCommand']);
  });

  test('an unknown cluster names SOURCE_CLUSTER_ID, the identifier and the region', async () => {
    mock.on(DescribeDBClustersCommand).rejects(fault(DBClusterNotFoundFault, `DBCluster ${SOURCE} not found.`));
    const error = await rds.describeSource(SOURCE).catch((e) => e);
    expect(error).toBeInstanceOf(InstanceNotFoundError);
    expect(error.message).toBe(`SOURCE_CLUSTER_ID: Aurora DB cluster "${SOURCE}" was not found in region us-east-1; accepted: the identifier of an existing `
      + 'Aurora PostgreSQL DB cluster in this account and region. Nothing was created.');
  });

  test('a cluster without an endpoint yet is refused', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [sourceCluster({ Endpoint: undefined, Status: 'creating' })] });
    await expect(rds.describeSource(SOURCE)).rejects.toThrow(`SOURCE_CLUSTER_ID: Aurora DB cluster "${SOURCE}" has no writer endpoint yet (status "creating")`);
  });
});

describe('restorableWindow', () => {
  test('EarliestRestorableTime .. LatestRestorableTime of the cluster', async () => {
    mock.on(DescribeDBClustersCommand, { DBClusterIdentifier: SOURCE }).resolves({ DBClusters: [sourceCluster()] });
    expect(await rds.restorableWindow(SOURCE)).toEqual({ earliest: new Date('2026-11-17T03:12:00Z'), latest: new Date('2026-11-24T10:55:00Z') });
  });

  test('no backup retention is refused with the reason; nothing created', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [sourceCluster({ BackupRetentionPeriod: 0 })] });
    const error = await rds.restorableWindow(SOURCE).catch((e) => e);
    expect(error.message).toMatch(/^SOURCE_CLUSTER_ID: Aurora DB cluster "orders-aurora" reports no backup retention period \(BackupRetentionPeriod 0\).*Nothing was created\.$/);
  });

  test('no restorable time yet is refused naming the missing field', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [sourceCluster({ LatestRestorableTime: undefined, Status: 'creating' })] });
    await expect(rds.restorableWindow(SOURCE)).rejects.toThrow(`SOURCE_CLUSTER_ID: RDS reports no LatestRestorableTime for "${SOURCE}" yet (status "creating")`);
  });
});

describe('findInstancesByTag', () => {
  test('follows every page, skips clusters being deleted, asks for tags only when the listing lacks them', async () => {
    const tagged = (id: string, status: string, build = BUILD_ID): DBCluster => ({
      DBClusterIdentifier: id,
      Status: status,
      Endpoint: `${id}.cluster-abc`,
      Port: PORT,
      TagList: [{ Key: TAGS.SOURCE, Value: SOURCE }, { Key: TAGS.BUILD_ID, Value: build }],
    });
    mock.on(DescribeDBClustersCommand)
      .resolvesOnce({ DBClusters: [sourceCluster({ TagList: [] }), tagged('orders-aurora-pitr-20261101000000', 'available', 'p:old')], Marker: 'page-2' })
      .resolvesOnce({
        DBClusters: [
          tagged('orders-aurora-pitr-20261102000000', 'deleting'),
          { DBClusterIdentifier: 'untagged-listing', Status: 'creating', DBClusterArn: 'arn:aws:rds:us-east-1:123456789012:cluster:untagged-listing' },
        ],
      });
    mock.on(ListTagsForResourceCommand).resolves({ TagList: [{ Key: TAGS.SOURCE, Value: SOURCE }] });
    expect(await rds.findInstancesByTag(TAGS.SOURCE, SOURCE)).toEqual([
      { id: 'orders-aurora-pitr-20261101000000', status: 'available', endpoint: { host: 'orders-aurora-pitr-20261101000000.cluster-abc', port: PORT }, buildId: 'p:old' },
      { id: 'untagged-listing', status: 'creating', endpoint: undefined, buildId: undefined },
    ]);
    expect(mock.commandCalls(DescribeDBClustersCommand)[1].args[0].input).toEqual({ Marker: 'page-2' });
    expect(mock.commandCalls(ListTagsForResourceCommand).map((c) => c.args[0].input)).toEqual([
      { ResourceName: 'arn:aws:rds:us-east-1:123456789012:cluster:untagged-listing' },
    ]);
  });

  test('a failed listing names the tag', async () => {
    mock.on(DescribeDBClustersCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'Throttling', $fault: 'client' }));
    await expect(rds.findInstancesByTag(TAGS.BUILD_ID, BUILD_ID)).rejects.toThrow(`RDS call failed while listing Aurora DB clusters tagged ${TAGS.BUILD_ID}=${BUILD_ID}: Throttling: Rate exceeded.`);
  });
});

describe('safety snapshots (DB cluster snapshots)', () => {
  const SNAPSHOT = safetySnapshotId(SOURCE, STAMP);

  test('startSnapshot creates a tagged DB cluster snapshot of the source; snapshotStatus reads it', async () => {
    mock.on(CreateDBClusterSnapshotCommand).resolves({});
    mock.on(DescribeDBClusterSnapshotsCommand, { DBClusterSnapshotIdentifier: SNAPSHOT }).resolves({ DBClusterSnapshots: [{ DBClusterSnapshotIdentifier: SNAPSHOT, Status: 'creating' }] });
    await rds.startSnapshot(SOURCE, SNAPSHOT, TAG_VALUES);
    expect(mock.commandCalls(CreateDBClusterSnapshotCommand)[0].args[0].input).toStrictEqual({
      DBClusterIdentifier: SOURCE,
      DBClusterSnapshotIdentifier: SNAPSHOT,
      Tags: TAG_LIST,
    });
    expect(await rds.snapshotStatus(SNAPSHOT)).toBe('creating');
  });

  test('listSafetySnapshots lists the source\'s manual cluster snapshots with the safety name only', async () => {
    mock.on(DescribeDBClusterSnapshotsCommand).resolves({
      DBClusterSnapshots: [
        { DBClusterSnapshotIdentifier: SNAPSHOT, Status: 'available', SnapshotCreateTime: T, AllocatedStorage: 12 },
        { DBClusterSnapshotIdentifier: 'orders-aurora-before-upgrade', Status: 'available' },
        { DBClusterSnapshotIdentifier: `${SOURCE}-pre-pitr-20261399000000`, Status: 'available' },
      ],
    });
    expect(await rds.listSafetySnapshots(SOURCE)).toEqual([{ id: SNAPSHOT, status: 'available', createdAt: T, allocatedGiB: 12 }]);
    expect(mock.commandCalls(DescribeDBClusterSnapshotsCommand)[0].args[0].input).toEqual({ DBClusterIdentifier: SOURCE, SnapshotType: 'manual' });
  });

  test('deleteSnapshot deletes the DB cluster snapshot; a refusal says it was NOT deleted', async () => {
    mock.on(DeleteDBClusterSnapshotCommand).resolvesOnce({}).rejectsOnce(fault(InvalidDBClusterStateFault, 'Snapshot is being created.'));
    await rds.deleteSnapshot(SNAPSHOT);
    expect(mock.commandCalls(DeleteDBClusterSnapshotCommand)[0].args[0].input).toStrictEqual({ DBClusterSnapshotIdentifier: SNAPSHOT });
    await expect(rds.deleteSnapshot(SNAPSHOT)).rejects.toThrow(`"${SNAPSHOT}" was NOT deleted.`);
  });
});

describe('restoreToPointInTime', () => {
  beforeEach(() => {
    mock.on(RestoreDBClusterToPointInTimeCommand).resolves({ DBCluster: { DBClusterIdentifier: TEMP, Status: 'creating' } });
  });

  test('a recovery at T: a full copy in the source\'s network, port, KMS key and cluster parameter group, tagged, unprotected', async () => {
    await rds.restoreToPointInTime(spec());
    expect(mock.commandCalls(RestoreDBClusterToPointInTimeCommand)[0].args[0].input).toStrictEqual({
      SourceDBClusterIdentifier: SOURCE,
      DBClusterIdentifier: TEMP,
      RestoreType: 'full-copy',
      RestoreToTime: T,
      DBSubnetGroupName: SUBNET_GROUP,
      VpcSecurityGroupIds: SECURITY_GROUPS,
      Port: PORT,
      KmsKeyId: KMS_KEY,
      DBClusterParameterGroupName: CLUSTER_PARAMETER_GROUP,
      DeletionProtection: false,
      CopyTagsToSnapshot: false,
      Tags: TAG_LIST,
    });
    // RDS creates instances in a restored cluster only once it is available: the writer waits for describeInstance.
    expect(sent(mock)).toEqual(['RestoreDBClusterToPointInTimeCommand']);
    expect(log.lines).toEqual([`info temporary cluster ${TEMP}: its writer ${TEMP_WRITER} (db.r6g.large) is requested once the cluster is available`]);
  });

  test('a recovery at "latest" is a full copy too', async () => {
    await rds.restoreToPointInTime(spec({ restoreTime: 'latest' }));
    const input = mock.commandCalls(RestoreDBClusterToPointInTimeCommand)[0].args[0].input;
    expect(input).toMatchObject({ RestoreType: 'full-copy', UseLatestRestorableTime: true });
    expect(input).not.toHaveProperty('RestoreToTime');
  });

  test('a drill at "latest" is a copy-on-write clone, and the log says so', async () => {
    await rds.restoreToPointInTime(spec({ restoreTime: 'latest', clone: true }));
    const input = mock.commandCalls(RestoreDBClusterToPointInTimeCommand)[0].args[0].input;
    expect(input).toMatchObject({ RestoreType: 'copy-on-write', UseLatestRestorableTime: true });
    expect(input).not.toHaveProperty('RestoreToTime');
    expect(log.lines[0]).toBe(`info temporary cluster ${TEMP}: requested as a copy-on-write clone of ${SOURCE} at the latest restorable time (it shares the source's `
      + 'storage pages until either side writes; RDS makes a full copy instead when the source already has 15 clones)');
  });

  test('a drill at an instant is a full copy: RDS refuses RestoreToTime with copy-on-write; the log says why', async () => {
    await rds.restoreToPointInTime(spec({ clone: true }));
    expect(mock.commandCalls(RestoreDBClusterToPointInTimeCommand)[0].args[0].input).toMatchObject({ RestoreType: 'full-copy', RestoreToTime: T });
    expect(log.lines[0]).toBe(`info temporary cluster ${TEMP}: a full copy, because RDS makes a copy-on-write clone only at the latest restorable time, not at ${T.toISOString()}`);
  });

  test('a Serverless v2 source: its capacity range on the cluster; an unencrypted source: no KMS key', async () => {
    await rds.restoreToPointInTime(spec({ source: { ...SERVERLESS_SOURCE, kmsKeyId: undefined, clusterParameterGroupName: undefined } }));
    const input = mock.commandCalls(RestoreDBClusterToPointInTimeCommand)[0].args[0].input;
    expect(input.ServerlessV2ScalingConfiguration).toStrictEqual({ MinCapacity: 0.5, MaxCapacity: 16 });
    expect(input).not.toHaveProperty('KmsKeyId');
    expect(input).not.toHaveProperty('DBClusterParameterGroupName');
  });

  test('refused by RDS: says so, with the likely cause, and that nothing was created; no writer is requested later', async () => {
    mock.on(RestoreDBClusterToPointInTimeCommand).rejects(Object.assign(fault(InvalidRestoreFault, 'The restore time is outside the window.'), { $fault: 'client' }));
    const error = await rds.restoreToPointInTime(spec()).catch((e) => e);
    expect(error.message).toBe(`RDS refused the restore (restoring Aurora DB cluster "${SOURCE}" to "${TEMP}" at ${T.toISOString()}): InvalidRestoreFault: `
      + 'The restore time is outside the window. Likely cause: the restore time is probably outside the cluster\'s restorable window; '
      + 'choose a time inside it or RESTORE_TIME=latest. Nothing was created.');
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ DBClusterIdentifier: TEMP, Status: 'available', Endpoint: TEMP_ENDPOINT, Port: PORT }] });
    mock.on(DescribeDBInstancesCommand).rejects(fault(DBInstanceNotFoundFault, 'not found'));
    await rds.describeInstance(TEMP);
    expect(mock.commandCalls(CreateDBInstanceCommand)).toHaveLength(0);
  });

  test('a source whose writer\'s class is unknown, without TEMP_INSTANCE_CLASS, is refused before RDS is called', async () => {
    await expect(rds.restoreToPointInTime(spec({ source: { ...SOURCE_CLUSTER, writer: undefined } }))).rejects.toThrow(/has no writer instance whose class .* Nothing was created\.$/);
    expect(sent(mock)).toEqual([]);
  });
});

describe('describeInstance: the temporary cluster and its writer as one', () => {
  const tempCluster = (overrides: Partial<DBCluster> = {}): DBCluster => ({ DBClusterIdentifier: TEMP, Status: 'available', Endpoint: TEMP_ENDPOINT, Port: PORT, ...overrides });

  async function restored(overrides: Partial<TemporaryInstanceSpec> = {}): Promise<void> {
    mock.on(RestoreDBClusterToPointInTimeCommand).resolves({});
    await rds.restoreToPointInTime(spec(overrides));
    log.lines.length = 0;
  }

  test('while the cluster is being restored: its status, and no writer is requested', async () => {
    await restored();
    mock.on(DescribeDBClustersCommand, { DBClusterIdentifier: TEMP }).resolves({ DBClusters: [tempCluster({ Status: 'creating', Endpoint: undefined })] });
    expect(await rds.describeInstance(TEMP)).toEqual({ id: TEMP, status: 'creating', detail: `cluster ${TEMP}`, endpoint: undefined, pendingPasswordChange: false });
    expect(mock.commandCalls(CreateDBInstanceCommand)).toHaveLength(0);
    expect(mock.commandCalls(DescribeDBInstancesCommand)).toHaveLength(0);
  });

  test.each([
    ['the source writer\'s class', {}, SOURCE_CLUSTER, 'db.r6g.large'],
    ['TEMP_INSTANCE_CLASS over the source writer\'s', { instanceClass: 'db.r6g.xlarge' }, SOURCE_CLUSTER, 'db.r6g.xlarge'],
    ['db.serverless for a Serverless v2 writer', {}, SERVERLESS_SOURCE, 'db.serverless'],
    ['TEMP_INSTANCE_CLASS over db.serverless', { instanceClass: 'db.r7g.large' }, SERVERLESS_SOURCE, 'db.r7g.large'],
  ])('once the cluster is available, its writer is requested once, with %s', async (_name, overrides, source, instanceClass) => {
    await restored({ ...overrides, source });
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DescribeDBInstancesCommand, { DBInstanceIdentifier: TEMP_WRITER }).rejects(fault(DBInstanceNotFoundFault, `DBInstance ${TEMP_WRITER} not found.`));
    mock.on(CreateDBInstanceCommand).resolves({});
    expect(await rds.describeInstance(TEMP)).toMatchObject({ id: TEMP, status: 'creating', detail: `writer ${TEMP_WRITER} requested` });
    expect(mock.commandCalls(CreateDBInstanceCommand)[0].args[0].input).toStrictEqual({
      DBInstanceIdentifier: TEMP_WRITER,
      DBClusterIdentifier: TEMP,
      Engine: AURORA_POSTGRES_ENGINE,
      DBInstanceClass: instanceClass,
      PubliclyAccessible: false,
      DBParameterGroupName: PARAMETER_GROUP,
      Tags: TAG_LIST,
    });
    // The next poll, before RDS lists the writer, does not ask again.
    await rds.describeInstance(TEMP);
    expect(mock.commandCalls(CreateDBInstanceCommand)).toHaveLength(1);
  });

  test('a default parameter group of the source writer is left to RDS', async () => {
    await restored({ source: { ...SOURCE_CLUSTER, dbParameterGroupName: 'default.aurora-postgresql16' } });
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DescribeDBInstancesCommand).rejects(fault(DBInstanceNotFoundFault, 'not found'));
    mock.on(CreateDBInstanceCommand).resolves({});
    await rds.describeInstance(TEMP);
    expect(mock.commandCalls(CreateDBInstanceCommand)[0].args[0].input).not.toHaveProperty('DBParameterGroupName');
  });

  test('the writer refused: the error says the temporary cluster exists without it and that the cleanup deletes it', async () => {
    await restored();
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DescribeDBInstancesCommand).rejects(fault(DBInstanceNotFoundFault, 'not found'));
    mock.on(CreateDBInstanceCommand).rejects(Object.assign(fault(InsufficientDBInstanceCapacityFault, 'Cannot create a database instance because there is not enough capacity.'), { $fault: 'client' }));
    const error = await rds.describeInstance(TEMP).catch((e) => e);
    expect(error.message).toBe(`RDS refused the writer instance (creating the writer instance "${TEMP_WRITER}" (db.r6g.large) in the temporary cluster "${TEMP}"): `
      + 'InsufficientDBInstanceCapacityFault: Cannot create a database instance because there is not enough capacity. Likely cause: RDS has no capacity for this '
      + 'instance class in the subnet group\'s zones; set TEMP_INSTANCE_CLASS to another class. '
      + `The temporary cluster "${TEMP}" exists without a writer; the cleanup deletes it (tag ${TAGS.BUILD_ID}). The original was not changed.`);
  });

  test('the writer refused while RDS still finishes the cluster (InvalidDBClusterState): asked again at the next polls, bounded, then the error', async () => {
    await restored();
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DescribeDBInstancesCommand).rejects(fault(DBInstanceNotFoundFault, 'not found'));
    const notReady = (): Error => Object.assign(fault(InvalidDBClusterStateFault, `DB cluster ${TEMP} is not in a valid state.`), { $fault: 'client' });
    mock.on(CreateDBInstanceCommand).rejectsOnce(notReady()).resolves({});
    // The first refusal costs one poll, not the restore.
    expect(await rds.describeInstance(TEMP)).toMatchObject({ id: TEMP, status: 'creating', detail: `writer ${TEMP_WRITER} to be requested again` });
    expect(log.lines.join('\n')).toMatch(new RegExp(`writer ${TEMP_WRITER}: RDS refused it for now \\(InvalidDBClusterStateFault: .*\\); asking again at the next poll \\(attempt 1 of \\d+\\)`));
    expect(await rds.describeInstance(TEMP)).toMatchObject({ status: 'creating', detail: `writer ${TEMP_WRITER} requested` });
    expect(mock.commandCalls(CreateDBInstanceCommand)).toHaveLength(2);
    await rds.describeInstance(TEMP);
    expect(mock.commandCalls(CreateDBInstanceCommand)).toHaveLength(2);

    // Refused every time: the same error as any refusal after the last attempt, and no more requests.
    mock.reset();
    await restored();
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DescribeDBInstancesCommand).rejects(fault(DBInstanceNotFoundFault, 'not found'));
    mock.on(CreateDBInstanceCommand).callsFake(() => Promise.reject(notReady()));
    let error: Error | undefined;
    for (let poll = 0; poll < 20 && !error; poll++) error = await rds.describeInstance(TEMP).then(() => undefined, (e: Error) => e);
    expect(error?.message).toMatch(new RegExp(`^RDS refused the writer instance .*InvalidDBClusterStateFault.*The temporary cluster "${TEMP}" exists without a writer; the cleanup deletes it`));
    const attempts = mock.commandCalls(CreateDBInstanceCommand).length;
    expect(attempts).toBeGreaterThan(1);
    expect(attempts).toBeLessThan(20);
  });

  test('a writer request whose answer was lost: the next request\'s DBInstanceAlreadyExists counts as requested', async () => {
    await restored();
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DescribeDBInstancesCommand).rejects(fault(DBInstanceNotFoundFault, 'not found'));
    mock.on(CreateDBInstanceCommand)
      .rejectsOnce(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }))
      .rejectsOnce(Object.assign(fault(DBInstanceAlreadyExistsFault, 'DB instance already exists'), { $fault: 'client' }));
    expect(await rds.describeInstance(TEMP)).toMatchObject({ status: 'creating', detail: `writer ${TEMP_WRITER} to be requested again` });
    expect(await rds.describeInstance(TEMP)).toMatchObject({ status: 'creating', detail: `writer ${TEMP_WRITER} requested` });
    expect(mock.commandCalls(CreateDBInstanceCommand)).toHaveLength(2);
  });

  test('the writer being created: its status, under its own id (a failed writer is terminal for the workflow)', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DescribeDBInstancesCommand).resolvesOnce({ DBInstances: [{ DBInstanceIdentifier: TEMP_WRITER, DBInstanceStatus: 'creating' }] })
      .resolvesOnce({ DBInstances: [{ DBInstanceIdentifier: TEMP_WRITER, DBInstanceStatus: 'failed' }] });
    expect(await rds.describeInstance(TEMP)).toMatchObject({ id: TEMP_WRITER, status: 'creating', detail: `writer ${TEMP_WRITER}` });
    expect(await rds.describeInstance(TEMP)).toMatchObject({ id: TEMP_WRITER, status: 'failed' });
  });

  test('available only when both are, at the cluster\'s writer endpoint; a pending password on the cluster is reported', async () => {
    mock.on(DescribeDBClustersCommand).resolvesOnce({ DBClusters: [tempCluster({ PendingModifiedValues: { MasterUserPassword: '****' } })] })
      .resolvesOnce({ DBClusters: [tempCluster({ Status: 'resetting-master-credentials' })] })
      .resolves({ DBClusters: [tempCluster()] });
    mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: TEMP_WRITER, DBInstanceStatus: 'available' }] });
    expect(await rds.describeInstance(TEMP)).toStrictEqual({ id: TEMP, status: 'available', endpoint: { host: TEMP_ENDPOINT, port: PORT }, pendingPasswordChange: true });
    expect(await rds.describeInstance(TEMP)).toMatchObject({ status: 'resetting-master-credentials', detail: `cluster ${TEMP}` });
    expect(await rds.describeInstance(TEMP)).toStrictEqual({ id: TEMP, status: 'available', endpoint: { host: TEMP_ENDPOINT, port: PORT }, pendingPasswordChange: false });
  });

  test('a cluster this adapter did not restore and that has no writer waits ("incomplete"), creating nothing', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DescribeDBInstancesCommand).rejects(fault(DBInstanceNotFoundFault, 'not found'));
    expect(await rds.describeInstance(TEMP)).toMatchObject({ status: 'incomplete', detail: `its writer ${TEMP_WRITER} does not exist` });
    expect(mock.commandCalls(CreateDBInstanceCommand)).toHaveLength(0);
  });
});

describe('setMasterPassword', () => {
  test('ModifyDBCluster with the password, applied immediately', async () => {
    mock.on(ModifyDBClusterCommand).resolves({});
    await rds.setMasterPassword(TEMP, PASSWORD);
    expect(mock.commandCalls(ModifyDBClusterCommand)[0].args[0].input)
      .toStrictEqual({ DBClusterIdentifier: TEMP, MasterUserPassword: PASSWORD, ApplyImmediately: true });
    expect(log.lines.join('\n')).not.toContain(PASSWORD);
  });

  test('an error that echoes the password (plain or URL-encoded) is scrubbed and carries no cause', async () => {
    mock.on(ModifyDBClusterCommand).rejects(Object.assign(
      new Error(`MasterUserPassword=${encodeURIComponent(PASSWORD)} rejected: "${PASSWORD}" is not valid`),
      { name: 'InvalidParameterValue', $fault: 'client', $response: { body: PASSWORD } },
    ));
    const error = await rds.setMasterPassword(TEMP, PASSWORD).catch((e) => e);
    expect(error.message).toBe(`Setting the master password of the temporary cluster "${TEMP}" failed: InvalidParameterValue: MasterUserPassword=******** rejected: `
      + '"********" is not valid. The password was not changed.');
    const everything = `${error.message}\n${error.stack}\n${JSON.stringify(error)}\n${String(error.cause)}`;
    expect(everything).not.toContain(PASSWORD);
    expect(everything).not.toContain(encodeURIComponent(PASSWORD));
    expect(error.cause).toBeUndefined();
  });

  test('an empty password is refused before calling RDS', async () => {
    await expect(rds.setMasterPassword(TEMP, '')).rejects.toThrow('Refusing to set an empty master password');
    expect(sent(mock)).toEqual([]);
  });
});

describe('deleteInstance: the writer, then the cluster', () => {
  const tempCluster = (overrides: Partial<DBCluster> = {}): DBCluster => ({
    DBClusterIdentifier: TEMP, Status: 'available', DBClusterMembers: [{ DBInstanceIdentifier: TEMP_WRITER, IsClusterWriter: true }], ...overrides,
  });

  test('deletes the writer, then the cluster, without final snapshots and with its automated backups; does not wait', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DeleteDBInstanceCommand).resolves({});
    mock.on(DeleteDBClusterCommand).resolves({});
    await rds.deleteInstance(TEMP);
    expect(sent(mock)).toEqual(['DescribeDBClustersCommand', 'DeleteDBInstanceCommand', 'DeleteDBClusterCommand']);
    expect(mock.commandCalls(DeleteDBInstanceCommand)[0].args[0].input).toStrictEqual({ DBInstanceIdentifier: TEMP_WRITER, SkipFinalSnapshot: true });
    expect(mock.commandCalls(DeleteDBClusterCommand)[0].args[0].input)
      .toStrictEqual({ DBClusterIdentifier: TEMP, SkipFinalSnapshot: true, DeleteAutomatedBackups: true });
    expect(sleeps).toEqual([]);
  });

  test('a cluster whose writer was never created (or is already gone) is deleted all the same', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster({ DBClusterMembers: [] })] });
    mock.on(DeleteDBInstanceCommand).rejects(fault(DBInstanceNotFoundFault, `DBInstance ${TEMP_WRITER} not found.`));
    mock.on(DeleteDBClusterCommand).resolves({});
    await rds.deleteInstance(TEMP);
    expect(mock.commandCalls(DeleteDBInstanceCommand).map((c) => c.args[0].input.DBInstanceIdentifier)).toEqual([TEMP_WRITER]);
    expect(mock.commandCalls(DeleteDBClusterCommand)).toHaveLength(1);
  });

  test('every instance the cluster lists is deleted before it', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster({ DBClusterMembers: [{ DBInstanceIdentifier: TEMP_WRITER }, { DBInstanceIdentifier: `${TEMP}-r` }] })] });
    mock.on(DeleteDBInstanceCommand).resolves({});
    mock.on(DeleteDBClusterCommand).resolves({});
    await rds.deleteInstance(TEMP);
    expect(mock.commandCalls(DeleteDBInstanceCommand).map((c) => c.args[0].input.DBInstanceIdentifier)).toEqual([TEMP_WRITER, `${TEMP}-r`]);
    expect(sent(mock).at(-1)).toBe('DeleteDBClusterCommand');
  });

  test('a cluster already gone, or already being deleted, counts as deleted, and the log says so', async () => {
    mock.on(DescribeDBClustersCommand).rejectsOnce(fault(DBClusterNotFoundFault, `DBCluster ${TEMP} not found.`))
      .resolvesOnce({ DBClusters: [tempCluster({ Status: 'deleting' })] });
    await rds.deleteInstance(TEMP);
    await rds.deleteInstance(TEMP);
    expect(sent(mock)).toEqual(['DescribeDBClustersCommand', 'DescribeDBClustersCommand']);
    expect(log.lines).toEqual([
      `info temporary cluster ${TEMP} does not exist (already deleted); nothing to delete`,
      `info temporary cluster ${TEMP} is already being deleted; nothing more to do`,
    ]);
  });

  test('a writer already being deleted is fine; the cluster delete follows', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DeleteDBInstanceCommand).rejects(fault(InvalidDBInstanceStateFault, `Instance ${TEMP_WRITER} is already being deleted.`));
    mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: TEMP_WRITER, DBInstanceStatus: 'deleting' }] });
    mock.on(DeleteDBClusterCommand).resolves({});
    await rds.deleteInstance(TEMP);
    expect(mock.commandCalls(DeleteDBClusterCommand)).toHaveLength(1);
  });

  test('a writer still being created is not deleted: neither is the cluster, and the error says both', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DeleteDBInstanceCommand).rejects(fault(InvalidDBInstanceStateFault, `Instance ${TEMP_WRITER} is not in available state.`));
    mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: TEMP_WRITER, DBInstanceStatus: 'creating' }] });
    const error = await rds.deleteInstance(TEMP).catch((e) => e);
    expect(error.message).toContain(`RDS call failed while deleting the instance "${TEMP_WRITER}" of the temporary cluster "${TEMP}": InvalidDBInstanceStateFault`);
    expect(error.message).toMatch(new RegExp(`"${TEMP_WRITER}" and the cluster "${TEMP}" were NOT deleted`));
    expect(mock.commandCalls(DeleteDBClusterCommand)).toHaveLength(0);
  });

  test('"instances in non-deleting state" right after the writer\'s delete: tried again, bounded', async () => {
    const notYet = fault(InvalidDBClusterStateFault, 'Cluster cannot be deleted, it still contains DB instances in non-deleting state.');
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster()] });
    mock.on(DeleteDBInstanceCommand).resolves({});
    mock.on(DeleteDBClusterCommand).rejectsOnce(notYet).rejectsOnce(notYet).resolves({});
    await rds.deleteInstance(TEMP);
    expect(mock.commandCalls(DeleteDBClusterCommand)).toHaveLength(3);
    expect(sleeps).toEqual([CLUSTER_DELETE_RETRY.everyMs, CLUSTER_DELETE_RETRY.everyMs]);
    expect(log.lines.filter((l) => l.includes('trying again'))).toHaveLength(2);

    mock.on(DeleteDBClusterCommand).rejects(notYet);
    sleeps.length = 0;
    const error = await rds.deleteInstance(TEMP).catch((e) => e);
    expect(sleeps).toHaveLength(CLUSTER_DELETE_RETRY.tries - 1);
    expect(error.message).toMatch(new RegExp(`^RDS call failed while deleting the temporary cluster "${TEMP}": InvalidDBClusterStateFault: Cluster cannot be deleted.*"${TEMP}" was NOT deleted; `
      + 'once this build has ended, the trigger\'s cleanup sweep tries again every 15 minutes\\.$'));
  });

  test('a cluster still being restored is not waited for: the error says it was NOT deleted', async () => {
    mock.on(DescribeDBClustersCommand).resolves({ DBClusters: [tempCluster({ Status: 'creating', DBClusterMembers: [] })] });
    mock.on(DeleteDBInstanceCommand).rejects(fault(DBInstanceNotFoundFault, 'not found'));
    mock.on(DeleteDBClusterCommand).rejects(fault(InvalidDBClusterStateFault, `DB cluster ${TEMP} is not in a valid state.`));
    const error = await rds.deleteInstance(TEMP).catch((e) => e);
    expect(error.message).toContain(`"${TEMP}" was NOT deleted`);
    expect(sleeps).toEqual([]);
  });
});

describe('the plan and the install phase with SOURCE_CLUSTER_ID', () => {
  const env = (overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
    [PROJECT_ENV.SOURCE_CLUSTER_ID]: SOURCE,
    [START_ENV.RESTORE_TIME]: T.toISOString(),
    [START_ENV.CONFIRM]: SOURCE,
    [BUILD_ENV.BUILD_ID]: BUILD_ID,
    ...overrides,
  });
  const read = (overrides: Record<string, string | undefined> = {}) => readStartRequest(env(overrides), { cpus: 2 });
  /** The refusal of a start request, which must be a PlanError. */
  const refusal = (overrides: Record<string, string | undefined>, base = env()): Error => {
    const error = thrownBy(() => readStartRequest({ ...base, ...overrides }, { cpus: 2 }));
    expect(error).toBeInstanceOf(PlanError);
    return error;
  };

  /** DescribeDBClusters / DescribeDBInstances as RDS answers them for the source, through the real adapter. */
  function answering(cluster: DBCluster, others: DBCluster[] = []): void {
    mock.on(DescribeDBClustersCommand).callsFake((input: { DBClusterIdentifier?: string }) => ({
      DBClusters: input.DBClusterIdentifier ? [cluster] : [cluster, ...others],
    }));
    mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: WRITER, DBInstanceClass: 'db.r6g.large' }] });
  }
  const plan = (overrides: Record<string, string | undefined> = {}) => planRecovery(read(overrides), rds, { now: new Date('2026-11-24T09:30:00Z'), secretUsername: 'app_admin' });

  test('a cluster source: its kind, CONFIRM is the cluster identifier, TEMP_INSTANCE_CLASS may be db.serverless', () => {
    expect(read()).toMatchObject({ sourceId: SOURCE, sourceKind: 'cluster' });
    expect(read({ [START_ENV.TEMP_INSTANCE_CLASS]: 'db.serverless' }).tempInstanceClass).toBe('db.serverless');
    expect(refusal({ [START_ENV.CONFIRM]: 'orders-db' }).message)
      .toMatch(/CONFIRM: "orders-db" does not match the source cluster; accepted: exactly "orders-aurora"/);
    expect(refusal({ [START_ENV.CONFIRM]: undefined }).message).toMatch(/CONFIRM: not set; accepted: exactly the source cluster identifier "orders-aurora"/);
    expect(refusal({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: 'orders--aurora', [START_ENV.CONFIRM]: 'orders--aurora' }).message)
      .toMatch(/^SOURCE_CLUSTER_ID: "orders--aurora" is not an Aurora DB cluster identifier;/);
  });

  test('an instance source: no kind recorded (its request is as before), and db.serverless is not a class for it', () => {
    const instanceEnv = { ...env({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: undefined }), [PROJECT_ENV.SOURCE_INSTANCE_ID]: SOURCE };
    expect(readStartRequest(instanceEnv, { cpus: 2 })).not.toHaveProperty('sourceKind');
    expect(refusal({ [START_ENV.TEMP_INSTANCE_CLASS]: 'db.serverless' }, instanceEnv).message)
      .toMatch(/TEMP_INSTANCE_CLASS: "db.serverless" is not a DB instance class; accepted: a class such as db.r6g.large, or empty for the source's class\./);
  });

  test('both variables, or neither, are refused naming both', () => {
    expect(refusal({ [PROJECT_ENV.SOURCE_INSTANCE_ID]: 'orders-db' }).message)
      .toMatch(/SOURCE_INSTANCE_ID \("orders-db"\) and SOURCE_CLUSTER_ID \("orders-aurora"\) are both set; accepted: exactly one of/);
    expect(refusal({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: undefined }).message)
      .toMatch(/SOURCE_INSTANCE_ID and SOURCE_CLUSTER_ID: neither is set; accepted: exactly one of/);
  });

  test('an Aurora PostgreSQL cluster plans a temporary cluster whose writer name fits; nothing is created', async () => {
    answering(sourceCluster());
    const p = await plan();
    expect(p.source.kind).toBe('cluster');
    expect(p.temporaryInstanceId).toBe(TEMP);
    expect(writerIdOf(p.temporaryInstanceId)).toBe(TEMP_WRITER);
    expect(p.window).toEqual({ earliest: new Date('2026-11-17T03:12:00Z'), latest: new Date('2026-11-24T10:55:00Z') });
    expect(sent(mock).filter((n) => /^(Create|Restore|Modify|Delete)/.test(n))).toEqual([]);
  });

  test.each([
    ['aurora-mysql', '8.0.mysql_aurora.3.05.2', /SOURCE_CLUSTER_ID: cluster "orders-aurora" runs engine "aurora-mysql"; accepted: an Aurora PostgreSQL DB cluster \(engine "aurora-postgresql"\)\./],
    ['postgres', '16.4', /runs engine "postgres" \(a Multi-AZ DB cluster of RDS for PostgreSQL, not Aurora\); accepted: an Aurora PostgreSQL DB cluster/],
    ['aurora-postgresql', '14.9', /SOURCE_CLUSTER_ID: cluster "orders-aurora" runs Aurora PostgreSQL 14\.9 \(EngineVersion\); accepted: PostgreSQL 15 to 18/],
    ['aurora-postgresql', '19.0', /runs Aurora PostgreSQL 19\.0 \(EngineVersion\); accepted: PostgreSQL 15 to 18/],
  ])('engine %s %s is refused naming it, before anything is created', async (engine, version, message) => {
    answering(sourceCluster({ Engine: engine, EngineVersion: version }));
    const error = await plan().catch((e) => e);
    expect(error).toBeInstanceOf(PlanError);
    expect(error.message).toMatch(message);
    expect(error.message).toMatch(/Nothing was created or changed\.$/);
    expect(sent(mock).filter((n) => /^(Create|Restore|Modify|Delete)/.test(n))).toEqual([]);
  });

  test('a cluster without a writer, or db.serverless without a Serverless v2 range, is refused', async () => {
    answering(sourceCluster({ DBClusterMembers: [] }));
    await expect(plan()).rejects.toThrow(/SOURCE_CLUSTER_ID: cluster "orders-aurora" has no writer instance \(DBClusterMembers lists none with IsClusterWriter\)/);
    mock.reset();
    answering(sourceCluster());
    await expect(plan({ [START_ENV.TEMP_INSTANCE_CLASS]: 'db.serverless' }))
      .rejects.toThrow(/TEMP_INSTANCE_CLASS: "db.serverless" needs a Serverless v2 capacity range on the cluster, and "orders-aurora" has none/);
  });

  test('another temporary cluster of the source alive is refused naming it as a cluster', async () => {
    answering(sourceCluster(), [{ DBClusterIdentifier: 'orders-aurora-pitr-20261124080000', Status: 'available', TagList: [{ Key: TAGS.SOURCE, Value: SOURCE }] }]);
    await expect(plan()).rejects.toThrow(/another recovery or restore drill of orders-aurora appears to be in progress: temporary cluster orders-aurora-pitr-20261124080000 \(available\)/);
  });

  test('client-major reads the cluster\'s EngineVersion (DescribeDBClusters) and keeps its output contract', async () => {
    answering(sourceCluster({ EngineVersion: '16.4' }));
    const lines: string[] = [];
    expect(await chooseClientMajor({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: SOURCE }, rds, (l) => lines.push(l))).toBe(16);
    expect(lines).toEqual([`${SOURCE} runs Aurora PostgreSQL 16.4 (EngineVersion, from DescribeDBClusters): the client is PostgreSQL 16 (package postgresql16)`]);
    mock.reset();
    answering(sourceCluster({ Engine: 'aurora-mysql', EngineVersion: '8.0.mysql_aurora.3.05.2' }));
    await expect(chooseClientMajor({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: SOURCE }, rds, () => undefined))
      .rejects.toThrow(/^cluster "orders-aurora" runs engine "aurora-mysql" 8\.0\.mysql_aurora\.3\.05\.2; accepted: Aurora PostgreSQL \(engine "aurora-postgresql"\), PostgreSQL 15 to 18\. Nothing was installed/);
    mock.reset();
    answering(sourceCluster({ EngineVersion: '14.9' }));
    await expect(chooseClientMajor({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: SOURCE }, rds, () => undefined))
      .rejects.toThrow(/^cluster "orders-aurora" runs PostgreSQL 14\.9 \(EngineVersion\); accepted: PostgreSQL 15 to 18.*Upgrade the cluster\./);
    mock.reset();
    mock.on(DescribeDBClustersCommand).rejects(Object.assign(new Error('connect ETIMEDOUT 10.0.0.5:443'), { name: 'TimeoutError' }));
    await expect(chooseClientMajor({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: SOURCE }, rds, () => undefined))
      .rejects.toThrow(/^the PostgreSQL client is chosen from the cluster's engine version, and DescribeDBClusters on "orders-aurora" failed: .*ETIMEDOUT/);
  });
});

function thrownBy(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  return new Error('nothing was thrown');
}
