/**
 * The Lambda entry point as deployed: configuration from the environment,
 * routing between recovery requests and build events, and the esbuild bundle
 * in assets/trigger/index.js (run `npx projen bundle` first; `npx projen test` does).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { BatchGetBuildsCommand, CodeBuildClient, StartBuildCommand } from '@aws-sdk/client-codebuild';
import { CreateDBClusterCommand, CreateDBInstanceCommand, DescribeDBClustersCommand, RDSClient } from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import { PROJECT, SOURCE, batchGetBuildsFrom, buildArn, codeBuildRecord, createPostgres, instanceStates } from './trigger-fixtures';
import { handler } from '../lambda/trigger';
import { BUILD_STATE_CHANGE, START_ENV, TAGS, TRIGGER_ENV, temporaryClusterId, temporaryInstanceId, temporaryWriterId } from '../src/contract';

const BUNDLE = path.join(__dirname, '..', 'assets', 'trigger', 'index.js');
const BUILD_ID = `${PROJECT}:11111111-2222-4333-8444-555555555555`;
const DEAD_BUILD = `${PROJECT}:99999999-2222-4333-8444-555555555555`;
/** What CodeBuild says about the builds, in both the SDK mock and the stand-in endpoint. */
const KNOWN_BUILDS = [codeBuildRecord(DEAD_BUILD, 'STOPPED'), codeBuildRecord(BUILD_ID, 'IN_PROGRESS')];
const DEAD_TEMP = temporaryInstanceId(SOURCE, '20261124060606');
const OTHER_TEMP = temporaryInstanceId(SOURCE, '20261124070707');

type Handler = (event: unknown) => Promise<unknown>;

let moto: MotoServer;
let rds: RDSClient;
let consoleLog: jest.SpyInstance;
const savedEnv = { ...process.env };

beforeAll(async () => {
  moto = await startMoto();
  rds = new RDSClient(motoClientConfig(moto.endpoint));
});

afterAll(async () => {
  process.env = savedEnv;
  await moto?.stop();
});

beforeEach(async () => {
  await moto.reset();
  await createPostgres(rds, SOURCE);
  await createPostgres(rds, DEAD_TEMP, { buildIdTag: DEAD_BUILD });
  await createPostgres(rds, OTHER_TEMP, { buildIdTag: BUILD_ID });
  process.env = {
    ...savedEnv,
    ...DUMMY_AWS_ENV,
    AWS_ENDPOINT_URL: moto.endpoint,
    [TRIGGER_ENV.PROJECT_NAME]: PROJECT,
    [TRIGGER_ENV.SOURCE_INSTANCE_ID]: SOURCE,
  };
  consoleLog = jest.spyOn(console, 'log').mockImplementation(() => undefined);
});

afterEach(() => consoleLog.mockRestore());

function logged(): string {
  return consoleLog.mock.calls.map((args) => args.join(' ')).join('\n');
}

const deadBuildEvent = {
  'version': '0',
  'source': BUILD_STATE_CHANGE.SOURCE,
  'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE,
  'region': DUMMY_AWS_ENV.AWS_REGION,
  'resources': [buildArn(DEAD_BUILD)],
  'detail': { 'build-status': 'STOPPED', 'project-name': PROJECT, 'build-id': buildArn(DEAD_BUILD), 'current-phase': 'BUILD' },
};

/** Well formed, but the build it names is still running: what someone allowed to invoke the function could send. */
const forgedEvent = {
  ...deadBuildEvent,
  resources: [buildArn(BUILD_ID)],
  detail: { ...deadBuildEvent.detail, 'build-status': 'FAILED', 'build-id': buildArn(BUILD_ID) },
};

/** The behaviour both the source handler and the bundle must show. */
function describeHandler(load: () => Promise<Handler>) {
  test('a bad request is rejected before anything is started', async () => {
    await expect((await load())({ restoreTime: '2026-11-24T09:30:00', confirm: 'wrong-db' })).rejects.toThrow(
      /restoreTime: "2026-11-24T09:30…" \(19 characters\) is not a valid restore time; accepted: .* confirm: "wrong-db" does not match the source instance; accepted: exactly "orders-db".* Nothing was started\.$/,
    );
  });

  test('a dead build event deletes its temporary instance and nothing else', async () => {
    await expect((await load())(deadBuildEvent)).resolves.toEqual({ deleted: [DEAD_TEMP] });
    const states = await instanceStates(rds);
    expect(states[DEAD_TEMP]).toBeUndefined();
    expect(states[SOURCE]).toBe('available');
    expect(states[OTHER_TEMP]).toBe('available');
    expect(logged()).toContain(`Deleting ${DEAD_TEMP} (tagged cdk-rds-pitr:build-id=${DEAD_BUILD})`);
  });

  test('a forged FAILED event for a running build deletes nothing', async () => {
    await expect((await load())(forgedEvent)).resolves.toEqual({
      deleted: [],
      ignored: expect.stringContaining(`CodeBuild says build "${BUILD_ID}" is IN_PROGRESS (complete: false)`),
    });
    const states = await instanceStates(rds);
    expect(states[OTHER_TEMP]).toBe('available');
    expect(states[DEAD_TEMP]).toBe('available');
    expect(logged()).toContain('Nothing was deleted.');
  });

  test('a missing PROJECT_NAME is named, and nothing is started or deleted', async () => {
    delete process.env[TRIGGER_ENV.PROJECT_NAME];
    await expect((await load())(deadBuildEvent)).rejects.toThrow(`${TRIGGER_ENV.PROJECT_NAME} is not set in this function's environment`);
    expect((await instanceStates(rds))[DEAD_TEMP]).toBe('available');
  });
}

describe('lambda/trigger.ts handler', () => {
  const codebuildMock = mockClient(CodeBuildClient);
  beforeEach(() => {
    codebuildMock.reset();
    codebuildMock.on(StartBuildCommand).resolves({ build: { id: BUILD_ID } });
    codebuildMock.on(BatchGetBuildsCommand).callsFake(batchGetBuildsFrom(KNOWN_BUILDS));
  });
  afterAll(() => codebuildMock.restore());

  describeHandler(async () => handler);

  test('a dead build event reads the Lambda context for its time budget', async () => {
    const getRemainingTimeInMillis = jest.fn(() => 14 * 60_000);
    await expect(handler(deadBuildEvent, { getRemainingTimeInMillis })).resolves.toEqual({ deleted: [DEAD_TEMP] });
    expect(getRemainingTimeInMillis).toHaveBeenCalledTimes(1);
  });

  test('latest starts the build through the environment-configured clients', async () => {
    await expect(handler({ restoreTime: 'latest', confirm: SOURCE, databases: ['app'] })).resolves.toEqual({
      buildId: BUILD_ID,
      restoreTime: 'latest',
      logsUrl: expect.stringContaining(`/projects/${PROJECT}/build/${encodeURIComponent(BUILD_ID)}/log?region=us-east-1`),
    });
    expect(codebuildMock.commandCalls(StartBuildCommand).map((c) => c.args[0].input)).toEqual([{
      projectName: PROJECT,
      environmentVariablesOverride: [
        { name: START_ENV.RESTORE_TIME, value: 'latest', type: 'PLAINTEXT' },
        { name: START_ENV.CONFIRM, value: SOURCE, type: 'PLAINTEXT' },
        { name: START_ENV.DATABASES, value: 'app', type: 'PLAINTEXT' },
        { name: START_ENV.STRATEGY, value: 'swap', type: 'PLAINTEXT' },
      ],
    }]);
  });
});

describe('bundled assets/trigger/index.js', () => {
  const load = async (): Promise<Handler> => {
    if (!fs.existsSync(BUNDLE)) throw new Error(`${BUNDLE} is missing; run \`npx projen bundle\` first.`);
    return jest.requireActual<{ handler: Handler }>(BUNDLE).handler;
  };

  test('is under 100 KB and imports nothing but the two SDK v3 clients the Lambda Node.js 22 runtime ships', () => {
    const text = fs.readFileSync(BUNDLE, 'utf8');
    expect(fs.statSync(BUNDLE).size).toBeLessThan(100 * 1024);
    const required = [...new Set([...text.matchAll(/\brequire\("([^"]+)"\)/g)].map((m) => m[1]))].sort();
    expect(required).toEqual(['@aws-sdk/client-codebuild', '@aws-sdk/client-rds']);
  });

  // A stand-in CodeBuild endpoint: moto's CodeBuild answers break SDK v3 (the bundle loads the SDK from node_modules here, from the runtime on Lambda).
  const received: Array<{ target: string; body: any }> = [];
  const answers: Partial<Record<string, (body: any) => unknown>> = {
    'CodeBuild_20161006.StartBuild': () => ({ build: { id: BUILD_ID, projectName: PROJECT } }),
    'CodeBuild_20161006.BatchGetBuilds': batchGetBuildsFrom(KNOWN_BUILDS),
    // No build of the project runs: nothing to stop before starting.
    'CodeBuild_20161006.ListBuildsForProject': () => ({ ids: [] }),
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target']);
      received.push({ target, body: JSON.parse(body) });
      const answer = answers[target];
      res.writeHead(answer ? 200 : 400, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify(answer ? answer(JSON.parse(body)) : { __type: 'InvalidInputException', message: `stand-in does not answer ${target}` }));
    });
  });
  beforeAll(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
  afterAll(() => new Promise((resolve) => server.close(resolve)));
  beforeEach(() => {
    received.length = 0;
    process.env.AWS_ENDPOINT_URL_CODEBUILD = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  describeHandler(load);

  test('with SOURCE_CLUSTER_ID (an Aurora source), a dead build event deletes its temporary writer, then its cluster, and nothing of the source', async () => {
    const cluster = 'orders-aurora';
    const tags = [{ Key: TAGS.BUILD_ID, Value: DEAD_BUILD }, { Key: TAGS.SOURCE, Value: cluster }];
    const create = async (id: string, instanceId: string, withTags: boolean) => {
      await rds.send(new CreateDBClusterCommand({
        DBClusterIdentifier: id,
        Engine: 'aurora-postgresql',
        EngineVersion: '16.4',
        MasterUsername: 'postgres',
        MasterUserPassword: 'not-a-real-password',
        Tags: withTags ? tags : [],
      }));
      await rds.send(new CreateDBInstanceCommand({
        DBInstanceIdentifier: instanceId, DBClusterIdentifier: id, Engine: 'aurora-postgresql', DBInstanceClass: 'db.r6g.large', Tags: withTags ? tags : [],
      }));
    };
    await create(cluster, `${cluster}-writer`, false);
    await create(temporaryClusterId(cluster, '20261124060606'), temporaryWriterId(cluster, '20261124060606'), true);
    delete process.env[TRIGGER_ENV.SOURCE_INSTANCE_ID];
    process.env[TRIGGER_ENV.SOURCE_CLUSTER_ID] = cluster;
    await expect((await load())(deadBuildEvent)).resolves.toEqual({
      deleted: [temporaryWriterId(cluster, '20261124060606'), temporaryClusterId(cluster, '20261124060606')],
    });
    const clusters = (await rds.send(new DescribeDBClustersCommand({}))).DBClusters!.map((c) => c.DBClusterIdentifier);
    expect(clusters).toEqual([cluster]);
    const states = await instanceStates(rds);
    expect(states[`${cluster}-writer`]).toBe('available');
    // The instance source's temporary instance is not this source's.
    expect(states[DEAD_TEMP]).toBe('available');
  });

  test('a dead build event asks CodeBuild over the wire before deleting', async () => {
    await expect((await load())(deadBuildEvent)).resolves.toEqual({ deleted: [DEAD_TEMP] });
    expect(received).toEqual([{ target: 'CodeBuild_20161006.BatchGetBuilds', body: { ids: [DEAD_BUILD] } }]);
  });

  test('latest sends StartBuild over the wire with the overrides', async () => {
    const started = await (await load())({ restoreTime: 'latest', confirm: SOURCE, strategy: 'replace' });
    expect(started).toMatchObject({ buildId: BUILD_ID, restoreTime: 'latest' });
    expect(logged()).toContain(`Started recovery build ${BUILD_ID} of "${SOURCE}" to latest (strategy replace, databases all)`);
    expect(received).toEqual([{
      // First: is a drill running that must give way (none here)?
      target: 'CodeBuild_20161006.ListBuildsForProject',
      body: { projectName: PROJECT, sortOrder: 'DESCENDING' },
    }, {
      target: 'CodeBuild_20161006.StartBuild',
      body: {
        projectName: PROJECT,
        environmentVariablesOverride: [
          { name: START_ENV.RESTORE_TIME, value: 'latest', type: 'PLAINTEXT' },
          { name: START_ENV.CONFIRM, value: SOURCE, type: 'PLAINTEXT' },
          { name: START_ENV.STRATEGY, value: 'replace', type: 'PLAINTEXT' },
        ],
      },
    }]);
  });
});
