/**
 * The RDS stand-in's Aurora PostgreSQL DB clusters (local/rds-standin/clusters.ts),
 * driven with the real AWS SDK v3 RDS client as the runner's cluster adapter
 * drives AWS: the source cluster, point-in-time restores (full copy at a
 * time, copy-on-write clone at the latest time) compared by content, the
 * writer's lifecycle, the master password, deletes, DB cluster snapshots,
 * tags and Aurora's faults. Every cluster is a real PostgreSQL data directory.
 */
import {
  AddTagsToResourceCommand,
  CreateDBClusterSnapshotCommand,
  CreateDBInstanceCommand,
  CreateDBSnapshotCommand,
  DBCluster,
  DeleteDBClusterCommand,
  DeleteDBClusterSnapshotCommand,
  DeleteDBInstanceCommand,
  DescribeDBClusterSnapshotsCommand,
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  ListTagsForResourceCommand,
  ModifyDBClusterCommand,
  ModifyDBInstanceCommand,
  RDSClient,
  RDSServiceException,
  RestoreDBClusterToPointInTimeCommand,
} from '@aws-sdk/client-rds';
import { Client } from 'pg';
import { DUMMY_AWS_ENV, motoClientConfig } from './moto';
import { quoteIdent, sleep } from '../local/cluster';
import type { StandInDbCluster } from '../local/rds-standin/clusters';
import { RdsStandIn } from '../local/rds-standin/server';
import { TAGS } from '../src/contract';

const SOURCE = 'orders-aurora';
const WRITER = 'orders-aurora-instance-1';
const MASTER = 'pitr_master';
const PASSWORD = 'Initial-pass-0001';
const DB = 'orders';

let standIn: RdsStandIn;
let rds: RDSClient;
let source: StandInDbCluster;
/** The source's rows when the restore time was taken, and that time. */
let atT: { time: Date; rows: string[] };

beforeAll(async () => {
  standIn = await RdsStandIn.start({ region: DUMMY_AWS_ENV.AWS_REGION });
  rds = new RDSClient(motoClientConfig(standIn.endpoint));
  source = await standIn.engine.clusters.createSourceCluster({
    id: SOURCE, masterUsername: MASTER, masterPassword: PASSWORD, tags: [{ Key: 'team', Value: 'orders' }],
  });
  const volume = source.volume!;
  await volume.sql(`CREATE DATABASE ${DB} OWNER ${quoteIdent(MASTER)}`);
  await volume.sql('CREATE TABLE ledger (id int PRIMARY KEY, note text); INSERT INTO ledger SELECT g, md5(g::text) FROM generate_series(1, 200) g; ALTER TABLE ledger OWNER TO ' + quoteIdent(MASTER), DB);
  await sleep(1100);
  atT = { time: new Date(), rows: [] };
  atT.rows = await rows(volume.host, volume.port, PASSWORD);
  await sleep(1100);
  await volume.sql("INSERT INTO ledger VALUES (1000, 'after T'); DELETE FROM ledger WHERE id <= 10", DB);
});

afterAll(async () => {
  await standIn?.stop();
});

/** Every row of `ledger`, read as the master user with `password` over TCP. */
async function rows(host: string, port: number, password: string): Promise<string[]> {
  const client = new Client({ host, port, user: MASTER, password, database: DB, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const result = await client.query<{ line: string }>('SELECT id || \':\' || note AS line FROM ledger ORDER BY id');
    return result.rows.map((r) => r.line);
  } finally {
    await client.end();
  }
}

async function describeCluster(id: string): Promise<DBCluster> {
  return (await rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: id }))).DBClusters![0];
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const clusterStatus = (id: string, status: string) => until(`${id} ${status}`, async () => ((await describeCluster(id)).Status === status ? true : undefined));
const instanceStatus = (id: string, status: string) => until(`${id} ${status}`, async () => {
  const found = (await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }))).DBInstances![0];
  return found.DBInstanceStatus === status ? found : undefined;
});
const gone = (id: string) => until(`${id} gone`, async () => {
  try {
    await describeCluster(id);
    return undefined;
  } catch (err) {
    return (err as RDSServiceException).name === 'DBClusterNotFoundFault' ? true : undefined;
  }
});

/** The fault `send` is refused with: its name (the RDS error code) and message. */
async function fault(send: Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  try {
    await send;
  } catch (err) {
    const e = err as RDSServiceException;
    return { name: e.name, message: e.message, status: e.$metadata?.httpStatusCode };
  }
  throw new Error('expected the call to be refused');
}

const restoreLatest = (id: string) => rds.send(new RestoreDBClusterToPointInTimeCommand({
  DBClusterIdentifier: id, SourceDBClusterIdentifier: SOURCE, UseLatestRestorableTime: true,
}));
const addWriter = (cluster: string, writer: string, instanceClass = 'db.r6g.large') => rds.send(new CreateDBInstanceCommand({
  DBInstanceIdentifier: writer, DBClusterIdentifier: cluster, DBInstanceClass: instanceClass, Engine: 'aurora-postgresql',
}));

/** Deletes the writer (when there is one), then the cluster, and waits until both are gone. */
async function removeCluster(id: string, writer?: string): Promise<void> {
  if (writer) await rds.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: writer, SkipFinalSnapshot: true }));
  await rds.send(new DeleteDBClusterCommand({ DBClusterIdentifier: id, SkipFinalSnapshot: true }));
  await gone(id);
}

test('the source cluster is described as Aurora PostgreSQL, with its writer, window, endpoint and tags', async () => {
  const all = (await rds.send(new DescribeDBClustersCommand({}))).DBClusters!;
  expect(all.map((c) => c.DBClusterIdentifier)).toContain(SOURCE);
  const c = await describeCluster(SOURCE);
  expect(c).toMatchObject({
    Status: 'available',
    Engine: 'aurora-postgresql',
    MasterUsername: MASTER,
    StorageEncrypted: true,
    EngineMode: 'provisioned',
    DBSubnetGroup: 'standin-subnets',
    Endpoint: source.host,
    ReaderEndpoint: source.host,
    Port: source.volume!.port,
    DBClusterMembers: [{ DBInstanceIdentifier: WRITER, IsClusterWriter: true }],
    TagList: [{ Key: 'team', Value: 'orders' }],
  });
  expect(c.EngineVersion).toBe((await source.volume!.sql('SHOW server_version')).split(' ')[0]);
  expect(c.DBClusterParameterGroup).toBe(`default.aurora-postgresql${c.EngineVersion!.split('.')[0]}`);
  expect(c.KmsKeyId).toMatch(/^arn:aws:kms:us-east-1:\d{12}:key\//);
  expect(c.VpcSecurityGroups).toEqual([{ VpcSecurityGroupId: 'sg-0standin0000000001', Status: 'active' }]);
  expect(c.EarliestRestorableTime!.getTime()).toBeLessThanOrEqual(atT.time.getTime());
  expect(c.LatestRestorableTime!.getTime()).toBeGreaterThan(atT.time.getTime());
  expect(c.PendingModifiedValues?.MasterUserPassword).toBeUndefined();
  expect(c.ServerlessV2ScalingConfiguration).toBeUndefined();

  const writer = (await rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: WRITER }))).DBInstances![0];
  expect(writer).toMatchObject({ DBClusterIdentifier: SOURCE, Engine: 'aurora-postgresql', DBInstanceClass: 'db.r6g.large', DBInstanceStatus: 'available' });
  expect(writer.Endpoint).toMatchObject({ Address: source.host, Port: source.volume!.port });
  const byFilter = (await rds.send(new DescribeDBInstancesCommand({ Filters: [{ Name: 'db-cluster-id', Values: [SOURCE] }] }))).DBInstances!;
  expect(byFilter.map((i) => i.DBInstanceIdentifier)).toEqual([WRITER]);
});

test('a full-copy restore at T: no instance, an endpoint that serves nothing until the writer is available, then T\'s content', async () => {
  const id = 'orders-aurora-pitr-full';
  const writer = `${id}-w`;
  const tags = [{ Key: TAGS.BUILD_ID, Value: 'proj:build-1' }, { Key: TAGS.SOURCE, Value: SOURCE }];
  const restored = (await rds.send(new RestoreDBClusterToPointInTimeCommand({
    DBClusterIdentifier: id,
    SourceDBClusterIdentifier: SOURCE,
    RestoreType: 'full-copy',
    RestoreToTime: atT.time,
    DBSubnetGroupName: 'standin-subnets',
    VpcSecurityGroupIds: ['sg-0standin0000000001'],
    KmsKeyId: source.kmsKeyId,
    DBClusterParameterGroupName: 'orders-cluster-params',
    Port: source.volume!.port,
    Tags: tags,
  }))).DBCluster!;
  expect(restored).toMatchObject({ Status: 'creating', DBClusterMembers: [], TagList: tags, DBClusterParameterGroup: 'orders-cluster-params' });
  expect(standIn.engine.clusters.cluster(id).restore).toMatchObject({ type: 'full-copy', time: atT.time, useLatest: false });
  expect(standIn.engine.clusters.cluster(id).requestedPort).toBe(source.volume!.port);

  // Documented: instances can be created only once the restored cluster is available.
  const early = await fault(rds.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: writer, DBClusterIdentifier: id, DBInstanceClass: 'db.r6g.large', Engine: 'aurora-postgresql',
  })));
  expect(early.name).toBe('InvalidDBClusterStateFault');
  // GUESS (the stand-in's): a cluster still creating cannot be deleted.
  expect((await fault(rds.send(new DeleteDBClusterCommand({ DBClusterIdentifier: id, SkipFinalSnapshot: true })))).name).toBe('InvalidDBClusterStateFault');

  await clusterStatus(id, 'available');
  const available = await describeCluster(id);
  expect(available.DBClusterMembers).toEqual([]);
  expect(available.Endpoint).toBeDefined();
  await expect(rows(available.Endpoint!, available.Port!, PASSWORD)).rejects.toThrow(/ECONNREFUSED|connect/);

  const created = (await rds.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: writer, DBClusterIdentifier: id, DBInstanceClass: 'db.r6g.large', Engine: 'aurora-postgresql', Tags: tags,
  }))).DBInstance!;
  expect(created).toMatchObject({ DBInstanceStatus: 'creating', DBClusterIdentifier: id, DBInstanceClass: 'db.r6g.large', Engine: 'aurora-postgresql' });
  expect(created.Endpoint).toBeUndefined();
  expect((await describeCluster(id)).DBClusterMembers).toEqual([expect.objectContaining({ DBInstanceIdentifier: writer, IsClusterWriter: true })]);
  await instanceStatus(writer, 'available');
  expect(standIn.engine.history.get(writer)).toEqual(['creating', 'available']);

  // T's content, compared row by row with what the source held at T (not what it holds now).
  const atRestore = await rows(available.Endpoint!, available.Port!, PASSWORD);
  expect(atRestore).toEqual(atT.rows);
  expect(atRestore).not.toEqual(await rows(source.host!, source.volume!.port, PASSWORD));

  // Delete: refused while the writer is not deleting (AWS's message), accepted once it is.
  const blocked = await fault(rds.send(new DeleteDBClusterCommand({ DBClusterIdentifier: id, SkipFinalSnapshot: true })));
  expect(blocked).toMatchObject({ name: 'InvalidDBClusterStateFault', message: 'Cluster cannot be deleted, it still contains DB instances in non-deleting state.' });
  expect((await fault(rds.send(new DeleteDBClusterCommand({ DBClusterIdentifier: id })))).name).toBe('InvalidParameterCombination');
  await removeCluster(id, writer);
  expect(standIn.engine.clusters.history.get(id)).toEqual(['creating', 'available', 'deleting', '(gone)']);
  expect(standIn.engine.history.get(writer)).toEqual(['creating', 'available', 'deleting', '(gone)']);
  expect((await fault(rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: writer })))).name).toBe('DBInstanceNotFoundFault');
});

test('ModifyDBCluster sets the master password: pending and resetting, then the new password logs in and the old one does not', async () => {
  const id = 'orders-aurora-pitr-pw';
  const writer = `${id}-w`;
  await restoreLatest(id);
  await clusterStatus(id, 'available');
  // Documented: 8 to 41 printable ASCII characters, none of / " @.
  for (const bad of ['short', 'has/slash-in-it', 'x'.repeat(42)]) {
    expect((await fault(rds.send(new ModifyDBClusterCommand({ DBClusterIdentifier: id, MasterUserPassword: bad, ApplyImmediately: true })))).name).toBe('InvalidParameterValue');
  }
  await addWriter(id, writer);
  await instanceStatus(writer, 'available');
  // Aurora: an instance's master password is the cluster's.
  expect((await fault(rds.send(new ModifyDBInstanceCommand({ DBInstanceIdentifier: writer, MasterUserPassword: 'Another-pass-0003' })))).name).toBe('InvalidParameterCombination');

  const next = 'Changed-pass-0002';
  const modified = (await rds.send(new ModifyDBClusterCommand({
    DBClusterIdentifier: id, MasterUserPassword: next, ApplyImmediately: true,
  }))).DBCluster!;
  expect(modified.PendingModifiedValues?.MasterUserPassword).toBe('****');
  await until('the password to be applied', async () => ((await describeCluster(id)).PendingModifiedValues?.MasterUserPassword === undefined ? true : undefined));
  await clusterStatus(id, 'available');
  expect(standIn.engine.clusters.history.get(id)).toEqual(['creating', 'available', 'modifying', 'resetting-master-credentials', 'available']);
  const c = await describeCluster(id);
  expect(await rows(c.Endpoint!, c.Port!, next)).toEqual(await rows(source.host!, source.volume!.port, PASSWORD));
  await expect(rows(c.Endpoint!, c.Port!, PASSWORD)).rejects.toThrow(/password authentication failed/);
  await removeCluster(id, writer);
});

test('a password set before the writer exists stays pending until the writer starts, then works', async () => {
  const id = 'orders-aurora-pitr-early';
  const writer = `${id}-w`;
  await restoreLatest(id);
  await clusterStatus(id, 'available');
  const next = 'Early-pass-000004';
  await rds.send(new ModifyDBClusterCommand({ DBClusterIdentifier: id, MasterUserPassword: next, ApplyImmediately: true }));
  await until('resetting to end', async () => (standIn.engine.clusters.history.get(id)!.length >= 5 ? true : undefined));
  expect((await describeCluster(id)).PendingModifiedValues?.MasterUserPassword).toBe('****');
  await addWriter(id, writer);
  await instanceStatus(writer, 'available');
  const c = await describeCluster(id);
  expect(c.PendingModifiedValues?.MasterUserPassword).toBeUndefined();
  expect((await rows(c.Endpoint!, c.Port!, next)).length).toBeGreaterThan(0);
  await removeCluster(id, writer);
});

test('copy-on-write: refused with RestoreToTime (documented), a clone at the latest time shares a clone group and has the latest content', async () => {
  const id = 'orders-aurora-pitr-clone';
  const writer = `${id}-w`;
  const refused = await fault(rds.send(new RestoreDBClusterToPointInTimeCommand({
    DBClusterIdentifier: id, SourceDBClusterIdentifier: SOURCE, RestoreType: 'copy-on-write', RestoreToTime: atT.time,
  })));
  expect(refused.name).toBe('InvalidParameterCombination');
  expect((await fault(describeCluster(id))).name).toBe('DBClusterNotFoundFault');

  const clone = (await rds.send(new RestoreDBClusterToPointInTimeCommand({
    DBClusterIdentifier: id, SourceDBClusterIdentifier: SOURCE, RestoreType: 'copy-on-write', UseLatestRestorableTime: true,
  }))).DBCluster!;
  expect(standIn.engine.clusters.cluster(id).restore).toMatchObject({ type: 'copy-on-write', useLatest: true });
  expect(clone.CloneGroupId).toBeDefined();
  expect((await describeCluster(SOURCE)).CloneGroupId).toBe(clone.CloneGroupId);
  // Documented default: without VpcSecurityGroupIds the new cluster gets the default security group; without a
  // parameter group, the engine's default.
  expect(clone.VpcSecurityGroups).toEqual([{ VpcSecurityGroupId: 'sg-0default0000000000', Status: 'active' }]);
  expect(clone.DBClusterParameterGroup).toMatch(/^default\.aurora-postgresql\d+$/);
  await clusterStatus(id, 'available');
  await rds.send(new CreateDBInstanceCommand({ DBInstanceIdentifier: writer, DBClusterIdentifier: id, DBInstanceClass: 'db.t4g.medium', Engine: 'aurora-postgresql' }));
  await instanceStatus(writer, 'available');
  const c = await describeCluster(id);
  expect(await rows(c.Endpoint!, c.Port!, PASSWORD)).toEqual(await rows(source.host!, source.volume!.port, PASSWORD));
  await removeCluster(id, writer);
});

test('Serverless v2: db.serverless needs the scaling configuration on the restored cluster (not inherited)', async () => {
  const id = 'orders-aurora-pitr-sv2';
  await restoreLatest(id);
  await clusterStatus(id, 'available');
  const refused = await fault(rds.send(new CreateDBInstanceCommand({ DBInstanceIdentifier: `${id}-w`, DBClusterIdentifier: id, DBInstanceClass: 'db.serverless', Engine: 'aurora-postgresql' })));
  expect(refused).toMatchObject({ name: 'InvalidDBClusterStateFault', message: expect.stringMatching(/Serverless v2 scaling configuration/) });
  await removeCluster(id);

  const scaled = 'orders-aurora-pitr-sv2b';
  const restored = (await rds.send(new RestoreDBClusterToPointInTimeCommand({
    DBClusterIdentifier: scaled,
    SourceDBClusterIdentifier: SOURCE,
    UseLatestRestorableTime: true,
    ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 4 },
  }))).DBCluster!;
  expect(restored.ServerlessV2ScalingConfiguration).toEqual({ MinCapacity: 0.5, MaxCapacity: 4 });
  await clusterStatus(scaled, 'available');
  const w = (await rds.send(new CreateDBInstanceCommand({ DBInstanceIdentifier: `${scaled}-w`, DBClusterIdentifier: scaled, DBInstanceClass: 'db.serverless', Engine: 'aurora-postgresql' }))).DBInstance!;
  expect(w.DBInstanceClass).toBe('db.serverless');
  await instanceStatus(`${scaled}-w`, 'available');
  await removeCluster(scaled, `${scaled}-w`);
});

test('DB cluster snapshots: created, listed, refused twice, deleted only when available', async () => {
  const id = 'orders-aurora-pre-pitr-20261204000000';
  const tags = [{ Key: TAGS.SOURCE, Value: SOURCE }];
  const created = (await rds.send(new CreateDBClusterSnapshotCommand({
    DBClusterIdentifier: SOURCE, DBClusterSnapshotIdentifier: id, Tags: tags,
  }))).DBClusterSnapshot!;
  expect(created).toMatchObject({ Status: 'creating', DBClusterIdentifier: SOURCE, Engine: 'aurora-postgresql', SnapshotType: 'manual', TagList: tags });
  expect((await fault(rds.send(new DeleteDBClusterSnapshotCommand({ DBClusterSnapshotIdentifier: id })))).name).toBe('InvalidDBClusterSnapshotStateFault');
  expect((await fault(rds.send(new CreateDBClusterSnapshotCommand({ DBClusterIdentifier: SOURCE, DBClusterSnapshotIdentifier: id })))).name).toBe('DBClusterSnapshotAlreadyExistsFault');
  await until('the snapshot', async () => ((await rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: id }))).DBClusterSnapshots![0].Status === 'available' ? true : undefined));
  const listed = (await rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterIdentifier: SOURCE, SnapshotType: 'manual' }))).DBClusterSnapshots!;
  expect(listed.map((s) => s.DBClusterSnapshotIdentifier)).toEqual([id]);
  expect(listed[0].DBClusterSnapshotArn).toBe(`arn:aws:rds:us-east-1:123456789012:cluster-snapshot:${id}`);
  expect((await rds.send(new ListTagsForResourceCommand({ ResourceName: listed[0].DBClusterSnapshotArn }))).TagList).toEqual(tags);
  expect((await rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterIdentifier: SOURCE, SnapshotType: 'automated' }))).DBClusterSnapshots).toEqual([]);
  await rds.send(new DeleteDBClusterSnapshotCommand({ DBClusterSnapshotIdentifier: id }));
  expect((await fault(rds.send(new DescribeDBClusterSnapshotsCommand({ DBClusterSnapshotIdentifier: id })))).name).toBe('DBClusterSnapshotNotFoundFault');
  // A member's data is the cluster's volume: no DB snapshot of it.
  expect((await fault(rds.send(new CreateDBSnapshotCommand({ DBInstanceIdentifier: WRITER, DBSnapshotIdentifier: 'member-snap' })))).name).toBe('InvalidDBInstanceStateFault');
});

test('tags on a cluster ARN: listed, added (a key given again replaces its value)', async () => {
  const arn = (await describeCluster(SOURCE)).DBClusterArn!;
  expect(arn).toBe(`arn:aws:rds:us-east-1:123456789012:cluster:${SOURCE}`);
  await rds.send(new AddTagsToResourceCommand({ ResourceName: arn, Tags: [{ Key: 'team', Value: 'payments' }, { Key: 'tier', Value: '1' }] }));
  expect((await rds.send(new ListTagsForResourceCommand({ ResourceName: arn }))).TagList).toEqual([{ Key: 'team', Value: 'payments' }, { Key: 'tier', Value: '1' }]);
  const missing = await fault(rds.send(new ListTagsForResourceCommand({ ResourceName: 'arn:aws:rds:us-east-1:123456789012:cluster:nothing-here' })));
  expect(missing).toMatchObject({ name: 'DBClusterNotFoundFault', status: 404 });
});

test('Aurora faults: unknown cluster, existing target, time outside the window, wrong engine, member delete while creating', async () => {
  expect(await fault(describeCluster('no-such-cluster'))).toMatchObject({ name: 'DBClusterNotFoundFault', status: 404 });
  expect((await fault(rds.send(new RestoreDBClusterToPointInTimeCommand({
    DBClusterIdentifier: 'x-pitr', SourceDBClusterIdentifier: 'no-such-cluster', UseLatestRestorableTime: true,
  })))).name).toBe('DBClusterNotFoundFault');
  expect((await fault(rds.send(new RestoreDBClusterToPointInTimeCommand({
    DBClusterIdentifier: SOURCE, SourceDBClusterIdentifier: SOURCE, UseLatestRestorableTime: true,
  })))).name).toBe('DBClusterAlreadyExistsFault');
  expect((await fault(rds.send(new RestoreDBClusterToPointInTimeCommand({
    DBClusterIdentifier: 'x-pitr', SourceDBClusterIdentifier: SOURCE, RestoreToTime: new Date(Date.now() - 86_400_000),
  })))).name).toBe('InvalidRestoreFault');
  expect((await fault(rds.send(new RestoreDBClusterToPointInTimeCommand({
    DBClusterIdentifier: 'x-pitr', SourceDBClusterIdentifier: SOURCE, RestoreToTime: atT.time, UseLatestRestorableTime: true,
  })))).name).toBe('InvalidParameterCombination');
  expect((await fault(rds.send(new RestoreDBClusterToPointInTimeCommand({ DBClusterIdentifier: 'x-pitr', SourceDBClusterIdentifier: SOURCE })))).name)
    .toBe('InvalidParameterCombination');
  expect((await fault(rds.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: 'x-w', DBClusterIdentifier: 'no-such-cluster', DBInstanceClass: 'db.r6g.large', Engine: 'aurora-postgresql',
  })))).name).toBe('DBClusterNotFoundFault');
  expect((await fault(rds.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: 'x-w', DBClusterIdentifier: SOURCE, DBInstanceClass: 'db.r6g.large', Engine: 'postgres',
  })))).name).toBe('InvalidParameterCombination');
  expect((await fault(rds.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: WRITER, DBClusterIdentifier: SOURCE, DBInstanceClass: 'db.r6g.large', Engine: 'aurora-postgresql',
  })))).name).toBe('DBInstanceAlreadyExistsFault');
  expect((await fault(rds.send(new ModifyDBClusterCommand({ DBClusterIdentifier: 'no-such-cluster', MasterUserPassword: 'Whatever-pass-01' })))).name).toBe('DBClusterNotFoundFault');
  expect((await fault(rds.send(new DeleteDBClusterCommand({ DBClusterIdentifier: 'no-such-cluster', SkipFinalSnapshot: true })))).name).toBe('DBClusterNotFoundFault');

  // A member is not deleted while it is being created (the stand-in's instance guess), and the cluster not while it has it.
  const id = 'orders-aurora-pitr-faults';
  await restoreLatest(id);
  await clusterStatus(id, 'available');
  await addWriter(id, `${id}-w`);
  expect((await fault(rds.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: `${id}-w`, SkipFinalSnapshot: true })))).name).toBe('InvalidDBInstanceStateFault');
  await instanceStatus(`${id}-w`, 'available');
  await removeCluster(id, `${id}-w`);
  // Nothing of the refused calls was created.
  expect(standIn.engine.clusters.listClusters().map((c) => c.id)).toEqual([SOURCE]);
  expect(standIn.engine.listInstances().map((i) => i.id)).toEqual([WRITER]);
});

test('a cluster restored while its deletion is accepted during creating is removed once its volume is up', async () => {
  const id = 'orders-aurora-pitr-early-delete';
  standIn.engine.faults = { acceptClusterDeleteWhileCreating: true };
  try {
    await restoreLatest(id);
    const deleting = (await rds.send(new DeleteDBClusterCommand({ DBClusterIdentifier: id, SkipFinalSnapshot: true }))).DBCluster!;
    expect(deleting.Status).toBe('deleting');
    await gone(id);
    expect(standIn.engine.clusters.history.get(id)).toEqual(['creating', 'deleting', '(gone)']);
  } finally {
    standIn.engine.faults = {};
  }
});
