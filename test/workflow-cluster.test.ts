/**
 * The runbook on an Aurora PostgreSQL cluster (issue #20), control plane
 * only: the real AwsRdsClusterControl over aws-sdk-client-mock, answering as
 * a small scripted Aurora does (the restored cluster is `creating` for a few
 * polls; RDS refuses an instance in a cluster that is not available, and a
 * cluster delete while an instance is not being deleted), a scripted data
 * path and a virtual clock. The end-to-end runs through CodeBuild against
 * the RDS stand-in are elsewhere (wt-aurora-standin).
 */
import {
  CreateDBClusterSnapshotCommand,
  CreateDBInstanceCommand,
  CreateDBInstanceCommandInput,
  DBCluster,
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
  RDSClient,
  RestoreDBClusterToPointInTimeCommand,
  RestoreDBClusterToPointInTimeCommandInput,
} from '@aws-sdk/client-rds';
import { AwsStub, mockClient } from 'aws-sdk-client-mock';
import { AURORA_SOURCE, AURORA_SOURCE_WRITER, AURORA_STAMP, AURORA_TEMP, AURORA_TEMP_WRITER, auroraSourceCluster } from './aurora-fixtures';
import { motoClientConfig } from './moto';
import { VirtualClock } from './virtual-clock';
import { AwsRdsClusterControl } from '../buildspec/runner/aws/rds-cluster-control';
import { readChangesModeRequest } from '../buildspec/runner/changes-mode';
import { describeEvidence, readDrillRequest, runDrill } from '../buildspec/runner/drill';
import { readHousekeepingRequest, runHousekeeping } from '../buildspec/runner/housekeeping';
import { StepLog } from '../buildspec/runner/log';
import { readStartRequest } from '../buildspec/runner/plan';
import type { DataPath, MarkedDatabase, PgTarget } from '../buildspec/runner/ports';
import { runRecovery, type Clock } from '../buildspec/runner/workflow';
import {
  AURORA_POSTGRES_ENGINE, BUILD_ENV, LATEST, PROJECT_ENV, START_ENV, TAGS,
  parseMarkedName, safetySnapshotId, temporaryClusterId, temporaryInstanceId,
} from '../src/contract';

const SOURCE = AURORA_SOURCE;
const STAMP = AURORA_STAMP;
const TEMP = AURORA_TEMP;
const TEMP_WRITER = AURORA_TEMP_WRITER;
const BUILD_ID = 'orders-aurora-recovery:1234';
const PASSWORD = 'S3cret-password-value';

/** A scripted Aurora behind the SDK mock: one source cluster, and what the run restores. */
class ScriptedAurora {
  readonly calls: string[] = [];
  restore?: RestoreDBClusterToPointInTimeCommandInput;
  writer?: CreateDBInstanceCommandInput & { status: string };
  tempStatus = 'none';
  /** Polls the restored cluster stays `creating`, then the writer `creating`. */
  private clusterPolls = 2;
  private writerPolls = 1;

  constructor(readonly mock: AwsStub<any, any, any>, options: { writerStuckCreating?: boolean } = {}) {
    const fault = (Fault: any, message: string) => new Fault({ message, $metadata: { httpStatusCode: 400 } });
    mock.on(DescribeDBClustersCommand).callsFake((input: { DBClusterIdentifier?: string }) => {
      this.calls.push(`DescribeDBClusters ${input.DBClusterIdentifier ?? '*'}`);
      if (input.DBClusterIdentifier === SOURCE) return { DBClusters: [this.source()] };
      if (input.DBClusterIdentifier === TEMP) return { DBClusters: this.temp() ? [this.temp(true)!] : [] };
      return { DBClusters: [this.source(), ...(this.temp() ? [this.temp()!] : [])] };
    });
    mock.on(DescribeDBInstancesCommand).callsFake((input: { DBInstanceIdentifier: string }) => {
      if (input.DBInstanceIdentifier === AURORA_SOURCE_WRITER) return { DBInstances: [{ DBInstanceIdentifier: AURORA_SOURCE_WRITER, DBInstanceClass: 'db.r6g.large' }] };
      if (input.DBInstanceIdentifier !== TEMP_WRITER || !this.writer) throw fault(DBInstanceNotFoundFault, `DBInstance ${input.DBInstanceIdentifier} not found.`);
      if (this.writer.status === 'creating' && !options.writerStuckCreating && this.writerPolls-- <= 0) this.writer.status = 'available';
      return { DBInstances: [{ DBInstanceIdentifier: TEMP_WRITER, DBInstanceStatus: this.writer.status }] };
    });
    mock.on(RestoreDBClusterToPointInTimeCommand).callsFake((input: RestoreDBClusterToPointInTimeCommandInput) => {
      this.calls.push(`RestoreDBClusterToPointInTime ${input.DBClusterIdentifier} ${input.RestoreType}`);
      this.restore = input;
      this.tempStatus = 'creating';
      return {};
    });
    mock.on(CreateDBInstanceCommand).callsFake((input: CreateDBInstanceCommandInput) => {
      this.calls.push(`CreateDBInstance ${input.DBInstanceIdentifier} ${input.DBInstanceClass}`);
      // "You can create DB instances only after the RestoreDBClusterToPointInTime action has completed and the DB cluster is available."
      if (this.tempStatus !== 'available') throw fault(InvalidDBClusterStateFault, `DB cluster ${TEMP} is not in available state.`);
      this.writer = { ...input, status: 'creating' };
      return {};
    });
    mock.on(CreateDBClusterSnapshotCommand).callsFake((input: { DBClusterSnapshotIdentifier: string }) => {
      this.calls.push(`CreateDBClusterSnapshot ${input.DBClusterSnapshotIdentifier}`);
      return {};
    });
    mock.on(DescribeDBClusterSnapshotsCommand).resolves({ DBClusterSnapshots: [{ DBClusterSnapshotIdentifier: safetySnapshotId(SOURCE, STAMP), Status: 'available' }] });
    mock.on(DeleteDBInstanceCommand).callsFake((input: { DBInstanceIdentifier: string }) => {
      this.calls.push(`DeleteDBInstance ${input.DBInstanceIdentifier}`);
      if (input.DBInstanceIdentifier !== TEMP_WRITER || !this.writer) throw fault(DBInstanceNotFoundFault, 'not found');
      if (this.writer.status === 'creating') throw fault(InvalidDBInstanceStateFault, `Instance ${TEMP_WRITER} is not in available state.`);
      this.writer.status = 'deleting';
      return {};
    });
    mock.on(DeleteDBClusterCommand).callsFake((input: { DBClusterIdentifier: string }) => {
      this.calls.push(`DeleteDBCluster ${input.DBClusterIdentifier}`);
      if (this.writer && this.writer.status !== 'deleting') throw fault(InvalidDBClusterStateFault, 'Cluster cannot be deleted, it still contains DB instances in non-deleting state.');
      this.tempStatus = 'deleting';
      return {};
    });
  }

  private source(): DBCluster {
    return auroraSourceCluster();
  }


  /** The restored cluster as DescribeDBClusters shows it; `poll` advances its restore. */
  private temp(poll = false): DBCluster | undefined {
    if (this.tempStatus === 'none') return undefined;
    if (poll && this.tempStatus === 'creating' && this.clusterPolls-- <= 0) this.tempStatus = 'available';
    return {
      DBClusterIdentifier: TEMP,
      Status: this.tempStatus,
      Endpoint: 'temp.example',
      Port: 5432,
      TagList: this.restore!.Tags,
      DBClusterMembers: this.writer ? [{ DBInstanceIdentifier: TEMP_WRITER, IsClusterWriter: true }] : [],
    };
  }
}

class ScriptedData implements DataPath {
  readonly copies: Array<{ source: string; target: string }> = [];
  constructor(private readonly clock: Clock) {}
  async checkLogin() {}
  async listDatabases() {
    return ['orders'];
  }
  async copy(source: PgTarget, target: PgTarget, options: { databases: readonly string[] }) {
    this.copies.push({ source: source.host, target: target.host });
    await this.clock.sleep(2_000);
    return options.databases.map((database) => ({ database, keptAs: `${database}__before_pitr_${STAMP}`, unavailableMs: 120, tables: 3, rows: 30, verified: true }));
  }
}

function setup(options: { writerStuckCreating?: boolean } = {}) {
  const client = new RDSClient(motoClientConfig('http://127.0.0.1:9'));
  const aurora = new ScriptedAurora(mockClient(client), options);
  const clock = new VirtualClock();
  const lines: string[] = [];
  const log = new StepLog((l) => lines.push(l), () => clock.now());
  const rds = new AwsRdsClusterControl({ client, log, sleep: async () => undefined });
  const data = new ScriptedData(clock);
  const deps = { rds, data, log, clock, credentials: { username: 'master', password: PASSWORD } };
  const env = {
    [PROJECT_ENV.SOURCE_CLUSTER_ID]: SOURCE,
    [START_ENV.CONFIRM]: SOURCE,
    [START_ENV.RESTORE_TIME]: LATEST,
    [BUILD_ENV.BUILD_ID]: BUILD_ID,
    [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '30',
  };
  return { aurora, lines, deps, data, env };
}

test('a recovery: safety cluster snapshot, full-copy restore, the writer once the cluster is available, copy to the writer endpoint, writer then cluster deleted', async () => {
  const { aurora, lines, deps, data, env } = setup();
  const outcome = await runRecovery(readStartRequest(env, { cpus: 2 }), deps);
  expect(outcome.plan.temporaryInstanceId).toBe(TEMP);
  expect(outcome.results).toEqual([expect.objectContaining({ database: 'orders', verified: true })]);
  expect(data.copies).toEqual([{ source: 'temp.example', target: 'orders-aurora.cluster-abc.example' }]);
  const mutations = aurora.calls.filter((c) => !c.startsWith('Describe'));
  expect(mutations).toEqual([
    `CreateDBClusterSnapshot ${safetySnapshotId(SOURCE, STAMP)}`,
    `RestoreDBClusterToPointInTime ${TEMP} full-copy`,
    `CreateDBInstance ${TEMP_WRITER} db.r6g.large`,
    `DeleteDBInstance ${TEMP_WRITER}`,
    `DeleteDBCluster ${TEMP}`,
  ]);
  expect(aurora.restore!.Tags).toEqual(expect.arrayContaining([{ Key: TAGS.BUILD_ID, Value: BUILD_ID }, { Key: TAGS.SOURCE, Value: SOURCE }]));
  const output = lines.join('\n');
  expect(output).toContain(`temporary cluster: ${TEMP} (writer ${TEMP_WRITER}); safety snapshot: ${safetySnapshotId(SOURCE, STAMP)} (a DB cluster snapshot)`);
  expect(output).toContain(`temporary cluster ${TEMP}: creating (cluster ${TEMP})`);
  expect(output).toContain(`temporary cluster ${TEMP}: creating (writer ${TEMP_WRITER} requested)`);
  expect(output).toContain(`temporary cluster ${TEMP} is available at temp.example:5432`);
  expect(output).toContain('free storage: the original is an Aurora cluster, whose cluster volume grows by itself');
  expect(output).toContain(`temporary cluster ${TEMP}: deletion requested (its writer first, then the cluster; no final snapshot`);
  expect(output).toContain(`delete it when no longer needed: aws rds delete-db-cluster-snapshot --db-cluster-snapshot-identifier ${safetySnapshotId(SOURCE, STAMP)}`);
  expect(output).toMatch(/RESULT: SUCCESS: 1 database\(s\) recovered and verified\./);
  expect(output).not.toContain(PASSWORD);
});

test('a cleanup RDS refuses (the writer still being created) names what is left and how to delete both by hand', async () => {
  const { aurora, lines, deps, env } = setup({ writerStuckCreating: true });
  await expect(runRecovery(readStartRequest({ ...env, [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '5' }, { cpus: 2 }), deps)).rejects.toThrow(
    new RegExp(`temporary cluster ${TEMP} is still "creating \\(writer ${TEMP_WRITER}\\)" after 5 min`),
  );
  expect(aurora.calls.filter((c) => c.startsWith('Delete'))).toEqual([`DeleteDBInstance ${TEMP_WRITER}`]);
  const output = lines.join('\n');
  expect(output).toContain(`also failed: temporary cluster ${TEMP} could not be deleted (`);
  expect(output).toContain(`to delete it by hand: aws rds delete-db-instance --db-instance-identifier ${TEMP_WRITER} --skip-final-snapshot; `
    + `aws rds delete-db-cluster --db-cluster-identifier ${TEMP} --skip-final-snapshot --delete-automated-backups`);
  expect(output).toContain('The original cluster was not changed.');
});

test.each([
  ['latest', 'copy-on-write', undefined],
  ['an instant', 'full-copy', '2026-11-24T09:00:00Z'],
])('a drill at %s restores a %s, copies onto the temporary cluster and deletes it', async (_when, restoreType, restoreTime) => {
  const { aurora, lines, deps, data, env } = setup();
  const request = readDrillRequest({ ...env, [START_ENV.CONFIRM]: undefined, [START_ENV.RESTORE_TIME]: restoreTime }, { cpus: 2 });
  const record = await runDrill(request, { ...deps, databaseSizes: async () => new Map([['orders', 5 * 2 ** 20]]) });
  expect(record.succeeded).toBe(true);
  expect(aurora.restore!.RestoreType).toBe(restoreType);
  expect(aurora.restore!.UseLatestRestorableTime ?? false).toBe(restoreTime === undefined);
  expect(data.copies).toEqual([{ source: 'temp.example', target: 'temp.example' }]);
  expect(aurora.calls.filter((c) => c.startsWith('Delete'))).toEqual([`DeleteDBInstance ${TEMP_WRITER}`, `DeleteDBCluster ${TEMP}`]);
  expect(aurora.calls.some((c) => c.startsWith('CreateDBClusterSnapshot'))).toBe(false);
  expect(lines.join('\n')).toContain('the temporary cluster needs no sizing: an Aurora cluster volume grows by itself');
  // A clone is quicker to restore than the full copy a recovery makes: the estimate says so.
  const cloneNote = record.recoveryTimeEstimate!.assumptions.filter((a) => a.includes('copy-on-write clone'));
  expect(cloneNote).toHaveLength(restoreType === 'copy-on-write' ? 1 : 0);
  expect(describeEvidence(record)).toContain('The original cluster was only read. The temporary cluster and its writer were deleted');
});

test('the writer refused after the cluster was restored: the run fails saying what exists, and the cleanup deletes the cluster by its tag', async () => {
  const { aurora, lines, deps, env } = setup();
  aurora.mock.on(CreateDBInstanceCommand).rejects(Object.assign(
    new InsufficientDBInstanceCapacityFault({ message: 'Cannot create a database instance because there is not enough capacity.', $metadata: {} }),
    { $fault: 'client' },
  ));
  await expect(runRecovery(readStartRequest(env, { cpus: 2 }), deps)).rejects.toThrow(
    new RegExp(`RDS refused the writer instance .*The temporary cluster "${TEMP}" exists without a writer; the cleanup deletes it`),
  );
  expect(aurora.calls.filter((c) => c.startsWith('Delete'))).toEqual([`DeleteDBInstance ${TEMP_WRITER}`, `DeleteDBCluster ${TEMP}`]);
  expect(lines.join('\n')).toMatch(/RESULT: FAILED in step "Wait for the temporary instance": RDS refused the writer instance/);
});

describe('housekeeping and MODE=changes with SOURCE_CLUSTER_ID', () => {
  // 43 characters: a temporary instance of it would keep all 43, a temporary cluster keeps 41 (so that `-w` fits).
  const LONG = 'orders-aurora-production-eu-west-1-primary1';
  const ALIVE = '20261120000000';
  const DEAD = '20261118000000';
  const OLD = '20261001000000';
  const RECENT = '20261123000000';

  function marked(database: string, stamp: string): MarkedDatabase {
    const name = `${database}__pitr_${stamp}`;
    return { ...parseMarkedName(name)!, name, sizeBytes: 2 ** 20, connections: 0 };
  }

  test('in-progress copies are matched to temporary clusters by their name, old cluster snapshots deleted with DeleteDBClusterSnapshot', async () => {
    expect(LONG).toHaveLength(43);
    expect(temporaryClusterId(LONG, ALIVE)).not.toBe(temporaryInstanceId(LONG, ALIVE));
    const client = new RDSClient(motoClientConfig('http://127.0.0.1:9'));
    const mock = mockClient(client);
    const source: DBCluster = {
      DBClusterIdentifier: LONG,
      Status: 'available',
      Engine: AURORA_POSTGRES_ENGINE,
      EngineVersion: '16.4',
      Endpoint: 'long.cluster-abc.example',
      Port: 5432,
      MasterUsername: 'master',
      BackupRetentionPeriod: 7,
      TagList: [],
      DBClusterMembers: [{ DBInstanceIdentifier: 'long-1', IsClusterWriter: true }],
    };
    const alive: DBCluster = {
      DBClusterIdentifier: temporaryClusterId(LONG, ALIVE),
      Status: 'available',
      TagList: [{ Key: TAGS.SOURCE, Value: LONG }, { Key: TAGS.BUILD_ID, Value: 'proj:running' }],
    };
    mock.on(DescribeDBClustersCommand)
      .callsFake((input: { DBClusterIdentifier?: string }) => ({ DBClusters: input.DBClusterIdentifier ? [source] : [source, alive] }));
    mock.on(DescribeDBInstancesCommand).resolves({ DBInstances: [{ DBInstanceIdentifier: 'long-1', DBInstanceClass: 'db.r6g.large' }] });
    mock.on(DescribeDBClusterSnapshotsCommand).resolves({
      DBClusterSnapshots: [OLD, RECENT].map((stamp) => ({ DBClusterSnapshotIdentifier: safetySnapshotId(LONG, stamp), Status: 'available', AllocatedStorage: 3 })),
    });
    mock.on(DeleteDBClusterSnapshotCommand).resolves({});
    const dropped: string[] = [];
    const lines: string[] = [];
    const log = new StepLog((l) => lines.push(l), () => new Date('2026-11-24T10:00:00Z'));
    const request = readHousekeepingRequest({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: LONG, [START_ENV.OLDER_THAN]: '7d', [START_ENV.CONFIRM]: LONG });
    expect(request.sourceKind).toBe('cluster');

    const outcome = await runHousekeeping(request, {
      rds: new AwsRdsClusterControl({ client, log }),
      catalog: { listMarked: async () => [marked('orders', ALIVE), marked('billing', DEAD)], drop: async (_t, name) => void dropped.push(name) },
      builds: { statusOf: async (ids) => new Map(ids.map((id) => [id, 'IN_PROGRESS'])) },
      log,
      credentials: { username: 'master', password: PASSWORD },
      now: () => new Date('2026-11-24T10:00:00Z'),
    });

    expect(dropped).toEqual([`billing__pitr_${DEAD}`]);
    expect(outcome.dropped).toEqual([`billing__pitr_${DEAD}`, safetySnapshotId(LONG, OLD)]);
    expect(mock.commandCalls(DeleteDBClusterSnapshotCommand).map((c) => c.args[0].input))
      .toEqual([{ DBClusterSnapshotIdentifier: safetySnapshotId(LONG, OLD) }]);
    const output = lines.join('\n');
    expect(output).toContain(`its build proj:running is still running (temporary cluster ${temporaryClusterId(LONG, ALIVE)} is available); never touched`);
    expect(output).toContain(`its run is over: its temporary cluster ${temporaryClusterId(LONG, DEAD)} is gone`);
    expect(output).toContain(`aws rds delete-db-cluster-snapshot --db-cluster-snapshot-identifier ${safetySnapshotId(LONG, RECENT)}`);
  });

  test('CONFIRM is the cluster identifier for housekeeping and MODE=changes', () => {
    expect(() => readHousekeepingRequest({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: LONG, [START_ENV.OLDER_THAN]: '7d', [START_ENV.CONFIRM]: 'other' }))
      .toThrow(`CONFIRM: "other" does not match the source cluster; accepted: exactly "${LONG}".`);
    expect(() => readChangesModeRequest({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: LONG, [START_ENV.STAMP]: ALIVE, [START_ENV.CONFIRM]: 'other' }))
      .toThrow(`CONFIRM: "other" does not match the source cluster; accepted: exactly "${LONG}".`);
    const changes = readChangesModeRequest({ [PROJECT_ENV.SOURCE_CLUSTER_ID]: LONG, [START_ENV.STAMP]: ALIVE, [START_ENV.CONFIRM]: LONG });
    expect(changes.sourceId).toBe(LONG);
    expect(() => readHousekeepingRequest({ [START_ENV.OLDER_THAN]: '7d', [START_ENV.DRY_RUN]: 'true' }))
      .toThrow(/SOURCE_INSTANCE_ID and SOURCE_CLUSTER_ID: neither is set/);
  });
});
