/**
 * What the runbook checks on the original before it creates anything, and
 * what it measures there before the copy, on real PostgreSQL through the
 * local control plane:
 * - the secret logs in to the original (a wrong or stale secret fails in the
 *   plan step, before the snapshot and the restore);
 * - an RDS-managed master password accepts only its own secret;
 * - the copy is told the original's free storage and what autoscaling may add.
 */
import { statfsSync } from 'node:fs';
import { FAST_POLLING, MASTER, TestInstance, capturedLog, request, smallSeed } from './recovery-harness';
import { PlanError, isSameSecret } from '../buildspec/runner/plan';
import type { CopyOptions, DataPath } from '../buildspec/runner/ports';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { runRecovery, type RecoveryDeps } from '../buildspec/runner/workflow';
import type { LocalRdsControl } from '../local/rds-control';
import { LATEST, PROJECT_ENV, START_ENV } from '../src/contract';

const GIB = 2 ** 30;
const MANAGED_NAME = 'rds!db-0f1e2d3c-aaaa-bbbb-cccc-0123456789ab';
const MANAGED_ARN = `arn:aws:secretsmanager:us-east-1:123456789012:secret:${MANAGED_NAME}-AbCdEf`;
const OTHER_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-master-Zz9Yx8';

describe('isSameSecret: SECRET_ARN against the complete ARN of an RDS-managed secret', () => {
  test.each([
    ['the complete ARN', MANAGED_ARN, true],
    ['the partial ARN (without the 6-character suffix)', MANAGED_ARN.slice(0, -7), true],
    ['the secret name', MANAGED_NAME, true],
    ['another secret\'s ARN', OTHER_ARN, false],
    ['another secret\'s name', 'orders-master', false],
    ['the ARN with another suffix', `${MANAGED_ARN.slice(0, -6)}QqQqQq`, false],
    ['a prefix of the name', 'rds!db-0f1e2d3c', false],
  ])('%s: %s', (_what, configured, expected) => {
    expect(isSameSecret(configured, MANAGED_ARN)).toBe(expected);
  });
});

let instance: TestInstance;
let rds: LocalRdsControl;
let managed: LocalRdsControl;

beforeAll(async () => {
  instance = await TestInstance.start();
  rds = await instance.control({ growableBytes: 5 * GIB });
  managed = await instance.control({ masterUserSecretArn: MANAGED_ARN });
});

afterAll(async () => {
  await instance?.dispose();
});

function deps(log: RecoveryDeps['log'], overrides: Partial<RecoveryDeps> = {}): RecoveryDeps {
  return {
    rds,
    data: new PgDataPath(),
    log,
    credentials: { username: MASTER, password: instance.password },
    tls: instance.cluster.sslOptions,
    polling: FAST_POLLING,
    ...overrides,
  };
}

/** The real data path, with the options of every copy kept for assertions. */
function recordingDataPath(): { data: DataPath; copies: CopyOptions[] } {
  const real = new PgDataPath();
  const copies: CopyOptions[] = [];
  return {
    copies,
    data: {
      checkLogin: (target) => real.checkLogin(target),
      listDatabases: (source) => real.listDatabases(source),
      copy: (source, target, options) => {
        copies.push(options);
        return real.copy(source, target, options);
      },
    },
  };
}

/** Runs a refused recovery; returns the error, the log and the control-plane calls it made. */
async function refused(control: LocalRdsControl, overrides: Partial<RecoveryDeps>) {
  const firstCall = control.calls.length;
  const { log, text } = capturedLog();
  const error = await runRecovery(request({ [START_ENV.RESTORE_TIME]: LATEST }), deps(log, { rds: control, ...overrides }))
    .then(() => undefined, (err: Error) => err);
  return { error, output: text(), calls: control.calls.slice(firstCall) };
}

describe('the plan step logs in to the original with the secret before anything is created', () => {
  test('a stale password fails in the plan step: no snapshot, no restore, and the log says the original was not changed', async () => {
    const stale = 'stale-password-from-last-week';
    const started = Date.now();
    const { error, output, calls } = await refused(rds, { credentials: { username: MASTER, password: stale } });
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toMatch(new RegExp(
      `^${PROJECT_ENV.SECRET_ARN}: the original test-db at ${instance.cluster.host}:${instance.cluster.port} refuses the secret's credentials for "${MASTER}" \\(.*password authentication failed.*\\); `
      + 'accepted: the instance\'s current master credentials\\. Nothing was created or changed\\.$',
    ));
    expect(calls).toEqual([]);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(output).toMatch(/RESULT: FAILED in step "Plan and validate"/);
    expect(output).toMatch(/The original instance was not changed\./);
    expect(output).not.toContain(stale);
  });
});

describe('an RDS-managed master password (MasterUserSecret)', () => {
  test('another secret is refused, naming the managed secret to pass, before anything is created', async () => {
    const { error, output, calls } = await refused(managed, { secretId: OTHER_ARN });
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toContain(`${PROJECT_ENV.SECRET_ARN}: "${OTHER_ARN}" is not the secret RDS manages for the master password of test-db; accepted: that secret, ${MANAGED_ARN}`);
    expect(error!.message).toMatch(/Nothing was created or changed\.$/);
    expect(calls).toEqual([]);
    expect(output).toMatch(/RESULT: FAILED in step "Plan and validate"/);
  });

  test('the managed secret given by name passes that check; a stale copy of its password still fails the login, naming the managed secret', async () => {
    const { error, calls } = await refused(managed, { secretId: MANAGED_NAME, credentials: { username: MASTER, password: 'rotated-away' } });
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).not.toContain('is not the secret RDS manages');
    expect(error!.message).toContain('refuses the secret\'s credentials');
    expect(error!.message).toContain(`accepted: the instance's current master credentials (RDS manages them in ${MANAGED_ARN})`);
    expect(calls).toEqual([]);
  });
});

describe('free storage on the original, measured before the copy', () => {
  async function recover(db: string) {
    await instance.createDatabase(db, smallSeed());
    const t = await instance.markRestoreTime();
    const { data, copies } = recordingDataPath();
    const { log, text } = capturedLog();
    const outcome = await runRecovery(request({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: db }), deps(log, { data }));
    await rds.settled();
    return { outcome, copies, output: text() };
  }

  test('the copy is given the free space of the original\'s disk and what storage autoscaling may add', async () => {
    const { outcome, copies, output } = await recover('measured');
    expect(outcome.results.every((r) => r.verified)).toBe(true);
    expect(copies).toHaveLength(1);
    const storage = copies[0].originalStorage!;
    expect(storage.growableBytes).toBe(5 * GIB);
    const fs = statfsSync(instance.cluster.baseDir);
    // The disk is shared with the dumps and the temporary instance, so only roughly the same.
    expect(Math.abs(storage.freeBytes - fs.bavail * fs.bsize)).toBeLessThan(GIB);
    expect(output).toMatch(/free storage on the original: \d+\.\d (GiB|MiB), and storage autoscaling may add up to 5\.0 GiB/);
  });

  test('no FreeStorageSpace datapoint: a warning, and the copy goes ahead without the check', async () => {
    rds.faults = { storageUnmeasured: true };
    try {
      const { outcome, copies, output } = await recover('unmeasured');
      expect(outcome.results.every((r) => r.verified)).toBe(true);
      expect(copies).toHaveLength(1);
      expect(copies[0].originalStorage).toBeUndefined();
      expect(output).toMatch(/free storage on the original test-db is not known \(no recent FreeStorageSpace datapoint\); the copy goes ahead without that check/);
    } finally {
      rds.faults = {};
    }
  });
});
