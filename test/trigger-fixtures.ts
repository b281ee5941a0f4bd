/**
 * Shared fixtures for the trigger Lambda tests (not a test file itself).
 */
import type { BatchGetBuildsCommandInput, BatchGetBuildsCommandOutput, Build, StatusType } from '@aws-sdk/client-codebuild';
import { CreateDBInstanceCommand, DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { Log, TriggerConfig } from '../lambda/trigger-deps';
import { TAGS } from '../src/contract';

export const PROJECT = 'pitr-recovery-orders';
export const SOURCE = 'orders-db';
export const REGION = 'us-east-1';
export const ACCOUNT = '123456789012';

export function config(overrides: Partial<TriggerConfig> = {}): TriggerConfig {
  return { projectName: PROJECT, sourceId: SOURCE, sourceKind: 'instance', region: REGION, ...overrides };
}

/** A build ARN as CodeBuild puts it in `detail['build-id']` of state change events. */
export function buildArn(buildId: string): string {
  return `arn:aws:codebuild:${REGION}:${ACCOUNT}:build/${buildId}`;
}

/**
 * A build as CodeBuild's BatchGetBuilds describes it (only the fields the
 * cleanup reads). The project is the part of the id before the colon, as
 * CodeBuild forms ids; complete unless IN_PROGRESS.
 */
export function codeBuildRecord(buildId: string, buildStatus: StatusType, overrides: Partial<Build> = {}): Build {
  return {
    id: buildId,
    arn: buildArn(buildId),
    projectName: buildId.slice(0, buildId.indexOf(':')),
    buildStatus,
    buildComplete: buildStatus !== 'IN_PROGRESS',
    ...overrides,
  };
}

/** BatchGetBuilds answered from a fixed set of builds: known ids in `builds`, the rest in `buildsNotFound`. */
export function batchGetBuildsFrom(known: readonly Build[]): (input: BatchGetBuildsCommandInput) => Omit<BatchGetBuildsCommandOutput, '$metadata'> {
  return (input) => {
    const ids = input.ids ?? [];
    return {
      builds: ids.flatMap((id) => known.filter((b) => b.id === id)),
      buildsNotFound: ids.filter((id) => !known.some((b) => b.id === id)),
    };
  };
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
