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
import { PgTablePath } from '../buildspec/runner/postgres/tables';
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

describe('the pre-flight on the original (issue #19): what the copy would refuse at T is refused in the plan step, before the snapshot and the restore', () => {
  const STRANGER_DB = 'stranger_owned';

  beforeAll(async () => {
    // A table owned by a role the master user cannot act as (not a member), and one the master user owns.
    await instance.cluster.sql('CREATE ROLE stranger NOLOGIN');
    await instance.createDatabase(STRANGER_DB, `
\\set ON_ERROR_STOP on
GRANT CREATE ON DATABASE ${STRANGER_DB} TO stranger;
SET ROLE stranger;
CREATE SCHEMA ledger;
CREATE TABLE ledger.entry (id int PRIMARY KEY, amount int NOT NULL);
INSERT INTO ledger.entry SELECT g, g FROM generate_series(1, 50) g;
GRANT USAGE ON SCHEMA ledger TO ${MASTER};
GRANT SELECT ON ledger.entry TO ${MASTER};
RESET ROLE;
SET ROLE ${MASTER};
CREATE TABLE public.mine (id int PRIMARY KEY);
CREATE VIEW public.mine_view AS SELECT id FROM public.mine;
`);
  });

  const withoutPreflight = (): RecoveryDeps['data'] => {
    const real = new PgDataPath();
    return { checkLogin: (t) => real.checkLogin(t), listDatabases: (s) => real.listDatabases(s), copy: (s, t, o) => real.copy(s, t, o) };
  };

  test('objects owned by a role the master user cannot act as: refused in the plan step with the copy\'s own message and fix; no snapshot, no restore', async () => {
    const t = await instance.markRestoreTime();
    const asked = { [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: STRANGER_DB };
    // What the copy says at T, after the snapshot and the restore (the data path without a pre-flight, as before #19).
    const late = await runRecovery(request(asked), deps(capturedLog().log, { data: withoutPreflight() })).then(() => undefined, (err: Error) => err);
    await rds.settled();
    const fix = `the user "${MASTER}" on the original cannot act as "stranger", which own objects in database "${STRANGER_DB}", so the restore could not give those objects their owners. `
      + `As "${MASTER}", run: GRANT "stranger" TO "${MASTER}"; then run again.`;
    expect(late!.message).toContain(fix);

    const firstCall = rds.calls.length;
    const { log, text } = capturedLog();
    const started = Date.now();
    const error = await runRecovery(request(asked), deps(log)).then(() => undefined, (err: Error) => err);
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toBe(`pre-flight on the original: ${fix} Nothing was created or changed.`);
    expect(rds.calls.slice(firstCall)).toEqual([]);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(text()).toMatch(/pre-flight: roles and memberships: refused \(\d+\.\d\d s\)/);
    expect(text()).toMatch(/RESULT: FAILED in step "Plan and validate"/);
    expect(text()).toMatch(/The original instance was not changed\./);
  });

  test('DATABASES empty: a database on the original now may not have existed at T, so its refusal is only noted, and the copy refuses it at T', async () => {
    const t = await instance.markRestoreTime();
    const firstCall = rds.calls.length;
    const { log, text } = capturedLog();
    const error = await runRecovery(request({ [START_ENV.RESTORE_TIME]: t.toISOString() }), deps(log)).then(() => undefined, (err: Error) => err);
    await rds.settled();
    expect(text()).toMatch(/pre-flight: roles and memberships: noted/);
    expect(text()).toContain('(DATABASES is empty: this is refused at the restore time if the database existed then; name the databases in DATABASES to have it refused before the restore)');
    expect(rds.calls.slice(firstCall).map((c) => c.action)).toContain('restoreToPointInTime');
    expect(error!.message).toContain(`run: GRANT "stranger" TO "${MASTER}";`);
    expect(text()).toMatch(/RESULT: FAILED in step "Copy, verify and swap in"/);
  });

  test('TABLES: only the chosen tables\' owners count; a table owned by such a role is refused before the restore, one the master user owns goes ahead', async () => {
    const t = await instance.markRestoreTime();
    const firstCall = rds.calls.length;
    const error = await runRecovery(request({
      [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: STRANGER_DB, [START_ENV.SAFETY_SNAPSHOT]: 'false', [START_ENV.TABLES]: 'ledger.entry',
    }), deps(capturedLog().log, { tables: new PgTablePath() })).then(() => undefined, (err: Error) => err);
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toContain(`run: GRANT "stranger" TO "${MASTER}";`);
    expect(rds.calls.slice(firstCall)).toEqual([]);

    const { log, text } = capturedLog();
    const outcome = await runRecovery(request({
      [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: STRANGER_DB, [START_ENV.SAFETY_SNAPSHOT]: 'false', [START_ENV.TABLES]: 'public.mine,public.gone',
    }), deps(log, { tables: new PgTablePath() })).then(() => undefined, (err: Error) => err);
    await rds.settled();
    // public.gone exists neither now nor at T: a note now, the refusal at T (where the close names are known).
    expect(text()).toContain(`public.gone is not in "${STRANGER_DB}" on the original now: it is looked up at the restore time (it may have been dropped since)`);
    expect(text()).toMatch(/pre-flight: roles and memberships: passed/);
    expect((outcome as unknown as Error).message).toMatch(/TABLES: public\.gone did not exist at the restore time/);
  });

  test('per-role settings the copy could not give the new database: refused in the plan step with the copy\'s own fix', async () => {
    await instance.createDatabase('role_settings', `SET ROLE ${MASTER}; CREATE TABLE t (id int);`);
    // A setting for a superuser role: a non-superuser master user may not set it for the restored database, on any major.
    await instance.cluster.sql('ALTER ROLE postgres IN DATABASE role_settings SET work_mem = \'8MB\'');
    const t = await instance.markRestoreTime();
    const firstCall = rds.calls.length;
    const error = await runRecovery(request({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: 'role_settings' }), deps(capturedLog().log))
      .then(() => undefined, (err: Error) => err);
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toContain('database "role_settings" has settings for role(s) "postgres" (ALTER ROLE ... IN DATABASE ... SET)');
    expect(error!.message).toContain(`run: GRANT "postgres" TO "${MASTER}" WITH ADMIN OPTION;`);
    expect(rds.calls.slice(firstCall)).toEqual([]);
  });

  test('TABLE_MODE=swap: what depends on the live table is refused in the plan step, as the swap step would after the restore', async () => {
    const t = await instance.markRestoreTime();
    const firstCall = rds.calls.length;
    const error = await runRecovery(request({
      [START_ENV.RESTORE_TIME]: t.toISOString(),
      [START_ENV.DATABASES]: STRANGER_DB,
      [START_ENV.SAFETY_SNAPSHOT]: 'false',
      [START_ENV.TABLES]: 'public.mine',
      [START_ENV.TABLE_MODE]: 'swap',
    }), deps(capturedLog().log, { tables: new PgTablePath() })).then(() => undefined, (err: Error) => err);
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toContain('TABLE_MODE=swap refused, because:');
    expect(error!.message).toContain('view public.mine_view (view) points at the live table by OID');
    expect(rds.calls.slice(firstCall)).toEqual([]);
  });

  test('swap hazards on the original: refused in the plan step unless accepted', async () => {
    await instance.createDatabase('hazardous', `SET ROLE ${MASTER}; CREATE TABLE t (id int);`);
    await instance.cluster.sql('CREATE FUNCTION public.noop_evt() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$; '
      + 'CREATE EVENT TRIGGER audit_ddl ON ddl_command_end EXECUTE FUNCTION public.noop_evt()', 'hazardous');
    const t = await instance.markRestoreTime();
    const firstCall = rds.calls.length;
    const { log, text } = capturedLog();
    const error = await runRecovery(request({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: 'hazardous' }), deps(log))
      .then(() => undefined, (err: Error) => err);
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toContain('[event-triggers] "hazardous": event trigger(s) "audit_ddl" on the original (and so, most likely, in the point-in-time copy) cannot be created by this user');
    expect(error!.message).toContain('ACCEPT_HAZARDS=event-triggers');
    expect(rds.calls.slice(firstCall)).toEqual([]);
    expect(text()).toMatch(/pre-flight: swap hazards: refused \(\d+\.\d\d s\)/);
    await instance.cluster.sql('DROP EVENT TRIGGER audit_ddl', 'hazardous');
  });

  test('free storage: a copy that cannot fit now is refused in the plan step', async () => {
    const tiny = Object.assign(Object.create(rds) as LocalRdsControl, {
      originalStorage: async () => ({ freeBytes: 1024, growableBytes: 0 }),
    });
    const t = await instance.markRestoreTime();
    const firstCall = rds.calls.length;
    const error = await runRecovery(request({ [START_ENV.RESTORE_TIME]: t.toISOString(), [START_ENV.DATABASES]: 'measured' }), deps(capturedLog().log, { rds: tiny }))
      .then(() => undefined, (err: Error) => err);
    expect(error).toBeInstanceOf(PlanError);
    expect((error as PlanError).problems).toHaveLength(1);
    expect(error!.message).toMatch(/not enough storage on the original: the copies beside the live databases need about .* but only 0\.0 MiB is free and storage autoscaling is off or at its maximum\. .*\(sizes as the databases are now; the copy measures them again at the restore time\)/);
    expect(rds.calls.slice(firstCall)).toEqual([]);
  });
});
