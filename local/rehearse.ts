/**
 * The rehearsal (`npx projen rehearse`): a full recovery on throwaway local
 * PostgreSQL, by default through what CodeBuild runs.
 *
 * An "instance" (WAL archiving, an RDS-like master user) gets a sample
 * dataset; the restore time T is recorded together with an independent
 * fingerprint of every database; the data is damaged and the master
 * password rotated; then the runbook runs, and the result is compared with
 * the fingerprint taken at T. The clusters are removed (or kept, `--keep`).
 *
 * - `--adapter aws` (default): the instance lives in the RDS stand-in
 *   (real PostgreSQL PITR behind the RDS Query API), its secret in
 *   moto_server's Secrets Manager, and the build phase of buildspec.yml runs
 *   as CodeBuild runs it: `node runner.js recover` (the bundled runner,
 *   AWS SDK adapter, TLS verify-full against PG_CA_BUNDLE = a throwaway CA).
 * - `--adapter local`: the runbook in this process through the local
 *   control plane (local/rds-control.ts); no AWS SDK, no moto.
 * - `--aurora` (with `--adapter aws`): the original is an Aurora PostgreSQL
 *   DB cluster in the stand-in (`SOURCE_CLUSTER_ID`), recovered through a
 *   temporary cluster and its writer, as on Aurora (issue #20).
 *
 * Bundled on its own (assets/rehearsal/rehearse.js), never shipped: the
 * stand-ins stay out of the npm package.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { tmpdir, availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CreateTopicCommand, SNSClient } from '@aws-sdk/client-sns';
import { LOOPBACK, LocalCluster, SECOND_HOST, pgBin, pgBinDir, quoteIdent, sleep } from './cluster';
import { startCodeBuildApi, type CodeBuildApi } from './codebuild-api';
import { compareFingerprints, fingerprintDatabase, listAllDatabases } from './fingerprint';
import { DUMMY_AWS_ENV, motoClientConfig, startMoto, type MotoServer } from './moto-server';
import { DEFAULT_PG_MAJOR, PG_MAJORS, parsePgMajor, serverBinDir, usePgMajor, type PgMajor } from './pg-major';
import { setRolePassword } from './pitr-copy';
import { LocalRdsControl } from './rds-control';
import { tlsPlacement } from './rds-standin/placement';
import { RdsStandIn } from './rds-standin/server';
import { BAD_CHANGE_SQL, CHANGES_SEED_SQL, rehearseChanges } from './rehearse-changes';
import { evidenceTap, rehearseDrill } from './rehearse-drill';
import { SAMPLE_DAMAGE_SQL, SAMPLE_SEED_SQL } from './rehearse-sample';
import { TABLES_DAMAGE_SQL, TABLES_SEED_SQL, checkTableRecovery, keyedRows, parseRehearsalTables, psqlAs, tablesOf } from './rehearse-tables';
import { TestCa } from './test-ca';
import { readDrillRequest, runDrill } from '../buildspec/runner/drill';
import { StepLog } from '../buildspec/runner/log';
import { readStartRequest } from '../buildspec/runner/plan';
import { changesSchemaName, recordChanges } from '../buildspec/runner/postgres/changes';
import { DEFAULT_STREAM_MIN_BYTES, PgDataPath } from '../buildspec/runner/postgres/data-path';
import { keptName } from '../buildspec/runner/postgres/names';
import { PgTablePath, tableSchemaName } from '../buildspec/runner/postgres/tables';
import { runRecovery, type Polling } from '../buildspec/runner/workflow';
import { TUNING_ENV } from '../src/contract';
import { BUILD_ENV, PROJECT_ENV, START_ENV, STRATEGIES, parseStrategy, type Strategy } from '../src/contract';

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
  /** `aws` (default): `runner.js recover` against the RDS stand-in and moto; `local`: the runbook in process, local control plane. */
  readonly adapter: RehearsalAdapter;
  /** A restore drill instead of a recovery, then a check that the original is untouched. */
  readonly drill?: boolean;
  /** With `drill`: a real recovery afterwards, timed, to compare with the drill's estimate. */
  readonly compareRecovery?: boolean;
  /** `--tables`: a table-level recovery (TABLES) of the rehearsal database instead of whole databases (rehearse-tables.ts). */
  readonly tables?: string;
  /** `--changes`: the record of writes made after T and its replay after a bad change (rehearse-changes.ts). */
  readonly changes?: boolean;
  /** `--pg`: the PostgreSQL major of the instances and the client (local/pg-major.ts); default PG_MAJOR, else 15. */
  readonly pgMajor?: PgMajor;
  /** `--aurora`: the original is an Aurora PostgreSQL DB cluster (SOURCE_CLUSTER_ID), not an instance; `--adapter aws` only. */
  readonly aurora?: boolean;
  readonly help?: boolean;
  /** Test only (no flag): AFTER for `changes` instead of the bad change's commit time. */
  readonly changesAfterOverride?: (times: { restoreTime: Date; badCommit: string }) => string;
}

const SSL_MODES = ['verify-full', 'disable'] as const;
type RehearsalSslMode = typeof SSL_MODES[number];
const ADAPTERS = ['aws', 'local'] as const;
type RehearsalAdapter = typeof ADAPTERS[number];

const USAGE = 'usage: npx projen rehearse [--seed file.sql] [--damage file.sql] [--strategy swap|replace] [--tables schema.table,...] [--changes] [--adapter aws|local] '
  + '[--pg 15|17|18] [--aurora] [--sslmode verify-full|disable] [--one-host] [--drill [--compare-recovery]] [--keep] [--help]';

/** `rehearse --help`. */
export const REHEARSE_HELP = `${USAGE}

A full point-in-time recovery on throwaway local PostgreSQL, through what CodeBuild runs.
By default (--adapter aws) the original "instance" lives in an RDS stand-in (the RDS API in front of real
PostgreSQL point-in-time recovery) and its secret in moto_server's Secrets Manager, and the build phase of
buildspec.yml runs as on CodeBuild: node assets/runner/runner.js recover, through the AWS SDK, connecting with
sslmode=verify-full against PG_CA_BUNDLE (a throwaway CA). The temporary instance is another host (127.0.0.2)
than the original (127.0.0.1), so large tables stream COPY to COPY. Needs moto_server on PATH
(pip install 'moto[server]') and \`npx projen bundle\`.

  --seed FILE       SQL run as the local superuser in database "orders" (owned by the master user) before T
                    (default: the repository's rich dataset, or a built-in sample outside the repository)
  --damage FILE     SQL run the same way after T: the mistake to recover from
  --strategy S      swap (default) or replace
  --tables LIST     recover only these tables of "orders" (TABLES, e.g. billing.invoice) beside the live ones; then run the
                    undo SQL from the report as the master user and check each table holds its rows at T plus the rows
                    inserted after T (default dataset and damage: invoices, half of them deleted, some updated, new ones added)
  --changes         the record of writes made after T: good writes, T, a bad UPDATE, more good writes (inserts, updates,
                    deletes in two tables with a foreign key); the recovery with AFTER = the bad change's commit time
                    (the instance keeps commit timestamps); then the stored replay SQL run as the master user, and a check
                    by content that the result is T's state plus exactly the good writes made after the bad change
  --adapter A       aws (default: runner.js recover, AWS SDK, stand-ins) or local (the runbook in this process
                    through the local control plane; no AWS SDK, no moto_server)
  --aurora          the original is an Aurora PostgreSQL DB cluster (SOURCE_CLUSTER_ID) in the stand-in: the runner restores a
                    temporary cluster, adds its writer, sets the password on the cluster and deletes both (only with --adapter aws)
  --pg MAJOR        the PostgreSQL major of the instances and of the client: ${PG_MAJORS.join(', ')} (default: PG_MAJOR, else ${DEFAULT_PG_MAJOR});
                    17 and 18 are installed by PG_MAJORS=15,17,18 bash scripts/setup.sh
  --sslmode M       verify-full (default) or disable (no TLS on the instances; only with --adapter local,
                    because runner.js recover always verifies TLS, as on AWS)
  --one-host        the point-in-time copy on the original's host (no streaming)
  --drill           a restore drill (MODE=drill) instead of a recovery: prints the evidence record, then checks that the
                    original is untouched (every table, setting, role, the database list, write counters, a held session)
  --compare-recovery  with --drill: then a real recovery to the latest restorable time, timed, against the drill's estimate
  --keep            leave the original running; prints how to connect and how to stop it
  --help            this text

Exit codes: ${REHEARSE_EXIT.PASSED} every database equals its state at T; ${REHEARSE_EXIT.RECOVERY_FAILED} the recovery failed; ${REHEARSE_EXIT.MISMATCH} the result differs from T; ${REHEARSE_EXIT.SETUP_FAILED} the rehearsal's own setup failed (moto_server missing, runner not bundled, ...); ${REHEARSE_EXIT.USAGE} bad arguments; 130/143 stopped by SIGINT/SIGTERM.`;

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
/** The repository: one level up from local/*.ts, two from assets/rehearsal/rehearse.js. */
const REPO_ROOT = [resolve(__dirname, '..'), resolve(__dirname, '..', '..')]
  .find((dir) => existsSync(join(dir, 'test', 'fixtures'))) ?? resolve(__dirname, '..', '..');
const RICH_SEED = join(REPO_ROOT, 'test', 'fixtures', 'rich-dataset.sql');
const RICH_DAMAGE = join(REPO_ROOT, 'test', 'fixtures', 'damage.sql');
/** What CodeBuild downloads as the build's source: the bundled runner (with buildspec.yml). */
export const RUNNER_BUNDLE = join(REPO_ROOT, 'assets', 'runner', 'runner.js');
const LOCAL_POLLING: Polling = { initialMs: 100, maxMs: 1_000, progressEveryMs: 60_000, passwordTimeoutMs: 120_000 };
/** The stand-in changes status in milliseconds; polling at AWS's 5-30 s would make the rehearsal wait for nothing. */
const STANDIN_POLL_INTERVAL_MS = LOCAL_POLLING.initialMs;

export function parseRehearseArgs(argv: readonly string[]): RehearseOptions {
  let seedFile: string | undefined;
  let damageFile: string | undefined;
  let keep = false;
  let strategy: Strategy = 'swap';
  let sslMode: RehearsalSslMode = 'verify-full';
  let oneHost = false;
  let adapter: RehearsalAdapter = 'aws';
  let help = false;
  let drill = false;
  let compareRecovery = false;
  let tables: string | undefined;
  let pgMajor: PgMajor | undefined;
  let aurora = false;
  let changes = false;
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
    } else if (arg === '--adapter') {
      const value = next();
      if (!(ADAPTERS as readonly string[]).includes(value)) throw new Error(`--adapter: ${JSON.stringify(value)} is not accepted; accepted: ${ADAPTERS.join(' | ')}. ${USAGE}`);
      adapter = value as RehearsalAdapter;
    } else if (arg === '--pg') {
      pgMajor = parsePgMajor(next(), '--pg');
    } else if (arg === '--tables') {
      tables = next();
      parseRehearsalTables(tables);
    } else if (arg === '--aurora') {
      aurora = true;
    } else if (arg === '--changes') {
      changes = true;
    } else if (arg === '--drill') {drill = true;} else if (arg === '--compare-recovery') {compareRecovery = true;} else if (arg === '--one-host') {oneHost = true;} else if (arg === '--help' || arg === '-h') {help = true;} else {throw new Error(`${JSON.stringify(arg)} is not an option of rehearse. ${USAGE}`);}
  }
  for (const [flag, file] of [['--seed', seedFile], ['--damage', damageFile]] as const) {
    if (file !== undefined && !existsSync(file)) throw new Error(`${flag}: ${JSON.stringify(file)} does not exist; accepted: a SQL file psql can run. Nothing was started.`);
  }
  if (!(STRATEGIES as readonly string[]).includes(strategy)) throw new Error(USAGE);
  if (sslMode === 'disable' && adapter === 'aws') {
    throw new Error('--sslmode disable: runner.js recover always connects with sslmode=verify-full, as on AWS; accepted with --adapter aws (the default): '
      + `verify-full. For a rehearsal without TLS add --adapter local. ${USAGE}`);
  }
  if (aurora && adapter !== 'aws') {
    throw new Error(`--aurora: the local control plane (--adapter local) has no Aurora DB clusters; accepted with --adapter aws (the default). ${USAGE}`);
  }
  if (compareRecovery && !drill) throw new Error(`--compare-recovery: compares a drill's estimate with a recovery; accepted only with --drill. ${USAGE}`);
  if (drill && tables !== undefined) {
    throw new Error(`--tables: a drill copies whole databases onto the temporary instance; accepted: --drill or --tables, not both. ${USAGE}`);
  }
  if (changes) {
    const other = drill ? '--drill' : tables !== undefined ? '--tables' : seedFile ? '--seed' : damageFile ? '--damage' : strategy !== 'swap' ? `--strategy ${strategy}` : undefined;
    if (other) {
      throw new Error(`--changes: rehearses the record of writes made after T on its own dataset, after a swap recovery; accepted alone (with --adapter, --pg, --one-host, --keep), not with ${other}. ${USAGE}`);
    }
  }
  return {
    seedFile,
    damageFile,
    keep,
    strategy,
    sslMode,
    oneHost,
    adapter,
    drill,
    compareRecovery,
    help,
    ...(tables !== undefined ? { tables } : {}),
    ...(changes ? { changes } : {}),
    ...(pgMajor !== undefined ? { pgMajor } : {}),
    ...(aurora ? { aurora } : {}),
  };
}

/** Runs the rehearsal; resolves to its exit code. `signal` aborts it (SIGTERM/SIGINT). */
export async function rehearse(options: RehearseOptions, signal?: AbortSignal, sink: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<number> {
  // A drill's evidence record is read back from its log line, as a person would find it in the build log.
  const tap = evidenceTap(sink);
  const out = tap.out;
  const log = new StepLog(out);
  const dataset = chooseDataset(options);
  let major: PgMajor;
  try {
    major = usePgMajor(options.pgMajor, '--pg');
  } catch (err) {
    log.warn(`rehearsal: ${(err as Error).message}`);
    return REHEARSE_EXIT.SETUP_FAILED;
  }
  log.info(`rehearsal: PostgreSQL ${major}: server binaries in ${serverBinDir() ?? 'PATH'}, client in ${pgBinDir() ?? 'PATH'}; dataset ${dataset.seedName}; damage ${dataset.damageName}; strategy ${options.strategy}`);
  const temporaryHost = options.oneHost ? LOOPBACK : SECOND_HOST;
  const streamMinBytes = options.oneHost ? undefined : REHEARSAL_STREAM_MIN_BYTES;
  log.info(options.adapter === 'aws'
    ? `rehearsal path: as on CodeBuild: node ${RUNNER_BUNDLE} recover, through the AWS SDK, against an RDS stand-in (real PostgreSQL) and moto_server's Secrets Manager`
      + (options.aurora ? `; the original is the Aurora PostgreSQL DB cluster ${SOURCE_ID} (${PROJECT_ENV.SOURCE_CLUSTER_ID})` : '')
    : 'rehearsal path: --adapter local: the runbook in this process through the local control plane (no AWS SDK)');
  log.info(`rehearsal route: original on ${LOOPBACK}, point-in-time copy on ${temporaryHost}${streamMinBytes === undefined ? ` (one host: tables from ${DEFAULT_STREAM_MIN_BYTES / 2 ** 20} MiB stream, as on AWS)` : ` (two hosts: tables from ${streamMinBytes / 1024} KiB stream)`}; `
    + `TLS ${options.sslMode === 'verify-full' ? 'verify-full against a throwaway CA' : 'off'}`);
  let password = randomBytes(18).toString('base64url');
  log.redact(password);
  const scratch = mkdtempSync(join(tmpdir(), 'pitr-rehearse-'));
  let rig: Rig | undefined;
  let ca: TestCa | undefined;
  try {
    if (options.sslMode === 'verify-full') ca = await TestCa.create('cdk-rds-pitr rehearsal CA');
    // --changes: the instance keeps commit timestamps, as with track_commit_timestamp = 1 in its DB parameter group.
    const sourceSettings = options.changes ? { track_commit_timestamp: 'on' } : undefined;
    const rigOptions: RigOptions = {
      log, out, password, ca, temporaryHost, streamMinBytes, scratch, sourceSettings, aurora: options.aurora ?? false,
    };
    rig = options.adapter === 'aws' ? await AwsRig.create(rigOptions) : await LocalRig.create(rigOptions);
    const src = rig.source;
    log.info(`${options.aurora ? 'Aurora DB cluster' : 'instance'} ${SOURCE_ID}: ${src.uri('postgres', MASTER_USER)} (master user ${MASTER_USER}, not a superuser), data in ${src.baseDir}`);
    await log.step(`Rehearsal: load ${dataset.seedName} into database ${REHEARSAL_DATABASE}`, async () => {
      // Owned by the master user, as a database created on RDS is.
      await src.sql(`CREATE DATABASE ${quoteIdent(REHEARSAL_DATABASE)} OWNER ${quoteIdent(MASTER_USER)}`);
      await runSql(src, dataset.seed, scratch);
    });

    if (options.drill) {
      const result = await rehearseDrill({
        rig, log, tap, password, sourceId: SOURCE_ID, database: REHEARSAL_DATABASE, compareRecovery: options.compareRecovery ?? false, signal,
      });
      return result.outcome === 'passed' ? REHEARSE_EXIT.PASSED : result.outcome === 'drill-failed' ? REHEARSE_EXIT.RECOVERY_FAILED : REHEARSE_EXIT.MISMATCH;
    }
    if (options.changes) {
      const result = await rehearseChanges({
        rig,
        log,
        masterUser: MASTER_USER,
        sourceId: SOURCE_ID,
        database: REHEARSAL_DATABASE,
        scratch,
        keep: options.keep,
        fingerprintAll: () => fingerprintAll(src),
        compareWithT: (fingerprints, damaged, stamp) => compareWithT({ src, atT: fingerprints, damaged, stamp, strategy: 'swap', log }),
        afterOverride: options.changesAfterOverride,
        signal,
      });
      return result.outcome === 'passed' ? REHEARSE_EXIT.PASSED : result.outcome === 'recovery-failed' ? REHEARSE_EXIT.RECOVERY_FAILED : REHEARSE_EXIT.MISMATCH;
    }

    const tableNames = options.tables === undefined ? [] : await tablesOf(src, REHEARSAL_DATABASE, parseRehearsalTables(options.tables));
    const readTables = async (): Promise<Map<string, Awaited<ReturnType<typeof keyedRows>>>> =>
      new Map(await Promise.all(tableNames.map(async (t) => [t, await keyedRows(src, REHEARSAL_DATABASE, t)] as const)));
    const tablesAtT = await readTables();
    const atT = await log.step('Rehearsal: record the restore time T and fingerprint every database', async () => {
      const fingerprints = await fingerprintAll(src);
      await sleep(20);
      const restoreTime = new Date();
      await sleep(20);
      log.info(`T = ${restoreTime.toISOString()}; databases at T: ${[...fingerprints.keys()].join(', ')}`);
      return { restoreTime, fingerprints };
    });

    const activeRig = rig;
    const damaged = await log.step(`Rehearsal: damage the data (${dataset.damageName}) and rotate the master password`, async () => {
      await runSql(src, dataset.damage, scratch);
      // Like a secret rotation after T: the point-in-time copy will only know the old password.
      const rotated = randomBytes(18).toString('base64url');
      log.redact(rotated);
      await activeRig.rotatePassword(rotated);
      password = rotated;
      return fingerprintAll(src);
    });
    for (const [db, facts] of atT.fingerprints) {
      const after = damaged.get(db);
      const changed = after ? compareFingerprints(facts, after) : undefined;
      log.info(`  ${db}: ${after ? `${changed!.missing.length + changed!.unexpected.length} facts differ from T` : 'dropped'}`);
    }

    const tablesDamaged = await readTables();
    const start: Record<string, string> = {
      [START_ENV.RESTORE_TIME]: atT.restoreTime.toISOString(),
      [START_ENV.CONFIRM]: SOURCE_ID,
      [START_ENV.STRATEGY]: options.strategy,
      // No DATABASES: the default, every database that existed at T, as on AWS. A table recovery needs its one database.
      ...(options.tables !== undefined ? { [START_ENV.TABLES]: options.tables, [START_ENV.DATABASES]: REHEARSAL_DATABASE } : {}),
    };
    log.info(`---- the recovery runbook, as on AWS${options.adapter === 'aws' ? ': the build phase of buildspec.yml, `node runner.js recover`' : ''} ----`);
    const run = await rig.recover(start, password, signal);
    if (!run.ok) {
      log.warn(`REHEARSAL FAILED: the recovery did not complete: ${signal?.aborted ? (signal.reason as Error).message : run.why}`);
      return REHEARSE_EXIT.RECOVERY_FAILED;
    }
    if (options.tables !== undefined) {
      log.info('---- independent check: nothing but the new schema was written; then the undo SQL, run as a user would ----');
      const found = await log.step('Rehearsal: check the tables, run the undo SQL, compare with T', async () => {
        const issues: string[] = [];
        const schema = tableSchemaName(run.stamp);
        for (const [db, expected] of damaged) {
          const diff = compareFingerprints(expected, (await fingerprintDatabase(src, db)).filter((fact) => !fact.includes(schema)));
          if (diff.missing.length + diff.unexpected.length > 0) issues.push(`${db}: written outside ${schema}:\n${describeDiff(diff)}`);
        }
        issues.push(...await checkTableRecovery({
          cluster: src,
          database: REHEARSAL_DATABASE,
          stamp: run.stamp,
          atT: tablesAtT,
          damaged: tablesDamaged,
          log,
          runAsUser: (sql) => psqlAs(src, REHEARSAL_DATABASE, MASTER_USER, password, sql),
        }));
        return issues;
      });
      if (found.length > 0) {
        log.warn(`REHEARSAL FAILED: the table recovery reported success, but:\n${found.join('\n')}`);
        return REHEARSE_EXIT.MISMATCH;
      }
      log.info(`REHEARSAL PASSED: ${tableNames.join(', ')} came back beside the live tables as at T ${atT.restoreTime.toISOString()}; `
        + 'after the undo SQL each holds its rows at T plus the rows inserted since.');
      return REHEARSE_EXIT.PASSED;
    }
    log.info('---- independent check against the fingerprints taken at T ----');
    const problems = await log.step('Rehearsal: compare every database with its state at T',
      () => compareWithT({ src, atT: atT.fingerprints, damaged, stamp: run.stamp, strategy: options.strategy, log }));
    if (problems.length > 0) {
      log.warn(`REHEARSAL FAILED: the runbook reported success, but the result is not the state at T:\n${problems.join('\n')}`);
      return REHEARSE_EXIT.MISMATCH;
    }
    log.info(`REHEARSAL PASSED: ${atT.fingerprints.size} database(s) equal their state at T ${atT.restoreTime.toISOString()}, strategy ${options.strategy}.`);
    return REHEARSE_EXIT.PASSED;
  } catch (err) {
    log.warn(`REHEARSAL FAILED: the rehearsal itself could not run (the recovery runbook was not involved): ${(err as Error).message}`);
    return REHEARSE_EXIT.SETUP_FAILED;
  } finally {
    const kept = await rig?.dispose(options.keep).catch((err) => {
      log.warn(`could not remove everything the rehearsal started: ${(err as Error).message}`);
      return undefined;
    });
    if (kept) {
      log.info('--keep: the instance is still running:');
      log.info(`  psql '${kept.uri('postgres', 'postgres')}'   (local superuser)`);
      const tlsQuery = ca ? `?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.caFile)}` : '';
      log.info(`  psql '${kept.uri('postgres', MASTER_USER)}${tlsQuery}'   (master user; its password was random and is not shown)`);
      log.info(`  stop and remove it: ${process.getuid?.() === 0 ? 'runuser -u postgres -- ' : ''}${pgBin('pg_ctl')} -D ${kept.dataDir} -m fast stop && rm -rf ${kept.baseDir}`);
    }
    rmSync(scratch, { recursive: true, force: true });
    if (!kept) ca?.destroy();
  }
}

/**
 * The independent check after a whole-database recovery: every database that existed at T equals its fingerprint at
 * T (the record of writes made after T, `pitr_<stamp>_after`, aside), and under swap each kept
 * `<db>__before_pitr_<stamp>` holds the data as it was before the recovery. Returns the problems; empty when it holds.
 */
async function compareWithT(args: {
  readonly src: LocalCluster;
  readonly atT: ReadonlyMap<string, string[]>;
  readonly damaged: ReadonlyMap<string, string[]>;
  readonly stamp: string;
  readonly strategy: Strategy;
  readonly log: StepLog;
}): Promise<string[]> {
  const { src, atT, damaged, stamp, strategy, log } = args;
  const found: string[] = [];

  const now = new Set(await listAllDatabases(src));
  const kept = new Set<string>();
  for (const [db, expected] of atT) {
    if (!now.has(db)) {
      found.push(`${db}: missing after the recovery`);
      continue;
    }
    // The record of writes made after T (schema pitr_<stamp>_after) is the one thing a swap recovery adds; it is checked below.
    const after = changesSchemaName(stamp);
    const diff = compareFingerprints(expected, (await fingerprintDatabase(src, db)).filter((fact) => !fact.includes(` ${after}`)));
    if (diff.missing.length + diff.unexpected.length === 0) {
      log.info(`  ${db}: identical to T (${expected.length} facts)${strategy === 'swap' ? `, plus the record of writes made after T in ${after}` : ''}`);
    } else {
      found.push(`${db}: differs from T:\n${describeDiff(diff)}`);
    }
    // swap keeps every recovered database's pre-recovery state under the name the data path derives from the run's stamp.
    if (strategy !== 'swap') continue;
    const keptAs = keptName(db, stamp);
    const before = damaged.get(db);
    if (!before) continue;
    kept.add(keptAs);
    if (!now.has(keptAs)) {
      found.push(`${keptAs}: the pre-recovery data of ${db} should be kept under this name (strategy swap), but there is no such database`);
      continue;
    }
    const keptDiff = compareFingerprints(before, await fingerprintDatabase(src, keptAs));
    if (keptDiff.missing.length + keptDiff.unexpected.length === 0) log.info(`  ${keptAs}: holds the pre-recovery data, post-T writes included`);
    else found.push(`${keptAs}: differs from the pre-recovery state:\n${describeDiff(keptDiff)}`);
  }
  for (const db of now) {
    if (!atT.has(db) && !kept.has(db)) log.info(`  ${db}: created after T, left alone`);
  }
  return found;
}

interface RigOptions {
  readonly log: StepLog;
  /** Where the runner's own log lines go (they carry their own timestamps). */
  readonly out: (line: string) => void;
  /** The master password before the rotation. */
  readonly password: string;
  readonly ca?: TestCa;
  readonly temporaryHost: string;
  readonly streamMinBytes?: number;
  readonly scratch: string;
  /** The original is an Aurora PostgreSQL DB cluster (AwsRig only). */
  readonly aurora?: boolean;
  /** Extra postgresql.conf settings of the original instance (--changes: track_commit_timestamp). */
  readonly sourceSettings?: Record<string, string>;
}

type RecoverResult = { readonly ok: true; readonly stamp: string } | { readonly ok: false; readonly why: string };

/** What the rehearsal runs the runbook on: the original instance, its secret, and a way to run the recovery. */
interface Rig {
  /** The original instance's cluster (the local superuser seeds, damages and checks it). */
  readonly source: LocalCluster;
  /** Sets the master password on the instance and wherever the runner reads it. */
  rotatePassword(password: string): Promise<void>;
  /** Runs the recovery with the start variables; `stamp` names what the run created (`<db>__before_pitr_<stamp>`). */
  recover(start: Readonly<Record<string, string>>, password: string, signal?: AbortSignal): Promise<RecoverResult>;
  /** Removes everything; with `keep`, the original stays running and is returned. */
  dispose(keep: boolean): Promise<LocalCluster | undefined>;
}

/** `--adapter aws`: what CodeBuild runs, against the RDS stand-in and moto's Secrets Manager. */
class AwsRig implements Rig {
  static async create(options: RigOptions): Promise<AwsRig> {
    if (!existsSync(RUNNER_BUNDLE)) throw new Error(`${RUNNER_BUNDLE} does not exist; run \`npx projen bundle\` first (or \`npx projen rehearse\`, which does).`);
    if (!onPath('moto_server')) {
      throw new Error('moto_server is not on PATH; the rehearsal keeps the master secret in its Secrets Manager, where runner.js recover reads it, as on AWS. '
        + 'Install it (pip install \'moto[server]\') and run again, or rehearse without the AWS SDK: npx projen rehearse --adapter local. Nothing was started.');
    }
    if (!options.ca) throw new Error('internal: the CodeBuild path needs the throwaway CA (runner.js recover always verifies TLS).');
    const ca = options.ca;
    const { log } = options;
    let moto: MotoServer | undefined;
    let standIn: RdsStandIn | undefined;
    try {
      [moto, standIn] = await log.step('Rehearsal: start moto_server (Secrets Manager) and the RDS stand-in', () => Promise.all([
        startMoto(),
        RdsStandIn.start({
          region: DUMMY_AWS_ENV.AWS_REGION,
          placement: tlsPlacement(ca, { temporaryHost: options.temporaryHost, sourceSettings: options.sourceSettings }),
        }),
      ]));
      const rds = standIn;
      const clusterStep = `Rehearsal: create Aurora PostgreSQL DB cluster ${SOURCE_ID} and its writer on the stand-in (WAL archiving, automated backup)`;
      const original = options.aurora
        ? await log.step(clusterStep, async () => {
          const master = { masterUsername: MASTER_USER, masterPassword: options.password };
          const cluster = await rds.engine.clusters.createSourceCluster({ id: SOURCE_ID, ...master });
          return { cluster: cluster.volume!, host: cluster.host!, idField: { dbClusterIdentifier: SOURCE_ID } };
        })
        : await log.step(`Rehearsal: create instance ${SOURCE_ID} on the stand-in (WAL archiving, automated base backup)`, async () => {
          const instance = await rds.engine.createSourceInstance({ id: SOURCE_ID, masterUsername: MASTER_USER, masterPassword: options.password });
          return { cluster: instance.cluster!, host: instance.host!, idField: { dbInstanceIdentifier: SOURCE_ID } };
        });
      const secrets = new SecretsManagerClient(motoClientConfig(moto.endpoint));
      // What RDS (or a CDK-generated secret) holds for an instance or, with dbClusterIdentifier, for an Aurora cluster.
      const secretJson = (password: string): string => JSON.stringify({
        username: MASTER_USER, password, engine: 'postgres', host: original.host, port: original.cluster.port, ...original.idField,
      });
      const secret = await secrets.send(new CreateSecretCommand({ Name: `${SOURCE_ID}/master`, SecretString: secretJson(options.password) }));
      log.info(`RDS stand-in at ${rds.endpoint}; secret ${secret.ARN} on moto_server at ${moto.endpoint}`);
      return new AwsRig(options, moto, rds, original.cluster, secrets, secret.ARN!, secretJson);
    } catch (err) {
      await standIn?.stop().catch(() => undefined);
      await moto?.stop();
      throw err;
    }
  }

  /** CodeBuild as the runner asks it about its own build (how its start variables were passed). */
  private codebuild?: CodeBuildApi;

  private constructor(
    private readonly options: RigOptions,
    private readonly moto: MotoServer,
    private readonly standIn: RdsStandIn,
    readonly source: LocalCluster,
    private readonly secrets: SecretsManagerClient,
    private readonly secretArn: string,
    private readonly secretJson: (password: string) => string,
  ) {}

  async rotatePassword(password: string): Promise<void> {
    await setRolePassword(this.source, MASTER_USER, password);
    await this.secrets.send(new PutSecretValueCommand({ SecretId: this.secretArn, SecretString: this.secretJson(password) }));
  }

  async recover(start: Readonly<Record<string, string>>, _password: string, signal?: AbortSignal): Promise<RecoverResult> {
    const project = 'rehearsal';
    const buildId = `${project}:${randomUUID()}`;
    this.codebuild ??= await startCodeBuildApi({ projectName: project });
    const variables = Object.entries(start).map(([name, value]) => ({ name, value, type: 'PLAINTEXT' }));
    this.codebuild.builds.set(buildId, {
      id: buildId,
      arn: `arn:aws:codebuild:${DUMMY_AWS_ENV.AWS_REGION}:000000000000:build/${buildId}`,
      projectName: project,
      buildStatus: 'IN_PROGRESS',
      buildComplete: false,
      environment: { environmentVariables: variables },
    });
    // The build's environment: the project's variables, the start overrides, what CodeBuild sets, and where the SDK sends its calls.
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(AWS_|PG|CODEBUILD_)/.test(k)));
    const pgBinaries = pgBinDir();
    const env: Record<string, string | undefined> = {
      ...inherited,
      PATH: [...(pgBinaries ? [pgBinaries] : []), process.env.PATH ?? '/usr/bin:/bin'].join(':'),
      // The runner prefers Debian's /usr/lib/postgresql/<major>/bin to PATH (binaries.ts): PG_BIN_DIR keeps the client of --pg / PG_MAJOR.
      ...(pgBinaries ? { PG_BIN_DIR: pgBinaries } : {}),
      [this.options.aurora ? PROJECT_ENV.SOURCE_CLUSTER_ID : PROJECT_ENV.SOURCE_INSTANCE_ID]: SOURCE_ID,
      [PROJECT_ENV.SECRET_ARN]: this.secretArn,
      [PROJECT_ENV.PG_CA_BUNDLE]: this.options.ca!.caFile,
      [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '10',
      ...start,
      [BUILD_ENV.BUILD_ID]: buildId,
      ...DUMMY_AWS_ENV,
      AWS_ENDPOINT_URL_RDS: this.standIn.endpoint,
      AWS_ENDPOINT_URL_CODEBUILD: this.codebuild.endpoint,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: this.moto.endpoint,
      [TUNING_ENV.POLL_INTERVAL_MS]: String(STANDIN_POLL_INTERVAL_MS),
      [TUNING_ENV.STREAM_MIN_BYTES]: this.options.streamMinBytes === undefined ? undefined : String(this.options.streamMinBytes),
    };
    // RDS publishes FreeStorageSpace every minute; here the source's disk, so the runner's check of room on the original runs for real.
    const disk = await statfs(this.source.baseDir);
    await new CloudWatchClient(motoClientConfig(this.moto.endpoint)).send(new PutMetricDataCommand({
      Namespace: 'AWS/RDS',
      MetricData: [{ MetricName: 'FreeStorageSpace', Dimensions: [{ Name: 'DBInstanceIdentifier', Value: SOURCE_ID }], Value: disk.bavail * disk.bsize, Unit: 'Bytes', Timestamp: new Date() }],
    }));
    env.AWS_ENDPOINT_URL_CLOUDWATCH = this.moto.endpoint;
    // A drill publishes its evidence: EventBridge and the notification topic live in moto too.
    env.AWS_ENDPOINT_URL_EVENTBRIDGE = this.moto.endpoint;
    env.AWS_ENDPOINT_URL_SNS = this.moto.endpoint;
    if (start[START_ENV.MODE] === 'drill') {
      const topic = await new SNSClient(motoClientConfig(this.moto.endpoint)).send(new CreateTopicCommand({ Name: `${SOURCE_ID}-notifications` }));
      env[PROJECT_ENV.NOTIFICATION_TOPIC_ARN] = topic.TopicArn;
    }
    const runner = { cwd: dirname(RUNNER_BUNDLE), env };
    const code = await runChild(process.execPath, [RUNNER_BUNDLE, 'recover'], runner, this.options.out, signal);
    const known = this.codebuild.builds.get(buildId)!;
    known.buildStatus = code === 0 ? 'SUCCEEDED' : signal?.aborted ? 'STOPPED' : 'FAILED';
    known.buildComplete = true;
    const target = this.options.aurora
      ? this.standIn.actionsCalled('RestoreDBClusterToPointInTime').at(-1)?.params.DBClusterIdentifier
      : this.standIn.actionsCalled('RestoreDBInstanceToPointInTime').at(-1)?.params.TargetDBInstanceIdentifier;
    if (code !== 0) return { ok: false, why: `runner.js recover exited with ${code} (its log above says why)` };
    if (!target) return { ok: false, why: 'runner.js recover exited 0 without asking the stand-in for a restore' };
    return { ok: true, stamp: target.slice(-14) };
  }

  async dispose(keep: boolean): Promise<LocalCluster | undefined> {
    // The runner only requests the temporary instance's deletion; the stand-in finishes it.
    await this.standIn.engine.settled();
    const engine = this.standIn.engine;
    const kept = !keep ? undefined : this.options.aurora ? await engine.clusters.release(SOURCE_ID) : engine.release(SOURCE_ID);
    await this.standIn.stop();
    await this.moto.stop();
    await this.codebuild?.stop();
    return kept;
  }
}

/** `--adapter local`: the runbook in this process, through the local control plane. */
class LocalRig implements Rig {
  static async create(options: RigOptions): Promise<LocalRig> {
    const { log } = options;
    const source = await log.step('Rehearsal: start the local "instance" with WAL archiving', () => LocalCluster.create({
      archiveWal: true, tls: options.ca, master: { username: MASTER_USER, password: options.password }, settings: options.sourceSettings,
    }));
    try {
      const rds = await log.step('Rehearsal: take the automated base backup', () => LocalRdsControl.create({
        source, sourceId: SOURCE_ID, masterUsername: MASTER_USER, temporaryHost: options.temporaryHost,
      }));
      return new LocalRig(options, source, rds);
    } catch (err) {
      await source.destroy();
      throw err;
    }
  }

  private constructor(private readonly options: RigOptions, readonly source: LocalCluster, private readonly rds: LocalRdsControl) {}

  rotatePassword(password: string): Promise<void> {
    return setRolePassword(this.source, MASTER_USER, password);
  }

  async recover(start: Readonly<Record<string, string>>, password: string, signal?: AbortSignal): Promise<RecoverResult> {
    const env: Record<string, string> = {
      [PROJECT_ENV.SOURCE_INSTANCE_ID]: SOURCE_ID,
      [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '10',
      [BUILD_ENV.BUILD_ID]: `rehearsal:${randomUUID()}`,
      ...start,
    };
    // What a drill and a recovery share, as in main.ts.
    const common = {
      rds: this.rds,
      data: new PgDataPath({ streamMinBytes: this.options.streamMinBytes }),
      log: this.options.log,
      credentials: { username: MASTER_USER, password },
      tls: this.source.sslOptions,
      scratchDir: this.options.scratch,
      polling: LOCAL_POLLING,
      signal,
    };
    if (start[START_ENV.MODE] === 'drill') {
      try {
        await runDrill(readDrillRequest(env, { cpus: availableParallelism() }), common);
        return { ok: true, stamp: '' };
      } catch (err) {
        return { ok: false, why: (err as Error).message };
      }
    }
    const request = readStartRequest(env, { cpus: availableParallelism() });
    try {
      const outcome = await runRecovery(request, { ...common, tables: new PgTablePath(), changes: { record: recordChanges } });
      return { ok: true, stamp: outcome.plan.stamp };
    } catch (err) {
      return { ok: false, why: (err as Error).message };
    }
  }

  async dispose(keep: boolean): Promise<LocalCluster | undefined> {
    await this.rds.dispose().catch((err) => this.options.log.warn(`could not remove a temporary instance: ${(err as Error).message}`));
    if (keep) return this.source;
    await this.source.destroy();
    return undefined;
  }
}

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Runs a child to its end, passing each output line on; on `signal`, sends
 * it SIGTERM (as CodeBuild does on stop) and still waits for its cleanup.
 * Resolves to its exit code (128 + n when killed by a signal).
 */
function runChild(
  command: string,
  args: string[],
  options: { cwd: string; env: Record<string, string | undefined> },
  onLine: (line: string) => void,
  signal?: AbortSignal,
): Promise<number> {
  return new Promise((resolveExit, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const stop = (): void => void child.kill('SIGTERM');
    signal?.addEventListener('abort', stop, { once: true });
    const lines = (stream: NodeJS.ReadableStream): void => {
      let pending = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        pending += chunk;
        const parts = pending.split('\n');
        pending = parts.pop()!;
        parts.forEach(onLine);
      });
      stream.on('end', () => pending && onLine(pending));
    };
    lines(child.stdout!);
    lines(child.stderr!);
    child.once('error', reject);
    child.once('close', (code, killedBy) => {
      signal?.removeEventListener('abort', stop);
      resolveExit(code ?? 128 + (killedBy === 'SIGKILL' ? 9 : 15));
    });
  });
}

interface Dataset {
  readonly seed: { readonly file?: string; readonly sql?: string };
  readonly damage: { readonly file?: string; readonly sql?: string };
  readonly seedName: string;
  readonly damageName: string;
}

/** --seed/--damage, else the repository's rich fixtures when they are there, else the built-in sample. */
function chooseDataset(options: RehearseOptions): Dataset {
  if (options.changes) {
    return { seed: { sql: CHANGES_SEED_SQL }, damage: { sql: BAD_CHANGE_SQL }, seedName: 'the built-in shop (customers, orders)', damageName: 'a bad UPDATE between good writes' };
  }
  if (options.tables !== undefined && !options.seedFile) {
    const damage = options.damageFile ? { file: options.damageFile } : { sql: TABLES_DAMAGE_SQL };
    return { seed: { sql: TABLES_SEED_SQL }, damage, seedName: 'the built-in invoices', damageName: damage.file ?? 'the built-in invoice damage' };
  }
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

function describeDiff(diff: { missing: string[]; unexpected: string[] }): string {
  const lines = [...diff.missing.slice(0, 15).map((l) => `    - at T, not now: ${l}`), ...diff.unexpected.slice(0, 15).map((l) => `    + now, not at T: ${l}`)];
  const more = diff.missing.length + diff.unexpected.length - lines.length;
  return lines.join('\n') + (more > 0 ? `\n    (${more} more)` : '');
}
