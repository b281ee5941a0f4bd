/**
 * The trigger with an Aurora PostgreSQL source (issue #20): the start path
 * reads the cluster (DescribeDBClusters) where it reads an instance today,
 * and the cleanup after a dead build and the 15-minute sweep delete the
 * temporary cluster's writer instance and then the temporary cluster, found
 * by name and build tag, never anything of the source. RDS is moto_server
 * (clusters, instances in clusters, and its InvalidDBClusterStateFault for a
 * cluster that still holds an instance); CodeBuild is aws-sdk-client-mock.
 */
import { BatchGetBuildsCommand, Build, CodeBuildClient, ListBuildsForProjectCommand, StartBuildCommand, StopBuildCommand } from '@aws-sdk/client-codebuild';
import {
  CreateDBClusterCommand, CreateDBInstanceCommand, DeleteDBClusterCommand, DeleteDBInstanceCommand, DescribeDBClustersCommand,
  DescribeDBInstanceAutomatedBackupsCommand, DescribeDBInstancesCommand, RDSClient,
} from '@aws-sdk/client-rds';
import { AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import { PROJECT, REGION, batchGetBuildsFrom, buildArn, codeBuildRecord, recordingLog } from './trigger-fixtures';
import { BuildStateChangeEvent, cleanupAfterDeadBuild, sweepTemporaryInstances } from '../lambda/cleanup';
import { startRecovery } from '../lambda/start-recovery';
import { ProjectBusyError, stopRunningDrills } from '../lambda/stop-drill';
import { TriggerConfig, TriggerDeps, readTriggerConfig } from '../lambda/trigger-deps';
import {
  BUILD_STATE_CHANGE, PROJECT_ENV, START_ENV, TAGS, TRIGGER_ENV, temporaryClusterId, temporaryWriterId, type RecoveryStarted,
} from '../src/contract';

Object.assign(process.env, DUMMY_AWS_ENV);

const SOURCE = 'orders-aurora';
const SOURCE_WRITER = 'orders-aurora-instance-1';
const DEAD_BUILD = `${PROJECT}:0d1e2a3d-0000-4000-8000-00000000dead`;
const OTHER_BUILD = `${PROJECT}:0a1b2c3d-0000-4000-8000-0000000a11ve`;
/** A dead build that got as far as its writer. */
const DEAD_CLUSTER = temporaryClusterId(SOURCE, '20261124010101');
const DEAD_WRITER = temporaryWriterId(SOURCE, '20261124010101');
/** A dead build killed between the restore and CreateDBInstance: its cluster is left, without a writer. */
const DEAD_BARE_CLUSTER = temporaryClusterId(SOURCE, '20261124020202');
const RUNNING_CLUSTER = temporaryClusterId(SOURCE, '20261124030303');
const RUNNING_WRITER = temporaryWriterId(SOURCE, '20261124030303');
/** Named like a temporary writer and tagged with the dead build, but an instance of the source cluster. */
const SOURCE_LOOKALIKE_WRITER = temporaryWriterId(SOURCE, '20261124040404');
/** Tagged with the dead build but not named like a temporary of the source. */
const LOOKALIKE_CLUSTER = 'reporting-aurora';

const tag = (buildId: string | undefined) =>
  (buildId === undefined ? [] : [{ Key: TAGS.BUILD_ID, Value: buildId }, { Key: TAGS.SOURCE, Value: SOURCE }]);

async function createCluster(rds: RDSClient, id: string, buildId?: string): Promise<void> {
  await rds.send(new CreateDBClusterCommand({
    DBClusterIdentifier: id,
    Engine: 'aurora-postgresql',
    EngineVersion: '16.4',
    MasterUsername: 'postgres',
    MasterUserPassword: 'not-a-real-password',
    BackupRetentionPeriod: 7,
    Tags: tag(buildId),
  }));
}

async function createWriter(rds: RDSClient, id: string, cluster: string, buildId?: string): Promise<void> {
  await rds.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: id, DBClusterIdentifier: cluster, Engine: 'aurora-postgresql', DBInstanceClass: 'db.r6g.large', Tags: tag(buildId),
  }));
}

async function states(rds: RDSClient): Promise<Record<string, string>> {
  const clusters = (await rds.send(new DescribeDBClustersCommand({}))).DBClusters ?? [];
  const instances = (await rds.send(new DescribeDBInstancesCommand({}))).DBInstances ?? [];
  return Object.fromEntries([
    ...clusters.map((c) => [`cluster:${c.DBClusterIdentifier}`, c.Status!]),
    ...instances.map((i) => [`instance:${i.DBInstanceIdentifier}`, i.DBInstanceStatus!]),
  ]);
}

const SOURCE_SIDE = [`cluster:${SOURCE}`, `instance:${SOURCE_WRITER}`, `instance:${SOURCE_LOOKALIKE_WRITER}`, `cluster:${LOOKALIKE_CLUSTER}`];
const RUNNING = [`cluster:${RUNNING_CLUSTER}`, `instance:${RUNNING_WRITER}`];

let moto: MotoServer;
let motoRds: RDSClient;
let rds: RDSClient;
let spy: AwsClientStub<RDSClient>;
const codebuild = new CodeBuildClient({ region: REGION });
const codebuildMock = mockClient(codebuild);

function clusterConfig(overrides: Partial<TriggerConfig> = {}): TriggerConfig {
  return { projectName: PROJECT, sourceId: SOURCE, sourceKind: 'cluster', region: REGION, ...overrides };
}

function deps(overrides: Partial<TriggerDeps> = {}): TriggerDeps {
  return { config: clusterConfig(), rds, codebuild, log: recordingLog().log, ...overrides };
}

function deadBuild(buildId: string = DEAD_BUILD): BuildStateChangeEvent {
  return {
    'source': BUILD_STATE_CHANGE.SOURCE,
    'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE,
    'detail': { 'build-status': 'FAILED', 'project-name': PROJECT, 'build-id': buildArn(buildId) },
  };
}

function codeBuildKnows(...builds: Build[]): void {
  codebuildMock.on(BatchGetBuildsCommand).callsFake(batchGetBuildsFrom(builds));
}

/** Every RDS write the code under test sent, as `Command id`. */
function writes(): string[] {
  return spy.calls().map((c) => c.args[0] as unknown as { constructor: { name: string }; input: Record<string, unknown> })
    .filter((command) => !/^(Describe|List)/.test(command.constructor.name))
    .map((command) => `${command.constructor.name.replace(/Command$/, '')} ${String(command.input.DBInstanceIdentifier ?? command.input.DBClusterIdentifier)}`);
}

beforeAll(async () => {
  moto = await startMoto();
  motoRds = new RDSClient(motoClientConfig(moto.endpoint));
});

afterAll(async () => {
  codebuildMock.restore();
  await moto?.stop();
});

beforeEach(async () => {
  await moto.reset();
  codebuildMock.reset();
  codeBuildKnows(codeBuildRecord(DEAD_BUILD, 'FAILED'), codeBuildRecord(OTHER_BUILD, 'IN_PROGRESS'));
  // The source and its writer carry the dead build's tag too: the name guards must still protect them.
  await createCluster(motoRds, SOURCE, DEAD_BUILD);
  await createWriter(motoRds, SOURCE_WRITER, SOURCE, DEAD_BUILD);
  await createWriter(motoRds, SOURCE_LOOKALIKE_WRITER, SOURCE, DEAD_BUILD);
  await createCluster(motoRds, DEAD_CLUSTER, DEAD_BUILD);
  await createWriter(motoRds, DEAD_WRITER, DEAD_CLUSTER, DEAD_BUILD);
  await createCluster(motoRds, DEAD_BARE_CLUSTER, DEAD_BUILD);
  await createCluster(motoRds, RUNNING_CLUSTER, OTHER_BUILD);
  await createWriter(motoRds, RUNNING_WRITER, RUNNING_CLUSTER, OTHER_BUILD);
  await createCluster(motoRds, LOOKALIKE_CLUSTER, DEAD_BUILD);
  rds = new RDSClient(motoClientConfig(moto.endpoint));
  spy = mockClient(rds);
  spy.send.callThrough();
});

afterEach(() => spy.restore());

describe('cleanup after a dead build of a cluster source', () => {
  test('deletes the dead build\'s writer, then its cluster, and the cluster it left without a writer; nothing else', async () => {
    const log = recordingLog();
    const summary = await cleanupAfterDeadBuild(deadBuild(), deps({ log: log.log }));
    expect([...summary.deleted].sort()).toEqual([DEAD_BARE_CLUSTER, DEAD_CLUSTER, DEAD_WRITER].sort());
    // The writer's delete is requested before its cluster's, which RDS refuses while the writer is not being deleted.
    expect(writes()).toEqual([`DeleteDBInstance ${DEAD_WRITER}`, `DeleteDBCluster ${DEAD_CLUSTER}`, `DeleteDBCluster ${DEAD_BARE_CLUSTER}`]);
    const after = await states(motoRds);
    for (const id of [...SOURCE_SIDE, ...RUNNING]) expect([id, after[id]]).toEqual([id, 'available']);
    for (const id of [`cluster:${DEAD_CLUSTER}`, `cluster:${DEAD_BARE_CLUSTER}`, `instance:${DEAD_WRITER}`]) expect(after[id] ?? 'gone').toMatch(/^(gone|deleting)$/);
    expect(log.lines.join('\n')).toContain(`temporary instances and clusters tagged with it: ${DEAD_WRITER}, `);
  });

  test('the cluster goes without a final snapshot; the writer\'s delete takes no snapshot option (snapshots and backups are the cluster\'s)', async () => {
    await cleanupAfterDeadBuild(deadBuild(), deps());
    expect(spy.commandCalls(DeleteDBClusterCommand).map((c) => c.args[0].input)).toEqual([
      { DBClusterIdentifier: DEAD_CLUSTER, SkipFinalSnapshot: true, DeleteAutomatedBackups: true },
      { DBClusterIdentifier: DEAD_BARE_CLUSTER, SkipFinalSnapshot: true, DeleteAutomatedBackups: true },
    ]);
    expect(spy.commandCalls(DeleteDBInstanceCommand).map((c) => c.args[0].input)).toEqual([{ DBInstanceIdentifier: DEAD_WRITER }]);
  });

  test('a cluster RDS refuses while its writer is still being created is retried until the writer\'s delete is accepted', async () => {
    let refusals = 2;
    spy.on(DeleteDBInstanceCommand, { DBInstanceIdentifier: DEAD_WRITER }).callsFake(async (input) => {
      if (refusals > 0) {
        refusals -= 1;
        throw Object.assign(new Error('Instance is currently creating'), { name: 'InvalidDBInstanceStateFault' });
      }
      return motoRds.send(new DeleteDBInstanceCommand(input));
    });
    let t = 1_000_000;
    const log = recordingLog();
    const summary = await cleanupAfterDeadBuild(deadBuild(), deps({ log: log.log }), {
      now: () => t, sleep: async (ms) => { t += ms; }, retryDeadline: t + 10 * 60_000,
    });
    expect([...summary.deleted].sort()).toEqual([DEAD_BARE_CLUSTER, DEAD_CLUSTER, DEAD_WRITER].sort());
    // moto's own refusal of the cluster while its writer was not deleting, named in the log.
    expect(log.lines.join('\n')).toMatch(new RegExp(`${DEAD_CLUSTER} is available; RDS refused to delete it \\(InvalidDBClusterStateFault\\)`));
    expect(writes().filter((w) => w.endsWith(DEAD_CLUSTER) || w.endsWith(DEAD_WRITER)).slice(-2)).toEqual([`DeleteDBInstance ${DEAD_WRITER}`, `DeleteDBCluster ${DEAD_CLUSTER}`]);
    const after = await states(motoRds);
    for (const id of SOURCE_SIDE) expect(after[id]).toBe('available');
  });
});

describe('the 15-minute sweep with a cluster source', () => {
  test('deletes every temporary writer and cluster of a dead build, and nothing of a running build, the source or a look-alike', async () => {
    const summary = await sweepTemporaryInstances(deps());
    expect([...summary.deleted].sort()).toEqual([DEAD_BARE_CLUSTER, DEAD_CLUSTER, DEAD_WRITER].sort());
    expect(summary.waiting).toEqual([]);
    expect(writes()).toEqual([`DeleteDBInstance ${DEAD_WRITER}`, `DeleteDBCluster ${DEAD_CLUSTER}`, `DeleteDBCluster ${DEAD_BARE_CLUSTER}`]);
    const after = await states(motoRds);
    for (const id of [...SOURCE_SIDE, ...RUNNING]) expect([id, after[id]]).toEqual([id, 'available']);
  });

  test('a writer RDS refuses to delete for now leaves it and its cluster to the next sweep, both named, without throwing', async () => {
    spy.on(DeleteDBInstanceCommand, { DBInstanceIdentifier: DEAD_WRITER })
      .rejects(Object.assign(new Error('Instance is currently creating'), { name: 'InvalidDBInstanceStateFault' }));
    const log = recordingLog();
    const summary = await sweepTemporaryInstances(deps({ log: log.log }));
    expect(summary.waiting).toEqual([DEAD_WRITER, DEAD_CLUSTER]);
    expect(summary.deleted).toEqual([DEAD_BARE_CLUSTER]);
    expect(log.lines.join('\n')).toContain(`Sweep: ${DEAD_CLUSTER}, left by build ${DEAD_BUILD} (FAILED), is available; RDS refused to delete it for now (InvalidDBClusterStateFault`);
  });
});

describe('the start path with a cluster source', () => {
  const earliest = new Date(Date.now() - 3 * 86_400_000);
  const latest = new Date(Date.now() - 5 * 60_000);
  const BUILD_ID = `${PROJECT}:6f1c2a7e-0000-4000-8000-000000000001`;

  beforeEach(() => {
    // moto's window starts when the cluster was created; a real one reaches back the retention period.
    spy.on(DescribeDBClustersCommand).callsFake(async (input) => {
      const real = await motoRds.send(new DescribeDBClustersCommand(input));
      return { ...real, DBClusters: real.DBClusters?.map((c) => ({ ...c, EarliestRestorableTime: earliest, LatestRestorableTime: latest })) };
    });
    codebuildMock.on(StartBuildCommand).resolves({ build: { id: BUILD_ID } });
    codebuildMock.on(BatchGetBuildsCommand).resolves({ builds: [] });
  });

  test('a valid request reads the cluster with DescribeDBClusters, not DescribeDBInstances, and starts the build with CONFIRM = the cluster', async () => {
    const restoreTime = new Date(latest.getTime() - 3_600_000).toISOString();
    const started = await startRecovery({ restoreTime, confirm: SOURCE }, deps(), { deadline: Date.now() }) as RecoveryStarted;
    expect(started.buildId).toBe(BUILD_ID);
    expect(spy.commandCalls(DescribeDBClustersCommand).map((c) => c.args[0].input)).toEqual([{ DBClusterIdentifier: SOURCE }]);
    expect(spy.commandCalls(DescribeDBInstancesCommand)).toEqual([]);
    expect(spy.commandCalls(DescribeDBInstanceAutomatedBackupsCommand)).toEqual([]);
    const overrides = codebuildMock.commandCalls(StartBuildCommand)[0].args[0].input.environmentVariablesOverride;
    expect(overrides).toEqual(expect.arrayContaining([{ name: START_ENV.CONFIRM, value: SOURCE, type: 'PLAINTEXT' }, { name: START_ENV.RESTORE_TIME, value: restoreTime, type: 'PLAINTEXT' }]));
    expect(writes()).toEqual([]);
  });

  test('a restore time outside the cluster\'s window is refused with the window, and nothing is started', async () => {
    const before = new Date(earliest.getTime() - 60_000).toISOString();
    await expect(startRecovery({ restoreTime: before, confirm: SOURCE }, deps())).rejects
      .toThrow(`restoreTime: ${before} is before the earliest restorable time; accepted: a time from ${earliest.toISOString()} to ${latest.toISOString()}`);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toEqual([]);
  });

  test('confirm must be the cluster\'s identifier', async () => {
    await expect(startRecovery({ restoreTime: 'latest', confirm: SOURCE_WRITER }, deps())).rejects
      .toThrow(`confirm: "${SOURCE_WRITER}" does not match the source cluster; accepted: exactly "${SOURCE}", the identifier of the cluster this recovery overwrites.`);
    expect(spy.calls()).toEqual([]);
  });

  test('a cluster that does not exist is named with SOURCE_CLUSTER_ID', async () => {
    await expect(startRecovery({ restoreTime: 'latest', confirm: 'gone-aurora' }, deps({ config: clusterConfig({ sourceId: 'gone-aurora' }) }))).rejects
      .toThrow(`${TRIGGER_ENV.SOURCE_CLUSTER_ID}: Aurora DB cluster "gone-aurora" was not found in ${REGION}`);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toEqual([]);
  });

  test('a cluster that is not available, or not Aurora PostgreSQL, is refused before anything starts', async () => {
    spy.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ DBClusterIdentifier: SOURCE, Engine: 'aurora-postgresql', Status: 'backing-up', BackupRetentionPeriod: 7, LatestRestorableTime: latest }] });
    await expect(startRecovery({ restoreTime: 'latest', confirm: SOURCE }, deps())).rejects.toThrow(`Source cluster "${SOURCE}" is "backing-up", not "available"`);
    spy.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ DBClusterIdentifier: SOURCE, Engine: 'aurora-mysql', Status: 'available', BackupRetentionPeriod: 7, LatestRestorableTime: latest }] });
    await expect(startRecovery({ restoreTime: 'latest', confirm: SOURCE }, deps())).rejects.toThrow(`Source cluster "${SOURCE}" runs engine "aurora-mysql"`);
    expect(codebuildMock.commandCalls(StartBuildCommand)).toEqual([]);
  });
});

describe('a recovery request while a drill of the cluster runs', () => {
  test('the drill is stopped, and the recovery waits while the drill\'s temporary writer and cluster are not being deleted', async () => {
    let stopped = false;
    const drill = (): Build => ({
      ...codeBuildRecord(DEAD_BUILD, stopped ? 'STOPPED' : 'IN_PROGRESS'),
      environment: { type: 'LINUX_CONTAINER', image: 'x', computeType: 'BUILD_GENERAL1_SMALL', environmentVariables: [{ name: START_ENV.MODE, value: 'drill', type: 'PLAINTEXT' }] },
    });
    codebuildMock.on(ListBuildsForProjectCommand).resolves({ ids: [DEAD_BUILD] });
    codebuildMock.on(BatchGetBuildsCommand).callsFake(() => ({ builds: [drill()] }));
    codebuildMock.on(StopBuildCommand).callsFake(() => {
      stopped = true;
      return { build: drill() };
    });
    const error = await stopRunningDrills(deps(), { deadline: Date.now() }).catch((e: Error) => e);
    expect(error).toBeInstanceOf(ProjectBusyError);
    expect((error as Error).message).toContain(`its temporary instance ${DEAD_WRITER} is available; its temporary cluster ${DEAD_CLUSTER} is available; `
      + `its temporary cluster ${DEAD_BARE_CLUSTER} is available`);
    expect(codebuildMock.commandCalls(StopBuildCommand).map((c) => c.args[0].input)).toEqual([{ id: DEAD_BUILD }]);
    expect(writes()).toEqual([]);
  });
});

describe('the function\'s environment', () => {
  test('SOURCE_CLUSTER_ID makes a cluster source; both or neither are refused, naming both', () => {
    expect(readTriggerConfig({ [TRIGGER_ENV.PROJECT_NAME]: PROJECT, [TRIGGER_ENV.SOURCE_CLUSTER_ID]: SOURCE, AWS_REGION: REGION }))
      .toEqual({ projectName: PROJECT, sourceId: SOURCE, sourceKind: 'cluster', region: REGION });
    expect(() => readTriggerConfig({
      [TRIGGER_ENV.PROJECT_NAME]: PROJECT, [TRIGGER_ENV.SOURCE_CLUSTER_ID]: SOURCE, [PROJECT_ENV.SOURCE_INSTANCE_ID]: 'orders-db', AWS_REGION: REGION,
    })).toThrow(/SOURCE_INSTANCE_ID \("orders-db"\) and SOURCE_CLUSTER_ID \("orders-aurora"\) are both set.*Nothing was started or deleted/);
    expect(() => readTriggerConfig({ [TRIGGER_ENV.PROJECT_NAME]: PROJECT, AWS_REGION: REGION }))
      .toThrow(/SOURCE_INSTANCE_ID and SOURCE_CLUSTER_ID: neither is set/);
  });
});
