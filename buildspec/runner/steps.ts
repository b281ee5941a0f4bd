/**
 * The recovery's steps, in the order `runRecovery` (workflow.ts) runs them.
 * Each takes the run state (run-state.ts), reads what earlier steps left
 * there and records what it learns or creates. The restore drill (drill.ts)
 * runs most of them as they are and replaces the others.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeInventory, dropDeadCopies as dropDeadCopiesOf, takeInventory } from './housekeeping';
import { formatBytes, formatDuration } from './log';
import { PlanError, planRecovery } from './plan';
import { isLoginRefused, type CopyOptions, type DatabaseCopyResult, type InstanceState, type OriginalStorage, type PgTarget } from './ports';
import { runPreflight } from './preflight';
import {
  checkNotStopped, leftoverDeps, originalTarget, planOf, targetAt, temporaryLabelOf, temporaryTarget, type RunState,
} from './run-state';
import { AURORA_STORAGE_NOTE, deleteTemporaryCommand } from './source-kind';
import { chooseTableDatabase, describeTableRequest } from './tables';
import { CLEANUP_SWEEP_MINUTES, LATEST, PROJECT_ENV, START_ENV, TAGS, TEMP_WRITER_SUFFIX, quoteValue } from '../../src/contract';

/** Instance statuses from which RDS does not recover on its own: waiting longer is pointless. */
export const TERMINAL_INSTANCE_STATUSES = [
  'failed', 'incompatible-restore', 'incompatible-parameters', 'incompatible-network', 'storage-full', 'deleting',
  // A restore that cannot reach its KMS key or option group never becomes available either.
  'inaccessible-encryption-credentials', 'inaccessible-encryption-credentials-recoverable', 'incompatible-option-group',
] as const;
const TERMINAL_SNAPSHOT_STATUSES = ['failed', 'error', 'deleting', 'incompatible-restore'];

/**
 * Checks the request against the source, and the secret against the
 * original (a wrong or stale secret must fail now, in seconds, not after the
 * snapshot and the restore); logs the plan and the leftovers of earlier runs.
 */
export async function planAndValidate(run: RunState, options: { readonly drill?: boolean } = {}): Promise<void> {
  checkNotStopped(run);
  const { deps, clock } = run;
  if (run.request.tables && !deps.tables) throw new PlanError([`${START_ENV.TABLES}: this runner was built without table recovery; accepted: leave ${START_ENV.TABLES} empty.`]);
  const plan = await planRecovery(run.request, deps.rds, {
    now: clock.now(),
    secretUsername: deps.credentials.username,
    secretId: deps.secretId,
  });
  const { log, data } = deps;
  const original = targetAt(run, plan.source.endpoint);
  try {
    await data.checkLogin(original);
  } catch (err) {
    const secret = plan.source.masterUserSecretArn ? ` (RDS manages them in ${plan.source.masterUserSecretArn})` : '';
    throw new PlanError([isLoginRefused(err)
      ? `${PROJECT_ENV.SECRET_ARN}: the original ${plan.source.id} at ${original.host}:${original.port} refuses the secret's credentials for ${JSON.stringify(original.user)} `
        + `(${(err as Error).message}); accepted: the instance's current master credentials${secret}.`
      : `cannot log in to the original ${plan.source.id} at ${original.host}:${original.port} to check the secret (${(err as Error).message}); `
        + `accepted: a network path from the build to the instance (subnets, security groups), and ${PROJECT_ENV.PG_CA_BUNDLE} holding the CA that issued its certificate.`]);
  }
  // A client of another major fails only at the restore, after the snapshot and the point-in-time restore: refuse now.
  const client = await checkClientVersion(run, original, `the original ${plan.source.id} (EngineVersion ${plan.source.engineVersion})`, true);
  run.plan = plan;
  log.info(`source: ${plan.source.id} (${plan.source.engine} ${plan.source.engineVersion}, ${plan.source.endpoint.host}:${plan.source.endpoint.port})`);
  if (client) log.info(client);
  log.info(`restore time: ${plan.restoreTime === LATEST ? 'latest restorable time' : plan.restoreTime.toISOString()}${plan.window ? ` (restorable window ${plan.window.earliest.toISOString()} .. ${plan.window.latest.toISOString()})` : ''}`);
  log.info(`databases: ${plan.databases ? plan.databases.join(', ') : 'every database that existed at the restore time'}; strategy: ${plan.strategy}; jobs: ${plan.jobs}`
    + `; accepted hazards: ${plan.acceptHazards.length > 0 ? plan.acceptHazards.join(', ') : 'none'}`);
  if (plan.tables) log.info(describeTableRequest(plan.tables, plan.tableMode, plan.stamp));
  log.info(`${temporaryLabelOf(run)}: ${plan.temporaryInstanceId}${plan.source.kind === 'cluster' ? ` (writer ${plan.temporaryInstanceId}${TEMP_WRITER_SUFFIX})` : ''}; `
    + `safety snapshot: ${plan.safetySnapshotId ?? `off (${START_ENV.SAFETY_SNAPSHOT}=false)`}${plan.safetySnapshotId && plan.source.kind === 'cluster' ? ' (a DB cluster snapshot)' : ''}`);
  // Everything the copy would refuse at T that can be read on the original now, refused now (preflight.ts; a drill's hazards are findings).
  run.preflight = await runPreflight(plan, original, { data, rds: deps.rds, log, drill: options.drill ?? false });
  const leftovers = leftoverDeps(run);
  if (leftovers) {
    try {
      const inventory = await takeInventory(leftovers, plan.source.id, original, plan.stamp, plan.source.kind);
      for (const line of describeInventory(inventory, plan.source.id, clock.now())) log.info(`found: ${line}`);
    } catch (err) {
      log.warn(`leftovers of earlier runs could not be listed (${(err as Error).message}); the recovery goes ahead without that report`);
    }
  }
}

export async function startSafetySnapshot(run: RunState): Promise<void> {
  checkNotStopped(run);
  const plan = planOf(run);
  await run.deps.rds.startSnapshot(plan.source.id, plan.safetySnapshotId!, plan.tags);
  run.deps.log.info(`snapshot ${plan.safetySnapshotId} started; it is kept after the run`);
}

export async function restoreTemporaryInstance(run: RunState): Promise<void> {
  checkNotStopped(run);
  const plan = planOf(run);
  run.restoreRequested = true;
  await run.deps.rds.restoreToPointInTime({
    id: plan.temporaryInstanceId,
    source: plan.source,
    restoreTime: plan.restoreTime,
    instanceClass: plan.tempInstanceClass,
    tags: plan.tags,
    allocatedStorageGiB: run.allocatedStorageGiB,
    ...(run.preferClone ? { clone: true } : {}),
  });
  run.restoreAccepted = true;
}

export async function waitForTemporaryInstance(run: RunState): Promise<void> {
  const plan = planOf(run);
  const id = plan.temporaryInstanceId;
  const label = temporaryLabelOf(run);
  const state = await poll(run, `${label} ${id}`, plan.waitTimeoutMs, async () => {
    const s = await run.deps.rds.describeInstance(id);
    assertNotTerminal(s);
    return { done: s.status === 'available' && s.endpoint !== undefined, status: s.detail ? `${s.status} (${s.detail})` : s.status, value: s };
  });
  run.temporaryEndpoint = state.endpoint!;
  run.deps.log.info(`${label} ${id} is available at ${state.endpoint!.host}:${state.endpoint!.port}`);
}

/**
 * The temporary instance has the master password of the restore time. The
 * current secret is tried first; if refused, the temporary instance's
 * password (never the original's) is set to it.
 */
export async function matchCredentials(run: RunState): Promise<void> {
  await loginToTemporaryInstance(run);
  // RestoreDBInstanceToPointInTime takes no engine version: check that the restore runs the major the client was chosen for.
  const client = await checkClientVersion(run, temporaryTarget(run), `the ${temporaryLabelOf(run)} ${planOf(run).temporaryInstanceId}`, false);
  if (client) run.deps.log.info(client);
}

/**
 * The clients must be the server's major (postgres/client-version.ts). In
 * the plan a mismatch is a PlanError: nothing was created.
 */
async function checkClientVersion(run: RunState, target: PgTarget, label: string, planning: boolean): Promise<string | undefined> {
  const { data } = run.deps;
  if (!data.checkClientVersion) return undefined;
  try {
    return await data.checkClientVersion(target, label);
  } catch (err) {
    const message = (err as Error).message;
    if (planning) throw new PlanError([message]);
    throw new Error(`${message} The original instance was not changed.`);
  }
}

async function loginToTemporaryInstance(run: RunState): Promise<void> {
  const { rds, data, log, credentials } = run.deps;
  const id = planOf(run).temporaryInstanceId;
  const label = temporaryLabelOf(run);
  const target = temporaryTarget(run);
  try {
    await data.checkLogin(target);
    log.info(`the current secret is accepted by the ${label}`);
    return;
  } catch (err) {
    // Only a refused password is fixed by resetting it; an unreachable or untrusted server (TLS, network) would only make the reset wait in vain.
    if (!isLoginRefused(err)) {
      throw new Error(`cannot log in to the ${label} ${id} for a reason a password reset would not fix: ${(err as Error).message}. `
        + `Check the network path from the build to the ${label === 'temporary cluster' ? 'cluster' : 'instance'} and the CA bundle (PG_CA_BUNDLE). `
        + `The original ${planOf(run).source.kind === 'cluster' ? 'cluster' : 'instance'} was not changed.`);
    }
    log.info(`the ${label} refuses the current secret (${(err as Error).message}); setting its master password to the current secret`);
  }
  checkNotStopped(run);
  await rds.setMasterPassword(id, credentials.password);
  let lastRefusal = '';
  await poll(run, `master password reset on ${id}`, run.polling.passwordTimeoutMs, async () => {
    const s = await rds.describeInstance(id);
    assertNotTerminal(s);
    if (s.status !== 'available' || s.pendingPasswordChange) return { done: false, status: s.pendingPasswordChange ? `${s.status}, password change pending` : s.status, value: undefined };
    try {
      await data.checkLogin(target);
      return { done: true, status: 'password accepted', value: undefined };
    } catch (err) {
      lastRefusal = (err as Error).message;
      return { done: false, status: 'available, new password not accepted yet', value: undefined };
    }
  }, () => (lastRefusal ? ` Last login attempt: ${lastRefusal}` : ''));
  log.info(`the ${label} accepts the current secret`);
}

export async function waitForSafetySnapshot(run: RunState): Promise<void> {
  const plan = planOf(run);
  const id = plan.safetySnapshotId!;
  await poll(run, `safety snapshot ${id}`, plan.waitTimeoutMs, async () => {
    const status = await run.deps.rds.snapshotStatus(id);
    if (TERMINAL_SNAPSHOT_STATUSES.includes(status)) {
      throw new Error(`safety snapshot ${id} is ${JSON.stringify(status)}; nothing on the original was changed. Retry, or set ${START_ENV.SAFETY_SNAPSHOT}=false to recover without it.`);
    }
    return { done: status === 'available', status, value: undefined };
  });
}

/** The explicit list, each checked to exist at the restore time; otherwise every database there. */
export async function chooseDatabases(run: RunState): Promise<void> {
  checkNotStopped(run);
  const plan = planOf(run);
  const atRestoreTime = await run.deps.data.listDatabases(temporaryTarget(run));
  if (plan.tables) {
    run.databases = [chooseTableDatabase(plan.databases, atRestoreTime)];
  } else if (plan.databases) {
    const missing = plan.databases.filter((d) => !atRestoreTime.includes(d));
    if (missing.length > 0) {
      throw new Error(`${START_ENV.DATABASES}: ${missing.map((d) => quoteValue(d)).join(', ')} did not exist at the restore time; accepted: databases that did: ${atRestoreTime.map((d) => JSON.stringify(d)).join(', ')}. Nothing on the original was changed.`);
    }
    run.databases = plan.databases;
  } else {
    if (atRestoreTime.length === 0) throw new Error('the point-in-time copy holds no database to recover (only templates). Nothing on the original was changed.');
    run.databases = atRestoreTime;
  }
  run.deps.log.info(`databases to recover: ${run.databases.join(', ')}`);
}

/**
 * Before the disk check: in-progress copies of runs that are over take
 * room on the original and nobody will ever finish them.
 */
export async function dropDeadCopies(run: RunState): Promise<void> {
  checkNotStopped(run);
  const { log } = run.deps;
  try {
    const plan = planOf(run);
    const dropped = await dropDeadCopiesOf(leftoverDeps(run)!, plan.source.id, originalTarget(run), log, plan.stamp, plan.source.kind);
    if (dropped.length > 0) log.info('the room they freed may show in the original\'s FreeStorageSpace only after a minute or so');
  } catch (err) {
    log.warn(`in-progress copies of earlier runs could not be looked for (${(err as Error).message}); nothing was dropped, the recovery goes ahead`);
  }
}

/** TABLES: the chosen tables at T into `pitr_<stamp>` on the original, verified, with the change report. */
export async function recoverTables(run: RunState): Promise<void> {
  checkNotStopped(run);
  const plan = planOf(run);
  run.copyStarted = true;
  run.tableResult = await run.deps.tables!.recoverTables(temporaryTarget(run), originalTarget(run), {
    database: run.databases[0],
    tables: plan.tables!,
    stamp: plan.stamp,
    log: run.deps.log,
    signal: run.deps.signal,
    mode: plan.tableMode,
  });
}

/** Every database from the temporary instance into the original, verified, then swapped in or replacing it. */
export async function copyDatabases(run: RunState): Promise<void> {
  checkNotStopped(run);
  run.workDir = makeWorkDir(run, 'pitr-dump');
  const originalStorage = await measureOriginalStorage(run);
  run.copyStarted = true;
  const results = await run.deps.data.copy(temporaryTarget(run), originalTarget(run), copyOptions(run, run.workDir, originalStorage));
  run.results = results;
  const unverified = notVerified(run.databases, results);
  if (unverified.length > 0) {
    throw new Error(`not verified: ${unverified.join(', ')}; the run does not count as a recovery.`);
  }
}

/** The dump scratch directory, `<prefix>-<stamp>-XXXXXX`, under `scratchDir` or the OS temp directory. */
export function makeWorkDir(run: RunState, prefix: string): string {
  return mkdtempSync(join(run.deps.scratchDir ?? tmpdir(), `${prefix}-${planOf(run).stamp}-`));
}

/** The data path's options from the plan: the copy's settings, the run's log and stop signal. */
export function copyOptions(run: RunState, workDir: string, originalStorage: OriginalStorage | undefined): CopyOptions {
  const plan = planOf(run);
  return {
    databases: run.databases,
    strategy: plan.strategy,
    jobs: plan.jobs,
    stamp: plan.stamp,
    workDir,
    log: run.deps.log,
    signal: run.deps.signal,
    acceptHazards: plan.acceptHazards,
    originalStorage,
  };
}

/** The databases of `databases` that `results` does not report verified. */
export function notVerified(databases: readonly string[], results: readonly DatabaseCopyResult[]): string[] {
  return databases.filter((d) => !results.some((r) => r.database === d && r.verified));
}

/**
 * Room on the original for the copy, for the data path to check. A
 * measurement that fails or has no datapoint is logged and skipped: a
 * missing metric must not block a recovery.
 */
export async function measureOriginalStorage(run: RunState): Promise<OriginalStorage | undefined> {
  const { rds, log } = run.deps;
  const source = planOf(run).source;
  if (source.kind === 'cluster') {
    log.info(`free storage: ${AURORA_STORAGE_NOTE}`);
    return undefined;
  }
  if (!rds.originalStorage) return undefined;
  let storage: OriginalStorage | undefined;
  try {
    storage = await rds.originalStorage(source);
  } catch (err) {
    log.warn(`free storage on the original ${source.id} could not be measured (${(err as Error).message}); the copy goes ahead without that check`);
    return undefined;
  }
  if (!storage) {
    log.warn(`free storage on the original ${source.id} is not known (no recent FreeStorageSpace datapoint); the copy goes ahead without that check`);
    return undefined;
  }
  log.info(`free storage on the original: ${formatBytes(storage.freeBytes)}${storage.growableBytes > 0 ? `, and storage autoscaling may add up to ${formatBytes(storage.growableBytes)}` : ' (storage autoscaling off or at its maximum)'}`);
  return storage;
}

/** Deletes every instance (or Aurora cluster) this build created and the local dump; never waits for the deletion. */
export async function cleanUp(run: RunState): Promise<void> {
  const { rds, log } = run.deps;
  const problems: string[] = [];
  if (run.restoreRequested) {
    const plan = planOf(run);
    const label = temporaryLabelOf(run);
    const kind = plan.source.kind;
    const ids = new Set<string>();
    if (run.restoreAccepted) ids.add(plan.temporaryInstanceId);
    // A refused or interrupted call may still have created the instance: look for this build's tag too.
    try {
      for (const i of await rds.findInstancesByTag(TAGS.BUILD_ID, plan.buildId)) {
        if (i.status !== 'deleting') ids.add(i.id);
      }
    } catch (err) {
      ids.add(plan.temporaryInstanceId);
      log.warn(`could not list instances tagged ${TAGS.BUILD_ID}=${plan.buildId}: ${(err as Error).message}`);
    }
    if (ids.size === 0) log.info(`no ${label} was created (checked tag ${TAGS.BUILD_ID}=${plan.buildId})`);
    for (const id of ids) {
      try {
        await rds.deleteInstance(id);
        log.info(`${label} ${id}: deletion requested (${kind === 'cluster' ? 'its writer first, then the cluster; ' : ''}no final snapshot, automated backups deleted; not waiting)`);
      } catch (err) {
        problems.push(`${label} ${id} could not be deleted (${(err as Error).message}); once this build has ended, the trigger's cleanup deletes it, `
          + `and its sweep tries again every ${CLEANUP_SWEEP_MINUTES} minutes until RDS allows it (RDS does not delete ${kind === 'cluster' ? 'a cluster or an instance' : 'an instance'} still being created); `
          + `to delete it by hand: ${deleteTemporaryCommand(kind, id, `${id}${TEMP_WRITER_SUFFIX}`)}`);
      }
    }
  }
  if (run.workDir) {
    rmSync(run.workDir, { recursive: true, force: true });
    log.info(`local dump ${run.workDir} removed`);
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
}

/**
 * Polls `probe` with bounded exponential backoff until it reports done,
 * throws, or `timeoutMs` passes. Logs every status change, and the status
 * at least every `progressEveryMs`.
 */
async function poll<T>(run: RunState, what: string, timeoutMs: number, probe: () => Promise<{ done: boolean; status: string; value: T }>, detail: () => string = () => ''): Promise<T> {
  const { clock, polling } = run;
  const { log } = run.deps;
  const started = clock.now().getTime();
  let delay = polling.initialMs;
  let lastStatus: string | undefined;
  let lastLogged = started;
  for (;;) {
    checkNotStopped(run);
    const result = await probe();
    const now = clock.now().getTime();
    const elapsed = now - started;
    if (result.done) return result.value;
    if (result.status !== lastStatus || now - lastLogged >= polling.progressEveryMs) {
      log.info(`${what}: ${result.status} (elapsed ${formatDuration(elapsed)})`);
      lastStatus = result.status;
      lastLogged = now;
    }
    if (elapsed >= timeoutMs) {
      throw new Error(`${what} is still ${JSON.stringify(result.status)} after ${formatDuration(elapsed)}, past the deadline of ${formatDuration(timeoutMs)}.${detail()}`);
    }
    const untilProgress = polling.progressEveryMs - (now - lastLogged);
    await clock.sleep(Math.max(1, Math.min(delay, timeoutMs - elapsed, untilProgress)), run.deps.signal);
    delay = Math.min(delay * 2, polling.maxMs);
  }
}

function assertNotTerminal(state: InstanceState): void {
  if ((TERMINAL_INSTANCE_STATUSES as readonly string[]).includes(state.status)) {
    throw new Error(`temporary instance ${state.id} is ${JSON.stringify(state.status)}, from which RDS does not recover; nothing on the original was changed. Check the instance's events in the RDS console for the reason.`);
  }
}
