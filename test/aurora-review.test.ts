/**
 * Findings of the review of the Aurora PostgreSQL work (issue #20) read
 * against AWS's documentation, each with the behaviour that was wrong on
 * the code as it landed. The runbook runs through the real
 * AwsRdsClusterControl over aws-sdk-client-mock and a virtual clock.
 */
import {
  CreateDBInstanceCommand,
  DBCluster,
  DBInstanceNotFoundFault,
  DeleteDBClusterCommand,
  DeleteDBInstanceCommand,
  DescribeDBClustersCommand,
  DescribeDBInstancesCommand,
  RDSClient,
  RestoreDBClusterToPointInTimeCommand,
} from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import { motoClientConfig } from './moto';
import { AwsRdsClusterControl } from '../buildspec/runner/aws/rds-cluster-control';
import { readDrillRequest, runDrill } from '../buildspec/runner/drill';
import { StepLog } from '../buildspec/runner/log';
import type { DataPath } from '../buildspec/runner/ports';
import type { Clock } from '../buildspec/runner/workflow';
import { AURORA_POSTGRES_ENGINE, BUILD_ENV, LATEST, PROJECT_ENV, START_ENV, temporaryClusterId, temporaryWriterId } from '../src/contract';

const SOURCE = 'orders-aurora';
const STAMP = '20261124100000';
const TEMP = temporaryClusterId(SOURCE, STAMP);
const TEMP_WRITER = temporaryWriterId(SOURCE, STAMP);

class VirtualClock implements Clock {
  readonly start = Date.parse('2026-11-24T10:00:00Z');
  private t = this.start;
  now(): Date {
    return new Date(this.t);
  }
  async sleep(ms: number): Promise<void> {
    this.t += ms;
  }
}

const SOURCE_CLUSTER: DBCluster = {
  DBClusterIdentifier: SOURCE,
  Status: 'available',
  Engine: AURORA_POSTGRES_ENGINE,
  EngineVersion: '16.4',
  Endpoint: 'orders-aurora.cluster-abc.example',
  Port: 5432,
  MasterUsername: 'master',
  BackupRetentionPeriod: 7,
  EarliestRestorableTime: new Date('2026-11-20T00:00:00Z'),
  LatestRestorableTime: new Date('2026-11-24T09:59:00Z'),
  VpcSecurityGroups: [{ VpcSecurityGroupId: 'sg-1' }],
  DBSubnetGroup: 'subnets',
  TagList: [],
  DBClusterMembers: [{ DBInstanceIdentifier: 'orders-aurora-writer', IsClusterWriter: true }],
};

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
      if (input.DBInstanceIdentifier === 'orders-aurora-writer') return { DBInstances: [{ DBInstanceIdentifier: 'orders-aurora-writer', DBInstanceClass: 'db.r6g.large' }] };
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
    const rds = new AwsRdsClusterControl({ client, log, sleep: async () => undefined });
    const request = readDrillRequest({
      [PROJECT_ENV.SOURCE_CLUSTER_ID]: SOURCE, [START_ENV.RESTORE_TIME]: LATEST, [BUILD_ENV.BUILD_ID]: 'proj:1', [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '120',
    }, { cpus: 2 });

    const failure = await runDrill(request, {
      rds, data, log, clock, credentials: { username: 'master', password: 'pw' }, databaseSizes: async () => new Map([['orders', 2 ** 20]]),
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
