import { PlanError, planRecovery, readStartRequest } from '../buildspec/runner/plan';
import type { InstanceState, RdsControl, SourceInstance } from '../buildspec/runner/ports';
import { BUILD_ENV, CREATED_BY_VALUE, LATEST, PROJECT_ENV, START_ENV, TAGS } from '../src/contract';

const SOURCE = 'orders-db';
const NOW = new Date('2026-11-24T10:00:00Z');

function env(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    [PROJECT_ENV.SOURCE_INSTANCE_ID]: SOURCE,
    [START_ENV.RESTORE_TIME]: '2026-11-24T09:30:00Z',
    [START_ENV.CONFIRM]: SOURCE,
    [BUILD_ENV.BUILD_ID]: 'pitr-project:0f5c',
    ...overrides,
  };
}

const read = (overrides: Record<string, string | undefined> = {}) => readStartRequest(env(overrides), { cpus: 4 });

function refusal(fn: () => unknown): PlanError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PlanError);
    return err as PlanError;
  }
  throw new Error('expected a refusal');
}

describe('readStartRequest', () => {
  test('the minimal request gets the documented defaults', () => {
    const r = read();
    expect(r).toEqual({
      sourceId: SOURCE,
      restoreTime: new Date('2026-11-24T09:30:00Z'),
      databases: undefined,
      strategy: 'swap',
      jobs: 4,
      safetySnapshot: true,
      force: false,
      acceptHazards: [],
      tempInstanceClass: undefined,
      waitTimeoutMs: 120 * 60_000,
      buildId: 'pitr-project:0f5c',
      tables: undefined,
      tableMode: 'side-by-side',
      changes: true,
      after: undefined,
    });
  });

  test('every variable is read', () => {
    const r = read({
      [START_ENV.RESTORE_TIME]: LATEST,
      [START_ENV.DATABASES]: 'orders, "Billing" DB',
      [START_ENV.STRATEGY]: 'replace',
      [START_ENV.JOBS]: '8',
      [START_ENV.SAFETY_SNAPSHOT]: 'FALSE',
      [START_ENV.FORCE]: 'true',
      [START_ENV.TEMP_INSTANCE_CLASS]: 'db.r6g.large',
      [START_ENV.ACCEPT_HAZARDS]: 'subscriptions, pg-cron',
      [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '45',
    });
    expect(r.restoreTime).toBe(LATEST);
    expect(r.databases).toEqual(['orders', '"Billing" DB']);
    expect(r.strategy).toBe('replace');
    expect(r.jobs).toBe(8);
    expect(r.safetySnapshot).toBe(false);
    expect(r.force).toBe(true);
    expect(r.tempInstanceClass).toBe('db.r6g.large');
    expect(r.acceptHazards).toEqual(['subscriptions', 'pg-cron']);
    expect(r.waitTimeoutMs).toBe(45 * 60_000);
  });

  test('ACCEPT_HAZARDS names known hazards only', () => {
    expect(refusal(() => read({ [START_ENV.ACCEPT_HAZARDS]: 'slots' })).message)
      .toMatch(/ACCEPT_HAZARDS: "slots" is not a hazard; accepted: logical-replication-slots, subscriptions, pg-cron, event-triggers/);
  });

  test('CONFIRM must be exactly the source id', () => {
    expect(refusal(() => read({ [START_ENV.CONFIRM]: undefined })).message).toMatch(/CONFIRM: not set; accepted: exactly the source instance identifier "orders-db"/);
    expect(refusal(() => read({ [START_ENV.CONFIRM]: 'Orders-DB' })).message).toMatch(/CONFIRM: "Orders-DB" does not match the source instance; accepted: exactly "orders-db"/);
  });

  test('RESTORE_TIME has no default and must be UTC with Z', () => {
    expect(refusal(() => read({ [START_ENV.RESTORE_TIME]: undefined })).message).toMatch(/RESTORE_TIME: not set/);
    expect(refusal(() => read({ [START_ENV.RESTORE_TIME]: '2026-11-24 09:30' })).message).toMatch(/RESTORE_TIME: "2026-11-24 09:30" is not a valid restore time; accepted: an ISO-8601 UTC time/);
    expect(refusal(() => read({ [START_ENV.RESTORE_TIME]: '2026-02-31T09:30:00Z' })).message).toMatch(/not a real calendar time/);
  });

  test('replace without a safety snapshot needs FORCE', () => {
    const e = refusal(() => read({ [START_ENV.STRATEGY]: 'replace', [START_ENV.SAFETY_SNAPSHOT]: 'false' }));
    expect(e.message).toMatch(/STRATEGY: "replace" drops each database .* set FORCE=true/);
    expect(read({ [START_ENV.STRATEGY]: 'swap', [START_ENV.SAFETY_SNAPSHOT]: 'false' }).safetySnapshot).toBe(false);
  });

  test.each([
    [START_ENV.STRATEGY, 'overwrite', /STRATEGY: "overwrite" is not a strategy; accepted: swap \| replace/],
    [START_ENV.JOBS, '0', /JOBS: "0" is not accepted; accepted: a whole number from 1 to 64/],
    [START_ENV.JOBS, '2.5', /JOBS: "2.5" is not accepted/],
    [START_ENV.SAFETY_SNAPSHOT, 'no', /SAFETY_SNAPSHOT: "no" is not a boolean; accepted: true \| false/],
    [START_ENV.FORCE, '1', /FORCE: "1" is not a boolean/],
    [START_ENV.TEMP_INSTANCE_CLASS, 'r6g.large', /TEMP_INSTANCE_CLASS: "r6g.large" is not a DB instance class/],
    [START_ENV.DATABASES, 'orders,template1', /DATABASES: "template1" is not a database that can be recovered/],
    [START_ENV.DATABASES, 'a,b,a', /DATABASES: "a" is listed twice/],
    [PROJECT_ENV.WAIT_TIMEOUT_MINUTES, '-5', /WAIT_TIMEOUT_MINUTES: "-5" is not accepted/],
    [PROJECT_ENV.SOURCE_INSTANCE_ID, 'orders--db', /SOURCE_INSTANCE_ID: "orders--db" is not an RDS instance identifier/],
    [BUILD_ENV.BUILD_ID, undefined, /CODEBUILD_BUILD_ID: not set/],
  ])('%s=%s is refused naming the variable and what is accepted', (name, value, pattern) => {
    const overrides: Record<string, string | undefined> = { [name]: value };
    if (name === PROJECT_ENV.SOURCE_INSTANCE_ID) overrides[START_ENV.CONFIRM] = value;
    const e = refusal(() => read(overrides));
    expect(e.message).toMatch(pattern);
    expect(e.message).toMatch(/Nothing was created or changed\./);
  });

  test('every problem is reported at once', () => {
    const e = refusal(() => read({ [START_ENV.CONFIRM]: 'x', [START_ENV.STRATEGY]: 'nope', [START_ENV.JOBS]: 'many' }));
    expect(e.problems).toHaveLength(3);
    expect(e.message).toMatch(/^3 problems, nothing was created or changed:/);
  });
});

/** An RdsControl that only answers questions; anything that would create something fails the test. */
interface FakeOptions {
  source?: Partial<SourceInstance>;
  window?: { earliest: Date; latest: Date };
  others?: InstanceState[];
  missing?: boolean;
}

function fakeRds(options: FakeOptions = {}): RdsControl & { tagQueries: string[] } {
  const tagQueries: string[] = [];
  const refuse = async (): Promise<never> => {
    throw new Error('planning must not create or change anything');
  };
  return {
    tagQueries,
    describeSource: async (id) => {
      if (options.missing) throw new Error(`DBInstanceNotFound: ${id}`);
      return {
        id,
        status: 'available',
        engine: 'postgres',
        engineVersion: '16.4',
        endpoint: { host: 'db.example', port: 5432 },
        masterUsername: 'master',
        vpcSecurityGroupIds: ['sg-1'],
        backupRetentionPeriod: 7,
        ...options.source,
      };
    },
    restorableWindow: async () => options.window ?? { earliest: new Date('2026-11-17T10:00:00Z'), latest: new Date('2026-11-24T09:55:00Z') },
    findInstancesByTag: async (key, value) => {
      tagQueries.push(`${key}=${value}`);
      return options.others ?? [];
    },
    startSnapshot: refuse,
    snapshotStatus: refuse,
    restoreToPointInTime: refuse,
    describeInstance: refuse,
    setMasterPassword: refuse,
    deleteInstance: refuse,
  };
}

describe('planRecovery', () => {
  const context = { now: NOW, secretUsername: 'master' };

  test('derives names, tags and the window from the source', async () => {
    const rds = fakeRds();
    const plan = await planRecovery(read(), rds, context);
    expect(plan.stamp).toBe('20261124100000');
    expect(plan.temporaryInstanceId).toBe('orders-db-pitr-20261124100000');
    expect(plan.safetySnapshotId).toBe('orders-db-pre-pitr-20261124100000');
    expect(plan.tags).toEqual({ [TAGS.BUILD_ID]: 'pitr-project:0f5c', [TAGS.SOURCE]: SOURCE, [TAGS.CREATED_BY]: CREATED_BY_VALUE });
    expect(plan.window?.latest).toEqual(new Date('2026-11-24T09:55:00Z'));
    expect(rds.tagQueries).toEqual([`${TAGS.SOURCE}=${SOURCE}`]);
  });

  test('no safety snapshot id when it is turned off; no window lookup for latest', async () => {
    const plan = await planRecovery(read({ [START_ENV.SAFETY_SNAPSHOT]: 'false', [START_ENV.RESTORE_TIME]: LATEST }), fakeRds(), context);
    expect(plan.safetySnapshotId).toBeUndefined();
    expect(plan.window).toBeUndefined();
    expect(plan.restoreTime).toBe(LATEST);
  });

  test('a time outside the restorable window is refused with the window', async () => {
    await expect(planRecovery(read({ [START_ENV.RESTORE_TIME]: '2026-11-24T09:58:00Z' }), fakeRds(), context)).rejects.toThrow(
      /RESTORE_TIME: 2026-11-24T09:58:00.000Z is after the latest restorable time; accepted: a time from 2026-11-17T10:00:00.000Z to 2026-11-24T09:55:00.000Z.*Nothing was created or changed/,
    );
  });

  test('refuses a source that is not an available PostgreSQL instance with backups', async () => {
    const e: PlanError = await planRecovery(read(), fakeRds({ source: { engine: 'mysql', status: 'modifying', backupRetentionPeriod: 0 } }), context).then(
      () => {
        throw new Error('expected a refusal');
      },
      (err: PlanError) => err,
    );
    expect(e).toBeInstanceOf(PlanError);
    expect(e.problems).toHaveLength(3);
    expect(e.message).toMatch(/engine "mysql"; accepted: an RDS for PostgreSQL instance/);
    expect(e.message).toMatch(/is "modifying"; accepted: an instance in status "available"/);
    expect(e.message).toMatch(/automated backups turned off/);
  });

  test('refuses when another temporary instance of the source is alive, ignoring ones being deleted', async () => {
    const others = [{ id: 'orders-db-pitr-20261124090000', status: 'available' }, { id: 'orders-db-pitr-20261123090000', status: 'deleting' }];
    await expect(planRecovery(read(), fakeRds({ others }), context)).rejects.toThrow(
      /another recovery or restore drill of orders-db appears to be in progress: temporary instance orders-db-pitr-20261124090000 \(available\) is still alive/,
    );
    await expect(planRecovery(read(), fakeRds({ others: [others[1]] }), context)).resolves.toBeDefined();
  });

  test('refuses a secret that does not hold the master user', async () => {
    await expect(planRecovery(read(), fakeRds(), { ...context, secretUsername: 'app' })).rejects.toThrow(/SECRET_ARN: the secret's username "app" is not the master user "master"/);
  });

  test('a source that cannot be described is named', async () => {
    await expect(planRecovery(read(), fakeRds({ missing: true }), context)).rejects.toThrow(/SOURCE_INSTANCE_ID: instance "orders-db" could not be described \(DBInstanceNotFound: orders-db\)/);
  });
});
