/**
 * Restore drills end to end on real PostgreSQL, through the local control
 * plane (real point-in-time recovery) and the real data path. The original
 * is judged from its own catalog and counters, never from the runner's word:
 * pg_stat_database's write counters, the database list, roles, settings,
 * every table's content, and a session held open across the drill.
 */
import { Client } from 'pg';
import { FAST_POLLING, MASTER, SOURCE_ID, TestInstance, capturedLog, request, smallSeed } from './recovery-harness';
import { DRILL_STEPS, describeEvidence, readDrillRequest, runDrill, type DrillDeps, type DrillPublisher, type EvidenceRecord } from '../buildspec/runner/drill';
import type { RdsControl } from '../buildspec/runner/ports';
import { changesRecordSeconds } from '../buildspec/runner/postgres/changes';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { runRecovery } from '../buildspec/runner/workflow';
import { diffOriginalState, readOriginalState, settleAutovacuum as settle, type OriginalState } from '../local/original-state';
import type { LocalRdsControl, LocalRdsControlOptions } from '../local/rds-control';
import { BUILD_ENV, PROJECT_ENV, START_ENV, TAGS } from '../src/contract';

let instance: TestInstance;
let rds: LocalRdsControl;
const SOURCE_GIB = 20;

beforeAll(async () => {
  instance = await TestInstance.start();
  await instance.createDatabase('shop', smallSeed());
  await instance.createDatabase('Ledger "B" ü', smallSeed());
  rds = await control();
});

afterAll(async () => {
  await instance?.dispose();
});

function control(options: Partial<Omit<LocalRdsControlOptions, 'source' | 'sourceId' | 'masterUsername'>> = {}): Promise<LocalRdsControl> {
  return instance.control({ sourceOverrides: { storage: { type: 'gp3', allocatedGiB: SOURCE_GIB } }, ...options });
}

function drillRequest(overrides: Record<string, string> = {}) {
  return readDrillRequest({
    [PROJECT_ENV.SOURCE_INSTANCE_ID]: SOURCE_ID,
    [START_ENV.JOBS]: '2',
    [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '5',
    [BUILD_ENV.BUILD_ID]: `drill:${Math.random().toString(16).slice(2)}`,
    ...overrides,
  }, { cpus: 2 });
}

/** Records what would be published. */
function recordingPublisher(): DrillPublisher & { records: EvidenceRecord[]; starts: string[] } {
  const records: EvidenceRecord[] = [];
  const starts: string[] = [];
  return { records, starts, started: async (source) => void starts.push(source), publish: async (r) => void records.push(r) };
}

function deps(log: DrillDeps['log'], publisher: DrillPublisher, plane: RdsControl = rds, data = new PgDataPath()): DrillDeps {
  return {
    rds: plane,
    data,
    log,
    credentials: { username: MASTER, password: instance.password },
    tls: instance.cluster.sslOptions,
    polling: FAST_POLLING,
    publisher,
  };
}

/** The original's state (original-state.ts): write counters, catalog, settings, content. */
const originalState = (): Promise<OriginalState> => readOriginalState(instance.cluster);
const settleAutovacuum = (): Promise<void> => settle(instance.cluster);

test('a drill copies and verifies every database on the temporary instance, writes nothing to the original, ends no session, and deletes the instance', async () => {
  await settleAutovacuum();
  // A session on the original across the drill: a swap would end it, a drill must not.
  const held = new Client({ host: instance.cluster.host, port: instance.cluster.port, user: 'postgres', database: 'shop' });
  await held.connect();
  try {
    const pid = (await held.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    const before = await originalState();
    expect(String(before['write counters'])).toMatch(/shop inserted=\d+/);

    const { log, text } = capturedLog();
    const publisher = recordingPublisher();
    const record = await runDrill(drillRequest(), deps(log, publisher));
    await rds.settled();

    // The original, from its own catalog and counters.
    const after = await originalState();
    expect(diffOriginalState(before, after)).toEqual([]);
    expect(after).toEqual(before);
    expect((await held.query<{ one: number }>('SELECT 1 AS one')).rows[0].one).toBe(1);
    expect(await instance.cluster.sql(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${pid}`)).toBe('1');
    // The counters are live: the same reading notices a single write (so the equality above could have failed).
    await held.query('CREATE TEMP TABLE probe AS SELECT 1 AS x');
    await held.query('INSERT INTO probe VALUES (2)');
    // A backend flushes its counters at most once a second when it goes idle (PostgreSQL 15); force it, or the reading races the flush.
    await held.query('SELECT pg_stat_force_next_flush()');
    const afterWrite = await originalState();
    expect(diffOriginalState(before, afterWrite)).toEqual([expect.stringMatching(/^write counters: before, not after: shop inserted=/), expect.stringMatching(/^write counters: after, not before: shop inserted=/)]);

    // The temporary instance: sized for a second copy, then deleted.
    const restore = rds.calls.find((c) => c.action === 'restoreToPointInTime')!;
    expect(restore.detail!.allocatedStorageGiB).toBe(SOURCE_GIB + 1);
    expect(restore.detail!.tags).toMatchObject({ [TAGS.SOURCE]: SOURCE_ID });
    expect(rds.liveInstanceIds()).toEqual([]);
    expect(rds.calls.filter((c) => c.action === 'setMasterPassword' || c.action === 'startSnapshot')).toHaveLength(0);

    // The record: what was copied where, verified how, and the estimate.
    expect(publisher.records).toEqual([record]);
    expect(publisher.starts).toEqual([SOURCE_ID]);
    expect(record).toMatchObject({
      kind: 'cdk-rds-pitr/restore-drill',
      succeeded: true,
      source: { id: SOURCE_ID, engine: 'postgres' },
      restoreTime: { requested: 'latest', useLatestRestorableTime: true },
      temporaryInstance: { allocatedStorageGiB: SOURCE_GIB + 1 },
    });
    expect(record.failure).toBeUndefined();
    expect(new Date(record.restoreTime.used!).getTime()).toBeGreaterThan(new Date(record.restoreWindow!.earliest).getTime());
    expect(record.databases.map((d) => d.name).sort()).toEqual(['Ledger "B" ü', 'postgres', 'shop']);
    const shop = record.databases.find((d) => d.name === 'shop')!;
    expect(shop).toMatchObject({ result: 'verified', tables: 2, rows: 8000 });
    expect(shop.copiedAs).toMatch(/^shop__drill_\d{14}$/);
    expect(shop.sizeBytes).toBeGreaterThan(1e6);
    expect(shop.verification).toContain('content checksum');
    expect(record.phases.map((p) => p.name)).toEqual([
      DRILL_STEPS.RESTORE_TIME, DRILL_STEPS.PLAN, DRILL_STEPS.SIZE, DRILL_STEPS.RESTORE, DRILL_STEPS.WAIT, DRILL_STEPS.CREDENTIALS,
      DRILL_STEPS.CHOOSE, DRILL_STEPS.COPY, DRILL_STEPS.CLEAN_UP,
    ]);
    expect(record.copy!.bytes).toBe(record.databases.reduce((s, d) => s + d.sizeBytes!, 0));
    expect(record.copy!.bytesPerSecond).toBe(Math.round(record.copy!.bytes / record.copy!.seconds));
    const e = record.recoveryTimeEstimate!;
    expect(e.parts.copySeconds).toBeCloseTo(e.bytesToCopy / record.copy!.bytesPerSecond, 0);
    expect(e.seconds).toBeCloseTo(Object.values(e.parts).reduce((a, b) => a + b, 0), 0);
    expect(e.swapWorstCaseSeconds).toBe(90);
    // The record of writes made after T: estimated beside the total, not in it (it runs with the application back).
    expect(e.writesAfterTRecordSeconds).toBeCloseTo(changesRecordSeconds(e.parts.copySeconds), 0);
    expect(e.assumptions.length).toBeGreaterThanOrEqual(4);

    // The log: one EVIDENCE line that parses to the record; no password.
    const evidence = text().split('\n').filter((l) => l.includes(' EVIDENCE '));
    expect(evidence).toHaveLength(1);
    expect(JSON.parse(evidence[0].slice(evidence[0].indexOf('EVIDENCE ') + 9))).toEqual(record);
    expect(text()).not.toContain(instance.password);
    expect(text()).toContain('RESULT: DRILL SUCCEEDED: 3 database(s)');
  } finally {
    await held.end();
  }
});

test('verification mismatch: DrillSucceeded=0 is published, the record says why, the temporary instance is deleted, the original untouched', async () => {
  await settleAutovacuum();
  const before = await originalState();
  const { log } = capturedLog();
  const publisher = recordingPublisher();
  const tamper = new PgDataPath({
    beforeVerify: async (database, restoredAs) => {
      if (database !== 'shop') return;
      // The data path writes on the temporary instance: the tampering must land there too.
      const temporary = rds.liveInstanceIds()[0];
      expect(restoredAs).toMatch(/^shop__drill_/);
      const cluster = rds.temporaryCluster(temporary)!;
      await cluster.sql('UPDATE shop.items SET name = \'tampered\' WHERE id = 7', restoredAs);
    },
  });
  await expect(runDrill(drillRequest({ [START_ENV.DATABASES]: 'shop' }), deps(log, publisher, rds, tamper))).rejects.toThrow(/verification failed/);
  await rds.settled();
  const [record] = publisher.records;
  expect(record.succeeded).toBe(false);
  expect(record.failure!.step).toBe(DRILL_STEPS.COPY);
  expect(record.failure!.reason).toMatch(/verification failed: "shop__drill_\d+" differs from "shop"/);
  expect(record.databases).toEqual([expect.objectContaining({ name: 'shop', result: 'not copied' })]);
  expect(record.copy).toBeUndefined();
  expect(record.recoveryTimeEstimate).toBeUndefined();
  expect(rds.liveInstanceIds()).toEqual([]);
  expect(await originalState()).toEqual(before);
});

test('restore refused: the record says so, DrillSucceeded=0, nothing is left running', async () => {
  const refusing = await control({ faults: { refuseRestore: 'InvalidRestoreFault: restore refused by the test' } });
  const { log } = capturedLog();
  const publisher = recordingPublisher();
  await expect(runDrill(drillRequest({ [START_ENV.RESTORE_TIME]: 'random' }), deps(log, publisher, refusing))).rejects.toThrow('restore refused by the test');
  const [record] = publisher.records;
  expect(record).toMatchObject({ succeeded: false, failure: { step: DRILL_STEPS.RESTORE }, restoreTime: { requested: 'random', useLatestRestorableTime: false } });
  // The random time lies in the window the drill read.
  const used = new Date(record.restoreTime.used!).getTime();
  expect(used).toBeGreaterThanOrEqual(new Date(record.restoreWindow!.earliest).getTime());
  expect(used).toBeLessThanOrEqual(new Date(record.restoreWindow!.latest).getTime());
  expect(refusing.liveInstanceIds()).toEqual([]);
});

test('swap hazards do not stop a drill (it swaps nothing): the record lists what a recovery now would have to accept', async () => {
  // A subscription applying into "shop" on the original (and so in the point-in-time copy): a recovery refuses it unless accepted.
  await instance.cluster.sql('CREATE SUBSCRIPTION inbound CONNECTION \'host=127.0.0.1 port=1 dbname=nowhere\' PUBLICATION p WITH (connect = false)', 'shop');
  try {
    const { log, text } = capturedLog();
    const record = await runDrill(drillRequest(), deps(log, recordingPublisher()));
    await rds.settled();
    expect(record.succeeded).toBe(true);
    const shop = record.databases.find((d) => d.name === 'shop')!;
    expect(shop.result).toBe('verified');
    expect(shop.hazardsForRecovery!.join('\n')).toMatch(/^\[subscriptions\] "shop": subscription\(s\) "inbound" apply changes into "shop".*A recovery now needs ACCEPT_HAZARDS=subscriptions\.$/m);
    expect(record.databases.find((d) => d.name === 'postgres')!.hazardsForRecovery).toEqual([]);
    expect(text()).toMatch(/ shop: a recovery now would meet this swap hazard: \[subscriptions\]/);
    // The plan's pre-flight found it on the original already, before the restore, and the record says so with its timing.
    const hazards = record.preflight!.checks.find((c) => c.name === 'swap hazards')!;
    expect(hazards.outcome).toBe('noted');
    expect(hazards.seconds).toBeGreaterThanOrEqual(0);
    expect(hazards.findings.join('\n')).toMatch(/\[subscriptions\] "shop": subscription\(s\) "inbound" apply changes into "shop".*A recovery now needs ACCEPT_HAZARDS=subscriptions\./);
    expect(record.preflight!.checks.map((c) => c.name)).toEqual(['databases on the original now', 'roles and memberships', 'swap hazards', 'free storage']);
    expect(describeEvidence(record)).toContain('pre-flight, swap hazards: [subscriptions] "shop"');
    // Its own session in the database is not one a swap would end.
    expect(describeEvidence(record)).not.toMatch(/session\(s\) connected now/);
    expect(rds.liveInstanceIds()).toEqual([]);
    // Accepted in ACCEPT_HAZARDS: said so, still listed.
    const accepted = await runDrill(drillRequest({ [START_ENV.ACCEPT_HAZARDS]: 'subscriptions' }), deps(capturedLog().log, recordingPublisher()));
    await rds.settled();
    expect(accepted.databases.find((d) => d.name === 'shop')!.hazardsForRecovery!.join('\n')).toContain('[subscriptions, accepted in ACCEPT_HAZARDS]');
  } finally {
    await instance.cluster.sql('ALTER SUBSCRIPTION inbound SET (slot_name = NONE)', 'shop').catch(() => undefined);
    await instance.cluster.sql('DROP SUBSCRIPTION IF EXISTS inbound', 'shop');
  }
});

test('mutual exclusion: a recovery refuses while a drill runs, and a drill refuses while another drill (or a recovery) runs', async () => {
  const refusals: string[] = [];
  let racer: LocalRdsControl;
  const racing = await control({
    faults: {
      // While this drill's temporary instance exists: a recovery and another drill of the same source are started.
      onTemporaryInstanceUp: async () => {
        const other = capturedLog();
        await runRecovery(request({ [START_ENV.RESTORE_TIME]: 'latest' }), {
          rds: racer,
          data: new PgDataPath(),
          log: other.log,
          credentials: { username: MASTER, password: instance.password },
          tls: instance.cluster.sslOptions,
          polling: FAST_POLLING,
        }).catch((err: Error) => refusals.push(`recovery: ${err.message}`));
        const publisher = recordingPublisher();
        await runDrill(drillRequest(), deps(capturedLog().log, publisher, racer)).catch((err: Error) => refusals.push(`drill: ${err.message}`));
        refusals.push(`published: ${publisher.records[0]?.succeeded}`);
      },
    },
  });
  // The racers use the same control plane, so they see the drill's temporary instance (they are refused before restoring anything).
  racer = racing;
  const { log } = capturedLog();
  const record = await runDrill(drillRequest({ [START_ENV.DATABASES]: 'shop' }), deps(log, recordingPublisher(), racing));
  await racing.settled();
  expect(record.succeeded).toBe(true);
  expect(refusals).toHaveLength(3);
  expect(refusals[0]).toMatch(/^recovery: another recovery or restore drill of test-db appears to be in progress: temporary instance test-db-pitr-\d+ \(creating\) is still alive/);
  expect(refusals[1]).toMatch(/^drill: another recovery or restore drill of test-db appears to be in progress/);
  expect(refusals[2]).toBe('published: false');
  expect(racing.liveInstanceIds()).toEqual([]);
});
