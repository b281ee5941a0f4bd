/**
 * The restore drill's pure parts and its AWS edges: the restore-time forms,
 * `random` inside the window, the temporary instance's storage (and the
 * AllocatedStorage the AWS adapter asks RDS for), and what the publisher
 * sends to CloudWatch, EventBridge and SNS (aws-sdk-client-mock).
 */
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { RDSClient, RestoreDBInstanceToPointInTimeCommand } from '@aws-sdk/client-rds';
import { PublishCommand, SNSClient } from '@aws-sdk/client-sns';
import { mockClient } from 'aws-sdk-client-mock';
import { AwsDrillPublisher, drillMetrics } from '../buildspec/runner/aws/publish';
import { AwsRdsControl } from '../buildspec/runner/aws/rds-control';
import {
  DRILL_STEPS, RANDOM_EARLIEST_MARGIN_MS, drillDatabaseName, drillStorageGiB, pickRandomRestoreTime, readDrillRequest, type EvidenceRecord,
} from '../buildspec/runner/drill';
import { PlanError } from '../buildspec/runner/plan';
import type { SourceInstance } from '../buildspec/runner/ports';
import { BUILD_ENV, DRILL_EVENT, DRILL_METRICS, LATEST, PROJECT_ENV, START_ENV, parseDrillRestoreTime, quoteValue } from '../src/contract';

const DAY = 86_400_000;
const SAVED_ENV = { ...process.env };
beforeAll(() => {
  Object.assign(process.env, { AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing', AWS_EC2_METADATA_DISABLED: 'true' });
});
afterAll(() => {
  process.env = SAVED_ENV;
});

describe('drill restore time', () => {
  test('latest by default, an instant, random, random:<age>', () => {
    expect(parseDrillRestoreTime(undefined)).toBe(LATEST);
    expect(parseDrillRestoreTime('latest')).toBe(LATEST);
    expect(parseDrillRestoreTime('2026-11-24T09:30:00Z')).toEqual(new Date('2026-11-24T09:30:00Z'));
    expect(parseDrillRestoreTime('random')).toEqual({ random: true });
    expect(parseDrillRestoreTime('random:7d')).toEqual({ random: true, withinMs: 7 * DAY });
  });

  test.each(['random:7', 'random:0h', 'randomly', 'yesterday', '2026-02-31T00:00:00Z'])('%s is refused with the field, the value and every accepted form', (value) => {
    expect(() => parseDrillRestoreTime(value)).toThrow(`RESTORE_TIME: ${quoteValue(value)} is not a drill restore time; accepted: an ISO-8601 UTC time`);
    expect(() => parseDrillRestoreTime(value)).toThrow(/"random" \(anywhere in the restorable window\), or "random:<age>"/);
  });

  const window = { earliest: new Date('2026-11-01T00:00:00Z'), latest: new Date('2026-11-30T12:00:00Z') };

  test('random stays inside the window, away from its moving earliest edge, on a whole second', () => {
    for (const r of [0, 1e-9, 0.25, 0.5, 0.999999999]) {
      const t = pickRandomRestoreTime(window, undefined, () => r);
      expect(t.getTime()).toBeGreaterThanOrEqual(window.earliest.getTime() + RANDOM_EARLIEST_MARGIN_MS);
      expect(t.getTime()).toBeLessThanOrEqual(window.latest.getTime());
      expect(t.getTime() % 1000).toBe(0);
    }
    // The ends of [0, 1) reach the ends of the range.
    expect(pickRandomRestoreTime(window, undefined, () => 0).toISOString()).toBe('2026-11-01T00:10:00.000Z');
    expect(pickRandomRestoreTime(window, undefined, () => 0.9999999999).toISOString()).toBe('2026-11-30T12:00:00.000Z');
  });

  test('random:<age> stays inside the last <age> of the window; a window shorter than the margin keeps to its second half', () => {
    for (const r of [0, 0.5, 0.9999]) {
      const t = pickRandomRestoreTime(window, 7 * DAY, () => r);
      expect(t.getTime()).toBeGreaterThanOrEqual(window.latest.getTime() - 7 * DAY);
      expect(t.getTime()).toBeLessThanOrEqual(window.latest.getTime());
    }
    // An age longer than the window: the whole window.
    expect(pickRandomRestoreTime(window, 3650 * DAY, () => 0).toISOString()).toBe('2026-11-01T00:10:00.000Z');
    const short = { earliest: new Date('2026-11-30T11:58:00Z'), latest: new Date('2026-11-30T12:00:00Z') };
    const t = pickRandomRestoreTime(short, undefined, () => 0);
    expect(t.toISOString()).toBe('2026-11-30T11:59:00.000Z');
  });

  test('a drill needs no CONFIRM, reads the recovery variables, and reports every problem at once', () => {
    const base = { [PROJECT_ENV.SOURCE_INSTANCE_ID]: 'orders-db', [BUILD_ENV.BUILD_ID]: 'p:1' };
    const drill = readDrillRequest({ ...base, [START_ENV.RESTORE_TIME]: 'random:3d', [START_ENV.JOBS]: '3' }, { cpus: 2 });
    expect(drill.restoreTime).toEqual({ random: true, withinMs: 3 * DAY });
    expect(drill.requested).toBe('random:3d');
    expect(drill.start).toMatchObject({ sourceId: 'orders-db', jobs: 3, safetySnapshot: false, strategy: 'swap' });
    expect(readDrillRequest(base, { cpus: 2 }).requested).toBe(LATEST);
    let error: unknown;
    try {
      readDrillRequest({ ...base, [START_ENV.RESTORE_TIME]: 'soon', [START_ENV.JOBS]: '0' }, { cpus: 2 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PlanError);
    expect((error as PlanError).problems).toHaveLength(2);
    expect((error as Error).message).toMatch(/RESTORE_TIME: "soon" is not a drill restore time/);
    expect((error as Error).message).toMatch(/JOBS: "0" is not accepted/);
    expect((error as Error).message).toMatch(/nothing was created or changed/i);
  });

  test('a drill with TABLES or TABLE_MODE is refused, naming both, rather than silently copying whole databases', () => {
    const base = { [PROJECT_ENV.SOURCE_INSTANCE_ID]: 'orders-db', [BUILD_ENV.BUILD_ID]: 'p:1' };
    let error: unknown;
    try {
      readDrillRequest({ ...base, [START_ENV.TABLES]: 'billing.invoice', [START_ENV.TABLE_MODE]: 'swap', [START_ENV.DATABASES]: 'orders' }, { cpus: 2 });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(PlanError);
    expect((error as Error).message).toMatch(/TABLES: "billing.invoice" does not apply to a drill/);
    expect((error as Error).message).toMatch(/TABLE_MODE: "swap" does not apply to a drill/);
  });
});

describe('temporary instance storage', () => {
  test('the source\'s storage plus a second copy of the largest database with the margin, in whole GiB', () => {
    expect(drillStorageGiB(100, 0)).toBe(100);
    expect(drillStorageGiB(100, 2 ** 20)).toBe(101);
    expect(drillStorageGiB(100, 50 * 2 ** 30)).toBe(155);
    expect(drillStorageGiB(undefined, 50 * 2 ** 30)).toBeUndefined();
  });

  const SOURCE: SourceInstance = {
    id: 'orders-db',
    status: 'available',
    engine: 'postgres',
    engineVersion: '15.4',
    endpoint: { host: 'h', port: 5432 },
    masterUsername: 'm',
    vpcSecurityGroupIds: [],
    backupRetentionPeriod: 7,
  };

  async function restoreInput(storage: SourceInstance['storage'], allocatedStorageGiB?: number) {
    const client = new RDSClient({ region: 'us-east-1' });
    const mock = mockClient(client);
    mock.on(RestoreDBInstanceToPointInTimeCommand).resolves({});
    await new AwsRdsControl({ client, log: { info: () => undefined, warn: () => undefined } })
      .restoreToPointInTime({ id: 'orders-db-pitr-20261124000000', source: { ...SOURCE, storage }, restoreTime: LATEST, tags: {}, allocatedStorageGiB });
    return mock.commandCalls(RestoreDBInstanceToPointInTimeCommand)[0].args[0].input;
  }

  test('the AWS adapter asks RDS for the larger storage, and never for less than the source\'s', async () => {
    expect(await restoreInput({ type: 'gp2', allocatedGiB: 100 }, 155)).toMatchObject({ StorageType: 'gp2', AllocatedStorage: 155 });
    // gp3 crossing 400 GiB: the size alone (RDS raises the baseline); provisioned values stay the source's.
    expect(await restoreInput({ type: 'gp3', allocatedGiB: 380, iops: 3000 }, 420)).toEqual(expect.objectContaining({ StorageType: 'gp3', AllocatedStorage: 420 }));
    expect(await restoreInput({ type: 'gp3', allocatedGiB: 380, iops: 3000 }, 420)).not.toHaveProperty('Iops');
    expect(await restoreInput({ type: 'gp3', allocatedGiB: 500, iops: 15000, throughputMiBps: 750 }, 600))
      .toMatchObject({ StorageType: 'gp3', AllocatedStorage: 600, Iops: 15000, StorageThroughput: 750 });
    expect(await restoreInput({ type: 'gp3', allocatedGiB: 500, iops: 15000 }, 300)).toMatchObject({ AllocatedStorage: 500 });
    // A recovery asks for nothing extra.
    expect(await restoreInput({ type: 'gp2', allocatedGiB: 100 })).not.toHaveProperty('AllocatedStorage');
  });

  test('the drill\'s database names fit in 63 bytes and carry the stamp', () => {
    expect(drillDatabaseName('orders', '20261124093000')).toBe('orders__drill_20261124093000');
    const long = drillDatabaseName('ü'.repeat(40), '20261124093000');
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(63);
    expect(long.endsWith('__drill_20261124093000')).toBe(true);
  });
});

describe('publication', () => {
  const record = (over: Partial<EvidenceRecord> = {}): EvidenceRecord => ({
    kind: 'cdk-rds-pitr/restore-drill',
    version: 1,
    succeeded: true,
    source: { id: 'orders-db', engine: 'postgres', engineVersion: '15.4' },
    buildId: 'p:1',
    startedAt: '2026-11-24T09:00:00.000Z',
    endedAt: '2026-11-24T09:40:00.000Z',
    restoreTime: { requested: 'latest', used: '2026-11-24T08:59:00.000Z', useLatestRestorableTime: true },
    phases: [
      { name: DRILL_STEPS.RESTORE, seconds: 2, outcome: 'ok' },
      { name: DRILL_STEPS.WAIT, seconds: 898, outcome: 'ok' },
      { name: DRILL_STEPS.COPY, seconds: 1200, outcome: 'ok' },
    ],
    databases: [{ name: 'orders', copiedAs: 'orders__drill_x', sizeBytes: 12e9, tables: 40, rows: 1e8, verification: 'x', result: 'verified' }],
    copy: { bytes: 12e9, seconds: 1200, bytesPerSecond: 1e7 },
    recoveryTimeEstimate: {
      seconds: 2400,
      bytesToCopy: 12e9,
      swapWorstCaseSeconds: 30,
      assumptions: ['a'],
      parts: { planSeconds: 5, restoreAndWaitSeconds: 900, credentialsSeconds: 60, copySeconds: 1434, swapSeconds: 1 },
    },
    ...over,
  });

  function clients() {
    const cloudwatch = new CloudWatchClient({ region: 'us-east-1' });
    const events = new EventBridgeClient({ region: 'us-east-1' });
    const sns = new SNSClient({ region: 'us-east-1' });
    return { cloudwatch, events, sns, cw: mockClient(cloudwatch), eb: mockClient(events), sn: mockClient(sns) };
  }

  test('metrics under CdkRdsPitr with the source dimension, the record as an event, a readable SNS message', async () => {
    const c = clients();
    c.cw.on(PutMetricDataCommand).resolves({});
    c.eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });
    c.sn.on(PublishCommand).resolves({});
    const r = record();
    await new AwsDrillPublisher({ ...c, topicArn: 'arn:aws:sns:us-east-1:111111111111:ops' }).publish(r);

    const metrics = c.cw.commandCalls(PutMetricDataCommand)[0].args[0].input;
    expect(metrics.Namespace).toBe('CdkRdsPitr');
    const byName = Object.fromEntries(metrics.MetricData!.map((m) => [m.MetricName, m]));
    expect(Object.keys(byName).sort()).toEqual(['CopyBytesPerSecond', 'CopySeconds', 'DrillSucceeded', 'RecoveryTimeEstimateSeconds', 'RestoreWaitSeconds']);
    expect(byName.DrillSucceeded).toMatchObject({ Value: 1, Dimensions: [{ Name: DRILL_METRICS.DIMENSION, Value: 'orders-db' }] });
    expect(byName.RecoveryTimeEstimateSeconds.Value).toBe(2400);
    expect(byName.RestoreWaitSeconds.Value).toBe(900);
    expect(byName.CopySeconds.Value).toBe(1200);
    expect(byName.CopyBytesPerSecond).toMatchObject({ Value: 1e7, Unit: 'Bytes/Second' });

    const entry = c.eb.commandCalls(PutEventsCommand)[0].args[0].input.Entries![0];
    expect(entry).toMatchObject({ Source: DRILL_EVENT.SOURCE, DetailType: DRILL_EVENT.DETAIL_TYPE });
    expect(entry).not.toHaveProperty('EventBusName');
    expect(JSON.parse(entry.Detail!)).toEqual(r);

    const message = c.sn.commandCalls(PublishCommand)[0].args[0].input;
    expect(message.TopicArn).toBe('arn:aws:sns:us-east-1:111111111111:ops');
    expect(message.Subject).toBe('cdk-rds-pitr restore drill of orders-db: succeeded');
    expect(message.Message).toContain('Restore drill of orders-db: SUCCEEDED');
    expect(message.Message).toContain('orders: verified, 40 tables, 100000000 rows');
    expect(message.Message).toContain('Estimated time of a recovery now: 40 min 0 s (restore and wait 15 min 0 s, copy 23 min 54 s)');
    expect(() => JSON.parse(message.Message!)).toThrow();
  });

  test('a drill\'s start is published as DrillStarted=1 (the stale-drill alarm waits for a running drill); a failure says what failed', async () => {
    const c = clients();
    c.cw.on(PutMetricDataCommand).resolves({});
    const at = new Date('2026-11-24T09:00:00Z');
    await new AwsDrillPublisher(c).started('orders-db', at);
    expect(c.cw.commandCalls(PutMetricDataCommand)[0].args[0].input).toEqual({
      Namespace: 'CdkRdsPitr',
      MetricData: [{ MetricName: 'DrillStarted', Dimensions: [{ Name: 'SourceInstance', Value: 'orders-db' }], Value: 1, Unit: 'Count', Timestamp: at }],
    });
    c.cw.reset();
    c.cw.on(PutMetricDataCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDenied' }));
    await expect(new AwsDrillPublisher(c).started('orders-db', at)).rejects.toThrow('CloudWatch PutMetricData (CdkRdsPitr): AccessDenied: denied');
  });

  test('a failed drill publishes DrillSucceeded=0 and only what it measured; no topic, no SNS call', async () => {
    const c = clients();
    c.cw.on(PutMetricDataCommand).resolves({});
    c.eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0 });
    const r = record({
      succeeded: false,
      failure: { step: DRILL_STEPS.RESTORE, reason: 'InvalidRestoreFault' },
      copy: undefined,
      recoveryTimeEstimate: undefined,
      phases: [{ name: DRILL_STEPS.RESTORE, seconds: 1, outcome: 'failed' }],
    });
    expect(drillMetrics(r).map((m) => [m.MetricName, m.Value])).toEqual([['DrillSucceeded', 0]]);
    await new AwsDrillPublisher(c).publish(r);
    expect(c.cw.commandCalls(PutMetricDataCommand)[0].args[0].input.MetricData).toHaveLength(1);
    expect(c.sn.commandCalls(PublishCommand)).toHaveLength(0);
  });

  test('each destination is tried even when another fails; the failures are reported together', async () => {
    const c = clients();
    c.cw.on(PutMetricDataCommand).rejects(Object.assign(new Error('not authorized to perform cloudwatch:PutMetricData'), { name: 'AccessDenied' }));
    c.eb.on(PutEventsCommand).resolves({ FailedEntryCount: 1, Entries: [{ ErrorCode: 'InternalFailure', ErrorMessage: 'try again' }] });
    c.sn.on(PublishCommand).resolves({});
    await expect(new AwsDrillPublisher({ ...c, topicArn: 'arn:aws:sns:us-east-1:111111111111:ops' }).publish(record()))
      .rejects.toThrow('CloudWatch PutMetricData (CdkRdsPitr): AccessDenied: not authorized to perform cloudwatch:PutMetricData; EventBridge PutEvents (default bus): Error: InternalFailure: try again');
    expect(c.sn.commandCalls(PublishCommand)).toHaveLength(1);
  });
});
