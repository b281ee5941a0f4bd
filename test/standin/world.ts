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
import { CreateSecretCommand, GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { startBuild, type BuildResult, type InstallStubs, type RunningBuild } from './codebuild';
import { synthesizeLab, type LabDeployment } from './lab-deployment';
import { quoteIdent } from '../../local/cluster';
import { startCodeBuildApi, type BuildVariable, type CodeBuildApi, type KnownBuild } from '../../local/codebuild-api';
import { fingerprintDatabase } from '../../local/fingerprint';
import { setRolePassword } from '../../local/pitr-copy';
import type { StandInDbCluster } from '../../local/rds-standin/clusters';
import type { StandInInstance } from '../../local/rds-standin/engine';
import { tlsPlacement } from '../../local/rds-standin/placement';
import { RdsStandIn } from '../../local/rds-standin/server';
import { TestCa } from '../../local/test-ca';
import { BUILD_ENV, BUILD_STATE_CHANGE, PROJECT_ENV, type SourceKind } from '../../src/contract';
import { LAB_DATABASE } from '../lab-stack';
import { DUMMY_AWS_ENV, motoClientConfig, startMoto, type MotoServer } from '../moto';

/** The physical names this "deployment" gives the lab's resources. */
export const SOURCE_ID = 'pitr-lab-db';
/** With `startWorld({ source: 'cluster' })`: the Aurora PostgreSQL DB cluster recovered instead of the instance. */
export const CLUSTER_SOURCE_ID = 'pitr-lab-aurora';
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
  /**
   * The CodeBuild API of this "deployment": it knows every build started
   * here, with its environment variables and their types (the runner asks
   * it about its own build); StartBuild and StopBuild run and stop builds.
   */
  readonly codebuild: CodeBuildApi;
  /** Every build started here, by id. */
  readonly runs: Map<string, RunningBuild>;
  /**
   * The source as an instance: the RDS instance, or (`source: 'cluster'`)
   * the Aurora cluster's writer seen with the cluster's volume as its
   * `cluster`, host and automated backup.
   */
  readonly source: StandInInstance;
  /** Which kind of source this world recovers, and its identifier (CONFIRM). */
  readonly sourceKind: SourceKind;
  readonly sourceId: string;
  /** The Aurora source cluster (`source: 'cluster'` only). */
  readonly sourceCluster?: StandInDbCluster;
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
  /** Starts the synthesized project's build with `overrides` (a start-build's environment-variables-override, all PLAINTEXT). */
  startBuild(overrides: Readonly<Record<string, string>>, options?: BuildStartOptions): { build: RunningBuild; buildId: string };
  /**
   * Starts a build with typed overrides, as StartBuild does: a
   * SECRETS_MANAGER variable (`<secret id or ARN>[:<json key>]`) is resolved
   * from Secrets Manager (moto) into the build's environment, as CodeBuild
   * resolves it with the build role, while BatchGetBuilds reports the value
   * as passed, with its type. PARAMETER_STORE is not modeled here (refused).
   */
  startBuildWith(
    variables: readonly BuildVariable[], options?: BuildStartOptions,
  ): Promise<{ build: RunningBuild; buildId: string; known: KnownBuild }>;
  runBuild(overrides: Readonly<Record<string, string>>, options?: { install?: InstallStubs }): Promise<BuildResult & { buildId: string }>;
  dispose(): Promise<void>;
}

export interface BuildStartOptions {
  readonly onLine?: (line: string) => void;
  readonly caBundle?: string;
  readonly install?: InstallStubs;
}

export interface WorldOptions {
  readonly lab?: LabDeployment;
  /**
   * `cluster`: the source is an Aurora PostgreSQL DB cluster (CLUSTER_SOURCE_ID),
   * and the lab is the Aurora lab (`synthesizeLab({ aurora: true })`, the
   * default then), whose project and trigger name it in SOURCE_CLUSTER_ID.
   * @default 'instance'
   */
  readonly source?: SourceKind;
}

/** The source the world recovers, started on the stand-in. */
async function createSource(
  standIn: RdsStandIn, kind: SourceKind, password: string,
): Promise<{ source: StandInInstance; cluster?: StandInDbCluster }> {
  if (kind === 'instance') return { source: await standIn.engine.createSourceInstance({ id: SOURCE_ID, masterUsername: MASTER_USER, masterPassword: password }) };
  const cluster = await standIn.engine.clusters.createSourceCluster({ id: CLUSTER_SOURCE_ID, masterUsername: MASTER_USER, masterPassword: password });
  const writer = standIn.engine.clusters.members(cluster)[0];
  return { source: { ...writer, cluster: cluster.volume, host: cluster.host, automatedBackup: cluster.automatedBackup }, cluster };
}

/** The project's environment, which must name the source of `kind` (the Aurora lab's sets SOURCE_CLUSTER_ID). */
function projectEnvironmentFor(lab: LabDeployment, kind: SourceKind): LabDeployment['projectEnvironment'] {
  const wanted = kind === 'cluster' ? PROJECT_ENV.SOURCE_CLUSTER_ID : PROJECT_ENV.SOURCE_INSTANCE_ID;
  if (!lab.projectEnvironment.some((v) => v.Name === wanted)) {
    const which = kind === 'cluster' ? 'synthesizeLab({ aurora: true })' : 'synthesizeLab()';
    throw new Error(`the lab's project sets no ${wanted}; a world with source '${kind}' needs ${which}.`);
  }
  return lab.projectEnvironment;
}

export async function startWorld(options: WorldOptions = {}): Promise<World> {
  const sourceKind = options.source ?? 'instance';
  const sourceId = sourceKind === 'cluster' ? CLUSTER_SOURCE_ID : SOURCE_ID;
  const lab = options.lab ?? synthesizeLab({ aurora: sourceKind === 'cluster' });
  // Checked before anything starts.
  const projectEnvironment = projectEnvironmentFor(lab, sourceKind);
  const scratch = mkdtempSync(join(tmpdir(), 'pitr-e2e-'));
  const ca = await TestCa.create('cdk-rds-pitr stand-in test CA');
  const moto = await startMoto();
  let standIn: RdsStandIn | undefined;
  const runs = new Map<string, RunningBuild>();
  let startWith: World['startBuildWith'] | undefined;
  const codebuild = await startCodeBuildApi({
    projectName: PROJECT_NAME,
    start: async (_project, variables) => (await startWith!(variables)).known,
    // As the construct sets it on the project (concurrentBuildLimit: 1).
    concurrentBuildLimit: 1,
    // CodeBuild stops a build by stopping its container: the runner gets SIGTERM.
    stopBuild: (build) => runs.get(build.id)?.signal('SIGTERM'),
  });
  try {
    standIn = await RdsStandIn.start({ region: DUMMY_AWS_ENV.AWS_REGION, accountId: ACCOUNT, placement: tlsPlacement(ca) });
    let password = randomBytes(15).toString('base64url');
    const secrets = new SecretsManagerClient(motoClientConfig(moto.endpoint));
    // What a CDK-generated, attached RDS secret holds.
    // A cluster's secret names the cluster (dbClusterIdentifier), as a CDK DatabaseCluster's generated secret does.
    const secretJson = (pw: string, host: string, port: number): string => JSON.stringify({
      username: MASTER_USER,
      password: pw,
      engine: 'postgres',
      host,
      port,
      dbname: LAB_DATABASE,
      ...(sourceKind === 'cluster' ? { dbClusterIdentifier: sourceId } : { dbInstanceIdentifier: sourceId }),
    });
    const { source, cluster: sourceCluster } = await createSource(standIn, sourceKind, password);
    const cluster = source.cluster!;
    const secret = await secrets.send(new CreateSecretCommand({ Name: `${lab.stackName}/Instance/Secret`, SecretString: secretJson(password, source.host!, cluster.port) }));
    const secretArn = secret.ARN!;
    let lastBusySecond = 0;
    await cluster.sql(`CREATE DATABASE ${quoteIdent(LAB_DATABASE)} OWNER ${quoteIdent(MASTER_USER)}`);

    const physical: Record<string, string> = {
      [lab.logicalIds.instance]: sourceId,
      [lab.logicalIds.secret]: secretArn,
      [lab.logicalIds.project]: PROJECT_NAME,
      [`${lab.logicalIds.trigger}.Arn`]: `arn:aws:lambda:${DUMMY_AWS_ENV.AWS_REGION}:${ACCOUNT}:function:DrTrigger-standin`,
    };
    const projectEnv = Object.fromEntries(projectEnvironment.map((v) => [v.Name, lab.resolve(v.Value, physical)]));
    /** The project's own variables as BatchGetBuilds reports them. */
    const projectVariables: BuildVariable[] = projectEnvironment.map((v) => ({ name: v.Name, value: projectEnv[v.Name], type: v.Type ?? 'PLAINTEXT' }));
    const standInRef = standIn;

    const world: World = {
      lab,
      standIn,
      codebuild,
      runs,
      moto,
      ca,
      source,
      sourceKind,
      sourceId,
      sourceCluster,
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
        const { build, buildId } = launch(overrides, Object.entries(overrides).map(([name, value]) => ({ name, value, type: 'PLAINTEXT' })), buildOptions);
        return { build, buildId };
      },
      async startBuildWith(variables, buildOptions = {}) {
        const resolved: Record<string, string> = {};
        for (const v of variables) {
          const type = v.type ?? 'PLAINTEXT';
          if (type === 'PLAINTEXT') resolved[v.name] = v.value;
          else if (type === 'SECRETS_MANAGER') resolved[v.name] = await resolveSecretVariable(secrets, v);
          else throw new Error(`the CodeBuild stand-in does not resolve ${type} variables (${v.name})`);
        }
        return launch(resolved, variables, buildOptions);
      },
      async runBuild(overrides, runOptions = {}) {
        const { build, buildId } = world.startBuild(overrides, runOptions);
        return { ...await build.done, buildId };
      },
      async dispose() {
        await codebuild.stop();
        await standInRef.stop();
        await moto.stop();
        ca.destroy();
        rmSync(scratch, { recursive: true, force: true });
      },
    };
    startWith = world.startBuildWith;
    return world;

    /** Runs a build: `overrides` as the build sees them, `reported` as BatchGetBuilds reports them. */
    function launch(overrides: Readonly<Record<string, string>>, reported: readonly BuildVariable[], buildOptions: BuildStartOptions) {
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
        AWS_ENDPOINT_URL_CODEBUILD: codebuild.endpoint,
        // moto's CloudWatch has no FreeStorageSpace datapoint here: the runner says so and goes on (the rehearsal publishes one).
        AWS_ENDPOINT_URL_CLOUDWATCH: moto.endpoint,
      };
      const caFile = buildOptions.caBundle ?? ca.caFile;
      const build = startBuild({
        sourceDir: lab.runnerSourceDir, buildspecFile: lab.buildspecFile, env, caFile, onLine: buildOptions.onLine, install: buildOptions.install,
      });
      runs.set(buildId, build);
      const byName = new Map<string, BuildVariable>([...projectVariables, ...reported].map((v) => [v.name, v]));
      const known: KnownBuild = {
        id: buildId,
        arn: `arn:aws:codebuild:${DUMMY_AWS_ENV.AWS_REGION}:${ACCOUNT}:build/${buildId}`,
        projectName: PROJECT_NAME,
        buildStatus: 'IN_PROGRESS',
        buildComplete: false,
        environmentVariablesOverride: reported,
        environment: { environmentVariables: [...byName.values()] },
      };
      codebuild.builds.set(buildId, known);
      void build.done.then((result) => {
        lastBusySecond = Math.max(lastBusySecond, Math.floor(Date.now() / 1000));
        known.buildStatus = result.status === 'SUCCEEDED' ? 'SUCCEEDED' : result.status === 'SIGNALLED' ? 'STOPPED' : 'FAILED';
        known.buildComplete = true;
      });
      return { build, buildId, known };
    }
  } catch (err) {
    await codebuild.stop();
    await standIn?.stop().catch(() => undefined);
    await moto.stop();
    ca.destroy();
    rmSync(scratch, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The CodeBuild API for the lab's project (the world's own): StartBuild runs
 * the synthesized build on this machine with the request's typed overrides,
 * BatchGetBuilds reports it IN_PROGRESS until it ends, then SUCCEEDED,
 * FAILED or STOPPED as CodeBuild would, and StopBuild stops it.
 */
export async function startLabCodeBuildApi(world: World): Promise<{ api: CodeBuildApi; runs: Map<string, RunningBuild> }> {
  return { api: world.codebuild, runs: world.runs };
}

/**
 * A SECRETS_MANAGER variable's value resolved as CodeBuild documents it:
 * `<secret id>:<json key>:<version stage>:<version id>`, the id a name or a
 * full ARN (which has colons of its own), the rest optional.
 */
async function resolveSecretVariable(secrets: SecretsManagerClient, variable: BuildVariable): Promise<string> {
  const parts = variable.value.split(':');
  const idParts = variable.value.startsWith('arn:') ? 7 : 1;
  const [jsonKey, versionStage, versionId] = parts.slice(idParts);
  const answer = await secrets.send(new GetSecretValueCommand({
    SecretId: parts.slice(0, idParts).join(':'),
    ...(versionStage ? { VersionStage: versionStage } : {}),
    ...(versionId ? { VersionId: versionId } : {}),
  }));
  const text = answer.SecretString ?? '';
  return jsonKey ? String(JSON.parse(text)[jsonKey]) : text;
}

/**
 * The facts of `database` on the world's source, less the record of writes
 * made after T (`pitr_<stamp>_after`; changes.test.ts checks it) that a swap
 * recovery adds.
 */
export async function sourceFingerprint(world: World, database: string = LAB_DATABASE): Promise<string[]> {
  return (await fingerprintDatabase(world.source.cluster!, database)).filter((fact) => !/ pitr_\d{14}_after[ .]/.test(fact));
}

/** A restore time strictly after everything committed so far and before anything that follows. */
export async function markRestoreTime(): Promise<Date> {
  await new Promise((r) => setTimeout(r, 30));
  const t = new Date();
  await new Promise((r) => setTimeout(r, 30));
  return t;
}

/** The lab project's ARN for a build id, as CodeBuild gives it. */
export function buildArnOf(buildId: string): string {
  return `arn:aws:codebuild:${DUMMY_AWS_ENV.AWS_REGION}:${ACCOUNT}:build/${buildId}`;
}

/** The CodeBuild build-state-change event EventBridge delivers for the lab project's build `buildId`, as the cleanup rule receives it. */
export function buildStateChangeEvent(buildId: string, status: string, eventId: string): Record<string, unknown> {
  const buildArn = buildArnOf(buildId);
  return {
    'version': '0',
    'id': eventId,
    'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE,
    'source': BUILD_STATE_CHANGE.SOURCE,
    'account': ACCOUNT,
    'time': new Date().toISOString(),
    'region': DUMMY_AWS_ENV.AWS_REGION,
    'resources': [buildArn],
    'detail': { 'build-status': status, 'project-name': PROJECT_NAME, 'build-id': buildArn, 'current-phase': 'BUILD', 'current-phase-context': '[]', 'version': '1' },
  };
}

/** Polls `probe` every 50 ms until it gives a value; fails naming `what` after `timeoutMs`. */
export async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
