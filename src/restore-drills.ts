import {
  Annotations, Duration, Stack,
  aws_cloudwatch as cloudwatch,
  aws_codebuild as codebuild,
  aws_events as events,
  aws_events_targets as targets,
  aws_iam as iam,
  aws_sns as sns,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { DRILL_EVENT, DRILL_METRICS, START_ENV } from './contract';

/** The restore time a scheduled drill uses. */
export enum DrillRestoreTime {
  /** The latest restorable time: proves the recovery a person would most likely start. */
  LATEST = 'latest',
  /** A random time anywhere in the restorable window: proves the whole retention period, drill after drill. */
  RANDOM = 'random',
}

/** CloudWatch keeps an alarm's evaluation range (period x evaluation periods) to at most 7 days. */
const MAX_ALARM_RANGE = Duration.days(7);
const ALARM_PERIOD = Duration.hours(1);

/** A drill metric of `sourceId`. */
export function drillMetric(sourceId: string, metricName: string, props?: cloudwatch.MetricOptions): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: DRILL_METRICS.NAMESPACE,
    metricName,
    dimensionsMap: { [DRILL_METRICS.DIMENSION]: sourceId },
    statistic: cloudwatch.Stats.MAXIMUM,
    period: ALARM_PERIOD,
    ...props,
  });
}

export interface RestoreDrillsOptions {
  readonly project: codebuild.IProject;
  readonly sourceId: string;
  /** `RDS instance` or `Aurora PostgreSQL cluster`, for descriptions. @default 'RDS instance' */
  readonly sourceNoun?: string;
  /** What a drill restores: `instance` or `cluster`. @default 'instance' */
  readonly temporaryNoun?: string;
  readonly schedule?: events.Schedule;
  readonly restoreTime?: DrillRestoreTime;
  /** The longest time between two drills (from a rate schedule, else given). */
  readonly maxInterval?: Duration;
  /** How long one build may run: a drill's metric arrives at its end. */
  readonly buildTimeout: Duration;
  readonly recoveryTimeObjective?: Duration;
  readonly notificationTopic?: sns.ITopic;
}

/** What the drills add: the schedule, the alarms, and the build role's right to publish. */
export interface RestoreDrills {
  readonly rule?: events.Rule;
  readonly staleAlarm?: cloudwatch.CompositeAlarm;
  readonly recoveryTimeObjectiveAlarm?: cloudwatch.Alarm;
}

/**
 * The build role may publish the drill's evidence (metrics in the drill
 * namespace only, events on the default bus only, the notification topic
 * only); the schedule starts the project with MODE=drill; the alarms watch
 * the published metrics.
 */
export function addRestoreDrills(scope: Construct, options: RestoreDrillsOptions): RestoreDrills {
  const { project, sourceId } = options;
  const stack = Stack.of(scope);
  // PutMetricData takes no resource-level permissions; the namespace condition keeps it to CdkRdsPitr.
  // Alone in its policy, so that the cdk-nag suppression of its `*` covers nothing else.
  project.role?.attachInlinePolicy(new iam.Policy(scope, 'PublishDrillMetrics', {
    statements: [new iam.PolicyStatement({
      sid: 'PutDrillMetrics',
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringEquals: { 'cloudwatch:namespace': DRILL_METRICS.NAMESPACE } },
    })],
  }));
  project.role?.attachInlinePolicy(new iam.Policy(scope, 'PublishDrillEvidence', {
    statements: [
      new iam.PolicyStatement({
        sid: 'PutDrillEvent',
        actions: ['events:PutEvents'],
        resources: [stack.formatArn({ service: 'events', resource: 'event-bus', resourceName: 'default' })],
        // events:source is multivalued (one value per entry): every entry's, and at least one.
        conditions: { 'ForAllValues:StringEquals': { 'events:source': [DRILL_EVENT.SOURCE] }, 'Null': { 'events:source': 'false' } },
      }),
    ],
  }));
  // A drill's message: grantPublish carries the rights on the topic's KMS key, if it has one.
  options.notificationTopic?.grantPublish(project);

  if (!options.schedule) {
    if (options.recoveryTimeObjective) return { recoveryTimeObjectiveAlarm: rtoAlarm(scope, options) };
    return {};
  }
  const restoreTime = options.restoreTime ?? DrillRestoreTime.LATEST;
  const rule = new events.Rule(scope, 'DrillSchedule', {
    description: `Restore drill of ${options.sourceNoun ?? 'RDS instance'} ${sourceId}: the recovery path onto a temporary ${options.temporaryNoun ?? 'instance'}, never writing to the original (cdk-rds-pitr)`,
    schedule: options.schedule,
    targets: [new targets.CodeBuildProject(project, {
      event: events.RuleTargetInput.fromObject({
        environmentVariablesOverride: [
          { name: START_ENV.MODE, value: 'drill', type: 'PLAINTEXT' },
          { name: START_ENV.RESTORE_TIME, value: restoreTime, type: 'PLAINTEXT' },
        ],
      }),
    })],
  });

  const interval = options.maxInterval ?? intervalOf(options.schedule);
  if (!interval) {
    throw new Error(`PitrRecovery: \`drillSchedule\` ${options.schedule.expressionString} is not a rate, so the longest time between two drills is not known; `
      + 'accepted: a rate schedule (events.Schedule.rate(...)), or set `drillMaxInterval` to the longest gap the cron expression allows. Nothing was created.');
  }
  // Two alarms make one: no success within the interval (plus an hour for the schedule and the build to start), unless
  // a drill started within one build timeout and may still deliver its result. A weekly schedule thus never alarms
  // while its next drill runs, and a drill that fails or never ends alarms at most one build timeout after it started.
  let range = Duration.minutes(interval.toMinutes() + ALARM_PERIOD.toMinutes());
  if (range.toMinutes() > MAX_ALARM_RANGE.toMinutes()) {
    if (interval.toMinutes() > MAX_ALARM_RANGE.toMinutes()) {
      Annotations.of(scope).addWarningV2('cdk-rds-pitr:DrillAlarmRangeCapped',
        `PitrRecovery: drills every ${interval.toHumanString()} are further apart than the 7 days a CloudWatch alarm can look back; `
        + '`drillStaleAlarm` fires 7 days after the last successful drill until the next one succeeds. Schedule drills at least weekly to avoid that.');
    }
    range = MAX_ALARM_RANGE;
  }
  const periods = Math.max(1, Math.ceil(range.toMinutes() / ALARM_PERIOD.toMinutes()));
  const noSuccess = new cloudwatch.Alarm(scope, 'DrillNoSuccessAlarm', {
    alarmDescription: `No successful restore drill of ${sourceId} in the last ${Duration.minutes(periods * ALARM_PERIOD.toMinutes()).toHumanString()} `
      + '(part of the stale-drill alarm, which also waits for a drill that is running).',
    metric: drillMetric(sourceId, DRILL_METRICS.SUCCEEDED),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    evaluationPeriods: periods,
    datapointsToAlarm: periods,
    // No datapoint is no drill: that must alarm too.
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
  });
  const runningPeriods = Math.min(Math.max(1, Math.ceil(options.buildTimeout.toMinutes() / ALARM_PERIOD.toMinutes())), MAX_ALARM_RANGE.toHours());
  const running = new cloudwatch.Alarm(scope, 'DrillRunningAlarm', {
    alarmDescription: `A restore drill of ${sourceId} started within one build timeout (part of the stale-drill alarm; not a problem on its own).`,
    metric: drillMetric(sourceId, DRILL_METRICS.STARTED),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: runningPeriods,
    datapointsToAlarm: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  const staleAlarm = new cloudwatch.CompositeAlarm(scope, 'DrillStaleAlarm', {
    alarmDescription: `No successful restore drill of ${sourceId} for longer than the schedule allows (${interval.toHumanString()} between drills, `
      + `plus up to ${options.buildTimeout.toHumanString()} for a drill that is running); a failed or missing drill counts. `
      + 'Read the latest drill build log: its RESULT and EVIDENCE lines say why.',
    alarmRule: cloudwatch.AlarmRule.allOf(
      cloudwatch.AlarmRule.fromAlarm(noSuccess, cloudwatch.AlarmState.ALARM),
      cloudwatch.AlarmRule.not(cloudwatch.AlarmRule.fromAlarm(running, cloudwatch.AlarmState.ALARM)),
    ),
  });
  return { rule, staleAlarm, recoveryTimeObjectiveAlarm: options.recoveryTimeObjective ? rtoAlarm(scope, options) : undefined };
}

function rtoAlarm(scope: Construct, options: RestoreDrillsOptions): cloudwatch.Alarm {
  const rto = options.recoveryTimeObjective!;
  return new cloudwatch.Alarm(scope, 'RecoveryTimeObjectiveAlarm', {
    alarmDescription: `The latest restore drill of ${options.sourceId} estimates that a recovery would take longer than the recovery time objective `
      + `(${rto.toHumanString()}). The drill's evidence record lists the parts of the estimate.`,
    metric: drillMetric(options.sourceId, DRILL_METRICS.RECOVERY_TIME_ESTIMATE),
    threshold: rto.toSeconds(),
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 1,
    // One datapoint per drill: the state holds until the next drill says otherwise.
    treatMissingData: cloudwatch.TreatMissingData.IGNORE,
  });
}

/** The interval of `rate(...)` schedules; undefined for cron. */
function intervalOf(schedule: events.Schedule): Duration | undefined {
  const m = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(schedule.expressionString);
  if (!m) return undefined;
  const n = Number(m[1]);
  return m[2].startsWith('minute') ? Duration.minutes(n) : m[2].startsWith('hour') ? Duration.hours(n) : Duration.days(n);
}
