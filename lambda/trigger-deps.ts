/**
 * What the trigger's logic needs from the outside world: its configuration
 * (from the function's environment) and the AWS clients. The handler wires
 * real ones; tests pass clients pointed at moto or mocked.
 */
import type { CodeBuildClient } from '@aws-sdk/client-codebuild';
import type { RDSClient } from '@aws-sdk/client-rds';
import { SourceKind, TRIGGER_ENV, sourceRefFromEnv } from '../src/contract';

export interface TriggerConfig {
  /** The CodeBuild project that runs recoveries. */
  readonly projectName: string;
  /** The identifier of the RDS instance or Aurora DB cluster recoveries write into. */
  readonly sourceId: string;
  /** Which of the two it is (issue #20). */
  readonly sourceKind: SourceKind;
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
  const projectName = required(TRIGGER_ENV.PROJECT_NAME, 'the construct sets it to the recovery CodeBuild project');
  const source = sourceRefFromEnv(env);
  if ('problem' in source) {
    throw new Error(`${source.problem} This function's environment is not what the construct deploys; redeploy the PitrRecovery construct. `
      + 'Nothing was started or deleted.');
  }
  return { projectName, sourceId: source.id, sourceKind: source.kind, region: required('AWS_REGION', 'Lambda sets it') };
}
