/**
 * The runbook's waits on a virtual clock: bounded backoff under the
 * deadline, progress at least every minute, terminal statuses failing at
 * once, the password reset, and a stop signal mid-wait. Both ports are
 * scripted fakes, so these run in milliseconds.
 */
import { VirtualClock } from './virtual-clock';
import { StepLog } from '../buildspec/runner/log';
import { readStartRequest } from '../buildspec/runner/plan';
import type { DataPath, InstanceState, PgTarget, RdsControl, TemporaryInstanceSpec } from '../buildspec/runner/ports';
import { AWS_POLLING, runRecovery } from '../buildspec/runner/workflow';
import { BUILD_ENV, LATEST, PROJECT_ENV, START_ENV, TAGS } from '../src/contract';

const PASSWORD = 'S3cret-password-value';

/** Scripted control plane: `statuses` are what successive describeInstance calls return (the last one repeats). */
class ScriptedRds implements RdsControl {
  readonly actions: string[] = [];
  readonly passwords: string[] = [];
  describeCalls = 0;
  private pending = 0;
  constructor(private readonly statuses: InstanceState['status'][], private readonly pendingPasswordPolls = 0) {}
  async describeSource(id: string) {
    return {
      id,
      status: 'available',
      engine: 'postgres',
      engineVersion: '16.4',
      endpoint: { host: 'source.example', port: 5432 },
      masterUsername: 'master',
      vpcSecurityGroupIds: [],
      backupRetentionPeriod: 7,
    };
  }
  async restorableWindow() {
    return { earliest: new Date('2026-11-20T00:00:00Z'), latest: new Date('2026-11-24T09:59:00Z') };
  }
  async findInstancesByTag(key: string) {
    return key === TAGS.BUILD_ID && this.actions.some((a) => a.startsWith('restore ')) ? [{ id: this.actions.find((a) => a.startsWith('restore '))!.slice(8), status: 'creating' }] : [];
  }
  async startSnapshot(_source: string, id: string) {
    this.actions.push(`snapshot ${id}`);
  }
  async snapshotStatus() {
    return 'available';
  }
  async restoreToPointInTime(spec: TemporaryInstanceSpec) {
    this.actions.push(`restore ${spec.id}`);
  }
  async describeInstance(id: string): Promise<InstanceState> {
    const status = this.statuses[Math.min(this.describeCalls++, this.statuses.length - 1)];
    const pendingPasswordChange = this.pending > 0;
    if (this.pending > 0) this.pending--;
    return { id, status: pendingPasswordChange ? 'resetting-master-credentials' : status, endpoint: { host: 'temp.example', port: 5432 }, pendingPasswordChange };
  }
  async setMasterPassword(id: string, password: string) {
    this.actions.push(`password ${id}`);
    this.passwords.push(password);
    this.pending = this.pendingPasswordPolls;
  }
  async deleteInstance(id: string) {
    this.actions.push(`delete ${id}`);
  }
}

/**
 * A data path whose login to the temporary instance is refused (SQLSTATE 28P01, as PostgreSQL does) until
 * `acceptAfter` attempts, or fails with `otherFailure` (no SQLSTATE: TLS, network); copy verifies everything.
 */
class ScriptedData implements DataPath {
  logins = 0;
  constructor(private readonly acceptAfter = 0, private readonly otherFailure?: string) {}
  async checkLogin(target: PgTarget) {
    if (target.host !== 'temp.example') return;
    if (this.otherFailure) throw new Error(this.otherFailure);
    if (this.logins++ < this.acceptAfter) throw Object.assign(new Error(`password authentication failed for user "${target.user}"`), { code: '28P01' });
  }
  async listDatabases() {
    return ['orders'];
  }
  async copy(_s: PgTarget, _t: PgTarget, options: { databases: readonly string[] }) {
    return options.databases.map((database) => ({ database, keptAs: `${database}__before_pitr_x`, unavailableMs: 120, tables: 3, rows: 30, verified: true }));
  }
}

function setup(rds: RdsControl, data: DataPath, env: Record<string, string> = {}) {
  const clock = new VirtualClock();
  const lines: string[] = [];
  const log = new StepLog((l) => lines.push(l), () => clock.now());
  const request = readStartRequest({
    [PROJECT_ENV.SOURCE_INSTANCE_ID]: 'orders-db',
    [START_ENV.CONFIRM]: 'orders-db',
    [START_ENV.RESTORE_TIME]: LATEST,
    [BUILD_ENV.BUILD_ID]: 'proj:1234',
    [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '10',
    ...env,
  }, { cpus: 2 });
  const controller = new AbortController();
  const run = () => runRecovery(request, { rds, data, log, clock, credentials: { username: 'master', password: PASSWORD }, signal: controller.signal });
  return { clock, lines, run, controller };
}

test('a restore that never finishes: bounded backoff, progress at least every minute, then the deadline names the status', async () => {
  const rds = new ScriptedRds(['creating']);
  const { clock, lines, run } = setup(rds, new ScriptedData());
  const error = await run().catch((e: Error) => e);
  expect((error as Error).message).toMatch(/temporary instance orders-db-pitr-\d{14} is still "creating" after 10 min 0 s, past the deadline of 10 min 0 s\./);

  const waits = clock.sleeps;
  expect(waits[0]).toBe(AWS_POLLING.initialMs);
  expect(Math.max(...waits)).toBeLessThanOrEqual(AWS_POLLING.maxMs);
  const progress = lines.filter((l) => /: creating \(elapsed /.test(l)).map((l) => Date.parse(l.slice(0, 24)));
  expect(progress.length).toBeGreaterThanOrEqual(10);
  for (let i = 1; i < progress.length; i++) expect(progress[i] - progress[i - 1]).toBeLessThanOrEqual(60_000);
  // Cleanup still deletes what was created.
  expect(rds.actions.filter((a) => a.startsWith('delete '))).toHaveLength(1);
});

test.each(['failed', 'incompatible-restore', 'incompatible-parameters', 'incompatible-network', 'storage-full'])('status %s fails at once, naming it', async (status) => {
  const rds = new ScriptedRds(['creating', status]);
  const { run, lines } = setup(rds, new ScriptedData());
  await expect(run()).rejects.toThrow(new RegExp(`is "${status}", from which RDS does not recover; nothing on the original was changed`));
  expect(rds.describeCalls).toBe(2);
  expect(rds.actions.at(-1)).toMatch(/^delete orders-db-pitr-/);
  expect(lines.join('\n')).toMatch(/The original instance was not changed\./);
});

test('a refused secret: the temporary instance (only) gets the current password, the run waits until it is accepted, the password is never logged', async () => {
  const rds = new ScriptedRds(['creating', 'available'], 3);
  const data = new ScriptedData(3);
  const { run, lines } = setup(rds, data);
  const outcome = await run();
  expect(outcome.results).toEqual([expect.objectContaining({ database: 'orders', verified: true })]);
  expect(rds.actions.filter((a) => a.startsWith('password '))).toEqual([`password ${outcome.plan.temporaryInstanceId}`]);
  expect(rds.passwords).toEqual([PASSWORD]);
  const output = lines.join('\n');
  expect(output).toMatch(/refuses the current secret .*; setting its master password to the current secret/);
  expect(output).toMatch(/master password reset on orders-db-pitr-\d{14}: resetting-master-credentials, password change pending/);
  expect(output).toMatch(/the temporary instance accepts the current secret/);
  expect(output).not.toContain(PASSWORD);
  expect(output).toMatch(/RESULT: SUCCESS: 1 database\(s\) recovered and verified\./);
  expect(output).toMatch(/DROP DATABASE "orders__before_pitr_x";/);
});

test('a login that fails for another reason than the password (an untrusted certificate): no reset, the run stops naming it', async () => {
  const rds = new ScriptedRds(['available']);
  const { run, lines } = setup(rds, new ScriptedData(0, 'cannot connect to database "postgres" on temp.example:5432: self-signed certificate in certificate chain'));
  await expect(run()).rejects.toThrow(/cannot log in to the temporary instance orders-db-pitr-\d{14} for a reason a password reset would not fix: .*self-signed certificate.*PG_CA_BUNDLE/);
  expect(rds.actions.some((a) => a.startsWith('password '))).toBe(false);
  expect(rds.actions.at(-1)).toMatch(/^delete orders-db-pitr-/);
  expect(lines.join('\n')).toMatch(/RESULT: FAILED in step "Match credentials to the current secret"/);
});

test('a password reset that never takes effect fails on its deadline with the last refusal', async () => {
  const rds = new ScriptedRds(['available']);
  const { run } = setup(rds, new ScriptedData(Number.MAX_SAFE_INTEGER));
  await expect(run()).rejects.toThrow(/master password reset on orders-db-pitr-\d{14} is still "available, new password not accepted yet" after 20 min .*Last login attempt: password authentication failed/);
  expect(rds.actions.at(-1)).toMatch(/^delete /);
});

test('a stop signal during the wait ends the run at once, naming the signal, and still deletes the instance', async () => {
  const rds = new ScriptedRds(['creating']);
  const { run, clock, controller, lines } = setup(rds, new ScriptedData());
  clock.stopAt = { at: clock.now().getTime() + 3 * 60_000, controller };
  await expect(run()).rejects.toThrow(/stopped by SIGTERM \(test\)/);
  expect(clock.elapsed(new Date(Date.parse('2026-11-24T10:00:00Z')))).toBeLessThan(4 * 60_000);
  expect(rds.actions.at(-1)).toMatch(/^delete orders-db-pitr-/);
  expect(lines.join('\n')).toMatch(/RESULT: FAILED in step "Wait for the temporary instance": stopped by SIGTERM/);
});

test('without a safety snapshot no snapshot is started', async () => {
  const rds = new ScriptedRds(['available']);
  const { run, lines } = setup(rds, new ScriptedData(), { [START_ENV.SAFETY_SNAPSHOT]: 'false' });
  await run();
  expect(rds.actions.some((a) => a.startsWith('snapshot '))).toBe(false);
  expect(lines.join('\n')).toMatch(/Safety snapshot: off/);
});
