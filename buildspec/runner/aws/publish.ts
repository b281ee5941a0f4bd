/**
 * Where a drill's evidence goes on AWS: CloudWatch metrics (namespace
 * `CdkRdsPitr`, dimension the source instance), one EventBridge event on the
 * default bus carrying the record, and, when the construct has a
 * notification topic, a readable SNS message. Each is tried on its own; the
 * failures are reported together, and never change the drill's result.
 */
import { CloudWatchClient, PutMetricDataCommand, type MetricDatum } from '@aws-sdk/client-cloudwatch';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { DRILL_EVENT, DRILL_METRICS } from '../../../src/contract';
import { DRILL_STEPS, describeEvidence, type DrillPublisher, type EvidenceRecord } from '../drill';

export interface AwsDrillPublisherOptions {
  readonly cloudwatch?: CloudWatchClient;
  readonly events?: EventBridgeClient;
  readonly sns?: SNSClient;
  /** @default - no SNS message */
  readonly topicArn?: string;
}

/** Short timeouts: an unreachable endpoint must cost seconds at the end of a drill, not minutes. */
const CLIENT_CONFIG = { maxAttempts: 2, requestHandler: { connectionTimeout: 5_000, requestTimeout: 10_000 } };
/** SNS subjects: ASCII, at most 100 characters. */
const MAX_SUBJECT = 100;

/** The metrics of one record: DrillSucceeded always, the measurements when the drill got that far. */
export function drillMetrics(record: EvidenceRecord): MetricDatum[] {
  const dimensions = [{ Name: DRILL_METRICS.DIMENSION, Value: record.source.id }];
  const timestamp = new Date(record.endedAt);
  const datum = (name: string, value: number | undefined, unit: 'Count' | 'Seconds' | 'Bytes/Second'): MetricDatum[] =>
    (value === undefined ? [] : [{ MetricName: name, Dimensions: dimensions, Value: value, Unit: unit, Timestamp: timestamp }]);
  const restore = record.phases.filter((p) => p.name === DRILL_STEPS.RESTORE || p.name === DRILL_STEPS.WAIT);
  // Only a restore that became available measured the wait.
  const restoreWait = restore.length === 2 && restore.every((p) => p.outcome === 'ok') ? restore.reduce((s, p) => s + p.seconds, 0) : undefined;
  return [
    ...datum(DRILL_METRICS.SUCCEEDED, record.succeeded ? 1 : 0, 'Count'),
    ...datum(DRILL_METRICS.RECOVERY_TIME_ESTIMATE, record.recoveryTimeEstimate?.seconds, 'Seconds'),
    ...datum(DRILL_METRICS.RESTORE_WAIT, restoreWait, 'Seconds'),
    ...datum(DRILL_METRICS.COPY, record.copy?.seconds, 'Seconds'),
    ...datum(DRILL_METRICS.COPY_THROUGHPUT, record.copy?.bytesPerSecond, 'Bytes/Second'),
  ];
}

export class AwsDrillPublisher implements DrillPublisher {
  private readonly cloudwatch: CloudWatchClient;
  private readonly events: EventBridgeClient;
  private readonly sns: SNSClient;

  constructor(private readonly options: AwsDrillPublisherOptions = {}) {
    this.cloudwatch = options.cloudwatch ?? new CloudWatchClient(CLIENT_CONFIG);
    this.events = options.events ?? new EventBridgeClient(CLIENT_CONFIG);
    this.sns = options.sns ?? new SNSClient(CLIENT_CONFIG);
  }

  async started(sourceId: string, at: Date): Promise<void> {
    await this.cloudwatch.send(new PutMetricDataCommand({
      Namespace: DRILL_METRICS.NAMESPACE,
      MetricData: [{ MetricName: DRILL_METRICS.STARTED, Dimensions: [{ Name: DRILL_METRICS.DIMENSION, Value: sourceId }], Value: 1, Unit: 'Count', Timestamp: at }],
    })).catch((err: { name?: string; message?: string }) => {
      throw new Error(`CloudWatch PutMetricData (${DRILL_METRICS.NAMESPACE}): ${err.name ?? 'Error'}: ${err.message ?? String(err)}`);
    });
  }

  async publish(record: EvidenceRecord): Promise<void> {
    const failures: string[] = [];
    const attempt = async (what: string, call: () => Promise<unknown>): Promise<void> => {
      try {
        await call();
      } catch (err) {
        const e = err as { name?: string; message?: string };
        failures.push(`${what}: ${e.name ?? 'Error'}: ${e.message ?? String(err)}`);
      }
    };
    await attempt(`CloudWatch PutMetricData (${DRILL_METRICS.NAMESPACE})`, () => this.cloudwatch.send(new PutMetricDataCommand({
      Namespace: DRILL_METRICS.NAMESPACE,
      MetricData: drillMetrics(record),
    })));
    await attempt('EventBridge PutEvents (default bus)', async () => {
      const out = await this.events.send(new PutEventsCommand({
        Entries: [{
          Source: DRILL_EVENT.SOURCE, DetailType: DRILL_EVENT.DETAIL_TYPE, Detail: JSON.stringify(record), Time: new Date(record.endedAt),
        }],
      }));
      // PutEvents answers 200 with per-entry failures.
      if (out.FailedEntryCount) throw new Error(`${out.Entries?.[0]?.ErrorCode ?? 'failed entry'}: ${out.Entries?.[0]?.ErrorMessage ?? ''}`);
    });
    if (this.options.topicArn) {
      const topicArn = this.options.topicArn;
      await attempt(`SNS Publish (${topicArn})`, () => this.sns.send(new PublishCommand({
        TopicArn: topicArn,
        Subject: `cdk-rds-pitr restore drill of ${record.source.id}: ${record.succeeded ? 'succeeded' : 'FAILED'}`.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_SUBJECT),
        Message: describeEvidence(record),
      })));
    }
    if (failures.length > 0) throw new Error(failures.join('; '));
  }
}
