/**
 * The PostgreSQL client must be the server's own major (issues #17.1, #18.4):
 * the plan refuses pg_dump/pg_restore of another major before anything is
 * created, naming both versions. On real PostgreSQL 15 through the local
 * control plane.
 *
 * The client of another major: real binaries where this machine has them
 * (another Debian major, the cache wt-majors' scripts/setup.sh fills, or the
 * directories in PG_OTHER_CLIENT_DIRS, colon-separated), and always the real
 * PostgreSQL 15 client whose `--version` answer the test controls through one
 * of two documented seams: a wrapper on PG_BIN_DIR that answers `--version`
 * and execs the real binary otherwise (withWrappedBinaries), or
 * PgDataPathSettings.clientVersion.
 */
import { join } from 'node:path';
import { FAST_POLLING, MASTER, TestInstance, capturedLog, otherMajorClientDirs, request, withWrappedBinaries } from './recovery-harness';
import { PlanError } from '../buildspec/runner/plan';
import { CHECKED_CLIENTS, parseClientVersion, readClientVersion, readClientVersionAt, type ClientVersionReader } from '../buildspec/runner/postgres/client-version';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { runRecovery, type RecoveryDeps } from '../buildspec/runner/workflow';
import { pgMajor } from '../local/pg-major';
import type { LocalRdsControl } from '../local/rds-control';
import { LATEST, START_ENV } from '../src/contract';

let instance: TestInstance;
let rds: LocalRdsControl;
let serverVersion: string;

beforeAll(async () => {
  instance = await TestInstance.start();
  rds = await instance.control();
  serverVersion = (await instance.cluster.sql('SHOW server_version')).trim();
});

afterAll(async () => {
  await instance?.dispose();
});

function deps(log: RecoveryDeps['log'], data = new PgDataPath()): RecoveryDeps {
  return {
    rds,
    data,
    log,
    credentials: { username: MASTER, password: instance.password },
    tls: instance.cluster.sslOptions,
    polling: FAST_POLLING,
  };
}

/** A recovery of every database at the latest time; the error, the log and the control-plane calls it made. */
async function recover(data?: PgDataPath) {
  const firstCall = rds.calls.length;
  const { log, text } = capturedLog();
  const error = await runRecovery(request({ [START_ENV.RESTORE_TIME]: LATEST }), deps(log, data)).then(() => undefined, (err: Error) => err);
  return { error, output: text(), calls: rds.calls.slice(firstCall) };
}

/** A wrapper that answers `--version` as `version` and runs the real PostgreSQL 15 binary for everything else. */
function answering(version: string): Record<string, string> {
  return Object.fromEntries(CHECKED_CLIENTS.map((tool) => [tool,
    `if [ "$1" = "--version" ]; then echo "${tool} (PostgreSQL) ${version}"; exit 0; fi\nexec "$REAL" "$@"`]));
}

describe('parseClientVersion reads what the clients print', () => {
  test.each([
    ['pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)', '15.20'],
    ['pg_restore (PostgreSQL) 17.6', '17.6'],
    ['pg_dump (PostgreSQL) 18.1', '18.1'],
    ['pg_dump (PostgreSQL) 18beta1', '18beta1'],
    ['pg_dump (PostgreSQL) 9.6.24', '9.6'],
    ['pg_dump: command not found', undefined],
  ])('%s', (output, expected) => {
    expect(parseClientVersion(output)).toBe(expected);
  });

  test('the real client on this machine', async () => {
    const { output } = await readClientVersion('pg_dump');
    expect(parseClientVersion(output)).toMatch(/^\d+\.\d+$/);
  });
});

// The pairs below (a 17.6 or 14.13 client, the real 17 and 18 clients, pg_restore 17 beside pg_dump 15) are written
// against the 15 server; with PG_MAJOR=17 or 18 some of them are the server's own major. They run on 15 and are
// reported as skipped on 17 and 18; the check itself does not depend on the server's major.
const onServer15 = pgMajor() === '15' ? describe : describe.skip;

onServer15('the plan checks the client against the original before anything is created', () => {
  test('a client of the server\'s major passes, and the log names both', async () => {
    const { log, text } = capturedLog();
    // Stops after the plan: a run that refuses in the next step costs nothing; here the plan's own line is what is checked.
    const data = new PgDataPath();
    const line = await data.checkClientVersion({ ...instance.cluster.sslOptions, host: instance.cluster.host, port: instance.cluster.port, user: MASTER, password: instance.password, maintenanceDatabase: 'postgres' }, 'the original test-db');
    log.info(line);
    expect(text()).toMatch(new RegExp(`PostgreSQL client matches the original test-db: pg_dump ${serverVersion.split(' ')[0].replace(/\./g, '\\.')} \\(.*pg_dump\\), pg_restore .*; server PostgreSQL ${serverVersion.split(' ')[0].replace(/\./g, '\\.')}`));
  });

  test.each([
    ['newer', '17.6', /a newer pg_restore sends settings this server does not know \(pg_restore 17 and later send SET transaction_timeout/],
    ['older', '14.13', /pg_dump refuses to dump a server newer than itself/],
  ])('a %s client (the real 15 binary answering --version with %s, on PG_BIN_DIR) is refused in the plan, naming both versions: no snapshot, no restore', async (_what, version, why) => {
    const { error, output, calls } = await withWrappedBinaries(answering(version), () => recover());
    expect(error).toBeInstanceOf(PlanError);
    const server = serverVersion.split(' ')[0].replace(/\./g, '\\.');
    expect(error!.message).toMatch(new RegExp(`^the PostgreSQL client does not match the original test-db \\(EngineVersion ${server}[^:]*\\): `
      + `pg_dump ${version.replace(/\./g, '\\.')} \\(/.*/pg_dump\\), pg_restore ${version.replace(/\./g, '\\.')} \\(/.*/pg_restore\\) against PostgreSQL ${server}.* \\(server_version_num 15\\d{4}\\); `));
    expect(error!.message).toMatch(why);
    expect(error!.message).toMatch(/Accepted: pg_dump and pg_restore of major 15\..*Nothing was created or changed\.$/s);
    expect(calls).toEqual([]);
    expect(output).toMatch(/RESULT: FAILED in step "Plan and validate"/);
    expect(output).toMatch(/The original instance was not changed\./);
  });

  test('one client of another major is enough to refuse (pg_restore 17 beside pg_dump 15), through PgDataPathSettings.clientVersion', async () => {
    const read: ClientVersionReader = async (tool) => {
      const real = await readClientVersion(tool);
      return tool === 'pg_restore' ? { ...real, output: real.output.replace(/\(PostgreSQL\) \S+/, '(PostgreSQL) 17.2') } : real;
    };
    const { error, calls } = await recover(new PgDataPath({ clientVersion: read }));
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toMatch(/pg_dump 15\.\d+ \(.*\), pg_restore 17\.2 \(.*\) against PostgreSQL 15/);
    expect(calls).toEqual([]);
  });

  test('a client that is not PostgreSQL\'s is refused, quoting what it printed', async () => {
    const { error, calls } = await recover(new PgDataPath({ clientVersion: async (tool) => ({ path: `/opt/x/${tool}`, output: 'busybox v1.36' }) }));
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toMatch(/^\/opt\/x\/pg_dump --version printed "busybox v1\.36", not a PostgreSQL client version; accepted: the PostgreSQL 15 client/);
    expect(calls).toEqual([]);
  });

  test('a client that cannot be run is refused in the plan', async () => {
    const { error, calls } = await withWrappedBinaries({ pg_dump: 'exit 127' }, () => recover());
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toMatch(/pg_dump --version could not be run/);
    expect(calls).toEqual([]);
  });
});

const realOthers = otherMajorClientDirs(15);
(realOthers.length > 0 ? onServer15 : describe.skip)(`real clients of another major (${realOthers.join(', ') || 'none on this machine'})`, () => {
  test.each(realOthers.map((d) => [d]))('%s is refused in the plan against PostgreSQL 15 (its own --version, through PgDataPathSettings.clientVersion)', async (dir) => {
    const { error, calls } = await recover(new PgDataPath({ clientVersion: (tool) => readClientVersionAt(join(dir, tool)) }));
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toMatch(new RegExp(`^the PostgreSQL client does not match the original test-db .*: pg_dump \\d+\\S* \\(${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/pg_dump\\)`));
    expect(calls).toEqual([]);
  });

  test.each(realOthers.map((d) => [d]))('%s as the pg_dump and pg_restore the copy would run (on PG_BIN_DIR) is refused in the plan', async (dir) => {
    const real = Object.fromEntries(CHECKED_CLIENTS.map((tool) => [tool, `exec ${JSON.stringify(join(dir, tool))} "$@"`]));
    const { error, output, calls } = await withWrappedBinaries(real, () => recover());
    expect(error).toBeInstanceOf(PlanError);
    expect(error!.message).toMatch(/^the PostgreSQL client does not match the original test-db .*: pg_dump (1[6-9])\.\d+ \(.*\), pg_restore \1\.\d+ \(.*\) against PostgreSQL 15/);
    expect(calls).toEqual([]);
    expect(output).not.toMatch(/restore schema/);
  });
});

onServer15('the temporary instance is checked too, once it accepts the secret', () => {
  test('a mismatch found there stops the run before the copy, and the temporary instance is deleted', async () => {
    // The local control plane restores the same server, so the client is what changes here: as if the restore had come up on another major.
    let reads = 0;
    const read: ClientVersionReader = async (tool) => {
      const real = await readClientVersion(tool);
      return ++reads > CHECKED_CLIENTS.length ? { ...real, output: real.output.replace(/\(PostgreSQL\) \S+/, '(PostgreSQL) 16.4') } : real;
    };
    const { error, output, calls } = await recover(new PgDataPath({ clientVersion: read }));
    expect(error).not.toBeInstanceOf(PlanError);
    const temp = calls.find((c) => c.action === 'restoreToPointInTime')!.id;
    expect(error!.message).toMatch(new RegExp(`^the PostgreSQL client does not match the temporary instance ${temp}: .*The original instance was not changed\\.$`, 's'));
    expect(output).toMatch(/RESULT: FAILED in step "Match credentials to the current secret"/);
    expect(calls.map((c) => c.action)).toContain('deleteInstance');
    expect(output).not.toMatch(/Copy, verify and swap in/);
  });
});
