/**
 * `runner.js client-major`: which PostgreSQL client the install phase installs
 * (buildspec/install-client.sh). The answer is the major version of the
 * source's EngineVersion (DescribeDBInstances for SOURCE_INSTANCE_ID,
 * DescribeDBClusters for SOURCE_CLUSTER_ID), read at run time, so an imported
 * source, or one upgraded outside the CDK app, gets its own client. Prints
 * the major alone on stdout; says why on stderr.
 */
import type { RdsControl } from './ports';
import { AURORA_POSTGRES_ENGINE, PG_MAJORS, PROJECT_ENV, majorOfVersion, sourceRefFromEnv } from '../../src/contract';

type Env = Readonly<Record<string, string | undefined>>;

export interface ClientMajorIo {
  out(text: string): void;
  err(text: string): void;
}

/** Resolves to the exit code: 0 with the major printed, 1 with the reason on stderr. */
export async function runClientMajor(env: Env, rds: Pick<RdsControl, 'describeSource'>, io: ClientMajorIo): Promise<number> {
  try {
    const major = await chooseClientMajor(env, rds, (line) => io.err(`[install] ${line}\n`));
    io.out(`${major}\n`);
    return 0;
  } catch (err) {
    io.err(`[install] FAILED: ${(err as Error).message}\n`);
    return 1;
  }
}

/** The client's major for the source instance, refusing engines and majors the runner does not recover. */
export async function chooseClientMajor(env: Env, rds: Pick<RdsControl, 'describeSource'>, log: (line: string) => void): Promise<number> {
  const nothing = 'Nothing was installed, created or changed.';
  const ref = sourceRefFromEnv(env);
  if ('problem' in ref) throw new Error(`${ref.problem} ${nothing}`);
  const sourceId = ref.id;
  const cluster = ref.kind === 'cluster';
  const noun = cluster ? 'cluster' : 'instance';
  const describe = cluster ? 'DescribeDBClusters' : 'DescribeDBInstances';
  let source;
  try {
    source = await rds.describeSource(sourceId);
  } catch (err) {
    throw new Error(`the PostgreSQL client is chosen from the ${noun}'s engine version, and ${describe} on ${JSON.stringify(sourceId)} failed: `
      + `${(err as Error).message.replace(/ Nothing was created\.$/, '').replace(/\.$/, '')} (the build needs the rds endpoint: NAT or an rds interface endpoint). ${nothing}`);
  }
  const supported = `PostgreSQL ${PG_MAJORS.oldest} to ${PG_MAJORS.newest}`;
  const engine = cluster ? AURORA_POSTGRES_ENGINE : 'postgres';
  if (source.engine !== engine) {
    throw new Error(`${noun} ${JSON.stringify(source.id)} runs engine ${JSON.stringify(source.engine)} ${source.engineVersion}; accepted: `
      + `${cluster ? 'Aurora PostgreSQL' : 'RDS for PostgreSQL'} (engine "${engine}"), ${supported}. ${nothing}`);
  }
  const major = majorOfVersion(source.engineVersion);
  if (major === undefined || major < PG_MAJORS.oldest || major > PG_MAJORS.newest) {
    throw new Error(`${noun} ${JSON.stringify(source.id)} runs PostgreSQL ${source.engineVersion} (EngineVersion); accepted: ${supported}, the majors whose clients `
      + `Amazon Linux 2023 packages and this runner is tested with. ${major !== undefined && major < PG_MAJORS.oldest ? `Upgrade the ${noun}` : 'Use a cdk-rds-pitr release that supports it'}. ${nothing}`);
  }
  const pinned = env[PROJECT_ENV.PG_CLIENT_VERSION]?.trim();
  if (pinned && pinned !== String(major)) {
    throw new Error(`${PROJECT_ENV.PG_CLIENT_VERSION} (the deprecated \`postgresClientVersion\` prop) is ${JSON.stringify(pinned)}, but ${noun} ${JSON.stringify(source.id)} `
      + `runs PostgreSQL ${source.engineVersion}, and the client must be the server's major (${major}). Remove \`postgresClientVersion\` (the client is chosen from the `
      + `${noun} at run time) or set it to ${major}, then deploy. ${nothing}`);
  }
  log(`${source.id} runs ${cluster ? 'Aurora ' : ''}PostgreSQL ${source.engineVersion} (EngineVersion, from ${describe}): the client is PostgreSQL ${major} (package postgresql${major})`
    + (pinned ? `, as ${PROJECT_ENV.PG_CLIENT_VERSION} expects` : ''));
  return major;
}
