/**
 * `runner.js rehearse`: a full recovery on throwaway local PostgreSQL.
 *
 * A local "instance" (WAL archiving, an RDS-like master user) gets a sample
 * dataset; the restore time T is recorded together with an independent
 * fingerprint of every database; the data is damaged and the master
 * password rotated; then the same runbook as on AWS runs through the local
 * control plane and the real data path. Finally the result is compared with
 * the fingerprint taken at T, and the clusters are removed (or kept with
 * `--keep`).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { LOOPBACK, LocalCluster, SECOND_HOST, pgBin, pgBinDir, quoteIdent, quoteLiteral, sleep } from './cluster';
import { compareFingerprints, fingerprintDatabase, listAllDatabases } from './fingerprint';
import { LocalRdsControl } from './rds-control';
import { SAMPLE_DAMAGE_SQL, SAMPLE_SEED_SQL } from './rehearse-sample';
import { TestCa } from './test-ca';
import { BUILD_ENV, PROJECT_ENV, START_ENV, STRATEGIES, parseStrategy, type Strategy } from '../../../src/contract';
import { StepLog } from '../log';
import { readStartRequest } from '../plan';
import { PgDataPath } from '../postgres/data-path';
import { runRecovery, type Polling } from '../workflow';

/** Exit codes of `rehearse`. */
export const REHEARSE_EXIT = {
  PASSED: 0,
  /** The runbook failed (it says why); the independent check did not run. */
  RECOVERY_FAILED: 1,
  /** The runbook reported success but the result differs from the state at T. */
  MISMATCH: 2,
  /** The rehearsal could not set itself up (start the instance, load the dataset, damage it). */
  SETUP_FAILED: 3,
  /** Bad arguments or an unusable seed/damage file; nothing was started. */
  USAGE: 64,
} as const;

export interface RehearseOptions {
  readonly seedFile?: string;
  readonly damageFile?: string;
  readonly keep: boolean;
  readonly strategy: Strategy;
  /** `verify-full` (the default, as on AWS): the instances serve TLS from a throwaway CA; `disable`: no TLS. */
  readonly sslMode: RehearsalSslMode;
  /** Put the point-in-time copy on the same host as the original (no streaming): the route the tests took before. */
  readonly oneHost: boolean;
  readonly help?: boolean;
}

const SSL_MODES = ['verify-full', 'disable'] as const;
type RehearsalSslMode = typeof SSL_MODES[number];

const USAGE = 'usage: runner.js rehearse [--seed file.sql] [--damage file.sql] [--strategy swap|replace] [--sslmode verify-full|disable] [--one-host] [--keep] [--help]';

/** `rehearse --help`. */
export const REHEARSE_HELP = `${USAGE}

A full point-in-time recovery on throwaway local PostgreSQL, through the same runbook and data path as on AWS.
By default it takes the production route: the temporary instance (the point-in-time copy) is another host
(127.0.0.2) than the original (127.0.0.1), so large tables stream COPY to COPY, and every connection uses TLS
with sslmode=verify-full against a throwaway CA, as the runner does with the RDS CA bundle.

  --seed FILE       SQL run as the local superuser in database "orders" (owned by the master user) before T
                    (default: the repository's rich dataset, or a built-in sample outside the repository)
  --damage FILE     SQL run the same way after T: the mistake to recover from
  --strategy S      swap (default) or replace
  --sslmode M       verify-full (default) or disable (no TLS on the instances)
  --one-host        the point-in-time copy on the original's host (no streaming)
  --keep            leave the original running; prints how to connect and how to stop it
  --help            this text

Exit codes: ${REHEARSE_EXIT.PASSED} every database equals its state at T; ${REHEARSE_EXIT.RECOVERY_FAILED} the recovery failed; ${REHEARSE_EXIT.MISMATCH} the result differs from T; ${REHEARSE_EXIT.SETUP_FAILED} the rehearsal's own setup failed; ${REHEARSE_EXIT.USAGE} bad arguments; 130/143 stopped by SIGINT/SIGTERM.`;

/**
 * The sample datasets are small; production tables are not. Streaming
 * starts at 256 KiB here (16 MiB on AWS) so the rehearsal's larger tables
 * take the streaming route, as a production database's would.
 */
const REHEARSAL_STREAM_MIN_BYTES = 256 * 1024;
const SOURCE_ID = 'rehearsal-db';
const MASTER_USER = 'pitr_master';
/** The database the seed and damage scripts run in (they may create and \connect to others). */
export const REHEARSAL_DATABASE = 'orders';
/** The repository: three levels up from buildspec/runner/local/*.ts, two from assets/runner/runner.js. */
const REPO_ROOT = [resolve(__dirname, '..', '..', '..'), resolve(__dirname, '..', '..')]
  .find((dir) => existsSync(join(dir, 'test', 'fixtures'))) ?? resolve(__dirname, '..', '..');
const RICH_SEED = join(REPO_ROOT, 'test', 'fixtures', 'rich-dataset.sql');
const RICH_DAMAGE = join(REPO_ROOT, 'test', 'fixtures', 'damage.sql');
const LOCAL_POLLING: Polling = { initialMs: 100, maxMs: 1_000, progressEveryMs: 60_000, passwordTimeoutMs: 120_000 };

export function parseRehearseArgs(argv: readonly string[]): RehearseOptions {
  let seedFile: string | undefined;
  let damageFile: string | undefined;
  let keep = false;
  let strategy: Strategy = 'swap';
  let sslMode: RehearsalSslMode = 'verify-full';
  let oneHost = false;
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${arg}: a value is required. ${USAGE}`);
      return v;
    };
    if (arg === '--seed') {seedFile = resolve(next());} else if (arg === '--damage') {damageFile = resolve(next());} else if (arg === '--keep') {keep = true;} else if (arg === '--strategy') {strategy = parseStrategy(next(), '--strategy');} else if (arg === '--sslmode') {
      const mode = next();
      if (!(SSL_MODES as readonly string[]).includes(mode)) throw new Error(`--sslmode: ${JSON.stringify(mode)} is not accepted; accepted: ${SSL_MODES.join(' | ')}. ${USAGE}`);
      sslMode = mode as RehearsalSslMode;
    } else if (arg === '--one-host') {oneHost = true;} else if (arg === '--help' || arg === '-h') {help = true;} else {throw new Error(`${JSON.stringify(arg)} is not an option of rehearse. ${USAGE}`);}
  }
  for (const [flag, file] of [['--seed', seedFile], ['--damage', damageFile]] as const) {
    if (file !== undefined && !existsSync(file)) throw new Error(`${flag}: ${JSON.stringify(file)} does not exist; accepted: a SQL file psql can run. Nothing was started.`);
  }
  if (!(STRATEGIES as readonly string[]).includes(strategy)) throw new Error(USAGE);
  return { seedFile, damageFile, keep, strategy, sslMode, oneHost, help };
}

/** Runs the rehearsal; resolves to its exit code. `signal` aborts it (SIGTERM/SIGINT). */
export async function rehearse(options: RehearseOptions, signal?: AbortSignal, out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  const log = new StepLog(out);
  const dataset = chooseDataset(options);
  log.info(`rehearsal: PostgreSQL binaries in ${pgBinDir()}; dataset ${dataset.seedName}; damage ${dataset.damageName}; strategy ${options.strategy}`);
  const temporaryHost = options.oneHost ? LOOPBACK : SECOND_HOST;
  log.info(`rehearsal route: original on ${LOOPBACK}, point-in-time copy on ${temporaryHost}${options.oneHost ? ' (one host: nothing streams)' : ` (two hosts: tables from ${REHEARSAL_STREAM_MIN_BYTES / 1024} KiB stream)`}; `
    + `TLS ${options.sslMode === 'verify-full' ? 'verify-full against a throwaway CA' : 'off'}`);
  let password = randomBytes(18).toString('base64url');
  log.redact(password);
  const scratch = mkdtempSync(join(tmpdir(), 'pitr-rehearse-'));
  let source: LocalCluster | undefined;
  let rds: LocalRdsControl | undefined;
  let ca: TestCa | undefined;
  try {
    if (options.sslMode === 'verify-full') ca = await TestCa.create('cdk-rds-pitr rehearsal CA');
    const tls = ca;
    source = await log.step('Rehearsal: start the local "instance" with WAL archiving', () => LocalCluster.create({ archiveWal: true, tls, master: { username: MASTER_USER, password } }));
    log.info(`instance ${SOURCE_ID}: ${source.uri('postgres', MASTER_USER)} (master user ${MASTER_USER}, not a superuser), data in ${source.baseDir}`);
    const src = source;
    rds = await log.step('Rehearsal: take the automated base backup', () => LocalRdsControl.create({ source: src, sourceId: SOURCE_ID, masterUsername: MASTER_USER, temporaryHost }));
    await log.step(`Rehearsal: load ${dataset.seedName} into database ${REHEARSAL_DATABASE}`, async () => {
      // Owned by the master user, as a database created on RDS is.
      await src.sql(`CREATE DATABASE ${quoteIdent(REHEARSAL_DATABASE)} OWNER ${quoteIdent(MASTER_USER)}`);
      await runSql(src, dataset.seed, scratch);
    });

    const atT = await log.step('Rehearsal: record the restore time T and fingerprint every database', async () => {
      const fingerprints = await fingerprintAll(src);
      await sleep(20);
      const restoreTime = new Date();
      await sleep(20);
      log.info(`T = ${restoreTime.toISOString()}; databases at T: ${[...fingerprints.keys()].join(', ')}`);
      return { restoreTime, fingerprints };
    });

    const damaged = await log.step(`Rehearsal: damage the data (${dataset.damageName}) and rotate the master password`, async () => {
      await runSql(src, dataset.damage, scratch);
      // Like a secret rotation after T: the point-in-time copy will only know the old password.
      const rotated = randomBytes(18).toString('base64url');
      log.redact(rotated);
      await alterPassword(src, rotated);
      password = rotated;
      return fingerprintAll(src);
    });
    for (const [db, facts] of atT.fingerprints) {
      const after = damaged.get(db);
      const changed = after ? compareFingerprints(facts, after) : undefined;
      log.info(`  ${db}: ${after ? `${changed!.missing.length + changed!.unexpected.length} facts differ from T` : 'dropped'}`);
    }

    const env: Record<string, string> = {
      [PROJECT_ENV.SOURCE_INSTANCE_ID]: SOURCE_ID,
      [START_ENV.RESTORE_TIME]: atT.restoreTime.toISOString(),
      [START_ENV.CONFIRM]: SOURCE_ID,
      [START_ENV.STRATEGY]: options.strategy,
      // No DATABASES: the default, every database that existed at T, as on AWS.
      [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '10',
      [BUILD_ENV.BUILD_ID]: `rehearsal:${randomUUID()}`,
    };
    const request = readStartRequest(env, { cpus: availableParallelism() });
    log.info('---- the recovery runbook, as on AWS ----');
    let outcome;
    try {
      outcome = await runRecovery(request, {
        rds,
        data: new PgDataPath({ streamMinBytes: options.oneHost ? undefined : REHEARSAL_STREAM_MIN_BYTES }),
        log,
        credentials: { username: MASTER_USER, password },
        tls: src.sslOptions,
        scratchDir: scratch,
        polling: LOCAL_POLLING,
        signal,
      });
    } catch (err) {
      log.warn(`REHEARSAL FAILED: the recovery did not complete: ${(err as Error).message}`);
      return REHEARSE_EXIT.RECOVERY_FAILED;
    }
    log.info('---- independent check against the fingerprints taken at T ----');
    const problems = await log.step('Rehearsal: compare every database with its state at T', async () => {
      const found: string[] = [];
      const now = new Set(await listAllDatabases(src));
      for (const [db, expected] of atT.fingerprints) {
        if (!now.has(db)) {
          found.push(`${db}: missing after the recovery`);
          continue;
        }
        const diff = compareFingerprints(expected, await fingerprintDatabase(src, db));
        if (diff.missing.length + diff.unexpected.length === 0) {
          log.info(`  ${db}: identical to T (${expected.length} facts)`);
        } else {
          found.push(`${db}: differs from T:\n${describeDiff(diff)}`);
        }
      }
      for (const r of outcome.results) {
        if (!r.keptAs) continue;
        const before = damaged.get(r.database);
        if (!before) continue;
        const diff = compareFingerprints(before, await fingerprintDatabase(src, r.keptAs));
        if (diff.missing.length + diff.unexpected.length === 0) log.info(`  ${r.keptAs}: holds the pre-recovery data, post-T writes included`);
        else found.push(`${r.keptAs}: differs from the pre-recovery state:\n${describeDiff(diff)}`);
      }
      for (const db of now) {
        if (!atT.fingerprints.has(db) && !outcome.results.some((r) => r.keptAs === db)) log.info(`  ${db}: created after T, left alone`);
      }
      return found;
    });
    if (problems.length > 0) {
      log.warn(`REHEARSAL FAILED: the runbook reported success, but the result is not the state at T:\n${problems.join('\n')}`);
      return REHEARSE_EXIT.MISMATCH;
    }
    log.info(`REHEARSAL PASSED: ${outcome.results.length} database(s) equal their state at T ${atT.restoreTime.toISOString()}, strategy ${options.strategy}.`);
    return REHEARSE_EXIT.PASSED;
  } catch (err) {
    log.warn(`REHEARSAL FAILED: the rehearsal itself could not run (the recovery runbook was not involved): ${(err as Error).message}`);
    return REHEARSE_EXIT.SETUP_FAILED;
  } finally {
    await rds?.dispose().catch((err) => log.warn(`could not remove a temporary instance: ${(err as Error).message}`));
    if (source && options.keep) {
      log.info('--keep: the instance is still running:');
      log.info(`  psql '${source.uri('postgres', 'postgres')}'   (local superuser)`);
      const tlsQuery = ca ? `?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.caFile)}` : '';
      log.info(`  psql '${source.uri('postgres', MASTER_USER)}${tlsQuery}'   (master user; its password was random and is not shown)`);
      log.info(`  stop and remove it: ${process.getuid?.() === 0 ? 'runuser -u postgres -- ' : ''}${pgBin('pg_ctl')} -D ${source.dataDir} -m fast stop && rm -rf ${source.baseDir}`);
    } else {
      await source?.destroy().catch((err) => log.warn(`could not remove ${source!.baseDir}: ${(err as Error).message}`));
    }
    rmSync(scratch, { recursive: true, force: true });
    if (!options.keep) ca?.destroy();
  }
}

interface Dataset {
  readonly seed: { readonly file?: string; readonly sql?: string };
  readonly damage: { readonly file?: string; readonly sql?: string };
  readonly seedName: string;
  readonly damageName: string;
}

/** --seed/--damage, else the repository's rich fixtures when they are there, else the built-in sample. */
function chooseDataset(options: RehearseOptions): Dataset {
  const rich = existsSync(RICH_SEED) && existsSync(RICH_DAMAGE);
  const seed = options.seedFile ? { file: options.seedFile } : rich ? { file: RICH_SEED } : { sql: SAMPLE_SEED_SQL };
  const damage = options.damageFile ? { file: options.damageFile } : rich && !options.seedFile ? { file: RICH_DAMAGE } : { sql: SAMPLE_DAMAGE_SQL };
  return { seed, damage, seedName: seed.file ?? 'the built-in sample', damageName: damage.file ?? 'the built-in damage' };
}

async function fingerprintAll(cluster: LocalCluster): Promise<Map<string, string[]>> {
  const result = new Map<string, string[]>();
  for (const db of await listAllDatabases(cluster)) result.set(db, await fingerprintDatabase(cluster, db));
  return result;
}

/** Runs a seed or damage script as the local superuser, connected to the rehearsal database. */
async function runSql(cluster: LocalCluster, sql: { file?: string; sql?: string }, scratch: string): Promise<void> {
  let file = sql.file;
  if (!file) {
    file = join(scratch, `script-${randomUUID()}.sql`);
    writeFileSync(file, sql.sql!);
  }
  if (readFileSync(file, 'utf8').trim() === '') throw new Error(`${file} is empty; accepted: a SQL file psql can run.`);
  await cluster.sqlFile(file, REHEARSAL_DATABASE);
}

async function alterPassword(cluster: LocalCluster, password: string): Promise<void> {
  const client = new Client({ host: cluster.host, port: cluster.port, user: 'postgres', database: 'postgres' });
  await client.connect();
  try {
    await client.query(`ALTER ROLE ${quoteIdent(MASTER_USER)} PASSWORD ${quoteLiteral(password)}`);
  } finally {
    await client.end();
  }
}

function describeDiff(diff: { missing: string[]; unexpected: string[] }): string {
  const lines = [...diff.missing.slice(0, 15).map((l) => `    - at T, not now: ${l}`), ...diff.unexpected.slice(0, 15).map((l) => `    + now, not at T: ${l}`)];
  const more = diff.missing.length + diff.unexpected.length - lines.length;
  return lines.join('\n') + (more > 0 ? `\n    (${more} more)` : '');
}
