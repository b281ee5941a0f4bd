import type { DBCluster } from '@aws-sdk/client-rds';
import { AURORA_POSTGRES_ENGINE, temporaryClusterId, temporaryWriterId } from '../src/contract';

/** The Aurora source the runbook tests recover, and the names a run at STAMP gives its temporary cluster and writer. */
export const AURORA_SOURCE = 'orders-aurora';
export const AURORA_STAMP = '20261124100000';
export const AURORA_TEMP = temporaryClusterId(AURORA_SOURCE, AURORA_STAMP);
export const AURORA_TEMP_WRITER = temporaryWriterId(AURORA_SOURCE, AURORA_STAMP);
/** The source cluster's writer instance (DBClusterMembers). */
export const AURORA_SOURCE_WRITER = 'orders-aurora-writer';

/** DescribeDBClusters' answer for the source: available, PostgreSQL 16.4, 7 days of backups, one writer. */
export function auroraSourceCluster(): DBCluster {
  return {
    DBClusterIdentifier: AURORA_SOURCE,
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
    DBClusterMembers: [{ DBInstanceIdentifier: AURORA_SOURCE_WRITER, IsClusterWriter: true }],
  };
}
