/**
 * Findings of the review of the Aurora PostgreSQL work (issue #20) read
 * against AWS's documentation, each with the behaviour that was wrong on
 * the code as it landed. The runbook runs through the real
 * AwsRdsClusterControl over aws-sdk-client-mock and a virtual clock.
 */
import { BatchGetBuildsCommand, CodeBuildClient, ListBuildsForProjectCommand, StopBuildCommand } from '@aws-sdk/client-codebuild';
import {
  CreateDBInstanceCommand,
  DBCluster,
  DBInstanceNotFoundFault,
  DeleteDBClusterCommand,
  DeleteDBInstanceCommand,
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  InvalidDBClusterStateFault,
  InvalidDBInstanceStateFault,
  RDSClient,
  RestoreDBClusterToPointInTimeCommand,
} from '@aws-sdk/client-rds';
import { App, Stack, aws_ec2 as ec2, aws_rds as awsRds } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import { AURORA_SOURCE, AURORA_SOURCE_WRITER, AURORA_TEMP, AURORA_TEMP_WRITER, auroraSourceCluster } from './aurora-fixtures';
import { motoClientConfig } from './moto';
import { codeBuildRecord, recordingLog } from './trigger-fixtures';
import { VirtualClock } from './virtual-clock';
import { AwsRdsClusterControl } from '../buildspec/runner/aws/rds-cluster-control';
import { readDrillRequest, runDrill } from '../buildspec/runner/drill';
import { StepLog } from '../buildspec/runner/log';
import type { DataPath } from '../buildspec/runner/ports';
import { cleanupAfterDeadBuild } from '../lambda/cleanup';
import { stopRunningDrills } from '../lambda/stop-drill';
import type { TriggerDeps } from '../lambda/trigger-deps';
import {
  BUILD_ENV, BUILD_STATE_CHANGE, LATEST, PROJECT_ENV, START_ENV, TAGS,
} from '../src/contract';
import { PitrRecovery } from '../src/pitr-recovery';

const SOURCE = AURORA_SOURCE;
const TEMP = AURORA_TEMP;
const TEMP_WRITER = AURORA_TEMP_WRITER;
const SOURCE_CLUSTER = auroraSourceCluster();

const data: DataPath = {
  checkLogin: async () => undefined,
  listDatabases: async () => ['orders'],
  copy: async () => [],
};

describe('a temporary cluster in a status Aurora does not leave on its own', () => {
  // Aurora User Guide, "DB cluster status" (Aurora.Status.html): cloning-failed "Cloning a DB cluster failed",
  // migration-failed "A migration failed"; neither is billed, neither becomes available.
  test.each(['cloning-failed', 'migration-failed'])('%s fails the wait at once, naming the temporary cluster, and the cleanup deletes it', async (status) => {
    const client = new RDSClient(motoClientConfig('http://127.0.0.1:9'));
    const mock = mockClient(client);
    let restored = false;
    mock.on(DescribeDBClustersCommand).callsFake((input: { DBClusterIdentifier?: string }) => {
      const temp: DBCluster = { DBClusterIdentifier: TEMP, Status: status, DBClusterMembers: [], TagList: [] };
      if (input.DBClusterIdentifier === SOURCE) return { DBClusters: [SOURCE_CLUSTER] };
      if (input.DBClusterIdentifier === TEMP) return { DBClusters: restored ? [temp] : [] };
      return { DBClusters: [SOURCE_CLUSTER, ...(restored ? [temp] : [])] };
    });
    mock.on(DescribeDBInstancesCommand).callsFake((input: { DBInstanceIdentifier: string }) => {
      if (input.DBInstanceIdentifier === AURORA_SOURCE_WRITER) return { DBInstances: [{ DBInstanceIdentifier: AURORA_SOURCE_WRITER, DBInstanceClass: 'db.r6g.large' }] };
      throw new DBInstanceNotFoundFault({ message: 'not found', $metadata: {} });
    });
    mock.on(RestoreDBClusterToPointInTimeCommand).callsFake(() => {
      restored = true;
      return {};
    });
    mock.on(DeleteDBInstanceCommand).rejects(new DBInstanceNotFoundFault({ message: 'not found', $metadata: {} }));
    mock.on(DeleteDBClusterCommand).resolves({});
    const clock = new VirtualClock();
    const lines: string[] = [];
    const log = new StepLog((l) => lines.push(l), () => clock.now());
    const control = new AwsRdsClusterControl({ client, log, sleep: async () => undefined });
    const request = readDrillRequest({
      [PROJECT_ENV.SOURCE_CLUSTER_ID]: SOURCE, [START_ENV.RESTORE_TIME]: LATEST, [BUILD_ENV.BUILD_ID]: 'proj:1', [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '120',
    }, { cpus: 2 });

    const failure = await runDrill(request, {
      rds: control, data, log, clock, credentials: { username: 'master', password: 'pw' }, databaseSizes: async () => new Map([['orders', 2 ** 20]]),
    }).then(() => undefined, (err: Error) => err);

    // Not the 120-minute wait timeout: the first poll that sees the status ends the wait.
    expect(clock.now().getTime() - clock.start).toBeLessThan(60_000);
    expect(failure?.message).toContain(`temporary cluster ${TEMP} is "${status}", from which RDS does not recover`);
    expect(failure?.message).toContain(`Check the events of cluster ${TEMP} in the RDS console`);
    expect(lines.join('\n')).toMatch(/RESULT: DRILL FAILED in step "Wait for the temporary instance": temporary cluster /);
    expect(mock.commandCalls(CreateDBInstanceCommand)).toHaveLength(0);
    expect(mock.commandCalls(DeleteDBClusterCommand).map((c) => c.args[0].input.DBClusterIdentifier)).toEqual([TEMP]);
    expect(mock.commandCalls(DeleteDBInstanceCommand).map((c) => c.args[0].input.DBInstanceIdentifier)).toEqual([TEMP_WRITER]);
  });
});

describe('the trigger\'s words for a cluster source', () => {
  const PROJECT = 'pitr-orders-aurora';
  const BUILD = `${PROJECT}:d0000000-0000-4000-8000-000000000001`;
  const tags = [{ Key: TAGS.BUILD_ID, Value: BUILD }, { Key: TAGS.SOURCE, Value: SOURCE }];

  /** A killed drill's leftovers: its writer still `creating` in its temporary cluster. */
  function leftovers() {
    const rdsClient = new RDSClient(motoClientConfig('http://127.0.0.1:9'));
    const codebuild = new CodeBuildClient(motoClientConfig('http://127.0.0.1:9'));
    const rdsMock = mockClient(rdsClient);
    const cbMock = mockClient(codebuild);
    const writer = { DBInstanceIdentifier: TEMP_WRITER, DBClusterIdentifier: TEMP, DBInstanceStatus: 'creating', TagList: tags };
    const cluster = { DBClusterIdentifier: TEMP, Status: 'available', TagList: tags };
    rdsMock.on(DescribeDBInstancesCommand)
      .callsFake((i: { DBInstanceIdentifier?: string }) => ({
        DBInstances: [TEMP_WRITER, undefined].includes(i.DBInstanceIdentifier) ? [writer] : [],
      }));
    rdsMock.on(DescribeDBClustersCommand)
      .callsFake((i: { DBClusterIdentifier?: string }) => ({ DBClusters: [TEMP, undefined].includes(i.DBClusterIdentifier) ? [cluster] : [] }));
    rdsMock.on(DeleteDBInstanceCommand).rejects(Object.assign(new InvalidDBInstanceStateFault({ message: `Instance ${TEMP_WRITER} is not in available state.`, $metadata: {} }), { $fault: 'client' }));
    rdsMock.on(DeleteDBClusterCommand).rejects(Object.assign(new InvalidDBClusterStateFault({ message: 'Cluster cannot be deleted, it still contains DB instances in non-deleting state.', $metadata: {} }), { $fault: 'client' }));
    const log = recordingLog();
    const deps: TriggerDeps = { config: { projectName: PROJECT, sourceId: SOURCE, sourceKind: 'cluster', region: 'us-east-1' }, rds: rdsClient, codebuild, log: log.log };
    return { deps, cbMock, log };
  }

  test('a dead build\'s cleanup that RDS refuses names the cluster and its writer, not "the instance"', async () => {
    const { deps, cbMock } = leftovers();
    cbMock.on(BatchGetBuildsCommand).resolves({ builds: [codeBuildRecord(BUILD, 'STOPPED')] });
    const failure = await cleanupAfterDeadBuild({
      'source': BUILD_STATE_CHANGE.SOURCE,
      'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE,
      'detail': { 'build-status': 'STOPPED', 'project-name': PROJECT, 'build-id': BUILD },
    }, deps).then(() => undefined, (err: Error) => err);
    expect(failure?.message).toContain(`could not delete ${TEMP_WRITER} (InvalidDBInstanceStateFault`);
    expect(failure?.message).toContain('until the cluster and its writer are gone (RDS refuses to delete a cluster or an instance while it is being created');
    expect(failure?.message).not.toContain('until the instance is gone');
  });

  test('a recovery that waits for a stopped drill says RDS deletes the cluster and its writer once created', async () => {
    const { deps, cbMock, log } = leftovers();
    let stopped = false;
    const drill = () => ({
      ...codeBuildRecord(BUILD, stopped ? 'STOPPED' : 'IN_PROGRESS'),
      environment: { type: 'LINUX_CONTAINER' as const, image: 'x', computeType: 'BUILD_GENERAL1_SMALL' as const, environmentVariables: [{ name: START_ENV.MODE, value: 'drill', type: 'PLAINTEXT' as const }] },
    });
    cbMock.on(ListBuildsForProjectCommand).resolves({ ids: [BUILD] });
    cbMock.on(BatchGetBuildsCommand).callsFake(() => ({ builds: [drill()] }));
    cbMock.on(StopBuildCommand).callsFake(() => {
      stopped = true;
      return {};
    });
    let t = Date.parse('2026-11-24T10:00:00Z');
    const refusal = await stopRunningDrills(deps, { deadline: t + 10_000, pollMs: 5_000, now: () => t, sleep: async (ms) => void (t += ms) })
      .then(() => undefined, (err: Error) => err);
    expect(refusal?.message).toContain(`its temporary instance ${TEMP_WRITER} is creating; its temporary cluster ${TEMP} is available.`);
    expect(refusal?.message).toContain('RDS deletes a temporary cluster and its writer instance only once each has been created');
    expect(log.lines.join('\n')).not.toContain('RDS deletes a temporary instance only once');
  });
});

describe('the trigger deletes a failed writer of a dead build', () => {
  // RDS API Reference, DeleteDBInstance, SkipFinalSnapshot: "When a DB instance is in a failure state and has a status of
  // failed, incompatible-restore, or incompatible-network, RDS can delete the instance only if you enable this parameter."
  test('a writer in "failed" is deleted (SkipFinalSnapshot), then its cluster', async () => {
    const PROJECT = 'pitr-orders-aurora';
    const BUILD = `${PROJECT}:f0000000-0000-4000-8000-000000000001`;
    const tags = [{ Key: TAGS.BUILD_ID, Value: BUILD }, { Key: TAGS.SOURCE, Value: SOURCE }];
    const rdsClient = new RDSClient(motoClientConfig('http://127.0.0.1:9'));
    const codebuild = new CodeBuildClient(motoClientConfig('http://127.0.0.1:9'));
    const rdsMock = mockClient(rdsClient);
    mockClient(codebuild).on(BatchGetBuildsCommand).resolves({ builds: [codeBuildRecord(BUILD, 'FAILED')] });
    const writer = { DBInstanceIdentifier: TEMP_WRITER, DBClusterIdentifier: TEMP, DBInstanceStatus: 'failed', TagList: tags };
    rdsMock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [writer] });
    rdsMock.on(DescribeDBClustersCommand).resolves({ DBClusters: [{ DBClusterIdentifier: TEMP, Status: 'available', TagList: tags }] });
    rdsMock.on(DeleteDBInstanceCommand).callsFake((input: { SkipFinalSnapshot?: boolean }) => {
      if (!input.SkipFinalSnapshot) {
        throw Object.assign(new InvalidDBInstanceStateFault({ message: `Instance ${TEMP_WRITER} is in failed state; SkipFinalSnapshot is required.`, $metadata: {} }), { $fault: 'client' });
      }
      writer.DBInstanceStatus = 'deleting';
      return {};
    });
    rdsMock.on(DeleteDBClusterCommand).callsFake(() => {
      if (writer.DBInstanceStatus !== 'deleting') {
        throw Object.assign(new InvalidDBClusterStateFault({ message: 'Cluster still contains DB instances in non-deleting state.', $metadata: {} }), { $fault: 'client' });
      }
      return {};
    });
    const deps: TriggerDeps = { config: { projectName: PROJECT, sourceId: SOURCE, sourceKind: 'cluster', region: 'us-east-1' }, rds: rdsClient, codebuild, log: () => undefined };

    const summary = await cleanupAfterDeadBuild({
      'source': BUILD_STATE_CHANGE.SOURCE,
      'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE,
      'detail': { 'build-status': 'FAILED', 'project-name': PROJECT, 'build-id': BUILD },
    }, deps);

    expect(summary.deleted).toEqual([TEMP_WRITER, TEMP]);
    expect(rdsMock.commandCalls(DeleteDBInstanceCommand).map((c) => c.args[0].input))
      .toEqual([{ DBInstanceIdentifier: TEMP_WRITER, SkipFinalSnapshot: true }]);
  });
});

describe('least privilege of the build role on a cluster source', () => {
  test('no cloudwatch:GetMetricStatistics on "*": the runner never reads an Aurora cluster\'s free storage; an instance keeps it', () => {
    const actionsOf = (template: Template) => Object.values(template.findResources('AWS::IAM::Policy'))
      .flatMap((p: any) => p.Properties.PolicyDocument.Statement as Array<{ Action: string | string[] }>)
      .flatMap((st) => [st.Action].flat());
    const stack = new Stack(new App(), 'Test', { env: { account: '123456789012', region: 'eu-west-1' } });
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    const cluster = new awsRds.DatabaseCluster(stack, 'Cluster', {
      engine: awsRds.DatabaseClusterEngine.auroraPostgres({ version: awsRds.AuroraPostgresEngineVersion.VER_16_4 }),
      writer: awsRds.ClusterInstance.provisioned('Writer'),
      vpc,
    });
    new PitrRecovery(stack, 'Dr', { cluster });
    expect(actionsOf(Template.fromStack(stack))).not.toContain('cloudwatch:GetMetricStatistics');

    const other = new Stack(new App(), 'Other', { env: { account: '123456789012', region: 'eu-west-1' } });
    const instance = new awsRds.DatabaseInstance(other, 'Db', {
      engine: awsRds.DatabaseInstanceEngine.postgres({ version: awsRds.PostgresEngineVersion.VER_16 }),
      vpc: new ec2.Vpc(other, 'Vpc', { maxAzs: 2, natGateways: 1 }),
    });
    new PitrRecovery(other, 'Dr', { instance });
    expect(actionsOf(Template.fromStack(other))).toContain('cloudwatch:GetMetricStatistics');
  });
});
