/**
 * The construct's restore drills in the template: the schedule that starts
 * the project with MODE=drill, the stale-drill and recovery-time alarms, the
 * metrics, and the build role's right to publish the evidence (and nothing
 * broader).
 */
import { App, Duration, Stack, aws_cloudwatch_actions as cw_actions, aws_ec2 as ec2, aws_events as events, aws_kms as kms, aws_rds as rds, aws_sns as sns } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { DRILL_METRICS, PROJECT_ENV, START_ENV } from '../src/contract';
import { DrillRestoreTime, PitrRecovery, PitrRecoveryProps } from '../src/index';

const ENV = { account: '123456789012', region: 'eu-west-1' };

function synth(props: Partial<PitrRecoveryProps> = {}, stack = new Stack(new App(), 'Test', { env: ENV })): { stack: Stack; recovery: PitrRecovery; template: Template } {
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  const instance = rds.DatabaseInstance.fromDatabaseInstanceAttributes(stack, 'Imported', {
    instanceIdentifier: 'orders-db',
    instanceEndpointAddress: 'orders-db.abc.eu-west-1.rds.amazonaws.com',
    port: 5432,
    securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'DbSg', 'sg-0123456789abcdef0')],
    engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_15 }),
  });
  const secret = rds.DatabaseSecret.fromSecretCompleteArn(stack, 'Creds', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-AbCdEf');
  const recovery = new PitrRecovery(stack, 'Dr', { instance, vpc, credentials: secret, ...props });
  return { stack, recovery, template: Template.fromStack(stack) };
}

function stackOf(recovery: PitrRecovery): Stack {
  return Stack.of(recovery);
}

function statementsOf(template: Template, policyIdPrefix: string): any[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.entries(policies).filter(([id]) => id.startsWith(policyIdPrefix)).flatMap(([, p]) => (p as any).Properties.PolicyDocument.Statement);
}

test('a weekly drill schedule starts the project with MODE=drill and the restore time, and nothing else', () => {
  const { template } = synth({ drillSchedule: events.Schedule.rate(Duration.days(7)), drillRestoreTime: DrillRestoreTime.RANDOM });
  const rules = template.findResources('AWS::Events::Rule', { Properties: { ScheduleExpression: 'rate(7 days)' } });
  expect(Object.keys(rules)).toHaveLength(1);
  const target = (Object.values(rules)[0] as any).Properties.Targets[0];
  expect(target.Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^DrProject/), 'Arn'] });
  expect(JSON.parse(target.Input)).toEqual({
    environmentVariablesOverride: [
      { name: START_ENV.MODE, value: 'drill', type: 'PLAINTEXT' },
      { name: START_ENV.RESTORE_TIME, value: 'random', type: 'PLAINTEXT' },
    ],
  });
});

test('no schedule: no rule and no stale-drill alarm (drills can still be started by hand)', () => {
  const { template, recovery } = synth();
  expect(Object.keys(template.findResources('AWS::Events::Rule', { Properties: { ScheduleExpression: Match.anyValue() } }))).toHaveLength(0);
  // The only alarm is the cleanup dead-letter queue's.
  expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm', { Properties: { Namespace: 'CdkRdsPitr' } }))).toHaveLength(0);
  template.resourceCountIs('AWS::CloudWatch::CompositeAlarm', 0);
  expect(recovery.drillStaleAlarm).toBeUndefined();
  // The build may still publish a drill's evidence.
  expect(statementsOf(template, 'DrPublishDrillMetrics')).toHaveLength(1);
});

test('the stale-drill alarm: no success within the interval (missing data breaching), unless a drill started within one build timeout', () => {
  const { template, recovery } = synth({ drillSchedule: events.Schedule.rate(Duration.days(1)), timeout: Duration.hours(8) });
  const noSuccess = template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'DrillSucceeded' } });
  expect(Object.values(noSuccess).map((a: any) => a.Properties)).toEqual([expect.objectContaining({
    Namespace: DRILL_METRICS.NAMESPACE,
    Dimensions: [{ Name: 'SourceInstance', Value: 'orders-db' }],
    Statistic: 'Maximum',
    Period: 3600,
    // A day between drills, plus an hour for the schedule and the build to start.
    EvaluationPeriods: 25,
    DatapointsToAlarm: 25,
    Threshold: 1,
    ComparisonOperator: 'LessThanThreshold',
    TreatMissingData: 'breaching',
  })]);
  const running = template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'DrillStarted' } });
  expect(Object.values(running).map((a: any) => a.Properties)).toEqual([expect.objectContaining({
    Namespace: 'CdkRdsPitr',
    Statistic: 'Maximum',
    Period: 3600,
    EvaluationPeriods: 8,
    DatapointsToAlarm: 1,
    Threshold: 1,
    ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    TreatMissingData: 'notBreaching',
  })]);
  const composite = Object.values(template.findResources('AWS::CloudWatch::CompositeAlarm')) as any[];
  expect(composite).toHaveLength(1);
  const [noSuccessId] = Object.keys(noSuccess);
  const [runningId] = Object.keys(running);
  // No success AND NOT a drill running.
  expect(composite[0].Properties.AlarmRule).toEqual({
    'Fn::Join': ['', ['(ALARM("', { 'Fn::GetAtt': [noSuccessId, 'Arn'] }, '") AND (NOT (ALARM("', { 'Fn::GetAtt': [runningId, 'Arn'] }, '"))))']],
  });
  expect(stackOf(recovery).resolve(recovery.drillStaleAlarm!.alarmArn)).toEqual({ 'Fn::GetAtt': [Object.keys(template.findResources('AWS::CloudWatch::CompositeAlarm'))[0], 'Arn'] });
});

test('the alarms take alarm actions, as the README shows (dr.drillStaleAlarm!.addAlarmAction(...))', () => {
  const stack = new Stack(new App(), 'Actions', { env: ENV });
  const topic = new sns.Topic(stack, 'Topic');
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  const instance = rds.DatabaseInstance.fromDatabaseInstanceAttributes(stack, 'Imported', {
    instanceIdentifier: 'orders-db',
    instanceEndpointAddress: 'orders-db.abc.eu-west-1.rds.amazonaws.com',
    port: 5432,
    securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'DbSg', 'sg-0123456789abcdef0')],
    engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_15 }),
  });
  const credentials = rds.DatabaseSecret.fromSecretCompleteArn(stack, 'Creds', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-AbCdEf');
  const dr = new PitrRecovery(stack, 'Dr', {
    instance, vpc, credentials, drillSchedule: events.Schedule.rate(Duration.days(7)), recoveryTimeObjective: Duration.hours(2),
  });
  dr.drillStaleAlarm!.addAlarmAction(new cw_actions.SnsAction(topic));
  dr.recoveryTimeObjectiveAlarm!.addAlarmAction(new cw_actions.SnsAction(topic));
  // The README's network section: `recovery.cleanupDeadLetterAlarm.addAlarmAction(new actions.SnsAction(topic))`.
  dr.cleanupDeadLetterAlarm.addAlarmAction(new cw_actions.SnsAction(topic));
  const template = Template.fromStack(stack);
  const topicRef = { Ref: Object.keys(template.findResources('AWS::SNS::Topic'))[0] };
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateNumberOfMessagesVisible', AlarmActions: [topicRef] });
  template.hasResourceProperties('AWS::CloudWatch::CompositeAlarm', { AlarmActions: [topicRef] });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: DRILL_METRICS.RECOVERY_TIME_ESTIMATE, AlarmActions: [topicRef] });
});

test('a weekly schedule fits the 7 days an alarm can look back; a longer one gets a warning that says what happens', () => {
  const weekly = synth({ drillSchedule: events.Schedule.rate(Duration.days(7)) });
  const alarm = Object.values(weekly.template.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: 'DrillSucceeded' } }))[0] as any;
  expect(alarm.Properties.Period * alarm.Properties.EvaluationPeriods).toBe(7 * 86_400);
  expect(Annotations.fromStack(weekly.stack).findWarning('*', Match.stringLikeRegexp('7 days a CloudWatch alarm'))).toHaveLength(0);
  const fortnightly = synth({ drillSchedule: events.Schedule.rate(Duration.days(14)) });
  Annotations.fromStack(fortnightly.stack).hasWarning('/Test/Dr', Match.stringLikeRegexp('further apart than the 7 days a CloudWatch alarm can look back'));
});

test('a cron schedule needs drillMaxInterval, with an error that says so', () => {
  expect(() => synth({ drillSchedule: events.Schedule.cron({ weekDay: 'SUN', hour: '3', minute: '0' }) }))
    .toThrow(/`drillSchedule` cron\(0 3 \? \* SUN \*\) is not a rate.*set `drillMaxInterval`.*Nothing was created/);
  const { template } = synth({ drillSchedule: events.Schedule.cron({ weekDay: 'SUN,WED', hour: '3', minute: '0' }), drillMaxInterval: Duration.days(4), timeout: Duration.hours(2) });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'DrillSucceeded', EvaluationPeriods: 97 });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'DrillStarted', EvaluationPeriods: 2 });
});

test('recoveryTimeObjective: an alarm when the estimate exceeds it; its state holds between drills', () => {
  const { template, recovery } = synth({ recoveryTimeObjective: Duration.hours(4) });
  template.hasResourceProperties('AWS::CloudWatch::Alarm', {
    Namespace: 'CdkRdsPitr', MetricName: 'RecoveryTimeEstimateSeconds', Threshold: 14_400, ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'ignore',
  });
  expect(recovery.recoveryTimeObjectiveAlarm).toBeDefined();
});

test('the metrics: namespace, metric and source dimension', () => {
  const { recovery, stack } = synth();
  const succeeded = stack.resolve(recovery.metricDrillSucceeded().toMetricConfig().metricStat);
  expect(succeeded).toMatchObject({ namespace: 'CdkRdsPitr', metricName: 'DrillSucceeded', dimensions: [{ name: 'SourceInstance', value: 'orders-db' }], statistic: 'Maximum' });
  expect(recovery.metricRecoveryTimeEstimate({ period: Duration.days(1) }).period.toSeconds()).toBe(86_400);
  expect(recovery.metricRecoveryTimeEstimate().metricName).toBe('RecoveryTimeEstimateSeconds');
});

test('the build role may publish metrics in CdkRdsPitr only, events on the default bus from cdk-rds-pitr only, and to the topic when there is one', () => {
  const without = synth().template;
  expect(statementsOf(without, 'DrPublishDrillMetrics')).toEqual([{
    Sid: 'PutDrillMetrics', Effect: 'Allow', Action: 'cloudwatch:PutMetricData', Resource: '*', Condition: { StringEquals: { 'cloudwatch:namespace': 'CdkRdsPitr' } },
  }]);
  expect(statementsOf(without, 'DrPublishDrillEvidence')).toEqual([{
    Sid: 'PutDrillEvent',
    Effect: 'Allow',
    Action: 'events:PutEvents',
    Resource: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':events:eu-west-1:123456789012:event-bus/default']] },
    Condition: { 'ForAllValues:StringEquals': { 'events:source': ['cdk-rds-pitr'] }, 'Null': { 'events:source': 'false' } },
  }]);

  const stack = new Stack(new App(), 'T2', { env: ENV });
  const topic = sns.Topic.fromTopicArn(stack, 'Ops', 'arn:aws:sns:eu-west-1:123456789012:ops');
  const withTopic = synth({ notificationTopic: topic }).template;
  expect(statementsOf(withTopic, 'DrProjectRoleDefaultPolicy')).toContainEqual({ Effect: 'Allow', Action: 'sns:Publish', Resource: 'arn:aws:sns:eu-west-1:123456789012:ops' });
  withTopic.hasResourceProperties('AWS::CodeBuild::Project', {
    Environment: { EnvironmentVariables: Match.arrayWith([{ Name: PROJECT_ENV.NOTIFICATION_TOPIC_ARN, Type: 'PLAINTEXT', Value: 'arn:aws:sns:eu-west-1:123456789012:ops' }]) },
  });
});

test('a topic encrypted with a customer managed key: the build role may publish to it and use its key (topic.grantPublish)', () => {
  const stack = new Stack(new App(), 'T3', { env: ENV });
  const key = new kms.Key(stack, 'TopicKey');
  const topic = new sns.Topic(stack, 'Ops', { masterKey: key });
  const { template } = synth({ notificationTopic: topic }, stack);
  const statements = statementsOf(template, 'DrProjectRoleDefaultPolicy');
  expect(statements).toContainEqual({ Effect: 'Allow', Action: 'sns:Publish', Resource: { Ref: expect.stringMatching(/^Ops/) } });
  expect(statements).toContainEqual({
    Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey*'], Resource: { 'Fn::GetAtt': [expect.stringMatching(/^TopicKey/), 'Arn'] },
  });
});
