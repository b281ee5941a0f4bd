/**
 * Restore drills (`MODE=drill`): the whole recovery path but the final
 * rename, on a schedule, without writing to the original.
 *
 * A drill restores the temporary instance (with room for a second copy of the
 * largest database), makes its credentials match the secret, runs every
 * read-only check a recovery runs against the original (login, roles,
 * memberships, swap hazards, free storage), copies each database into
 * `<db>__drill_<stamp>` ON THE TEMPORARY INSTANCE with the same data path,
 * JOBS and verification, and deletes the temporary instance in `finally`.
 * It ends with one evidence record (a single JSON line in the log), which a
 * `DrillPublisher` sends to CloudWatch, EventBridge and SNS.
 *
 * The original is only ever read: the drill takes no safety snapshot, drops
 * no leftovers, and the data path's writes all go to the temporary instance.
 */
import { formatBytes, formatDuration } from './log';
import { PlanError, readStartRequest, type StartRequest } from './plan';
import type { PgTarget } from './ports';
import { changesRecordSeconds } from './postgres/changes';
import { DISK_MARGIN, TERMINATE_TIMEOUT_MS } from './postgres/data-path';
import { derivedName } from './postgres/names';
import { connect } from './postgres/process';
import type { PreflightReport } from './preflight';
import {
  checkNotStopped, newRunState, originalTarget, planOf, recordFailure, temporaryLabelOf, temporaryTarget, type RecoveryDeps, type RunState,
} from './run-state';
import { sourceNoun } from './source-kind';
import {
  chooseDatabases, cleanUp, copyOptions, makeWorkDir, matchCredentials, measureOriginalStorage, notVerified, planAndValidate,
  restoreTemporaryInstance, waitForTemporaryInstance,
} from './steps';
import { RECOVERY_STEPS } from './workflow';
import {
  DRILL_MARKER, LATEST, START_ENV, parseDrillRestoreTime, quoteValue, sourceRefFromEnv, type DrillRestoreTime, type RestoreWindow,
} from '../../src/contract';

type Env = Readonly<Record<string, string | undefined>>;

/** A drill request: the recovery's start request (no CONFIRM needed) and the drill's own restore time. */
export interface DrillRequest {
  readonly start: StartRequest;
  readonly restoreTime: DrillRestoreTime;
  /** RESTORE_TIME as given (`latest` when unset), for the record. */
  readonly requested: string;
}

/**
 * Reads a drill from the start variables. RESTORE_TIME may be `latest`
 * (the default), an instant, `random` or `random:<age>`. CONFIRM is not
 * needed (nothing on the original is written); SAFETY_SNAPSHOT and FORCE do
 * not apply. Every problem is reported at once.
 */
export function readDrillRequest(env: Env, defaults: { readonly cpus: number }): DrillRequest {
  const problems: string[] = [];
  const raw = env[START_ENV.RESTORE_TIME]?.trim() ?? '';
  let restoreTime: DrillRestoreTime | undefined;
  try {
    restoreTime = parseDrillRestoreTime(raw);
  } catch (err) {
    problems.push((err as Error).message);
  }
  let start: StartRequest | undefined;
  try {
    start = readStartRequest({
      ...env,
      // Checked by the drill itself (above); the recovery's parser only needs a well-formed value.
      [START_ENV.RESTORE_TIME]: LATEST,
      // A drill writes nothing to the original: nothing to confirm, no safety snapshot to take.
      [START_ENV.CONFIRM]: sourceIdOf(env),
      [START_ENV.SAFETY_SNAPSHOT]: 'false',
      [START_ENV.FORCE]: 'true',
    }, defaults);
  } catch (err) {
    if (err instanceof PlanError) problems.push(...err.problems);
    else throw err;
  }
  for (const name of [START_ENV.TABLES, START_ENV.TABLE_MODE]) {
    const value = env[name]?.trim();
    if (value) problems.push(`${name}: ${quoteValue(value)} does not apply to a drill, which copies whole databases onto the temporary instance; accepted: leave ${name} unset with ${START_ENV.MODE}=drill.`);
  }
  if (problems.length > 0) throw new PlanError(problems);
  return { start: start!, restoreTime: restoreTime!, requested: raw === '' ? LATEST : raw };
}

/** The source's identifier from SOURCE_INSTANCE_ID or SOURCE_CLUSTER_ID, or undefined (the start request names the problem). */
function sourceIdOf(env: Env): string | undefined {
  const ref = sourceRefFromEnv(env);
  return 'problem' in ref ? undefined : ref.id;
}

/** Keeps a random time this far from the window's earliest edge, which moves forward as backups age out. */
export const RANDOM_EARLIEST_MARGIN_MS = 10 * 60_000;

/**
 * A uniformly random whole second inside the window (limited to its last
 * `withinMs` when given), at least RANDOM_EARLIEST_MARGIN_MS (or half the
 * window, when shorter) after its earliest edge. `random` returns [0, 1).
 */
export function pickRandomRestoreTime(window: RestoreWindow, withinMs: number | undefined, random: () => number): Date {
  const latest = window.latest.getTime();
  const from = Math.max(window.earliest.getTime(), withinMs === undefined ? -Infinity : latest - withinMs);
  const low = from + Math.min(RANDOM_EARLIEST_MARGIN_MS, (latest - from) / 2);
  const r = Math.min(Math.max(random(), 0), 1);
  const t = Math.ceil((low + r * (latest - low)) / 1000) * 1000;
  return new Date(Math.min(Math.max(t, Math.ceil(low)), latest));
}

/**
 * Storage for the drill's temporary instance: the source's, plus room for a
 * second copy of the largest database (with the data path's margin for WAL
 * and index builds), in whole GiB. Undefined when the source's storage is
 * not known (the adapter then restores with the source's).
 */
export function drillStorageGiB(sourceAllocatedGiB: number | undefined, largestDatabaseBytes: number): number | undefined {
  if (sourceAllocatedGiB === undefined) return undefined;
  // Whole MiB first, so that 50 GiB x 1.1 is 55 GiB and not 55.000000001 rounded up.
  return sourceAllocatedGiB + Math.ceil(Math.round((largestDatabaseBytes * DISK_MARGIN) / 2 ** 20) / 1024);
}

/** `<db>__drill_<stamp>`, shortened with a hash when it would not fit in 63 bytes (names.ts). */
export function drillDatabaseName(database: string, stamp: string): string {
  return derivedName(database, `${DRILL_MARKER}${stamp}`);
}

/** Where a drill's evidence goes. Failing to publish never changes the drill's result; the caller logs it. */
export interface DrillPublisher {
  /** A drill of `sourceId` started (DrillStarted): the stale-drill alarm waits for its result. */
  started?(sourceId: string, at: Date): Promise<void>;
  publish(record: EvidenceRecord): Promise<void>;
}

export interface DrillDeps extends RecoveryDeps {
  /** @default - the record is only logged */
  readonly publisher?: DrillPublisher;
  /** [0, 1) for `random` restore times. @default Math.random */
  readonly random?: () => number;
  /** pg_database_size of every database on `target`. @default - read with the catalog (read-only) */
  readonly databaseSizes?: (target: PgTarget) => Promise<ReadonlyMap<string, number>>;
}

/** What verification compares for each database (postgres/verify.ts), stated in the record. */
export const VERIFICATION_COMPARES = 'every table: row count and content checksum; sequences: values; large objects: data, owner, privileges; schema objects: counts per kind';

/** The evidence record's `kind`; bump `version` when a field changes meaning. */
export const EVIDENCE_KIND = 'cdk-rds-pitr/restore-drill';

/** One drill's evidence: printed as one JSON line and published. */
export interface EvidenceRecord {
  readonly kind: typeof EVIDENCE_KIND;
  readonly version: 1;
  readonly succeeded: boolean;
  /** Why it failed: the step and the first error. */
  readonly failure?: { readonly step?: string; readonly reason: string };
  readonly source: { readonly id: string; readonly engine?: string; readonly engineVersion?: string };
  readonly buildId: string;
  readonly startedAt: string;
  readonly endedAt: string;
  readonly restoreTime: {
    readonly requested: string;
    /** The instant restored to; for `latest`, the latest restorable time when the restore was requested. */
    readonly used?: string;
    readonly useLatestRestorableTime: boolean;
  };
  readonly restoreWindow?: { readonly earliest: string; readonly latest: string };
  readonly temporaryInstance?: { readonly id: string; readonly allocatedStorageGiB?: number };
  /** The drill's top-level steps, in order. */
  readonly phases: ReadonlyArray<{ readonly name: string; readonly seconds: number; readonly outcome: string }>;
  readonly databases: ReadonlyArray<{
    readonly name: string;
    readonly copiedAs: string;
    /** pg_database_size on the point-in-time copy. */
    readonly sizeBytes?: number;
    readonly tables?: number;
    readonly rows?: number;
    readonly verification: string;
    readonly result: 'verified' | 'not verified' | 'not copied';
    /** Swap hazards a recovery of this database would have to accept or resolve now; none stops a drill. */
    readonly hazardsForRecovery?: readonly string[];
  }>;
  readonly copy?: { readonly bytes: number; readonly seconds: number; readonly bytesPerSecond: number };
  readonly recoveryTimeEstimate?: RecoveryTimeEstimate;
  /** The plan's pre-flight on the original: each check, how long it took, and what it found (issue #19). */
  readonly preflight?: PreflightReport;
}

/** How long a real recovery of this instance would take now, and from what. */
export interface RecoveryTimeEstimate {
  readonly seconds: number;
  readonly parts: {
    /** Plan and checks (measured in the drill). */
    readonly planSeconds: number;
    /** Restore request and wait for the temporary instance (measured). */
    readonly restoreAndWaitSeconds: number;
    /** Credentials step (measured). */
    readonly credentialsSeconds: number;
    /** The original's current databases at the drill's copy throughput. */
    readonly copySeconds: number;
    /** The swap of each database: a second each, expected. */
    readonly swapSeconds: number;
  };
  /** The swap's bound when sessions do not end: the data path waits up to 30 s per database, then gives up. */
  readonly swapWorstCaseSeconds: number;
  /** The bytes a recovery now would copy: pg_database_size of the databases on the original. */
  readonly bytesToCopy: number;
  /**
   * After the swap, with the application back (not in `seconds`): the record of writes made after the restore time
   * (postgres/changes.ts), estimated from the copy (changesRecordSeconds).
   */
  readonly writesAfterTRecordSeconds?: number;
  readonly assumptions: readonly string[];
}

/**
 * The drill's step names, as the build log and the evidence record's phases
 * show them: the recovery's (workflow.ts) for the steps it shares.
 */
export const DRILL_STEPS = {
  RESTORE_TIME: 'Choose the restore time',
  PLAN: 'Plan and validate (read-only on the original)',
  SIZE: 'Size the temporary instance',
  RESTORE: RECOVERY_STEPS.RESTORE,
  WAIT: RECOVERY_STEPS.WAIT,
  CREDENTIALS: RECOVERY_STEPS.CREDENTIALS,
  CHOOSE: RECOVERY_STEPS.CHOOSE,
  COPY: 'Copy and verify on the temporary instance (drill)',
  CLEAN_UP: RECOVERY_STEPS.CLEAN_UP,
} as const;

/**
 * Expected swap time per database (block connections, end sessions, two
 * renames) when sessions end promptly: catalog updates only, measured at
 * about 20 ms in the rehearsal; a tenth of a second leaves room for a
 * network round trip per statement on AWS.
 */
const EXPECTED_SWAP_MS = 100;

/** What the drill learns beside the recovery's run state, for its evidence record. */
interface DrillState {
  readonly request: DrillRequest;
  readonly startedAt: Date;
  readonly random: () => number;
  readonly databaseSizes: (target: PgTarget) => Promise<ReadonlyMap<string, number>>;
  /** The restorable window, when it could be read. */
  window?: RestoreWindow;
  /** The instant restored to; for `latest`, the latest restorable time when the drill chose it. */
  usedTime?: Date;
  /** pg_database_size on the original, of the databases a recovery would copy (they size the temporary instance). */
  sizesOnOriginal: ReadonlyMap<string, number>;
  /** pg_database_size on the point-in-time copy, of the databases copied. */
  sizesOnCopy: ReadonlyMap<string, number>;
  copyMs?: number;
  copiedBytes?: number;
}

/**
 * Runs a drill. Resolves with the evidence record of a successful drill;
 * rejects with the cause otherwise, after logging and publishing the
 * record of the failure. The temporary instance is deleted whatever happens.
 *
 * The recovery's steps (workflow.ts), with these replaced: the restore time
 * is chosen first (it may be random); the plan lists no leftovers and no
 * safety snapshot is taken; the temporary instance is sized for a second
 * copy; no dead copies are dropped; the copy goes onto the temporary
 * instance; the summary is the evidence record, published.
 */
export async function runDrill(request: DrillRequest, deps: DrillDeps): Promise<EvidenceRecord> {
  // No catalog: a drill neither lists nor drops the original's leftovers (dropping is a write).
  const run = newRunState(request.start, { ...deps, catalog: undefined, builds: undefined });
  // Aurora: a copy-on-write clone costs only the pages either side changes while the drill runs (at the latest restorable time only).
  run.preferClone = true;
  const drill: DrillState = {
    request,
    startedAt: run.clock.now(),
    random: deps.random ?? Math.random,
    databaseSizes: deps.databaseSizes ?? readDatabaseSizes,
    sizesOnOriginal: new Map(),
    sizesOnCopy: new Map(),
  };
  const { log } = deps;
  log.redact(deps.credentials.password);
  log.info('RESTORE DRILL: the whole recovery path but the final rename; nothing is written to the original');
  await deps.publisher?.started?.(request.start.sourceId, run.clock.now()).catch((err: Error) => {
    log.warn(`the drill's start could not be published (${err.message}); the drill goes ahead`);
  });
  let record: EvidenceRecord;
  try {
    await log.step(DRILL_STEPS.RESTORE_TIME, () => chooseRestoreTime(run, drill));
    await log.step(DRILL_STEPS.PLAN, () => planAndValidate(run, { drill: true }));
    await log.step(DRILL_STEPS.SIZE, () => sizeTemporaryInstance(run, drill));
    await log.step(DRILL_STEPS.RESTORE, () => restoreTemporaryInstance(run));
    await log.step(DRILL_STEPS.WAIT, () => waitForTemporaryInstance(run));
    await log.step(DRILL_STEPS.CREDENTIALS, () => matchCredentials(run));
    await log.step(DRILL_STEPS.CHOOSE, () => chooseDatabases(run));
    await log.step(DRILL_STEPS.COPY, () => copyOntoTemporaryInstance(run, drill));
  } catch (err) {
    recordFailure(run, err);
  } finally {
    await log.step(DRILL_STEPS.CLEAN_UP, () => cleanUp(run)).catch((err) => recordFailure(run, err));
    record = await summarizeAndPublish(run, drill, deps.publisher);
  }
  // The first failure, after its record was logged and published.
  if (run.failure) throw run.failure;
  return record;
}

/** The restorable window (read-only), and from it a random time when asked; for `latest`, the time it stands for now. */
async function chooseRestoreTime(run: RunState, drill: DrillState): Promise<void> {
  const { rds, log } = run.deps;
  const wanted = drill.request.restoreTime;
  let window: RestoreWindow;
  try {
    // As the plan does: by the identifier RDS reports (it stores identifiers in lowercase).
    window = await rds.restorableWindow((await rds.describeSource(drill.request.start.sourceId)).id);
  } catch (err) {
    if (wanted === LATEST || wanted instanceof Date) {
      log.warn(`the restorable window could not be read (${(err as Error).message}); the plan checks the restore time itself`);
      return useRestoreTime(run, drill, wanted);
    }
    throw new PlanError([`${START_ENV.RESTORE_TIME}: ${JSON.stringify(drill.request.requested)} needs the restorable window, which could not be read (${(err as Error).message}); `
      + `accepted: retry, or an explicit time or "${LATEST}".`]);
  }
  drill.window = window;
  log.info(`restorable window: ${window.earliest.toISOString()} .. ${window.latest.toISOString()}`);
  if (wanted === LATEST || wanted instanceof Date) return useRestoreTime(run, drill, wanted);
  const time = pickRandomRestoreTime(window, wanted.withinMs, drill.random);
  log.info(`random restore time${wanted.withinMs ? ` within the last ${formatDuration(wanted.withinMs)} of the window` : ''}: ${time.toISOString()}`);
  useRestoreTime(run, drill, time);
}

/** The run restores to `time` from here on (the plan checks it); the record states the instant. */
function useRestoreTime(run: RunState, drill: DrillState, time: Date | typeof LATEST): void {
  run.request = { ...run.request, restoreTime: time };
  drill.usedTime = time === LATEST ? drill.window?.latest : time;
}

/** Sizes the temporary instance from the original's databases (read-only: pg_database_size). */
async function sizeTemporaryInstance(run: RunState, drill: DrillState): Promise<void> {
  const { log } = run.deps;
  const plan = planOf(run);
  const sizes = await drill.databaseSizes(originalTarget(run));
  drill.sizesOnOriginal = new Map([...sizes].filter(([db]) => !plan.databases || plan.databases.includes(db)));
  const largest = Math.max(0, ...drill.sizesOnOriginal.values());
  if (plan.source.kind === 'cluster') {
    log.info(`largest database on the original: ${formatBytes(largest)}; the temporary cluster needs no sizing: an Aurora cluster volume grows by itself as the drill copies onto it`);
    return;
  }
  run.allocatedStorageGiB = drillStorageGiB(plan.source.storage?.allocatedGiB, largest);
  log.info(run.allocatedStorageGiB === undefined
    ? `largest database on the original: ${formatBytes(largest)}; the source's allocated storage is not known, so the temporary instance gets the source's`
    : `temporary instance storage: ${run.allocatedStorageGiB} GiB = the source's ${plan.source.storage!.allocatedGiB} GiB + room for a second copy of the largest database (${formatBytes(largest)} + ${Math.round((DISK_MARGIN - 1) * 100)}%)`);
}

/** The recovery's copy, onto the temporary instance itself; the checks on the original stay read-only. */
async function copyOntoTemporaryInstance(run: RunState, drill: DrillState): Promise<void> {
  checkNotStopped(run);
  const stamp = planOf(run).stamp;
  run.workDir = makeWorkDir(run, 'pitr-drill');
  const originalStorage = await measureOriginalStorage(run);
  const temporary = temporaryTarget(run);
  const sizes = await drill.databaseSizes(temporary);
  drill.sizesOnCopy = new Map(run.databases.map((d) => [d, sizes.get(d) ?? 0]));
  const started = run.clock.now().getTime();
  run.copyStarted = true;
  const results = await run.deps.data.copy(temporary, temporary, {
    ...copyOptions(run, run.workDir, originalStorage),
    drill: { original: originalTarget(run), intoName: (db) => drillDatabaseName(db, stamp) },
  });
  drill.copyMs = run.clock.now().getTime() - started;
  drill.copiedBytes = [...drill.sizesOnCopy.values()].reduce((a, b) => a + b, 0);
  run.results = results;
  const unverified = notVerified(run.databases, results);
  if (unverified.length > 0) throw new Error(`not verified: ${unverified.join(', ')}; the drill failed.`);
}

/** The drill's summary: steps, the record as one JSON line, then publication (whose failure is only logged). */
async function summarizeAndPublish(run: RunState, drill: DrillState, publisher: DrillPublisher | undefined): Promise<EvidenceRecord> {
  const { log } = run.deps;
  const record = evidenceRecord(run, drill);
  const lines = ['', '==== Drill summary ====', 'Steps:', ...log.stepTable()];
  const label = temporaryLabelOf(run);
  for (const d of record.databases) lines.push(`  ${d.name}: ${d.result}${d.tables !== undefined ? `, ${d.tables} tables, ${d.rows} rows` : ''} (copied as ${JSON.stringify(d.copiedAs)} on the ${label})`);
  if (record.recoveryTimeEstimate) {
    const e = record.recoveryTimeEstimate;
    lines.push(`A recovery of ${record.source.id} now would take about ${formatDuration(e.seconds * 1000)}: plan ${formatDuration(e.parts.planSeconds * 1000)}, `
      + `restore and wait ${formatDuration(e.parts.restoreAndWaitSeconds * 1000)}, credentials ${formatDuration(e.parts.credentialsSeconds * 1000)}, `
      + `copy ${formatDuration(e.parts.copySeconds * 1000)}, swap ${formatDuration(e.parts.swapSeconds * 1000)} (up to ${formatDuration(e.swapWorstCaseSeconds * 1000)} if sessions do not end)`
      + `${e.writesAfterTRecordSeconds !== undefined ? `; then, with the application back, the record of writes made after the restore time about ${formatDuration(e.writesAfterTRecordSeconds * 1000)}` : ''}.`);
  }
  for (const d of record.databases) {
    for (const hazard of d.hazardsForRecovery ?? []) lines.push(`  ${d.name}: a recovery now would meet this swap hazard: ${hazard}`);
  }
  lines.push(`The original ${sourceNoun(run.plan?.source.kind ?? run.request.sourceKind)} was not written to (a drill only reads it).`);
  lines.push(record.succeeded ? `RESULT: DRILL SUCCEEDED: ${record.databases.length} database(s) restored, copied and verified.` : `RESULT: DRILL FAILED${record.failure?.step ? ` in step "${record.failure.step}"` : ''}: ${record.failure?.reason}`);
  for (const line of lines) log.info(line);
  // One line, machine-readable, for log searches: the same document that is published.
  log.info(`EVIDENCE ${JSON.stringify(record)}`);
  if (publisher) {
    try {
      await publisher.publish(record);
      log.info('evidence published');
    } catch (err) {
      log.warn(`the evidence could not be published (${(err as Error).message}); the drill's result above stands`);
    }
  }
  return record;
}

/** The evidence record from what the run and the drill recorded, and the step log's durations. */
function evidenceRecord(run: RunState, drill: DrillState): EvidenceRecord {
  const { log } = run.deps;
  const { plan, failure } = run;
  const drillSteps = Object.values(DRILL_STEPS) as string[];
  const failedStep = log.steps.find((s) => s.outcome === 'failed' && drillSteps.includes(s.name));
  const phases = log.steps.filter((s) => drillSteps.includes(s.name))
    .map((s) => ({ name: s.name, seconds: (s.durationMs ?? 0) / 1000, outcome: s.outcome ?? 'running' }));
  const databases = run.databases.map((name) => {
    const r = run.results.find((x) => x.database === name);
    return {
      name,
      copiedAs: plan?.stamp ? drillDatabaseName(name, plan.stamp) : '',
      sizeBytes: drill.sizesOnCopy.get(name),
      tables: r?.tables,
      rows: r?.rows,
      verification: VERIFICATION_COMPARES,
      result: r ? (r.verified ? 'verified' as const : 'not verified' as const) : 'not copied' as const,
      ...(r?.hazardsForRecovery ? { hazardsForRecovery: r.hazardsForRecovery } : {}),
    };
  });
  const copy = drill.copyMs !== undefined && drill.copiedBytes !== undefined && failure === undefined
    ? {
      bytes: drill.copiedBytes,
      seconds: drill.copyMs / 1000,
      bytesPerSecond: drill.copyMs > 0 ? Math.round(drill.copiedBytes / (drill.copyMs / 1000)) : 0,
    }
    : undefined;
  return {
    kind: EVIDENCE_KIND,
    version: 1,
    succeeded: failure === undefined,
    failure: failure ? { step: failedStep?.name, reason: failure.message } : undefined,
    source: { id: drill.request.start.sourceId, engine: plan?.source.engine, engineVersion: plan?.source.engineVersion },
    buildId: drill.request.start.buildId,
    startedAt: drill.startedAt.toISOString(),
    endedAt: run.clock.now().toISOString(),
    restoreTime: {
      requested: drill.request.requested,
      used: drill.usedTime?.toISOString(),
      useLatestRestorableTime: run.request.restoreTime === LATEST,
    },
    restoreWindow: drill.window ? { earliest: drill.window.earliest.toISOString(), latest: drill.window.latest.toISOString() } : undefined,
    temporaryInstance: plan ? { id: plan.temporaryInstanceId, allocatedStorageGiB: run.allocatedStorageGiB } : undefined,
    phases,
    databases,
    copy,
    recoveryTimeEstimate: copy && copy.bytesPerSecond > 0 ? recoveryTimeEstimate(run, drill, copy.bytesPerSecond) : undefined,
    preflight: run.preflight,
  };
}

/** A recovery of the original's current databases at the throughput this drill measured, and the steps' measured durations. */
function recoveryTimeEstimate(run: RunState, drill: DrillState, bytesPerSecond: number): RecoveryTimeEstimate {
  const { log } = run.deps;
  const { databases } = run;
  const seconds = (...names: string[]): number => log.steps.filter((s) => names.includes(s.name))
    .reduce((sum, s) => sum + (s.durationMs ?? 0), 0) / 1000;
  const bytesToCopy = [...drill.sizesOnOriginal.entries()].filter(([db]) => databases.includes(db)).reduce((sum, [, b]) => sum + b, 0);
  const parts = {
    planSeconds: round(seconds(DRILL_STEPS.PLAN, DRILL_STEPS.CHOOSE)),
    restoreAndWaitSeconds: round(seconds(DRILL_STEPS.RESTORE, DRILL_STEPS.WAIT)),
    credentialsSeconds: round(seconds(DRILL_STEPS.CREDENTIALS)),
    copySeconds: round(bytesToCopy / bytesPerSecond),
    swapSeconds: round((databases.length * EXPECTED_SWAP_MS) / 1000),
  };
  return {
    seconds: round(Object.values(parts).reduce((a, b) => a + b, 0)),
    parts,
    swapWorstCaseSeconds: round((databases.length * TERMINATE_TIMEOUT_MS) / 1000),
    bytesToCopy,
    writesAfterTRecordSeconds: round(changesRecordSeconds(parts.copySeconds)),
    assumptions: [
      'the restore and wait, and the credentials step, take as long as they took in this drill (a restore to another time replays a different amount of WAL)',
      'the copy runs at the throughput this drill measured (bytes of pg_database_size on the point-in-time copy per second of the copy step: '
        + 'checks, dump, restore, indexes, ANALYZE, verification), applied to the databases\' current size on the original; '
        + 'the drill reads and writes on the temporary instance alone, a recovery reads there and writes to the original',
      `each database's swap takes about ${EXPECTED_SWAP_MS / 1000} s when its sessions end promptly; the data path waits at most ${TERMINATE_TIMEOUT_MS / 1000} s per database for them (swapWorstCaseSeconds)`,
      'the safety snapshot a recovery takes by default is ready by the time the credentials match (it runs beside the restore); otherwise its wait adds to the total',
      'the build starts at once (no CodeBuild queue) and the same JOBS and instance class are used',
      'writesAfterTRecordSeconds: the record of writes made after the restore time runs after the swap (no downtime); it reads every table '
        + 'of both databases on the original, estimated as the share of the copy time measured by npx projen bench --changes',
    ],
  };
}

/** pg_database_size of every database but templates (read-only). */
export async function readDatabaseSizes(target: PgTarget): Promise<ReadonlyMap<string, number>> {
  const client = await connect(target, target.maintenanceDatabase);
  try {
    const { rows } = await client.query<{ datname: string; size: string }>(
      'SELECT datname, pg_database_size(oid)::text AS size FROM pg_database WHERE NOT datistemplate AND datallowconn');
    return new Map(rows.map((r) => [r.datname, Number(r.size)]));
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The drill's record as a message for a person (SNS), not JSON. */
export function describeEvidence(record: EvidenceRecord): string {
  const lines = [
    `Restore drill of ${record.source.id}: ${record.succeeded ? 'SUCCEEDED' : 'FAILED'}`,
    ...(record.failure ? [`Why: ${record.failure.step ? `step "${record.failure.step}": ` : ''}${record.failure.reason}`] : []),
    `Restore time: requested ${record.restoreTime.requested}, used ${record.restoreTime.used ?? (record.restoreTime.useLatestRestorableTime ? 'the latest restorable time' : 'none')}`
      + (record.restoreWindow ? ` (window ${record.restoreWindow.earliest} .. ${record.restoreWindow.latest})` : ''),
    ...record.databases.map((d) => `  ${d.name}: ${d.result}${d.tables !== undefined ? `, ${d.tables} tables, ${d.rows} rows` : ''}${d.sizeBytes !== undefined ? `, ${formatBytes(d.sizeBytes)}` : ''}`),
    ...record.databases.flatMap((d) => (d.hazardsForRecovery ?? []).map((h) => `  ${d.name}: a recovery now would meet this swap hazard: ${h}`)),
    ...(record.preflight?.checks ?? []).filter((c) => c.outcome !== 'passed').flatMap((c) => c.findings.map((f) => `  pre-flight, ${c.name}: ${f}`)),
    ...(record.copy ? [`Copy: ${formatBytes(record.copy.bytes)} in ${formatDuration(record.copy.seconds * 1000)} (${formatBytes(record.copy.bytesPerSecond)}/s)`] : []),
    ...(record.recoveryTimeEstimate ? [`Estimated time of a recovery now: ${formatDuration(record.recoveryTimeEstimate.seconds * 1000)} `
      + `(restore and wait ${formatDuration(record.recoveryTimeEstimate.parts.restoreAndWaitSeconds * 1000)}, copy ${formatDuration(record.recoveryTimeEstimate.parts.copySeconds * 1000)})`] : []),
    'The original instance was only read. The temporary instance was deleted (see the build log).',
    `Build: ${record.buildId}`,
  ];
  return lines.join('\n');
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}

