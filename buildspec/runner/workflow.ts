/**
 * The recovery runbook. `runRecovery` is the list of steps; everything it
 * touches goes through the two ports (`RdsControl`, `DataPath`), so the same
 * runbook runs on AWS, in the local rehearsal and in tests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeInventory, dropDeadCopies, keptLines, takeInventory, type LeftoverDeps } from './housekeeping';
import { formatDuration, type StepLog } from './log';
import { PlanError, planRecovery, type RecoveryPlan, type StartRequest } from './plan';
import { isLoginRefused, type BuildStatus, type OriginalCatalog, type DataPath, type DatabaseCopyResult, type DbEndpoint, type InstanceState, type OriginalStorage, type PgTarget, type RdsControl, TablePath, TableRecoveryResult } from './ports';
import { keptName } from './postgres/names';
import { tableSchemaName } from './postgres/tables';
import { runPreflight, type PreflightReport } from './preflight';
import { chooseTableDatabase, describeTableRequest, tableSummary } from './tables';
import { LATEST, PROJECT_ENV, START_ENV, TAGS } from '../../src/contract';

/** Instance statuses from which RDS does not recover on its own: waiting longer is pointless. */
export const TERMINAL_INSTANCE_STATUSES = [
  'failed', 'incompatible-restore', 'incompatible-parameters', 'incompatible-network', 'storage-full', 'deleting',
  // A restore that cannot reach its KMS key or option group never becomes available either.
  'inaccessible-encryption-credentials', 'inaccessible-encryption-credentials-recoverable', 'incompatible-option-group',
] as const;
const TERMINAL_SNAPSHOT_STATUSES = ['failed', 'error', 'deleting', 'incompatible-restore'];

/** Time, made injectable so tests do not wait for real minutes. */
export interface Clock {
  now(): Date;
  /** Resolves after `ms`, or rejects with the signal's reason once it is aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => new Date(),
  sleep: (ms, signal) => new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  }),
};

/** Bounded exponential backoff for every wait. */
export interface Polling {
  readonly initialMs: number;
  readonly maxMs: number;
  /** A progress line at least this often, even when nothing changed. */
  readonly progressEveryMs: number;
  /** Deadline for a master password reset to take effect. */
  readonly passwordTimeoutMs: number;
}

export const AWS_POLLING: Polling = { initialMs: 5_000, maxMs: 30_000, progressEveryMs: 60_000, passwordTimeoutMs: 20 * 60_000 };

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export interface RecoveryDeps {
  readonly rds: RdsControl;
  readonly data: DataPath;
  readonly log: StepLog;
  /** The current master credentials (the secret); they must work on the temporary instance too. */
  readonly credentials: Credentials;
  /**
   * Where the credentials came from (SECRET_ARN). When the source's master
   * password is managed by RDS, the plan refuses any other secret.
   * @default - not checked
   */
  readonly secretId?: string;
  /** libpq TLS settings for both instances: `verify-full` + the RDS CA bundle on AWS. */
  readonly tls?: { readonly sslMode?: string; readonly sslRootCert?: string };
  /** Parent directory of the dump scratch directory. @default - the OS temp directory */
  readonly scratchDir?: string;
  readonly clock?: Clock;
  readonly polling?: Polling;
  /** Aborted on SIGTERM/SIGINT: the run stops at the next safe point and cleans up. */
  readonly signal?: AbortSignal;
  /**
   * The original's marked databases (leftovers of earlier runs): listed by
   * the plan, dead in-progress copies dropped before the copy, what is kept
   * listed in the summary.
   * @default - leftovers are neither listed nor dropped
   */
  readonly catalog?: OriginalCatalog;
  /** CodeBuild, for in-progress copies whose temporary instance still exists. @default - such copies are left alone */
  readonly builds?: BuildStatus;
  /** Table-level recovery (TABLES). @default - a request with TABLES is refused before anything is created */
  readonly tables?: TablePath;
}

export interface RecoveryOutcome {
  readonly plan: RecoveryPlan;
  readonly results: readonly DatabaseCopyResult[];
  /** With TABLES: the tables restored beside the live ones, and the change report. */
  readonly tables?: TableRecoveryResult;
}

/**
 * Recovers the source instance's databases to their state at the restore
 * time. Resolves only when every database was copied and verified; rejects
 * with the cause otherwise. The temporary instance and the local dump are
 * removed whatever happens.
 */
export async function runRecovery(request: StartRequest, deps: RecoveryDeps): Promise<RecoveryOutcome> {
  const run = new RecoveryRun(request, deps);
  const { log } = deps;
  log.redact(deps.credentials.password);
  try {
    await log.step('Plan and validate', () => run.plan());
    if (run.wantsSafetySnapshot) await log.step('Start safety snapshot of the original', () => run.startSafetySnapshot());
    await log.step('Restore temporary instance at the restore time', () => run.restoreTemporaryInstance());
    await log.step('Wait for the temporary instance', () => run.waitForTemporaryInstance());
    await log.step('Match credentials to the current secret', () => run.matchCredentials());
    if (run.wantsSafetySnapshot) await log.step('Wait for the safety snapshot', () => run.waitForSafetySnapshot());
    await log.step('Choose databases', () => run.chooseDatabases());
    if (deps.catalog) await log.step('Drop in-progress copies of dead runs', () => run.dropDeadCopies());
    if (request.tables) await log.step('Recover tables beside the live ones', () => run.recoverTables());
    else await log.step(request.strategy === 'swap' ? 'Copy, verify and swap in' : 'Copy, verify and replace', () => run.copyDatabases());
  } catch (err) {
    run.recordFailure(err);
  } finally {
    await log.step('Clean up', () => run.cleanUp()).catch((err) => run.recordFailure(err));
    await run.summarize();
  }
  return run.outcome();
}

/**
 * The state one run accumulates, so that cleanup and the summary know what
 * exists. Exported (with protected state) for the restore drill (drill.ts),
 * which runs the same steps and replaces the copy and the summary.
 */
export class RecoveryRun {
  protected currentPlan?: RecoveryPlan;
  private restoreRequested = false;
  private restoreAccepted = false;
  private temporaryEndpoint?: DbEndpoint;
  protected databases: readonly string[] = [];
  protected results: readonly DatabaseCopyResult[] = [];
  protected copyStarted = false;
  private tableResult?: TableRecoveryResult;
  protected workDir?: string;
  protected failure?: Error;
  /** What the plan's pre-flight found on the original (a drill's record carries it). */
  protected preflightReport?: PreflightReport;
  /** A drill: the pre-flight's hazards are findings, not refusals. */
  protected readonly isDrill: boolean = false;
  /** The temporary instance's storage when it must be larger than the source's (a drill). */
  protected allocatedStorageGiB?: number;
  protected readonly clock: Clock;
  private readonly polling: Polling;

  constructor(protected request: StartRequest, protected readonly deps: RecoveryDeps) {
    this.clock = deps.clock ?? systemClock;
    this.polling = deps.polling ?? AWS_POLLING;
  }

  private get leftovers(): LeftoverDeps | undefined {
    return this.deps.catalog ? { rds: this.deps.rds, catalog: this.deps.catalog, builds: this.deps.builds } : undefined;
  }

  get wantsSafetySnapshot(): boolean {
    return this.request.safetySnapshot;
  }

  protected get p(): RecoveryPlan {
    if (!this.currentPlan) throw new Error('internal: the plan step has not run');
    return this.currentPlan;
  }

  async plan(): Promise<void> {
    this.checkNotStopped();
    if (this.request.tables && !this.deps.tables) throw new PlanError([`${START_ENV.TABLES}: this runner was built without table recovery; accepted: leave ${START_ENV.TABLES} empty.`]);
    const plan = await planRecovery(this.request, this.deps.rds, {
      now: this.clock.now(),
      secretUsername: this.deps.credentials.username,
      secretId: this.deps.secretId,
    });
    const { log, data } = this.deps;
    // A wrong or stale secret must fail now, in seconds, not after the snapshot and the restore.
    const original = this.target(plan.source.endpoint);
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
    this.currentPlan = plan;
    log.info(`source: ${plan.source.id} (${plan.source.engine} ${plan.source.engineVersion}, ${plan.source.endpoint.host}:${plan.source.endpoint.port})`);
    log.info(`restore time: ${plan.restoreTime === LATEST ? 'latest restorable time' : plan.restoreTime.toISOString()}${plan.window ? ` (restorable window ${plan.window.earliest.toISOString()} .. ${plan.window.latest.toISOString()})` : ''}`);
    log.info(`databases: ${plan.databases ? plan.databases.join(', ') : 'every database that existed at the restore time'}; strategy: ${plan.strategy}; jobs: ${plan.jobs}`
      + `; accepted hazards: ${plan.acceptHazards.length > 0 ? plan.acceptHazards.join(', ') : 'none'}`);
    if (plan.tables) log.info(describeTableRequest(plan.tables, plan.tableMode, plan.stamp));
    log.info(`temporary instance: ${plan.temporaryInstanceId}; safety snapshot: ${plan.safetySnapshotId ?? `off (${START_ENV.SAFETY_SNAPSHOT}=false)`}`);
    // Everything the copy would refuse at T that can be read on the original now, refused now (preflight.ts).
    this.preflightReport = await runPreflight(plan, original, { data, rds: this.deps.rds, log, drill: this.isDrill });
    if (this.leftovers) {
      try {
        const inventory = await takeInventory(this.leftovers, plan.source.id, original, plan.stamp);
        for (const line of describeInventory(inventory, plan.source.id, this.clock.now())) log.info(`found: ${line}`);
      } catch (err) {
        log.warn(`leftovers of earlier runs could not be listed (${(err as Error).message}); the recovery goes ahead without that report`);
      }
    }
  }

  /**
   * Before the disk check: in-progress copies of runs that are over take
   * room on the original and nobody will ever finish them.
   */
  async dropDeadCopies(): Promise<void> {
    this.checkNotStopped();
    const { log } = this.deps;
    try {
      const dropped = await dropDeadCopies(this.leftovers!, this.p.source.id, this.originalTarget(), log, this.p.stamp);
      if (dropped.length > 0) log.info('the room they freed may show in the original\'s FreeStorageSpace only after a minute or so');
    } catch (err) {
      log.warn(`in-progress copies of earlier runs could not be looked for (${(err as Error).message}); nothing was dropped, the recovery goes ahead`);
    }
  }

  async startSafetySnapshot(): Promise<void> {
    this.checkNotStopped();
    await this.deps.rds.startSnapshot(this.p.source.id, this.p.safetySnapshotId!, this.p.tags);
    this.deps.log.info(`snapshot ${this.p.safetySnapshotId} started; it is kept after the run`);
  }

  async restoreTemporaryInstance(): Promise<void> {
    this.checkNotStopped();
    this.restoreRequested = true;
    await this.deps.rds.restoreToPointInTime({
      id: this.p.temporaryInstanceId,
      source: this.p.source,
      restoreTime: this.p.restoreTime,
      instanceClass: this.p.tempInstanceClass,
      tags: this.p.tags,
      allocatedStorageGiB: this.allocatedStorageGiB,
    });
    this.restoreAccepted = true;
  }

  async waitForTemporaryInstance(): Promise<void> {
    const id = this.p.temporaryInstanceId;
    const state = await this.poll(`temporary instance ${id}`, this.p.waitTimeoutMs, async () => {
      const s = await this.deps.rds.describeInstance(id);
      assertNotTerminal(s);
      return { done: s.status === 'available' && s.endpoint !== undefined, status: s.status, value: s };
    });
    this.temporaryEndpoint = state.endpoint!;
    this.deps.log.info(`temporary instance ${id} is available at ${state.endpoint!.host}:${state.endpoint!.port}`);
  }

  /**
   * The temporary instance has the master password of the restore time. The
   * current secret is tried first; if refused, the temporary instance's
   * password (never the original's) is set to it.
   */
  async matchCredentials(): Promise<void> {
    const { rds, data, log } = this.deps;
    const id = this.p.temporaryInstanceId;
    const target = this.temporaryTarget();
    try {
      await data.checkLogin(target);
      log.info('the current secret is accepted by the temporary instance');
      return;
    } catch (err) {
      // Only a refused password is fixed by resetting it; an unreachable or untrusted server (TLS, network) would only make the reset wait in vain.
      if (!isLoginRefused(err)) {
        throw new Error(`cannot log in to the temporary instance ${id} for a reason a password reset would not fix: ${(err as Error).message}. `
          + 'Check the network path from the build to the instance and the CA bundle (PG_CA_BUNDLE). The original instance was not changed.');
      }
      log.info(`the temporary instance refuses the current secret (${(err as Error).message}); setting its master password to the current secret`);
    }
    this.checkNotStopped();
    await rds.setMasterPassword(id, this.deps.credentials.password);
    let lastRefusal = '';
    await this.poll(`master password reset on ${id}`, this.polling.passwordTimeoutMs, async () => {
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
    log.info('the temporary instance accepts the current secret');
  }

  async waitForSafetySnapshot(): Promise<void> {
    const id = this.p.safetySnapshotId!;
    await this.poll(`safety snapshot ${id}`, this.p.waitTimeoutMs, async () => {
      const status = await this.deps.rds.snapshotStatus(id);
      if (TERMINAL_SNAPSHOT_STATUSES.includes(status)) {
        throw new Error(`safety snapshot ${id} is ${JSON.stringify(status)}; nothing on the original was changed. Retry, or set ${START_ENV.SAFETY_SNAPSHOT}=false to recover without it.`);
      }
      return { done: status === 'available', status, value: undefined };
    });
  }

  /** The explicit list, each checked to exist at the restore time; otherwise every database there. */
  async chooseDatabases(): Promise<void> {
    this.checkNotStopped();
    const atRestoreTime = await this.deps.data.listDatabases(this.temporaryTarget());
    if (this.p.tables) {
      this.databases = [chooseTableDatabase(this.p.databases, atRestoreTime)];
    } else if (this.p.databases) {
      const missing = this.p.databases.filter((d) => !atRestoreTime.includes(d));
      if (missing.length > 0) {
        throw new Error(`${START_ENV.DATABASES}: ${missing.map((d) => JSON.stringify(d)).join(', ')} did not exist at the restore time; accepted: databases that did: ${atRestoreTime.map((d) => JSON.stringify(d)).join(', ')}. Nothing on the original was changed.`);
      }
      this.databases = this.p.databases;
    } else {
      if (atRestoreTime.length === 0) throw new Error('the point-in-time copy holds no database to recover (only templates). Nothing on the original was changed.');
      this.databases = atRestoreTime;
    }
    this.deps.log.info(`databases to recover: ${this.databases.join(', ')}`);
  }

  async copyDatabases(): Promise<void> {
    this.checkNotStopped();
    this.workDir = mkdtempSync(join(this.deps.scratchDir ?? tmpdir(), `pitr-dump-${this.p.stamp}-`));
    const originalStorage = await this.measureOriginalStorage();
    this.copyStarted = true;
    const results = await this.deps.data.copy(this.temporaryTarget(), this.originalTarget(), {
      databases: this.databases,
      strategy: this.p.strategy,
      jobs: this.p.jobs,
      stamp: this.p.stamp,
      workDir: this.workDir,
      log: this.deps.log,
      signal: this.deps.signal,
      acceptHazards: this.p.acceptHazards,
      originalStorage,
    });
    this.results = results;
    const unverified = this.databases.filter((d) => !results.some((r) => r.database === d && r.verified));
    if (unverified.length > 0) {
      throw new Error(`not verified: ${unverified.join(', ')}; the run does not count as a recovery.`);
    }
  }

  /** TABLES: the chosen tables at T into `pitr_<stamp>` on the original, verified, with the change report. */
  async recoverTables(): Promise<void> {
    this.checkNotStopped();
    this.copyStarted = true;
    this.tableResult = await this.deps.tables!.recoverTables(this.temporaryTarget(), this.originalTarget(), {
      database: this.databases[0],
      tables: this.p.tables!,
      stamp: this.p.stamp,
      log: this.deps.log,
      signal: this.deps.signal,
      mode: this.p.tableMode,
    });
  }

  /**
   * Room on the original for the copy, for the data path to check. A
   * measurement that fails or has no datapoint is logged and skipped: a
   * missing metric must not block a recovery.
   */
  protected async measureOriginalStorage(): Promise<OriginalStorage | undefined> {
    const { rds, log } = this.deps;
    if (!rds.originalStorage) return undefined;
    let storage: OriginalStorage | undefined;
    try {
      storage = await rds.originalStorage(this.p.source);
    } catch (err) {
      log.warn(`free storage on the original ${this.p.source.id} could not be measured (${(err as Error).message}); the copy goes ahead without that check`);
      return undefined;
    }
    if (!storage) {
      log.warn(`free storage on the original ${this.p.source.id} is not known (no recent FreeStorageSpace datapoint); the copy goes ahead without that check`);
      return undefined;
    }
    log.info(`free storage on the original: ${formatBytes(storage.freeBytes)}${storage.growableBytes > 0 ? `, and storage autoscaling may add up to ${formatBytes(storage.growableBytes)}` : ' (storage autoscaling off or at its maximum)'}`);
    return storage;
  }

  /** Deletes every instance this build created and the local dump; never waits for the deletion. */
  async cleanUp(): Promise<void> {
    const { rds, log } = this.deps;
    const problems: string[] = [];
    if (this.restoreRequested) {
      const ids = new Set<string>();
      if (this.restoreAccepted) ids.add(this.p.temporaryInstanceId);
      // A refused or interrupted call may still have created the instance: look for this build's tag too.
      try {
        for (const i of await rds.findInstancesByTag(TAGS.BUILD_ID, this.p.buildId)) {
          if (i.status !== 'deleting') ids.add(i.id);
        }
      } catch (err) {
        ids.add(this.p.temporaryInstanceId);
        log.warn(`could not list instances tagged ${TAGS.BUILD_ID}=${this.p.buildId}: ${(err as Error).message}`);
      }
      if (ids.size === 0) log.info(`no temporary instance was created (checked tag ${TAGS.BUILD_ID}=${this.p.buildId})`);
      for (const id of ids) {
        try {
          await rds.deleteInstance(id);
          log.info(`temporary instance ${id}: deletion requested (no final snapshot, automated backups deleted; not waiting)`);
        } catch (err) {
          problems.push(`temporary instance ${id} could not be deleted (${(err as Error).message}); delete it by hand: aws rds delete-db-instance --db-instance-identifier ${id} --skip-final-snapshot --delete-automated-backups`);
        }
      }
    }
    if (this.workDir) {
      rmSync(this.workDir, { recursive: true, force: true });
      log.info(`local dump ${this.workDir} removed`);
    }
    if (problems.length > 0) throw new Error(problems.join('; '));
  }

  /** Keeps the first failure; later ones (e.g. cleanup) are logged, never allowed to hide it. */
  recordFailure(err: unknown): void {
    let error = err instanceof Error ? err : new Error(String(err));
    const signal = this.deps.signal;
    if (signal?.aborted && signal.reason instanceof Error && error !== signal.reason) {
      error = new Error(`${signal.reason.message}; ${error.message}`);
    }
    if (this.failure) {
      this.deps.log.warn(`also failed: ${error.message}`);
    } else {
      this.failure = error;
    }
  }

  /** The result, or the first failure. */
  outcome(): RecoveryOutcome {
    if (this.failure) throw this.failure;
    return { plan: this.p, results: this.results, ...(this.tableResult ? { tables: this.tableResult } : {}) };
  }

  async summarize(): Promise<void> {
    const failure = this.failure;
    const { log } = this.deps;
    const lines: string[] = ['', '==== Summary ====', 'Steps:', ...log.stepTable()];
    const plan = this.currentPlan;
    if (plan) {
      const when = plan.restoreTime === LATEST ? 'the latest restorable time' : plan.restoreTime.toISOString();
      lines.push(`Source: ${plan.source.id}; restore time: ${when}; strategy: ${plan.strategy}; temporary instance: ${plan.temporaryInstanceId}`);
      if (this.results.length > 0) {
        lines.push('Restored:');
        for (const r of this.results) {
          lines.push(`  ${r.database}: ${r.verified ? 'verified' : 'NOT verified'}, ${r.tables} tables, ${r.rows} rows; unavailable for ${formatDuration(r.unavailableMs)}${r.keptAs ? `; pre-recovery data kept as ${JSON.stringify(r.keptAs)}` : ''}`);
        }
        const kept = this.results.filter((r) => r.keptAs);
        if (kept.length > 0) {
          lines.push('The pre-recovery databases hold every write made after the restore time. Once you no longer need them:');
          for (const r of kept) lines.push(`  DROP DATABASE ${quoteIdent(r.keptAs!)};`);
        }
      }
      if (this.tableResult) lines.push(...tableSummary(this.tableResult));
      lines.push(plan.safetySnapshotId
        ? `Safety snapshot of the original (kept): ${plan.safetySnapshotId}; delete it when no longer needed: aws rds delete-db-snapshot --db-snapshot-identifier ${plan.safetySnapshotId}`
        : 'Safety snapshot: off');
    }
    if (failure === undefined && this.tableResult) {
      lines.push(`RESULT: SUCCESS: ${this.tableResult.tables.length} table(s) restored and verified into schema "${this.tableResult.schema}"; `
        + (this.tableResult.swapped ? `${this.tableResult.swapped.length} swapped in place of the live one(s).` : 'no live table was changed.'));
    } else if (failure === undefined) {
      lines.push(`RESULT: SUCCESS: ${this.results.length} database(s) recovered and verified.`);
    } else {
      const step = log.steps.find((s) => s.outcome === 'failed');
      lines.push(`RESULT: FAILED${step ? ` in step "${step.name}"` : ''}: ${failure.message}`);
      lines.push(...await this.whatChanged());
    }
    lines.push(...await this.stillKept());
    for (const line of lines) log.info(line);
  }

  /** The last lines of every summary: what is kept for this source, and how to remove each. */
  private async stillKept(): Promise<string[]> {
    const plan = this.currentPlan;
    if (!plan || !this.leftovers) return [];
    try {
      const inventory = await takeInventory(this.leftovers, plan.source.id, this.originalTarget());
      return keptLines(inventory, plan.source.id, plan.source.endpoint, this.clock.now());
    } catch (err) {
      return [`Still kept for ${plan.source.id}: could not be listed (${(err as Error).message}).`];
    }
  }

  /** What a failed run left behind on the original, for the person who has to decide what next. */
  private async whatChanged(): Promise<string[]> {
    if (!this.copyStarted) return ['The original instance was not changed.'];
    const stamp = this.p.stamp;
    if (this.p.tables) return [`Table recovery: ${this.p.tableMode === 'swap' ? 'a live table is changed only by its swap, which commits whole or not at all (see above which were swapped); ' : 'no live table was changed; '} anything restored is in schema ${JSON.stringify(tableSchemaName(stamp))} of ${JSON.stringify(this.databases[0])} (see above whether it was kept).`];
    if (this.p.strategy === 'swap') {
      // The data path stops at the first failure; the databases it had already swapped are the ones with a kept copy.
      let onOriginal: string[];
      try {
        onOriginal = await this.deps.data.listDatabases(this.originalTarget());
      } catch (err) {
        return [`Strategy swap: a database is renamed only after it was verified; could not list the original's databases to say which were (${(err as Error).message}). Look for <db>__before_pitr_${stamp}.`];
      }
      const swapped = this.databases.filter((d) => onOriginal.includes(keptName(d, stamp)));
      const untouched = this.databases.filter((d) => !swapped.includes(d));
      return [
        swapped.length > 0
          ? `Swapped in before the failure (recovered and verified): ${swapped.map((d) => `${JSON.stringify(d)} (pre-recovery data kept as ${JSON.stringify(keptName(d, stamp))})`).join(', ')}.`
          : 'No database was swapped.',
        untouched.length > 0 ? `Untouched on the original: ${untouched.map((d) => JSON.stringify(d)).join(', ')}.` : '',
      ].filter(Boolean);
    }
    const snapshot = this.currentPlan?.safetySnapshotId;
    return ['Strategy replace: a database not listed above as restored may have been dropped or partially restored on the original. '
      + (snapshot ? `Its state before this run is in the safety snapshot ${snapshot}.` : 'There is no safety snapshot (it was turned off).')];
  }

  protected temporaryTarget(): PgTarget {
    if (!this.temporaryEndpoint) throw new Error('internal: the temporary instance is not available yet');
    return this.target(this.temporaryEndpoint);
  }

  protected originalTarget(): PgTarget {
    return this.target(this.p.source.endpoint);
  }

  private target(endpoint: DbEndpoint): PgTarget {
    return {
      host: endpoint.host,
      port: endpoint.port,
      user: this.deps.credentials.username,
      password: this.deps.credentials.password,
      maintenanceDatabase: 'postgres',
      sslMode: this.deps.tls?.sslMode,
      sslRootCert: this.deps.tls?.sslRootCert,
    };
  }

  protected checkNotStopped(): void {
    const signal = this.deps.signal;
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
  }

  /**
   * Polls `probe` with bounded exponential backoff until it reports done,
   * throws, or `timeoutMs` passes. Logs every status change, and the status
   * at least every `progressEveryMs`.
   */
  private async poll<T>(what: string, timeoutMs: number, probe: () => Promise<{ done: boolean; status: string; value: T }>, detail: () => string = () => ''): Promise<T> {
    const { log } = this.deps;
    const started = this.clock.now().getTime();
    let delay = this.polling.initialMs;
    let lastStatus: string | undefined;
    let lastLogged = started;
    for (;;) {
      this.checkNotStopped();
      const result = await probe();
      const now = this.clock.now().getTime();
      const elapsed = now - started;
      if (result.done) return result.value;
      if (result.status !== lastStatus || now - lastLogged >= this.polling.progressEveryMs) {
        log.info(`${what}: ${result.status} (elapsed ${formatDuration(elapsed)})`);
        lastStatus = result.status;
        lastLogged = now;
      }
      if (elapsed >= timeoutMs) {
        throw new Error(`${what} is still ${JSON.stringify(result.status)} after ${formatDuration(elapsed)}, past the deadline of ${formatDuration(timeoutMs)}.${detail()}`);
      }
      const untilProgress = this.polling.progressEveryMs - (now - lastLogged);
      await this.clock.sleep(Math.max(1, Math.min(delay, timeoutMs - elapsed, untilProgress)), this.deps.signal);
      delay = Math.min(delay * 2, this.polling.maxMs);
    }
  }
}

function assertNotTerminal(state: InstanceState): void {
  if ((TERMINAL_INSTANCE_STATUSES as readonly string[]).includes(state.status)) {
    throw new Error(`temporary instance ${state.id} is ${JSON.stringify(state.status)}, from which RDS does not recover; nothing on the original was changed. Check the instance's events in the RDS console for the reason.`);
  }
}

function formatBytes(bytes: number): string {
  const gib = bytes / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
