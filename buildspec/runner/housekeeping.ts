/**
 * What earlier runs left for this source, and cleaning it where that is
 * provably safe:
 *
 * - in-progress copies (`<db>__pitr_<stamp>`) of runs that are over: dropped
 *   by the next recovery before its disk check, and by housekeeping;
 * - pre-recovery copies (`<db>__before_pitr_<stamp>`) and safety snapshots
 *   (`<source>-pre-pitr-<stamp>`): never dropped implicitly; housekeeping
 *   (`MODE=housekeeping`) drops those older than `OLDER_THAN`, after `CONFIRM`,
 *   and `DRY_RUN=true` only lists them.
 *
 * When is a run over? Its in-progress copy `<db>__pitr_<stamp>` is written
 * only while its temporary instance `<source>-pitr-<stamp>` exists: the copy
 * starts after that instance is available, and the run deletes the instance
 * only once its copy step has ended (its pg_dump/pg_restore children die
 * with it: own process groups and a watchdog); the trigger's janitor deletes
 * it only after CodeBuild reports the build ended. So a copy whose temporary
 * instance is gone (or being deleted) has no writer. When the instance is
 * still there, CodeBuild decides (BatchGetBuilds on this project, the build
 * id from the instance's tag): only a build CodeBuild reports as ended counts
 * as dead; IN_PROGRESS, unknown, untagged or unanswered means hands off. The
 * databases are listed before the instances, so a copy seen is never
 * matched against an instance list older than it. The drop itself is a plain
 * DROP DATABASE, which PostgreSQL refuses while any session is connected.
 */
import { formatBytes, formatDuration, type StepLog } from './log';
import { PlanError } from './plan';
import type { BuildStatus, DbEndpoint, MarkedDatabase, OriginalCatalog, PgTarget, RdsControl, SafetySnapshot } from './ports';
import { ident } from './postgres/names';
import { deleteSnapshotCommand, sourceNoun, temporaryIdOf, temporaryLabel } from './source-kind';
import {
  START_ENV, TAGS, parseAge, quoteValue, sourceRefFromEnv, stampOfSafetySnapshot, timeOfStamp, type SourceKind,
} from '../../src/contract';

export interface InProgressCopy extends MarkedDatabase {
  /** True only when no run can be writing it (see the module comment). */
  readonly dead: boolean;
  /** Why, in words for the log. */
  readonly why: string;
}

export interface Inventory {
  readonly inProgress: readonly InProgressCopy[];
  readonly preRecovery: readonly MarkedDatabase[];
  readonly snapshots: readonly SafetySnapshot[];
  /** Set when the snapshots could not be listed. */
  readonly snapshotsUnknown?: string;
}

export interface LeftoverDeps {
  readonly rds: RdsControl;
  readonly catalog: OriginalCatalog;
  /** CodeBuild's answer for builds whose temporary instance still exists. @default - such copies are never dead */
  readonly builds?: BuildStatus;
}

/**
 * Everything this source's runs left, classified. `ownStamp`: the current
 * run, whose copies are never dead. `kind`: an Aurora cluster's runs restore
 * temporary clusters, whose identifiers are shortened differently.
 */
export async function takeInventory(
  deps: LeftoverDeps, sourceId: string, original: PgTarget, ownStamp?: string, kind?: SourceKind,
): Promise<Inventory> {
  const label = temporaryLabel(kind);
  // Databases first, instances second: see the module comment.
  const marked = await deps.catalog.listMarked(original);
  const inProgressMarked = marked.filter((m) => m.kind === 'in-progress');
  const live = inProgressMarked.length > 0
    ? new Map((await deps.rds.findInstancesByTag(TAGS.SOURCE, sourceId)).filter((i) => i.status !== 'deleting').map((i) => [i.id.toLowerCase(), i]))
    : new Map();
  const askBuilds = [...new Set(inProgressMarked.flatMap((m) => {
    const instance = live.get(temporaryIdOf(kind, sourceId, m.stamp));
    return m.stamp !== ownStamp && instance?.buildId ? [instance.buildId as string] : [];
  }))];
  let statuses: ReadonlyMap<string, string> = new Map();
  let buildsUnanswered = '';
  if (askBuilds.length > 0 && deps.builds) {
    try {
      statuses = await deps.builds.statusOf(askBuilds);
    } catch (err) {
      buildsUnanswered = (err as Error).message;
    }
  }
  const inProgress = inProgressMarked.map((m): InProgressCopy => {
    const instanceId = temporaryIdOf(kind, sourceId, m.stamp);
    if (m.stamp === ownStamp) return { ...m, dead: false, why: 'this run\'s own copy' };
    const instance = live.get(instanceId);
    if (!instance) return { ...m, dead: true, why: `its run is over: its ${label} ${instanceId} is gone` };
    const buildId = instance.buildId;
    if (!buildId) return { ...m, dead: false, why: `its ${label} ${instanceId} is ${instance.status} and carries no ${TAGS.BUILD_ID} tag, so its build cannot be checked; left alone` };
    const status = statuses.get(buildId);
    if (status && status !== 'IN_PROGRESS') return { ...m, dead: true, why: `its build ${buildId} ended (${status}), though its ${label} ${instanceId} is still ${instance.status}` };
    if (status === 'IN_PROGRESS') return { ...m, dead: false, why: `its build ${buildId} is still running (${label} ${instanceId} is ${instance.status}); never touched` };
    const reason = !deps.builds ? 'CodeBuild was not asked' : buildsUnanswered ? `CodeBuild did not answer: ${buildsUnanswered}` : 'CodeBuild does not know the build';
    return { ...m, dead: false, why: `its ${label} ${instanceId} is ${instance.status} and the state of its build ${buildId} is unknown (${reason}); left alone` };
  });

  let snapshots: SafetySnapshot[] = [];
  let snapshotsUnknown: string | undefined;
  if (deps.rds.listSafetySnapshots) {
    try {
      snapshots = (await deps.rds.listSafetySnapshots(sourceId)).filter((s) => stampOfSafetySnapshot(sourceId, s.id) !== undefined);
    } catch (err) {
      snapshotsUnknown = (err as Error).message;
    }
  } else {
    snapshotsUnknown = 'this control plane cannot list snapshots';
  }
  return { inProgress, preRecovery: marked.filter((m) => m.kind === 'pre-recovery'), snapshots, snapshotsUnknown };
}

/** The plan step's report: what is on the original and in snapshots, with size and age. */
export function describeInventory(inventory: Inventory, sourceId: string, now: Date): string[] {
  const lines: string[] = [];
  for (const c of inventory.inProgress) {
    lines.push(`in-progress copy ${JSON.stringify(c.name)} on the original (${formatBytes(c.sizeBytes)}, ${age(c.createdAt, now)} old): ${c.dead ? 'dead' : 'not dead'}, ${c.why}`);
  }
  for (const d of inventory.preRecovery) {
    lines.push(`pre-recovery copy ${JSON.stringify(d.name)} on the original (${formatBytes(d.sizeBytes)}, ${age(d.createdAt, now)} old): kept; only housekeeping drops it`);
  }
  for (const s of inventory.snapshots) {
    lines.push(`safety snapshot ${s.id} (${s.status}${s.allocatedGiB !== undefined ? `, ${s.allocatedGiB} GiB allocated` : ''}, ${age(snapshotTime(sourceId, s), now)} old): kept; only housekeeping deletes it`);
  }
  if (inventory.snapshotsUnknown) lines.push(`safety snapshots of ${sourceId}: could not be listed (${inventory.snapshotsUnknown})`);
  return lines.length > 0 ? lines : [`nothing left by earlier runs on the original ${sourceId} or in its snapshots`];
}

/** Drops the dead in-progress copies found now; what cannot be dropped is logged and left. Resolves to the names dropped. */
export async function dropDeadCopies(
  deps: LeftoverDeps, sourceId: string, original: PgTarget, log: StepLog, ownStamp?: string, kind?: SourceKind,
): Promise<string[]> {
  const inventory = await takeInventory(deps, sourceId, original, ownStamp, kind);
  const dropped: string[] = [];
  for (const c of inventory.inProgress) {
    if (!c.dead) {
      log.info(`in-progress copy ${JSON.stringify(c.name)} left alone: ${c.why}`);
      continue;
    }
    try {
      await deps.catalog.drop(original, c.name);
      dropped.push(c.name);
      log.info(`dropped the in-progress copy ${JSON.stringify(c.name)} (${formatBytes(c.sizeBytes)}) left by an earlier run: ${c.why}`);
    } catch (err) {
      log.warn(`the in-progress copy ${JSON.stringify(c.name)} (${formatBytes(c.sizeBytes)}) of a dead run could not be dropped (${(err as Error).message}); it was left as it is. Drop it by hand once nobody uses it: DROP DATABASE ${ident(c.name)};`);
    }
  }
  if (inventory.inProgress.length === 0) log.info('no in-progress copy of an earlier run on the original');
  return dropped;
}

/**
 * RDS allows 100 manual DB instance snapshots per Region and account by
 * default (adjustable; RDS User Guide, "Quotas and constraints for Amazon
 * RDS"), shared by every instance there. Past this many safety snapshots of
 * one source, the summary says so: at the quota, CreateDBSnapshot fails and a
 * recovery cannot take its safety snapshot.
 */
export const SNAPSHOT_QUOTA_WARNING_ABOVE = 20;
const MANUAL_SNAPSHOT_QUOTA = 100;

/** The end of every summary: what is still kept for this source, with sizes and the command that removes each. */
export function keptLines(inventory: Inventory, sourceId: string, original: DbEndpoint, now: Date, kind?: SourceKind): string[] {
  const lines: string[] = [];
  for (const d of [...inventory.preRecovery, ...inventory.inProgress]) {
    const note = d.kind === 'in-progress' ? ` [in progress: ${(d as InProgressCopy).why}]` : '';
    lines.push(`  database ${JSON.stringify(d.name)} (${formatBytes(d.sizeBytes)}, ${age(d.createdAt, now)} old)${note}: DROP DATABASE ${ident(d.name)};`);
  }
  for (const s of inventory.snapshots) {
    lines.push(`  snapshot ${s.id} (${s.status}${s.allocatedGiB !== undefined ? `, ${s.allocatedGiB} GiB allocated` : ''}, ${age(snapshotTime(sourceId, s), now)} old): ${deleteSnapshotCommand(kind, s.id)}`);
  }
  const head = `Still kept for ${sourceId}`;
  const unknown = inventory.snapshotsUnknown ? [`  (snapshots could not be listed: ${inventory.snapshotsUnknown})`] : [];
  if (inventory.snapshots.length > SNAPSHOT_QUOTA_WARNING_ABOVE) {
    // The same default of 100 for manual DB cluster snapshots (Aurora User Guide, "Quotas and constraints for Amazon Aurora").
    const [manual, create] = kind === 'cluster' ? ['Manual DB cluster snapshots', 'CreateDBClusterSnapshot'] : ['Manual DB snapshots', 'CreateDBSnapshot'];
    unknown.push(`  ${inventory.snapshots.length} safety snapshots of ${sourceId} are kept. ${manual} count against a quota of ${MANUAL_SNAPSHOT_QUOTA} per Region `
      + `for the whole account (every ${sourceNoun(kind)}'s manual snapshots; adjustable in Service Quotas); once it is reached, ${create} fails and the next recovery `
      + `cannot take its safety snapshot. Drop the old ones: ${START_ENV.MODE}=housekeeping ${START_ENV.OLDER_THAN}=<age>.`);
  }
  if (lines.length === 0) return [`${head}: nothing on the original (${original.host}:${original.port}) and no safety snapshot.`, ...unknown];
  return [
    `${head} (databases on the original ${original.host}:${original.port}, run as the master user; or ${START_ENV.MODE}=housekeeping ${START_ENV.OLDER_THAN}=<age>):`,
    ...lines,
    ...unknown,
  ];
}

// ---------------------------------------------------------------- housekeeping mode

export interface HousekeepingRequest {
  readonly sourceId: string;
  /** `cluster` for an Aurora source (SOURCE_CLUSTER_ID). @default 'instance' */
  readonly sourceKind?: SourceKind;
  readonly olderThanMs: number;
  /** As given (`7d`), for the log. */
  readonly olderThan: string;
  readonly dryRun: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Reads MODE=housekeeping's variables; every problem at once, nothing done. */
export function readHousekeepingRequest(env: Env): HousekeepingRequest {
  const problems: string[] = [];
  const value = (name: string): string | undefined => (env[name]?.trim() ? env[name]!.trim() : undefined);
  const ref = sourceRefFromEnv(env);
  if ('problem' in ref) problems.push(ref.problem);
  const sourceId = 'problem' in ref ? undefined : ref.id;
  const sourceKind = 'problem' in ref ? undefined : ref.kind;
  const olderThan = value(START_ENV.OLDER_THAN);
  let olderThanMs = 0;
  try {
    olderThanMs = parseAge(olderThan);
  } catch (err) {
    problems.push(`${(err as Error).message.replace(/\.$/, '')}; there is deliberately no default.`);
  }
  const dryRunText = value(START_ENV.DRY_RUN);
  let dryRun = false;
  if (dryRunText !== undefined) {
    if (dryRunText.toLowerCase() === 'true') dryRun = true;
    else if (dryRunText.toLowerCase() !== 'false') problems.push(`${START_ENV.DRY_RUN}: ${quoteValue(dryRunText)} is not a boolean; accepted: true | false (default false).`);
  }
  const confirm = value(START_ENV.CONFIRM);
  if (sourceId && !dryRun && confirm !== sourceId) {
    problems.push(confirm === undefined
      ? `${START_ENV.CONFIRM}: not set; accepted: exactly ${JSON.stringify(sourceId)}, to confirm that pre-recovery copies and safety snapshots older than ${olderThan === undefined ? START_ENV.OLDER_THAN : olderThanMs > 0 ? olderThan : quoteValue(olderThan)} are dropped for good (or ${START_ENV.DRY_RUN}=true to only list them).`
      : `${START_ENV.CONFIRM}: ${quoteValue(confirm)} does not match the source ${sourceNoun(sourceKind)}; accepted: exactly ${JSON.stringify(sourceId)}.`);
  }
  if (problems.length > 0) throw new PlanError(problems);
  return { sourceId: sourceId!, ...(sourceKind === 'cluster' ? { sourceKind } : {}), olderThanMs, olderThan: olderThan!, dryRun };
}

export interface HousekeepingDeps extends LeftoverDeps {
  readonly log: StepLog;
  readonly credentials: { readonly username: string; readonly password: string };
  readonly tls?: { readonly sslMode?: string; readonly sslRootCert?: string };
  /** @default - the system clock */
  readonly now?: () => Date;
}

export interface HousekeepingOutcome {
  /** Databases and snapshot ids dropped (or, in a dry run, that would be). */
  readonly selected: readonly string[];
  readonly dropped: readonly string[];
}

/** MODE=housekeeping. Resolves when every selected item was dropped (or listed, in a dry run); rejects otherwise. */
export async function runHousekeeping(request: HousekeepingRequest, deps: HousekeepingDeps): Promise<HousekeepingOutcome> {
  const { log, rds } = deps;
  const now = deps.now ?? (() => new Date());
  log.redact(deps.credentials.password);
  const selected: string[] = [];
  const dropped: string[] = [];
  const failed: string[] = [];
  let original: PgTarget | undefined;
  let endpoint: DbEndpoint | undefined;
  // RDS's spelling (lowercase), which is what the runner tags its temporary instances with.
  let sourceId = request.sourceId;
  const kind = request.sourceKind;
  let failure: Error | undefined;
  try {
    const inventory = await log.step('Find what earlier runs left', async () => {
      const source = await rds.describeSource(request.sourceId);
      endpoint = source.endpoint;
      sourceId = source.id;
      original = {
        host: endpoint.host,
        port: endpoint.port,
        user: deps.credentials.username,
        password: deps.credentials.password,
        maintenanceDatabase: 'postgres',
        sslMode: deps.tls?.sslMode,
        sslRootCert: deps.tls?.sslRootCert,
      };
      const found = await takeInventory(deps, sourceId, original, undefined, kind);
      for (const line of describeInventory(found, sourceId, now())) log.info(line);
      return found;
    });
    const cutoff = now().getTime() - request.olderThanMs;
    const old = (at: Date | undefined): boolean => at !== undefined && at.getTime() < cutoff;
    const databases = [
      ...inventory.inProgress.filter((c) => c.dead),
      ...inventory.preRecovery.filter((d) => old(d.createdAt)),
    ];
    // A snapshot still being taken belongs to a run in flight whatever its name says.
    const snapshots = inventory.snapshots.filter((s) => s.status === 'available' && old(snapshotTime(sourceId, s)));
    if (snapshots.length > 0 && !rds.deleteSnapshot) throw new Error('this control plane cannot delete snapshots; nothing was dropped.');
    selected.push(...databases.map((d) => d.name), ...snapshots.map((s) => s.id));
    const title = request.dryRun
      ? `List what would be dropped (${START_ENV.DRY_RUN}=true; older than ${request.olderThan})`
      : `Drop what is older than ${request.olderThan}, and dead in-progress copies`;
    await log.step(title, async () => {
      for (const d of databases) {
        const what = `${d.kind} copy ${JSON.stringify(d.name)} (${formatBytes(d.sizeBytes)}, ${age(d.createdAt, now())} old${d.kind === 'in-progress' ? `; ${(d as InProgressCopy).why}` : ''})`;
        if (request.dryRun) {
          log.info(`would drop ${what}`);
          continue;
        }
        try {
          await deps.catalog.drop(original!, d.name);
          dropped.push(d.name);
          log.info(`dropped ${what}`);
        } catch (err) {
          failed.push(`${d.name}: ${(err as Error).message}`);
          log.warn(`could not drop ${what}: ${(err as Error).message}; it is still there`);
        }
      }
      for (const s of snapshots) {
        const what = `safety snapshot ${s.id} (${s.allocatedGiB !== undefined ? `${s.allocatedGiB} GiB allocated, ` : ''}${age(snapshotTime(sourceId, s), now())} old)`;
        if (request.dryRun) {
          log.info(`would delete ${what}`);
          continue;
        }
        try {
          await rds.deleteSnapshot!(s.id);
          dropped.push(s.id);
          log.info(`deleted ${what}`);
        } catch (err) {
          failed.push(`${s.id}: ${(err as Error).message}`);
          log.warn(`could not delete ${what}: ${(err as Error).message}; it is still there`);
        }
      }
      if (selected.length === 0) log.info(`nothing is older than ${request.olderThan}, and no in-progress copy is dead`);
      if (failed.length > 0) throw new Error(`${failed.length} could not be dropped: ${failed.join('; ')}`);
    });
  } catch (err) {
    failure = err as Error;
  }

  const lines = ['', '==== Summary ====', 'Steps:', ...log.stepTable()];
  lines.push(request.dryRun
    ? `Dry run: would drop ${selected.length > 0 ? selected.map((n) => JSON.stringify(n)).join(', ') : 'nothing'}; nothing was dropped.`
    : `Dropped: ${dropped.length > 0 ? dropped.map((n) => JSON.stringify(n)).join(', ') : 'nothing'}.`);
  if (original && endpoint) {
    try {
      lines.push(...keptLines(await takeInventory(deps, sourceId, original, undefined, kind), sourceId, endpoint, now(), kind));
    } catch (err) {
      lines.push(`Still kept for ${sourceId}: could not be listed (${(err as Error).message}).`);
    }
  }
  lines.push(failure
    ? `RESULT: FAILED: ${failure.message}`
    : `RESULT: SUCCESS: housekeeping ${request.dryRun ? `dry run listed ${selected.length}` : `dropped ${dropped.length}`} item(s) older than ${request.olderThan} or dead.`);
  for (const line of lines) log.info(line);
  if (failure) throw failure;
  return { selected, dropped };
}

function snapshotTime(sourceId: string, s: SafetySnapshot): Date | undefined {
  return s.createdAt ?? timeOfStamp(stampOfSafetySnapshot(sourceId, s.id) ?? '');
}

export function age(since: Date | undefined, now: Date): string {
  if (!since) return 'unknown age';
  const ms = Math.max(0, now.getTime() - since.getTime());
  const days = Math.floor(ms / 86_400_000);
  return days >= 1 ? `${days} d ${Math.floor((ms % 86_400_000) / 3_600_000)} h` : formatDuration(ms);
}
