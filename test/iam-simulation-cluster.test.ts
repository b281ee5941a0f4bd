/**
 * IAM for an Aurora PostgreSQL source (issue #20), simulated as
 * test/iam-simulation.test.ts does for instances: every call the runner's
 * cluster adapter and the trigger make on a cluster is allowed by the
 * synthesized policies, and what must never happen is denied.
 *
 * The calls are recorded for real against moto_server: the runner's (a
 * recovery, a drill at `latest` on a copy-on-write clone, housekeeping),
 * through its cluster adapter (buildspec/runner/aws/rds-cluster-control.ts)
 * and the real runbook, and the trigger's (start, cleanup, sweep). The
 * runner's call list in test/iam-cluster-calls.ts (which the instance
 * simulation counts as covered) is simulated too and must name the same
 * commands as the recording.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchGetBuildsCommand, CodeBuildClient, StartBuildCommand } from '@aws-sdk/client-codebuild';
import { CreateDBClusterCommand, CreateDBInstanceCommand, DescribeDBClustersCommand, RDSClient } from '@aws-sdk/client-rds';
import { App, Stack, aws_ec2 as ec2, aws_kms as kms, aws_rds as rds, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { CallWorld, IAM_MAPPING, IamRequest, RecordedCall, iamRequestsOf, mappingProblems, recordCalls } from './iam-calls';
import {
  ACCOUNT, BUILD_ID, KEY_ARN, KEY_POLICY, PROJECT, REGION, STAMP, TRIGGER_CLUSTER_COMMANDS, runTags, runnerClusterCalls, sourceWriterOf,
} from './iam-cluster-calls';
import { Decision, DeployValues, Policy, decide, identityPoliciesOf } from './iam-policies';
import { DUMMY_AWS_ENV, MotoServer, motoClientConfig, startMoto } from './moto';
import { AwsBuildStatus } from '../buildspec/runner/aws/builds';
import { AwsRdsClusterControl } from '../buildspec/runner/aws/rds-cluster-control';
import { readDrillRequest, runDrill } from '../buildspec/runner/drill';
import { readHousekeepingRequest, runHousekeeping } from '../buildspec/runner/housekeeping';
import { StepLog } from '../buildspec/runner/log';
import { readStartRequest } from '../buildspec/runner/plan';
import type { DataPath, OriginalCatalog, PgTarget } from '../buildspec/runner/ports';
import { runRecovery } from '../buildspec/runner/workflow';
import { cleanupAfterDeadBuild, sweepTemporaryInstances } from '../lambda/cleanup';
import { startRecovery } from '../lambda/start-recovery';
import { TriggerDeps } from '../lambda/trigger-deps';
import {
  BUILD_ENV, BUILD_STATE_CHANGE, CREATED_BY_VALUE, LATEST, PROJECT_ENV, START_ENV, TAGS, safetySnapshotId, temporaryClusterId, temporaryClusterPrefix,
  temporaryWriterId,
} from '../src/contract';
import { PitrRecovery } from '../src/pitr-recovery';

Object.assign(process.env, DUMMY_AWS_ENV);

const PARTITION = 'aws';
const FUNCTION = 'Dr-Trigger-0123abcd';
const ENGINE_MAJOR = '16';
const SECRET_ARN = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:orders-aurora-master-AbCdEf`;

/** The ids a user's cluster may have. The token case is an id CloudFormation generates for a DatabaseCluster: long, lowercase. */
const VARIANTS = [
  { name: 'a cluster created in the stack (token id)', id: 'pitrlabstack-cluster0e2bca1-xvbcvqwjyq8u', token: true },
  { name: 'an imported literal id', id: 'orders-aurora', token: false },
  { name: 'a mixed-case id', id: 'Orders-Aurora', token: false },
  { name: 'a 60-character id', id: 'a-very-long-aurora-cluster-identifier-that-is-sixty-chars-xyz', token: false },
] as const;
type Variant = (typeof VARIANTS)[number];

let moto: MotoServer;

beforeAll(async () => {
  moto = await startMoto();
});

afterAll(async () => {
  await moto?.stop();
});

interface Captured {
  readonly trigger: RecordedCall[];
  /** Recorded from the real runbook through the cluster adapter. */
  readonly runner: RecordedCall[];
  /** test/iam-cluster-calls.ts's list of the same calls. */
  readonly listed: RecordedCall[];
}

/** moto's window starts when the cluster was made; a real one reaches back the retention period. */
function completeClusterAnswer(command: string, input: any, output: any): void {
  if (command === 'DescribeDBClusters') {
    for (const c of output.DBClusters ?? []) {
      c.EarliestRestorableTime = new Date(Date.now() - 86_400_000);
      c.LatestRestorableTime = new Date();
    }
    // Listings lose their TagList, as older RDS answers may, so the ListTagsForResource path is simulated too.
    if (!input.DBClusterIdentifier) for (const c of output.DBClusters ?? []) delete c.TagList;
  }
}

/** The data path as a fake: the temporary cluster refuses the secret once, so the password reset (ModifyDBCluster) runs too. */
function fakeDataPath(): DataPath {
  let refusedOnce = false;
  return {
    checkLogin: async (target: PgTarget) => {
      if (target.host.includes('-pitr-') && !refusedOnce) {
        refusedOnce = true;
        throw Object.assign(new Error('password authentication failed'), { code: '28P01' });
      }
    },
    listDatabases: async () => ['app'],
    copy: async (_s, _t, options) => options.databases.map((database) => ({
      database, keptAs: `${database}__before_pitr_${options.stamp}`, unavailableMs: 1, tables: 1, rows: 1, verified: true,
    })),
  };
}

/** The runner on a cluster, as main.ts runs it in CodeBuild: a recovery, a drill at latest (a clone), housekeeping. */
async function captureRunner(variant: Variant, runner: RecordedCall[]): Promise<void> {
  const lines: string[] = [];
  const log = new StepLog((line) => lines.push(line));
  const client = recordCalls(new RDSClient(motoClientConfig(moto.endpoint)), runner, { patch: completeClusterAnswer });
  const rdsControl = () => new AwsRdsClusterControl({ client, log, sleep: async () => undefined });
  const credentials = { username: 'postgres', password: 'current-secret-password' };
  const polling = { initialMs: 10, maxMs: 50, progressEveryMs: 60_000, passwordTimeoutMs: 5_000 };
  const env = {
    [PROJECT_ENV.SOURCE_CLUSTER_ID]: variant.id, [BUILD_ENV.BUILD_ID]: BUILD_ID, [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '1',
  };
  const outcome = await runRecovery(readStartRequest({
    ...env, [START_ENV.RESTORE_TIME]: new Date(Date.now() - 3_600_000).toISOString(), [START_ENV.CONFIRM]: variant.id,
  }, { cpus: 2 }), { rds: rdsControl(), data: fakeDataPath(), log, credentials, polling });
  if (outcome.results.length === 0 || !outcome.results.every((r) => r.verified)) {
    throw new Error(`the runbook did not complete on a cluster against moto, so its calls are not all captured:\n${lines.join('\n')}`);
  }
  const record = await runDrill(readDrillRequest({ ...env, [START_ENV.RESTORE_TIME]: LATEST }, { cpus: 2 }), {
    rds: rdsControl(),
    data: fakeDataPath(),
    log,
    credentials,
    polling,
    databaseSizes: async () => new Map([['app', 2 ** 20]]),
    clock: { now: () => new Date(Date.now() + 61_000), sleep: async (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.min(ms, 20))) },
  });
  const restores = runner.filter((c) => c.command === 'RestoreDBClusterToPointInTime').map((c) => c.input.RestoreType);
  if (!record.succeeded || restores.join(',') !== 'full-copy,copy-on-write') {
    throw new Error(`the drill did not complete on a clone against moto (restores: ${restores.join(',')}):\n${lines.join('\n')}`);
  }
  const catalog: OriginalCatalog = { listMarked: async () => [], drop: async () => undefined };
  const builds = new AwsBuildStatus(BUILD_ID, new CodeBuildClient(motoClientConfig('http://127.0.0.1:9')));
  const housekeeping = await runHousekeeping(readHousekeepingRequest({ ...env, [START_ENV.OLDER_THAN]: '1d', [START_ENV.CONFIRM]: variant.id }), {
    rds: rdsControl(), catalog, builds, log, credentials, now: () => new Date(Date.now() + 2 * 86_400_000),
  });
  if (housekeeping.dropped.length !== 1) throw new Error(`housekeeping did not delete the safety cluster snapshot:\n${lines.join('\n')}`);
}

const captured = new Map<string, Captured>();

/** The trigger, for real against moto: a validated start, then the cleanup and the sweep after the build died. */
async function capture(variant: Variant): Promise<Captured> {
  const done = captured.get(variant.name);
  if (done) return done;
  await moto.reset();
  const setup = new RDSClient(motoClientConfig(moto.endpoint));
  const createCluster = (id: string, tags: Array<{ Key: string; Value: string }>) => setup.send(new CreateDBClusterCommand({
    DBClusterIdentifier: id,
    Engine: 'aurora-postgresql',
    EngineVersion: `${ENGINE_MAJOR}.4`,
    MasterUsername: 'postgres',
    MasterUserPassword: 'not-a-real-password',
    BackupRetentionPeriod: 7,
    Tags: tags,
  }));
  const createWriter = (id: string, cluster: string, tags: Array<{ Key: string; Value: string }>) => setup.send(new CreateDBInstanceCommand({
    DBInstanceIdentifier: id, DBClusterIdentifier: cluster, Engine: 'aurora-postgresql', DBInstanceClass: 'db.r6g.large', Tags: tags,
  }));
  await createCluster(variant.id, [{ Key: 'team', Value: 'orders' }]);
  await createWriter(sourceWriterOf(variant.id), variant.id, [{ Key: 'team', Value: 'orders' }]);
  const runner: RecordedCall[] = [];
  await captureRunner(variant, runner);

  const trigger: RecordedCall[] = [];
  const buildRecord = { id: BUILD_ID, arn: `arn:aws:codebuild:${REGION}:${ACCOUNT}:build/${BUILD_ID}`, projectName: PROJECT, buildStatus: 'FAILED', buildComplete: true };
  const codebuild = recordCalls(new CodeBuildClient(motoClientConfig('http://127.0.0.1:9')), trigger, {
    answer: (command) => {
      if (command === StartBuildCommand.name.replace(/Command$/, '')) return { build: { id: BUILD_ID } };
      if (command === 'ListBuildsForProject') return { ids: [] };
      if (command === BatchGetBuildsCommand.name.replace(/Command$/, '')) return { builds: [buildRecord] };
      return undefined;
    },
  });
  const rdsClient = recordCalls(new RDSClient(motoClientConfig(moto.endpoint)), trigger, {
    // moto's window starts when the cluster was made; a real one reaches back the retention period.
    patch: (command, input, output) => {
      if (command === DescribeDBClustersCommand.name.replace(/Command$/, '')) {
        for (const c of output.DBClusters ?? []) c.EarliestRestorableTime = new Date(Date.now() - 86_400_000);
        // Listings lose their TagList, as older RDS answers may, so the ListTagsForResource path is simulated too.
        if (!input.DBClusterIdentifier) for (const c of output.DBClusters ?? []) delete c.TagList;
      }
    },
  });
  const deps: TriggerDeps = { config: { projectName: PROJECT, sourceId: variant.id, sourceKind: 'cluster', region: REGION }, rds: rdsClient, codebuild, log: () => undefined };
  await startRecovery({ restoreTime: new Date(Date.now() - 3_600_000).toISOString(), confirm: variant.id }, deps);
  // What a killed build leaves: a temporary cluster and its writer, tagged as the runner tags them; and a second cluster without a writer.
  const lower = variant.id.toLowerCase();
  await createCluster(temporaryClusterId(lower, STAMP), runTags(variant.id));
  await createWriter(temporaryWriterId(lower, STAMP), temporaryClusterId(lower, STAMP), runTags(variant.id));
  await createCluster(temporaryClusterId(lower, '20261124100000'), runTags(variant.id));
  const summary = await cleanupAfterDeadBuild({
    'source': BUILD_STATE_CHANGE.SOURCE,
    'detail-type': BUILD_STATE_CHANGE.DETAIL_TYPE,
    'detail': { 'build-status': 'FAILED', 'project-name': PROJECT, 'build-id': buildRecord.arn },
  }, deps);
  if (summary.deleted.length !== 3) throw new Error(`cleanup did not delete the writer and both clusters: ${JSON.stringify(summary)}`);
  await createCluster(temporaryClusterId(lower, '20261124110000'), runTags(variant.id));
  const swept = await sweepTemporaryInstances(deps);
  if (swept.deleted.length !== 1) throw new Error(`the sweep did not delete the cluster left: ${JSON.stringify(swept)}`);

  const result = { trigger, runner, listed: runnerClusterCalls(variant.id) };
  captured.set(variant.name, result);
  return result;
}

function worldOf(variant: Variant): CallWorld {
  const lower = variant.id.toLowerCase();
  const temporary = Object.fromEntries(runTags(variant.id).map((t) => [t.Key, t.Value]));
  const tagsOf = (id: string) => (id === lower || id === sourceWriterOf(lower) ? { team: 'orders' } : id.startsWith(temporaryClusterPrefix(lower)) ? temporary : {});
  return { partition: PARTITION, region: REGION, account: ACCOUNT, engineMajor: ENGINE_MAJOR, tagsOfInstance: tagsOf, tagsOfCluster: tagsOf };
}

interface Synthesized {
  readonly values: DeployValues;
  readonly buildRole: Policy[];
  readonly triggerRole: Policy[];
}

function synthesize(variant: Variant): Synthesized {
  const stack = new Stack(new App(), 'User', { env: { account: ACCOUNT, region: REGION } });
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  const key = kms.Key.fromKeyArn(stack, 'StorageKey', KEY_ARN);
  if (variant.token) {
    const cluster = new rds.DatabaseCluster(stack, 'Cluster', {
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
      writer: rds.ClusterInstance.provisioned('Writer'),
      vpc,
      storageEncryptionKey: key,
    });
    new PitrRecovery(stack, 'Dr', { cluster });
  } else {
    const cluster = rds.DatabaseCluster.fromDatabaseClusterAttributes(stack, 'Cluster', {
      clusterIdentifier: variant.id,
      port: 5432,
      securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'DbSg', 'sg-0123456789abcdef0')],
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
    });
    new PitrRecovery(stack, 'Dr', { cluster, vpc, credentials: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Creds', SECRET_ARN), instanceEncryptionKey: key });
  }
  const template = Template.fromStack(stack);
  const values: DeployValues = {
    partition: PARTITION,
    region: REGION,
    account: ACCOUNT,
    refs: { ClusterSecretAttachment: SECRET_ARN, ClusterSecret: SECRET_ARN, Cluster: variant.id, DrProject: PROJECT, DrTrigger: FUNCTION },
    attributes: {
      'DrProject.Arn': `arn:${PARTITION}:codebuild:${REGION}:${ACCOUNT}:project/${PROJECT}`,
      'DrTrigger.Arn': `arn:${PARTITION}:lambda:${REGION}:${ACCOUNT}:function:${FUNCTION}`,
      'DrBuildLogs.Arn': `arn:${PARTITION}:logs:${REGION}:${ACCOUNT}:log-group:User-DrBuildLogs0123-abc:*`,
      'DrTriggerLogs.Arn': `arn:${PARTITION}:logs:${REGION}:${ACCOUNT}:log-group:User-DrTriggerLogs0123-abc:*`,
    },
  };
  return { values, buildRole: identityPoliciesOf(template, 'DrProjectRole', values), triggerRole: identityPoliciesOf(template, 'DrTriggerRole', values) };
}

async function decisions(policies: Policy[], requests: IamRequest[], values: DeployValues): Promise<string[]> {
  const lines: string[] = [];
  for (const r of requests) {
    const decision: Decision = await decide(policies, r, values);
    lines.push(`${decision}: ${r.action} on ${r.resource}${Object.keys(r.context).length ? ` ${JSON.stringify(r.context)}` : ''}`);
  }
  return lines;
}

/** The RDS commands a runner adapter source sends (`new XCommand(`, `paginateX(`). */
function commandsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...new Set([...text.matchAll(/new (\w+)Command\(/g), ...text.matchAll(/\bpaginate(\w+)\(/g)].map((m) => m[1]))].sort();
}

const CLUSTER_ADAPTER = join(__dirname, '..', 'buildspec', 'runner', 'aws', 'rds-cluster-control.ts');

describe('coverage of the cluster calls', () => {
  test('every call maps to IAM requests that supply each resource type iam-data requires, and only types it lists', async () => {
    const problems: string[] = [];
    for (const variant of VARIANTS) {
      const c = await capture(variant);
      for (const call of [...c.runner, ...c.listed, ...c.trigger]) {
        problems.push(...await mappingProblems(call, iamRequestsOf(call, worldOf(variant))));
      }
    }
    expect(problems).toEqual([]);
  });

  test('the trigger\'s cluster calls were all captured: the start reads the cluster, cleanup deletes the writer and then the cluster', async () => {
    const c = await capture(VARIANTS[1]);
    const commands = new Set(c.trigger.filter((t) => t.service === 'rds').map((t) => t.command));
    expect([...commands].sort()).toEqual([...TRIGGER_CLUSTER_COMMANDS]);
  });

  test('the runner\'s recorded cluster calls, the adapter\'s source and the listed calls name the same commands', async () => {
    const listed = [...new Set(runnerClusterCalls('orders-aurora').map((c) => c.command))].sort();
    for (const command of listed) expect(IAM_MAPPING[`rds:${command}`]).toBeDefined();
    const recorded = [...new Set((await capture(VARIANTS[1])).runner.map((c) => c.command))].sort();
    expect(recorded).toEqual(listed);
    expect(existsSync(CLUSTER_ADAPTER)).toBe(true);
    // paginateX sends X: the adapter's source names each command once either way.
    expect(commandsOf(CLUSTER_ADAPTER)).toEqual(listed);
  });
});

describe.each(VARIANTS)('IAM for $name', (variant) => {
  let c: Captured;
  let s: Synthesized;
  const id = variant.id;
  const lower = id.toLowerCase();
  const arn = (type: string, name: string) => `arn:${PARTITION}:rds:${REGION}:${ACCOUNT}:${type}:${name.toLowerCase()}`;
  const clusterTags = (tags: Record<string, string>) => Object.fromEntries(Object.entries(tags).flatMap(([k, v]) => [[`rds:cluster-tag/${k}`, v], [`aws:ResourceTag/${k}`, v]]));
  const dbTags = (tags: Record<string, string>) => Object.fromEntries(Object.entries(tags).flatMap(([k, v]) => [[`rds:db-tag/${k}`, v], [`aws:ResourceTag/${k}`, v]]));
  const sourceTags = (source: string) => ({ [TAGS.SOURCE]: source, [TAGS.BUILD_ID]: BUILD_ID, [TAGS.CREATED_BY]: CREATED_BY_VALUE });
  const requestTags = (source: string) => ({ [`aws:RequestTag/${TAGS.SOURCE}`]: source, 'aws:TagKeys': [TAGS.SOURCE, TAGS.BUILD_ID, TAGS.CREATED_BY] });
  const request = (action: string, resourceType: string, resource: string, context: IamRequest['context'] = {}): IamRequest => ({ action, resourceType, resource, context });
  const allowedTo = async (policies: Policy[], requests: IamRequest[]) => (await decisions(policies, requests, s.values)).filter((l) => l.startsWith('Allowed'));
  const deniedTo = async (policies: Policy[], requests: IamRequest[]) => (await decisions(policies, requests, s.values)).filter((l) => !l.startsWith('Allowed'));

  beforeAll(async () => {
    c = await capture(variant);
    s = synthesize(variant);
  });

  test('every call of the runbook on a cluster is allowed to the build role', async () => {
    const requests = [...c.runner, ...c.listed].flatMap((call) => iamRequestsOf(call, worldOf(variant)));
    expect(requests.length).toBeGreaterThan(30);
    expect(await deniedTo(s.buildRole, requests)).toEqual([]);
  });

  test('every call of the trigger (start, cleanup, sweep) on a cluster is allowed to the trigger role', async () => {
    const requests = c.trigger.flatMap((call) => iamRequestsOf(call, worldOf(variant)));
    expect(requests.map((r) => r.action)).toEqual(expect.arrayContaining(['rds:DescribeDBClusters', 'rds:DeleteDBInstance', 'rds:DeleteDBCluster', 'codebuild:StartBuild']));
    expect(await deniedTo(s.triggerRole, requests)).toEqual([]);
  });

  test('restoring with the cluster\'s KMS key: a grant RDS makes for an AWS resource is allowed, any other grant is not', async () => {
    const via = { 'kms:ViaService': `rds.${REGION}.amazonaws.com`, 'kms:GrantIsForAWSResource': 'true' };
    const onKey = async (requests: IamRequest[]) => Promise.all(requests.map((r) => decide(s.buildRole, r, s.values, KEY_POLICY)));
    expect(await onKey([request('kms:CreateGrant', 'key', KEY_ARN, via), request('kms:DescribeKey', 'key', KEY_ARN)])).toEqual(['Allowed', 'Allowed']);
    expect(await onKey([
      request('kms:CreateGrant', 'key', KEY_ARN, { 'kms:GrantIsForAWSResource': 'true' }),
      request('kms:CreateGrant', 'key', KEY_ARN, { 'kms:ViaService': `rds.${REGION}.amazonaws.com` }),
      request('kms:CreateGrant', 'key', KEY_ARN, { 'kms:ViaService': `ec2.${REGION}.amazonaws.com`, 'kms:GrantIsForAWSResource': 'true' }),
    ])).toEqual(Array(3).fill('ImplicitlyDenied'));
    // The trigger role gets no KMS right at all.
    expect(await Promise.all([request('kms:CreateGrant', 'key', KEY_ARN, via)].map((r) => decide(s.triggerRole, r, s.values, KEY_POLICY)))).toEqual(['ImplicitlyDenied']);
  });

  test('the source cluster and its instances can be neither modified nor deleted, by either role', async () => {
    const cases = [
      request('rds:ModifyDBCluster', 'cluster', arn('cluster', id), clusterTags({ team: 'orders' })),
      request('rds:DeleteDBCluster', 'cluster', arn('cluster', id), clusterTags({ team: 'orders' })),
      request('rds:DeleteDBInstance', 'db', arn('db', sourceWriterOf(id)), dbTags({ team: 'orders' })),
      request('rds:ModifyDBInstance', 'db', arn('db', sourceWriterOf(id)), dbTags({ team: 'orders' })),
      request('rds:RebootDBInstance', 'db', arn('db', sourceWriterOf(id)), dbTags({ team: 'orders' })),
      request('rds:FailoverDBCluster', 'cluster', arn('cluster', id), clusterTags({ team: 'orders' })),
      // Even if the source carried this source's tag, it is not named like a temporary.
      request('rds:ModifyDBCluster', 'cluster', arn('cluster', id), clusterTags(sourceTags(lower))),
      request('rds:DeleteDBCluster', 'cluster', arn('cluster', id), clusterTags(sourceTags(lower))),
    ];
    expect(await allowedTo([...s.buildRole, ...s.triggerRole], cases)).toEqual([]);
  });

  test('no writer joins the source cluster or any cluster not tagged as this source\'s temporary, and no public writer', async () => {
    const writer = temporaryWriterId(lower, '20260101000000');
    const context = { ...requestTags(lower), 'rds:PubliclyAccessible': 'false' };
    expect(await allowedTo(s.buildRole, [
      request('rds:CreateDBInstance', 'cluster', arn('cluster', id), { ...context, ...clusterTags({ team: 'orders' }) }),
      request('rds:CreateDBInstance', 'cluster', arn('cluster', `${temporaryClusterPrefix(lower)}archive`), context),
      request('rds:CreateDBInstance', 'cluster', arn('cluster', temporaryClusterId('billing-aurora', '20260101000000')), { ...context, ...clusterTags(sourceTags('billing-aurora')) }),
      request('rds:CreateDBInstance', 'db', arn('db', writer), { ...requestTags(lower), 'rds:PubliclyAccessible': 'true' }),
      request('rds:CreateDBInstance', 'db', arn('db', writer), { ...requestTags('billing-aurora'), 'rds:PubliclyAccessible': 'false' }),
      request('rds:CreateDBInstance', 'db', arn('db', `${lower}-instance-2`), context),
    ])).toEqual([]);
    expect(await allowedTo(s.triggerRole, [request('rds:CreateDBInstance', 'db', arn('db', writer), context)])).toEqual([]);
  });

  test('the password and deletes reach only clusters and writers tagged as this source\'s temporaries', async () => {
    const prefix = temporaryClusterPrefix(lower);
    const cases = [
      // Named like a temporary cluster of this source, but not tagged as one.
      request('rds:ModifyDBCluster', 'cluster', arn('cluster', `${prefix}archive`), clusterTags({ team: 'orders' })),
      request('rds:DeleteDBCluster', 'cluster', arn('cluster', `${prefix}archive`), clusterTags({ team: 'orders' })),
      request('rds:DeleteDBInstance', 'db', arn('db', `${prefix}archive-w`), dbTags({ [TAGS.BUILD_ID]: BUILD_ID })),
      // Another source's temporary cluster and writer, tagged as such.
      request('rds:ModifyDBCluster', 'cluster', arn('cluster', temporaryClusterId('billing-aurora', '20260101000000')), clusterTags(sourceTags('billing-aurora'))),
      request('rds:DeleteDBCluster', 'cluster', arn('cluster', temporaryClusterId('billing-aurora', '20260101000000')), clusterTags(sourceTags('billing-aurora'))),
      request('rds:DeleteDBInstance', 'db', arn('db', temporaryWriterId('billing-aurora', '20260101000000')), dbTags(sourceTags('billing-aurora'))),
      // A cluster that is not a temporary one at all.
      request('rds:ModifyDBCluster', 'cluster', arn('cluster', 'reporting-aurora'), clusterTags(sourceTags(lower))),
    ];
    expect(await allowedTo([...s.buildRole, ...s.triggerRole], cases)).toEqual([]);
    // The same actions on this source's tagged temporaries are allowed, so the denials are about the name and the tag.
    const own = temporaryClusterId(lower, '20260101000000');
    expect(await deniedTo(s.buildRole, [
      request('rds:ModifyDBCluster', 'cluster', arn('cluster', own), clusterTags(sourceTags(lower))),
      request('rds:DeleteDBCluster', 'cluster', arn('cluster', own), clusterTags(sourceTags(lower))),
      request('rds:DeleteDBInstance', 'db', arn('db', `${own}-w`), dbTags(sourceTags(lower))),
    ])).toEqual([]);
  });

  test('no restore under another name or untagged, no restore from another cluster, no cluster snapshot under another name', async () => {
    const cases = [
      request('rds:RestoreDBClusterToPointInTime', 'cluster', arn('cluster', `${lower}-copy`), requestTags(lower)),
      request('rds:AddTagsToResource', 'cluster', arn('cluster', `${lower}-copy`), requestTags(lower)),
      request('rds:RestoreDBClusterToPointInTime', 'cluster', arn('cluster', temporaryClusterId(lower, '20260101000000')), {}),
      request('rds:RestoreDBClusterToPointInTime', 'cluster', arn('cluster', temporaryClusterId(lower, '20260101000000')), requestTags('billing-aurora')),
      request('rds:RestoreDBClusterToPointInTime', 'cluster', arn('cluster', 'billing-aurora'), requestTags(lower)),
      request('rds:CreateDBClusterSnapshot', 'cluster-snapshot', arn('cluster-snapshot', `${lower}-manual-1`)),
      request('rds:CreateDBClusterSnapshot', 'cluster', arn('cluster', 'billing-aurora')),
      request('rds:CreateDBClusterSnapshot', 'cluster-snapshot', arn('cluster-snapshot', safetySnapshotId('billing-aurora', '20260101000000'))),
      // The instance actions have no place on a cluster source.
      request('rds:RestoreDBInstanceToPointInTime', 'db', arn('db', sourceWriterOf(lower)), requestTags(lower)),
      request('rds:CreateDBSnapshot', 'db', arn('db', sourceWriterOf(lower))),
    ];
    expect(await allowedTo(s.buildRole, cases)).toEqual([]);
    expect(await allowedTo(s.triggerRole, cases.slice(0, 5))).toEqual([]);
  });

  test('housekeeping deletes this source\'s safety snapshots only: not a manual or automated snapshot, not another source\'s', async () => {
    const cases = [
      request('rds:DeleteDBClusterSnapshot', 'cluster-snapshot', arn('cluster-snapshot', `${lower}-manual-1`)),
      request('rds:DeleteDBClusterSnapshot', 'cluster-snapshot', arn('cluster-snapshot', `rds:${lower}-2026-11-24-09-00`)),
      request('rds:DeleteDBClusterSnapshot', 'cluster-snapshot', arn('cluster-snapshot', safetySnapshotId('billing-aurora', '20260101000000'))),
      request('rds:DeleteDBSnapshot', 'snapshot', `arn:${PARTITION}:rds:${REGION}:${ACCOUNT}:snapshot:${safetySnapshotId(lower, '20260101000000')}`),
    ];
    expect(await allowedTo([...s.buildRole, ...s.triggerRole], cases)).toEqual([]);
    expect(await allowedTo(s.triggerRole, [request('rds:DeleteDBClusterSnapshot', 'cluster-snapshot', arn('cluster-snapshot', safetySnapshotId(lower, '20260101000000')))])).toEqual([]);
  });

  test('DeleteDBCluster may name a final snapshot only under a temporary cluster\'s name', async () => {
    expect(await allowedTo([...s.buildRole, ...s.triggerRole], [
      request('rds:DeleteDBCluster', 'cluster-snapshot', arn('cluster-snapshot', `${lower}-final`)),
      request('rds:DeleteDBCluster', 'cluster-snapshot', arn('cluster-snapshot', 'billing-aurora-final')),
    ])).toEqual([]);
  });
});
