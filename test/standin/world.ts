/**
 * The lab stack "deployed" on this machine: the RDS stand-in (instances are
 * real PostgreSQL with TLS from a test CA), moto_server for Secrets Manager
 * holding the secret JSON RDS/CDK write, and the synthesized CodeBuild
 * project run by `codebuild.ts`. Shared by the e2e tests. Not a test file.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { startBuild, type BuildResult, type InstallStubs, type RunningBuild } from './codebuild';
import { startCodeBuildApi, type CodeBuildApi, type KnownBuild } from './codebuild-api';
import { synthesizeLab, type LabDeployment } from './lab-deployment';
import { quoteIdent } from '../../local/cluster';
import { setRolePassword } from '../../local/pitr-copy';
import type { StandInInstance } from '../../local/rds-standin/engine';
import { tlsPlacement } from '../../local/rds-standin/placement';
import { RdsStandIn } from '../../local/rds-standin/server';
import { TestCa } from '../../local/test-ca';
import { BUILD_ENV, PROJECT_ENV } from '../../src/contract';
import { LAB_DATABASE } from '../lab-stack';
import { DUMMY_AWS_ENV, motoClientConfig, startMoto, type MotoServer } from '../moto';

/** The physical names this "deployment" gives the lab's resources. */
export const SOURCE_ID = 'pitr-lab-db';
export const PROJECT_NAME = 'DrProject-standin';
export const ACCOUNT = '123456789012';
/**
 * The lab's generated secret names `postgres` as the master user; here the
 * master user is `pitr_master`, because on a local cluster `postgres` is the
 * trusted superuser, which would accept any password and hide the reset path.
 */
export const MASTER_USER = 'pitr_master';

export interface World {
  readonly lab: LabDeployment;
  readonly standIn: RdsStandIn;
  readonly moto: MotoServer;
  readonly ca: TestCa;
  readonly source: StandInInstance;
  readonly secretArn: string;
  /** Logical id -> physical id, for resolving the template. */
  readonly physical: Readonly<Record<string, string>>;
  /** The current master password (the secret's). */
  password: string;
  /** Changes the master password on the source and in the secret, as a rotation does. */
  rotatePassword(): Promise<void>;
  /** Runs SQL as the local superuser on the source. */
  sql(sql: string, database?: string): Promise<string>;
  /** Runs a psql script (meta-commands allowed) as the local superuser on the source. */
  script(text: string, database?: string): Promise<void>;
  /** Starts the synthesized project's build with `overrides` (a start-build's environment-variables-override). */
  startBuild(
    overrides: Readonly<Record<string, string>>,
    options?: { onLine?: (line: string) => void; caBundle?: string; install?: InstallStubs },
  ): { build: RunningBuild; buildId: string };
  runBuild(overrides: Readonly<Record<string, string>>, options?: { install?: InstallStubs }): Promise<BuildResult & { buildId: string }>;
  dispose(): Promise<void>;
}

export async function startWorld(options: { readonly lab?: LabDeployment } = {}): Promise<World> {
  const lab = options.lab ?? synthesizeLab();
  const scratch = mkdtempSync(join(tmpdir(), 'pitr-e2e-'));
  const ca = await TestCa.create('cdk-rds-pitr stand-in test CA');
  const moto = await startMoto();
  let standIn: RdsStandIn | undefined;
  try {
    standIn = await RdsStandIn.start({ region: DUMMY_AWS_ENV.AWS_REGION, accountId: ACCOUNT, placement: tlsPlacement(ca) });
    let password = randomBytes(15).toString('base64url');
    const secrets = new SecretsManagerClient(motoClientConfig(moto.endpoint));
    // What a CDK-generated, attached RDS secret holds.
    const secretJson = (pw: string, host: string, port: number): string => JSON.stringify({
      username: MASTER_USER, password: pw, engine: 'postgres', host, port, dbname: LAB_DATABASE, dbInstanceIdentifier: SOURCE_ID,
    });
    const source = await standIn.engine.createSourceInstance({ id: SOURCE_ID, masterUsername: MASTER_USER, masterPassword: password });
    const cluster = source.cluster!;
    const secret = await secrets.send(new CreateSecretCommand({ Name: `${lab.stackName}/Instance/Secret`, SecretString: secretJson(password, source.host!, cluster.port) }));
    const secretArn = secret.ARN!;
    let lastBusySecond = 0;
    await cluster.sql(`CREATE DATABASE ${quoteIdent(LAB_DATABASE)} OWNER ${quoteIdent(MASTER_USER)}`);

    const physical: Record<string, string> = {
      [lab.logicalIds.instance]: SOURCE_ID,
      [lab.logicalIds.secret]: secretArn,
      [lab.logicalIds.project]: PROJECT_NAME,
      [`${lab.logicalIds.trigger}.Arn`]: `arn:aws:lambda:${DUMMY_AWS_ENV.AWS_REGION}:${ACCOUNT}:function:DrTrigger-standin`,
    };
    const projectEnv = Object.fromEntries(lab.projectEnvironment.map((v) => [v.Name, lab.resolve(v.Value, physical)]));
    const standInRef = standIn;

    const world: World = {
      lab,
      standIn,
      moto,
      ca,
      source,
      secretArn,
      physical,
      password,
      async rotatePassword() {
        const next = randomBytes(15).toString('base64url');
        await setRolePassword(cluster, MASTER_USER, next);
        await secrets.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: secretJson(next, source.host!, cluster.port) }));
        password = next;
        world.password = next;
      },
      sql: (text, database = LAB_DATABASE) => cluster.sql(text, database),
      async script(text, database = LAB_DATABASE) {
        const file = join(scratch, `script-${randomUUID()}.sql`);
        writeFileSync(file, text);
        await cluster.sqlFile(file, database);
      },
      startBuild(overrides, buildOptions = {}) {
        // The runner names what it creates by the second (<source>-pitr-<yyyymmddhhmmss>); on AWS one build of a project runs at
        // a time and lasts minutes, so two never share a second. Here a build that fails fast could share one with the next:
        // start after the second in which the previous build started or ended (its runner took its stamp in between).
        const second = Math.floor(Date.now() / 1000);
        if (second <= lastBusySecond) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, (lastBusySecond + 1) * 1000 - Date.now() + 5);
        lastBusySecond = Math.floor(Date.now() / 1000);
        const buildId = `${PROJECT_NAME}:${randomUUID()}`;
        const env: Record<string, string> = {
          ...projectEnv,
          // The template's /tmp/rds-ca is one path for every concurrent test file; each world gets its own.
          [PROJECT_ENV.PG_CA_BUNDLE]: join(scratch, 'rds-ca', 'global-bundle.pem'),
          ...overrides,
          // What CodeBuild sets on every build.
          [BUILD_ENV.BUILD_ID]: buildId,
          CODEBUILD_BUILD_ARN: `arn:aws:codebuild:${DUMMY_AWS_ENV.AWS_REGION}:${ACCOUNT}:build/${buildId}`,
          AWS_REGION: DUMMY_AWS_ENV.AWS_REGION,
          AWS_DEFAULT_REGION: DUMMY_AWS_ENV.AWS_REGION,
          // Credentials CodeBuild would take from the service role; dummies for the stand-ins.
          AWS_ACCESS_KEY_ID: DUMMY_AWS_ENV.AWS_ACCESS_KEY_ID,
          AWS_SECRET_ACCESS_KEY: DUMMY_AWS_ENV.AWS_SECRET_ACCESS_KEY,
          AWS_EC2_METADATA_DISABLED: 'true',
          // The only change from AWS: where the SDK sends its calls.
          AWS_ENDPOINT_URL_RDS: standInRef.endpoint,
          AWS_ENDPOINT_URL_SECRETS_MANAGER: moto.endpoint,
          // moto's CloudWatch has no FreeStorageSpace datapoint here: the runner says so and goes on (the rehearsal publishes one).
          AWS_ENDPOINT_URL_CLOUDWATCH: moto.endpoint,
        };
        const caFile = buildOptions.caBundle ?? ca.caFile;
        const build = startBuild({
          sourceDir: lab.runnerSourceDir, buildspecFile: lab.buildspecFile, env, caFile, onLine: buildOptions.onLine, install: buildOptions.install,
        });
        void build.done.then(() => {
          lastBusySecond = Math.max(lastBusySecond, Math.floor(Date.now() / 1000));
        });
        return { build, buildId };
      },
      async runBuild(overrides, runOptions = {}) {
        const { build, buildId } = world.startBuild(overrides, runOptions);
        return { ...await build.done, buildId };
      },
      async dispose() {
        await standInRef.stop();
        await moto.stop();
        ca.destroy();
        rmSync(scratch, { recursive: true, force: true });
      },
    };
    return world;
  } catch (err) {
    await standIn?.stop().catch(() => undefined);
    await moto.stop();
    ca.destroy();
    rmSync(scratch, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The CodeBuild API for the lab's project: StartBuild runs the synthesized
 * build on this machine (`world.startBuild` with the request's overrides),
 * and BatchGetBuilds reports it IN_PROGRESS until it ends, then SUCCEEDED or
 * FAILED as CodeBuild would.
 */
export async function startLabCodeBuildApi(world: World): Promise<{ api: CodeBuildApi; runs: Map<string, RunningBuild> }> {
  const runs = new Map<string, RunningBuild>();
  const api = await startCodeBuildApi({
    projectName: PROJECT_NAME,
    start: (projectName, overrides) => {
      const { build, buildId } = world.startBuild(overrides);
      const known: KnownBuild = {
        id: buildId,
        arn: `arn:aws:codebuild:${DUMMY_AWS_ENV.AWS_REGION}:${ACCOUNT}:build/${buildId}`,
        projectName,
        buildStatus: 'IN_PROGRESS',
        buildComplete: false,
        environmentVariablesOverride: Object.entries(overrides).map(([name, value]) => ({ name, value, type: 'PLAINTEXT' })),
      };
      void build.done.then((result) => {
        known.buildStatus = result.status === 'SUCCEEDED' ? 'SUCCEEDED' : result.status === 'SIGNALLED' ? 'STOPPED' : 'FAILED';
        known.buildComplete = true;
      });
      runs.set(buildId, build);
      return known;
    },
  });
  return { api, runs };
}
