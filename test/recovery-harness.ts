/**
 * Shared by the workflow and rehearsal tests: an RDS-like local instance,
 * databases seeded from SQL, a captured step log, and real process faults
 * (wrapper binaries on PG_BIN_DIR). Not a test file itself.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { testCa } from './pg-test-env';
import { StepLog } from '../buildspec/runner/log';
import { readStartRequest, type StartRequest } from '../buildspec/runner/plan';
import type { RdsControl } from '../buildspec/runner/ports';
import { CHECKED_CLIENTS, parseClientVersion } from '../buildspec/runner/postgres/client-version';
import { PgDataPath } from '../buildspec/runner/postgres/data-path';
import { pgSslOptions } from '../buildspec/runner/postgres/process';
import { PgTablePath } from '../buildspec/runner/postgres/tables';
import type { Polling, RecoveryDeps } from '../buildspec/runner/workflow';
import { LocalCluster, pgBinDir, quoteIdent, quoteLiteral, sleep } from '../local/cluster';
import { compareFingerprints, fingerprintDatabase } from '../local/fingerprint';
import { LocalRdsControl, type LocalRdsControlOptions } from '../local/rds-control';
import { BUILD_ENV, PROJECT_ENV, START_ENV } from '../src/contract';

export const SOURCE_ID = 'test-db';
export const MASTER = 'pitr_master';
export const FAST_POLLING: Polling = { initialMs: 50, maxMs: 500, progressEveryMs: 60_000, passwordTimeoutMs: 60_000 };

/** A recovery's dependencies on `instance` with the real data path and table path, polling fast. */
export function tableRecoveryDeps(instance: TestInstance, rds: RdsControl, log: RecoveryDeps['log']): RecoveryDeps {
  return {
    rds,
    data: new PgDataPath(),
    tables: new PgTablePath(),
    log,
    credentials: { username: MASTER, password: instance.password },
    tls: instance.cluster.sslOptions,
    polling: FAST_POLLING,
  };
}

/** A small database owned by the master user. `slowRows` adds a table whose every inserted row takes 20 ms (a CHECK calling pg_sleep), so a restore lasts long enough to interrupt. */
export function smallSeed(slowRows = 0): string {
  return `
\\set ON_ERROR_STOP on
SET ROLE ${MASTER};
CREATE SCHEMA shop;
CREATE TABLE shop.items (id serial PRIMARY KEY, name text NOT NULL, payload jsonb, tags text[]);
INSERT INTO shop.items (name, payload, tags) SELECT 'item ' || g, jsonb_build_object('n', g), ARRAY['a', 'b' || g % 3] FROM generate_series(1, 3000) g;
CREATE TABLE shop."Order Lines" ("Item" int REFERENCES shop.items (id), qty int NOT NULL);
INSERT INTO shop."Order Lines" SELECT 1 + g % 3000, g % 9 FROM generate_series(1, 5000) g;
CREATE VIEW shop.totals AS SELECT "Item", sum(qty) AS qty FROM shop."Order Lines" GROUP BY "Item";
${slowRows > 0 ? `
CREATE FUNCTION shop.slow_ok(int) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN true; END $$;
CREATE TABLE shop.slow (id int PRIMARY KEY CHECK (shop.slow_ok(id)));
INSERT INTO shop.slow SELECT generate_series(1, ${slowRows});` : ''}
`;
}

/** Damage to the small database after T: deleted and changed rows, a dropped table, a new one. */
export const SMALL_DAMAGE = `
\\set ON_ERROR_STOP on
SET ROLE ${MASTER};
DELETE FROM shop.items WHERE id % 4 = 0 AND id NOT IN (SELECT "Item" FROM shop."Order Lines");
UPDATE shop.items SET name = 'overwritten' WHERE id <= 50;
DROP VIEW shop.totals;
DROP TABLE shop."Order Lines";
CREATE TABLE shop.created_after_t (x int);
INSERT INTO shop.items (name) VALUES ('written after T');
`;

/** One RDS-like local instance, reused by the tests of a file. */
export class TestInstance {
  static async start(): Promise<TestInstance> {
    const password = randomBytes(12).toString('base64url');
    // TLS from the test CA; temporary instances come up on another loopback host (LocalRdsControl's default).
    const cluster = await LocalCluster.create({ archiveWal: true, tls: await testCa(), master: { username: MASTER, password } });
    return new TestInstance(cluster, password);
  }

  private readonly controls: LocalRdsControl[] = [];
  private readonly scratch = mkdtempSync(join(tmpdir(), 'pitr-test-'));
  private scripts = 0;

  private constructor(readonly cluster: LocalCluster, public password: string) {}

  /** A control plane over this instance; its automated backup is taken now, so restore times must come later. */
  async control(options: Partial<Omit<LocalRdsControlOptions, 'source' | 'sourceId' | 'masterUsername'>> = {}): Promise<LocalRdsControl> {
    const rds = await LocalRdsControl.create({
      source: this.cluster, sourceId: SOURCE_ID, masterUsername: MASTER, passwordChangeDelayMs: 100, ...options,
    });
    this.controls.push(rds);
    return rds;
  }

  /** Creates `name` (owned by the master user, as databases created on RDS are) and runs `seed` in it. */
  async createDatabase(name: string, seed: string): Promise<void> {
    await this.cluster.sql(`CREATE DATABASE ${quoteIdent(name)} OWNER ${quoteIdent(MASTER)}`);
    await this.runSql(name, seed);
  }

  /** Runs a script (or file, when `script` is a path ending in .sql) as the local superuser in `database`. */
  async runSql(database: string, script: string): Promise<void> {
    let file = script;
    if (!script.endsWith('.sql')) {
      file = join(this.scratch, `script-${++this.scripts}.sql`);
      writeFileSync(file, script);
    }
    await this.cluster.sqlFile(file, database);
  }

  /** A restore time strictly after everything committed so far and before anything that follows. */
  async markRestoreTime(): Promise<Date> {
    await sleep(20);
    const t = new Date();
    await sleep(20);
    return t;
  }

  /** Changes the master password, as a secret rotation after T would; returns the new one. */
  async rotatePassword(): Promise<string> {
    const password = randomBytes(12).toString('base64url');
    const client = new Client({ host: this.cluster.host, port: this.cluster.port, user: 'postgres', database: 'postgres' });
    await client.connect();
    try {
      await client.query(`ALTER ROLE ${quoteIdent(MASTER)} PASSWORD ${quoteLiteral(password)}`);
    } finally {
      await client.end();
    }
    this.password = password;
    return password;
  }

  /** A connected session as the user would open one: the master user, verify-full, the server's default settings. */
  async masterClient(database: string): Promise<Client> {
    const target = { host: this.cluster.host, port: this.cluster.port, user: MASTER, password: this.password, maintenanceDatabase: 'postgres', ...this.cluster.sslOptions };
    const client = new Client({ host: target.host, port: target.port, user: MASTER, password: this.password, database, ssl: pgSslOptions(target) });
    await client.connect();
    return client;
  }

  fingerprint(database: string): Promise<string[]> {
    return fingerprintDatabase(this.cluster, database);
  }

  async databases(): Promise<string[]> {
    return (await this.cluster.sql('SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY 1')).split('\n').filter(Boolean);
  }

  async dispose(): Promise<void> {
    for (const rds of this.controls) await rds.dispose().catch(() => undefined);
    await this.cluster.destroy();
    rmSync(this.scratch, { recursive: true, force: true });
  }
}

/** The start contract as a user would set it, through the same parser as on AWS. */
export function request(overrides: Record<string, string | undefined>): StartRequest {
  return readStartRequest({
    [PROJECT_ENV.SOURCE_INSTANCE_ID]: SOURCE_ID,
    [START_ENV.CONFIRM]: SOURCE_ID,
    [START_ENV.JOBS]: '2',
    [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '5',
    [BUILD_ENV.BUILD_ID]: `test:${randomBytes(4).toString('hex')}`,
    ...overrides,
  }, { cpus: 2 });
}

/** A step log whose lines are kept for assertions. */
export function capturedLog(): { log: StepLog; lines: string[]; text: () => string } {
  const lines: string[] = [];
  return { log: new StepLog((line) => lines.push(line)), lines, text: () => lines.join('\n') };
}

export function expectSame(expected: readonly string[], actual: readonly string[]): void {
  expect(compareFingerprints(expected, actual)).toEqual({ missing: [], unexpected: [] });
}

/**
 * First line of a wrapper that injects a fault into the copy: `--version` still answers as the real binary,
 * since the plan asks every client's version before anything is created (a fault meant for the copy must
 * not be taken for a client of another major).
 */
export const VERSION_AS_REAL = 'if [ "$1" = "--version" ]; then exec "$REAL" --version; fi';

/**
 * A PG_BIN_DIR whose binaries are the real ones, except those given here,
 * which are shell scripts (they may `exec` the real binary in `$REAL`).
 * Restores PG_BIN_DIR when `fn` settles.
 */
export async function withWrappedBinaries<T>(wrappers: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const real: string = `${pgBinDir()}`;
  const dir = mkdtempSync(join(tmpdir(), 'pitr-bin-'));
  chmodSync(dir, 0o755);
  for (const name of readdirSync(real)) {
    const script = wrappers[name];
    if (script !== undefined) {
      writeFileSync(join(dir, name), `#!/bin/sh\nREAL=${real}/${name}\n${script}\n`);
      chmodSync(join(dir, name), 0o755);
    } else {
      symlinkSync(join(real, name), join(dir, name));
    }
  }
  const previous = process.env.PG_BIN_DIR;
  process.env.PG_BIN_DIR = dir;
  try {
    return await fn();
  } finally {
    if (previous === undefined) delete process.env.PG_BIN_DIR;
    else process.env.PG_BIN_DIR = previous;
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Directories with a real pg_dump and pg_restore, that run here, of a major
 * other than `serverMajor`: PG_OTHER_CLIENT_DIRS (colon-separated), Debian's
 * /usr/lib/postgresql/<major>/bin, and the pg<major>/bin of the cache
 * scripts/setup.sh fills (/var/cache/cdk-rds-pitr, ~/.cache/cdk-rds-pitr).
 */
export function otherMajorClientDirs(serverMajor: number): string[] {
  const candidates = [
    ...(process.env.PG_OTHER_CLIENT_DIRS ?? '').split(':').filter(Boolean),
    ...[16, 17, 18].map((m) => `/usr/lib/postgresql/${m}/bin`),
  ];
  for (const cache of ['/var/cache/cdk-rds-pitr', join(process.env.HOME ?? '/root', '.cache', 'cdk-rds-pitr')]) {
    if (!existsSync(cache)) continue;
    for (const entry of readdirSync(cache).filter((e) => /^pg\d+$/.test(e))) candidates.push(join(cache, entry, 'bin'));
  }
  const runs = (dir: string): string | undefined => {
    try {
      const printed = CHECKED_CLIENTS.map((tool) => execFileSync(join(dir, tool), ['--version'], { encoding: 'utf8', timeout: 10_000 }));
      const majors = new Set(printed.map((p) => parseClientVersion(p)?.split('.')[0]));
      return majors.size === 1 && !majors.has(String(serverMajor)) && !majors.has(undefined) ? realpathSync(dir) : undefined;
    } catch {
      return undefined;
    }
  };
  return [...new Set(candidates.map(runs).filter((d): d is string => d !== undefined))];
}
