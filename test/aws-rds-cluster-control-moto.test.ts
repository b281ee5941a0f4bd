/**
 * The Aurora DB cluster adapter (issue #20) over the real wire protocol,
 * against moto_server, which models DB clusters, their instances, cluster
 * snapshots and RestoreDBClusterToPointInTime (without restore windows or
 * creation delays: its clusters and instances are available at once). What
 * moto does not model is checked on the exact requests in
 * aws-rds-cluster-control.test.ts.
 */
import {
  CreateDBClusterCommand,
  CreateDBInstanceCommand,
  DescribeDBClustersCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBInstancesCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import { AwsRdsClusterControl } from '../buildspec/runner/aws/rds-cluster-control';
import { AURORA_POSTGRES_ENGINE, CREATED_BY_VALUE, TAGS, safetySnapshotId, temporaryClusterId, temporaryWriterId } from '../src/contract';

const SOURCE = 'orders-aurora';
const WRITER = 'orders-aurora-1';
const STAMP = '20261124093000';
const TEMP = temporaryClusterId(SOURCE, STAMP);
const TEMP_WRITER = temporaryWriterId(SOURCE, STAMP);
const BUILD_ID = 'orders-aurora-recovery:6f1c2a7e-0000-4000-8000-000000000001';
const TAG_VALUES = { [TAGS.BUILD_ID]: BUILD_ID, [TAGS.SOURCE]: SOURCE, [TAGS.CREATED_BY]: CREATED_BY_VALUE };

let moto: MotoServer;
let client: RDSClient;
let rds: AwsRdsClusterControl;
const lines: string[] = [];

beforeAll(async () => {
  moto = await startMoto();
  Object.assign(process.env, DUMMY_AWS_ENV);
  client = new RDSClient(motoClientConfig(moto.endpoint));
  rds = new AwsRdsClusterControl({ client, log: { info: (m) => lines.push(m), warn: (m) => lines.push(m) }, sleep: async () => undefined });
  await client.send(new CreateDBClusterCommand({
    DBClusterIdentifier: SOURCE,
    Engine: AURORA_POSTGRES_ENGINE,
    EngineVersion: '16.4',
    MasterUsername: 'app_admin',
    MasterUserPassword: 'original-password',
    Port: 5433,
    BackupRetentionPeriod: 7,
    StorageEncrypted: true,
    Tags: [{ Key: 'team', Value: 'orders' }],
  }));
  await client.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: WRITER, DBClusterIdentifier: SOURCE, Engine: AURORA_POSTGRES_ENGINE, DBInstanceClass: 'db.r6g.large',
  }));
});

afterAll(async () => {
  await moto?.stop();
});

test('describeSource reads the cluster and its writer over the wire', async () => {
  const source = await rds.describeSource(SOURCE);
  expect(source).toMatchObject({
    id: SOURCE,
    kind: 'cluster',
    status: 'available',
    engine: AURORA_POSTGRES_ENGINE,
    engineVersion: '16.4',
    masterUsername: 'app_admin',
    backupRetentionPeriod: 7,
    writer: { id: WRITER, instanceClass: 'db.r6g.large' },
  });
  expect(source.endpoint).toEqual({ host: expect.stringContaining(SOURCE), port: 5433 });
});

test('safety snapshot: a tagged DB cluster snapshot, its status, listed by name, deleted', async () => {
  const id = safetySnapshotId(SOURCE, STAMP);
  await rds.startSnapshot(SOURCE, id, TAG_VALUES);
  expect(await rds.snapshotStatus(id)).toBe('available');
  const out = await client.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: id }));
  expect(out.DBClusterSnapshots![0].DBClusterIdentifier).toBe(SOURCE);
  expect(out.DBClusterSnapshots![0].TagList).toEqual(expect.arrayContaining([{ Key: TAGS.BUILD_ID, Value: BUILD_ID }]));
  expect((await rds.listSafetySnapshots(SOURCE)).map((s) => s.id)).toEqual([id]);
  await rds.deleteSnapshot(id);
  expect(await rds.listSafetySnapshots(SOURCE)).toEqual([]);
});

test('the whole life of a temporary cluster: restore, writer, password, tag lookup, delete writer then cluster', async () => {
  const source = await rds.describeSource(SOURCE);
  await rds.restoreToPointInTime({ id: TEMP, source, restoreTime: 'latest', tags: TAG_VALUES });
  // moto's restored cluster is available at once: the first poll requests the writer, a later one sees both available.
  expect(await rds.describeInstance(TEMP)).toMatchObject({ status: 'creating', detail: `writer ${TEMP_WRITER} requested` });
  const state = await rds.describeInstance(TEMP);
  expect(state).toMatchObject({ id: TEMP, status: 'available', pendingPasswordChange: false });
  expect(state.endpoint?.host).toContain(TEMP);
  const writer = (await client.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: TEMP_WRITER }))).DBInstances![0];
  expect(writer).toMatchObject({ DBClusterIdentifier: TEMP, DBInstanceClass: 'db.r6g.large', Engine: AURORA_POSTGRES_ENGINE, PubliclyAccessible: false });

  await rds.setMasterPassword(TEMP, 'new-password-1');
  expect(await rds.findInstancesByTag(TAGS.BUILD_ID, BUILD_ID)).toEqual([expect.objectContaining({ id: TEMP, buildId: BUILD_ID })]);
  expect(await rds.findInstancesByTag(TAGS.BUILD_ID, 'another-build')).toEqual([]);

  await rds.deleteInstance(TEMP);
  const clusters = (await client.send(new DescribeDBClustersCommand({}))).DBClusters!.map((c) => c.DBClusterIdentifier);
  expect(clusters).toEqual([SOURCE]);
  await expect(client.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: TEMP_WRITER }))).rejects.toThrow(/not found/i);
  // Already gone is success, and says so.
  await rds.deleteInstance(TEMP);
  expect(lines.at(-1)).toBe(`temporary cluster ${TEMP} does not exist (already deleted); nothing to delete`);
});

test('the source is still there and untouched', async () => {
  const source = (await client.send(new DescribeDBClustersCommand({ DBClusterIdentifier: SOURCE }))).DBClusters![0];
  expect(source.Status).toBe('available');
  expect(source.DBClusterMembers!.map((m) => m.DBInstanceIdentifier)).toEqual([WRITER]);
});
