/**
 * Shared fixtures for the trigger Lambda tests (not a test file itself).
 */
import { CreateDBInstanceCommand, DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { Log, TriggerConfig } from '../lambda/trigger-deps';
import { TAGS } from '../src/contract';

export const PROJECT = 'pitr-recovery-orders';
export const SOURCE = 'orders-db';
export const REGION = 'us-east-1';
export const ACCOUNT = '123456789012';

export function config(overrides: Partial<TriggerConfig> = {}): TriggerConfig {
  return { projectName: PROJECT, sourceInstanceId: SOURCE, region: REGION, ...overrides };
}

/** A build ARN as CodeBuild puts it in `detail['build-id']` of state change events. */
export function buildArn(buildId: string): string {
  return `arn:aws:codebuild:${REGION}:${ACCOUNT}:build/${buildId}`;
}

export interface RecordedLog {
  readonly log: Log;
  readonly lines: string[];
}

export function recordingLog(): RecordedLog {
  const lines: string[] = [];
  return { log: (line) => lines.push(line), lines };
}

export interface PostgresOptions {
  /** @default 7 */
  readonly backupRetentionDays?: number;
  /** Value of the build-id tag; untagged when left out. */
  readonly buildIdTag?: string;
}

export async function createPostgres(rds: RDSClient, id: string, options: PostgresOptions = {}): Promise<void> {
  await rds.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: id,
    Engine: 'postgres',
    EngineVersion: '16.4',
    DBInstanceClass: 'db.t4g.micro',
    AllocatedStorage: 20,
    MasterUsername: 'postgres',
    MasterUserPassword: 'not-a-real-password',
    BackupRetentionPeriod: options.backupRetentionDays ?? 7,
    Tags: options.buildIdTag === undefined ? undefined : [{ Key: TAGS.BUILD_ID, Value: options.buildIdTag }],
  }));
}

/** Identifier -> status of every instance moto still lists. */
export async function instanceStates(rds: RDSClient): Promise<Record<string, string>> {
  const answer = await rds.send(new DescribeDBInstancesCommand({}));
  return Object.fromEntries((answer.DBInstances ?? []).map((i) => [i.DBInstanceIdentifier!, i.DBInstanceStatus!]));
}
