/**
 * What the trigger's logic needs from the outside world: its configuration
 * (from the function's environment) and the AWS clients. The handler wires
 * real ones; tests pass clients pointed at moto or mocked.
 */
import type { CodeBuildClient } from '@aws-sdk/client-codebuild';
import type { RDSClient } from '@aws-sdk/client-rds';
import { TRIGGER_ENV } from '../src/contract';

export interface TriggerConfig {
  /** The CodeBuild project that runs recoveries. */
  readonly projectName: string;
  /** The RDS instance recoveries write into. */
  readonly sourceInstanceId: string;
  readonly region: string;
}

export type Log = (line: string) => void;

export interface TriggerDeps {
  readonly config: TriggerConfig;
  readonly rds: RDSClient;
  readonly codebuild: CodeBuildClient;
  readonly log: Log;
}

/** Reads the configuration the construct puts in the function's environment. */
export function readTriggerConfig(env: Record<string, string | undefined>): TriggerConfig {
  const required = (name: string, why: string): string => {
    const value = env[name];
    if (value === undefined || value.trim() === '') {
      throw new Error(`${name} is not set in this function's environment (${why}); redeploy the PitrRecovery construct. Nothing was started or deleted.`);
    }
    return value;
  };
  return {
    projectName: required(TRIGGER_ENV.PROJECT_NAME, 'the construct sets it to the recovery CodeBuild project'),
    sourceInstanceId: required(TRIGGER_ENV.SOURCE_INSTANCE_ID, 'the construct sets it to the RDS instance to recover'),
    region: required('AWS_REGION', 'Lambda sets it'),
  };
}
