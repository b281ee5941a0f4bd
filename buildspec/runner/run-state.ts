/**
 * What one run is given (`RecoveryDeps`) and what it accumulates
 * (`RunState`): the plan, the temporary instance, the databases, the copy's
 * results, the first failure. Every step (steps.ts) takes the run state,
 * reads what earlier steps left there and adds what it learns, so that
 * cleanup and the summary know what exists. The recovery (workflow.ts) and
 * the restore drill (drill.ts) pass the same kind of state through their
 * steps.
 */
import type { LeftoverDeps } from './housekeeping';
import type { StepLog } from './log';
import type { RecoveryPlan, StartRequest } from './plan';
import type { BuildStatus, DatabaseCopyResult, DataPath, DbEndpoint, OriginalCatalog, PgTarget, RdsControl, TablePath, TableRecoveryResult } from './ports';
import type { ChangesOptions, ChangesRecord } from './postgres/changes';
import type { PreflightReport } from './preflight';
import { temporaryLabel } from './source-kind';

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
  /** The record of writes made after the restore time (CHANGES, changes.ts). @default - not recorded */
  readonly changes?: ChangesPath;
}

/** Computes the record of writes made after T for one database (PostgreSQL: postgres/changes.ts recordChanges). */
export interface ChangesPath {
  record(target: PgTarget, options: ChangesOptions): Promise<ChangesRecord>;
}

/** The state one run accumulates, step by step. Each field says which step sets it. */
export interface RunState {
  readonly deps: RecoveryDeps;
  readonly clock: Clock;
  readonly polling: Polling;
  /** As started; a drill's first step replaces its restore time with the one it chose. */
  request: StartRequest;
  /** Set by the plan step. */
  plan?: RecoveryPlan;
  /** What the plan step's pre-flight found on the original (a drill's record carries it). */
  preflight?: PreflightReport;
  /** RDS was asked to restore the temporary instance: cleanup looks for it from here on. */
  restoreRequested: boolean;
  /** RDS accepted the restore request: the temporary instance exists under the plan's identifier. */
  restoreAccepted: boolean;
  /** The temporary instance's storage when it must be larger than the source's (a drill sizes it). */
  allocatedStorageGiB?: number;
  /** A drill: restore an Aurora source as a copy-on-write clone where RDS allows one (TemporaryInstanceSpec.clone). */
  preferClone?: boolean;
  /** Set once the temporary instance is available. */
  temporaryEndpoint?: DbEndpoint;
  /** The databases to copy, chosen on the point-in-time copy. */
  databases: readonly string[];
  /** The local dump scratch directory, removed by cleanup. */
  workDir?: string;
  /** The first write (copy or table recovery) has begun: from here on a failure may have changed something. */
  copyStarted: boolean;
  results: readonly DatabaseCopyResult[];
  /** With TABLES: the tables restored beside the live ones, and the change report. */
  tableResult?: TableRecoveryResult;
  /** Set by the record of writes made after the restore time (changes.ts): its summary lines. */
  changesLines?: readonly string[];
  /** The first failure; the summary reports it and the run rejects with it. */
  failure?: Error;
}

export function newRunState(request: StartRequest, deps: RecoveryDeps): RunState {
  return {
    deps,
    clock: deps.clock ?? systemClock,
    polling: deps.polling ?? AWS_POLLING,
    request,
    restoreRequested: false,
    restoreAccepted: false,
    databases: [],
    copyStarted: false,
    results: [],
  };
}

/** The plan, for steps that run after the plan step. */
export function planOf(run: RunState): RecoveryPlan {
  if (!run.plan) throw new Error('internal: the plan step has not run');
  return run.plan;
}

/** What takes and drops the original's leftovers; undefined when this run does neither (a drill, or no catalog). */
export function leftoverDeps(run: RunState): LeftoverDeps | undefined {
  const { rds, catalog, builds } = run.deps;
  return catalog ? { rds, catalog, builds } : undefined;
}

/** `temporary instance`, or `temporary cluster` for an Aurora source, as the log calls what the run restored. */
export function temporaryLabelOf(run: RunState): string {
  return temporaryLabel(run.plan?.source.kind ?? run.request.sourceKind);
}

export function temporaryTarget(run: RunState): PgTarget {
  if (!run.temporaryEndpoint) throw new Error('internal: the temporary instance is not available yet');
  return targetAt(run, run.temporaryEndpoint);
}

export function originalTarget(run: RunState): PgTarget {
  return targetAt(run, planOf(run).source.endpoint);
}

/** The secret's credentials and the TLS settings at `endpoint`. */
export function targetAt(run: RunState, endpoint: DbEndpoint): PgTarget {
  const { credentials, tls } = run.deps;
  return {
    host: endpoint.host,
    port: endpoint.port,
    user: credentials.username,
    password: credentials.password,
    maintenanceDatabase: 'postgres',
    sslMode: tls?.sslMode,
    sslRootCert: tls?.sslRootCert,
  };
}

/** Throws the stop signal's reason once SIGTERM/SIGINT arrived: the run stops at the next safe point. */
export function checkNotStopped(run: RunState): void {
  const signal = run.deps.signal;
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
}

/** Keeps the first failure; later ones (e.g. cleanup) are logged, never allowed to hide it. */
export function recordFailure(run: RunState, err: unknown): void {
  let error = err instanceof Error ? err : new Error(String(err));
  const signal = run.deps.signal;
  if (signal?.aborted && signal.reason instanceof Error && error !== signal.reason) {
    error = new Error(`${signal.reason.message}; ${error.message}`);
  }
  if (run.failure) {
    run.deps.log.warn(`also failed: ${error.message}`);
  } else {
    run.failure = error;
  }
}
