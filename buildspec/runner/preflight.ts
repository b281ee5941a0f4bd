/**
 * The plan's pre-flight (issue #19): every check the copy makes at T that can
 * be read on the ORIGINAL now, run before the safety snapshot and the
 * restore, so that what would be refused 10-30 minutes into a recovery is
 * refused in seconds, with the same message and the same fix. What the
 * original holds now nearly always decides the same as what the copy holds
 * at T; what only matters at T is still checked on the copy, as before.
 *
 * Checks, each timed:
 * - roles and memberships: the owners (in the chosen databases, or of the
 *   chosen tables) the master user must be able to act as;
 * - swap hazards (database recovery: logical slots, subscriptions, pg_cron,
 *   prepared transactions, event triggers; TABLE_MODE=swap: what depends on
 *   the live tables);
 * - free storage (for a database swap; for tables, a warning only);
 * - TABLES: that each name exists now, or a note that it is looked up at T.
 *
 * A drill runs the same checks: hazards never stop it (it swaps nothing),
 * and its evidence record carries the findings.
 */
import { formatBytes as mib, type StepLog } from './log';
import { PlanError, type RecoveryPlan } from './plan';
import type { DataPath, OriginalStorage, PgTarget, RdsControl } from './ports';
import { checkOriginalStorage } from './postgres/copy/checks';
import { DISK_MARGIN } from './postgres/copy/limits';
import { enforceHazards, reviewHazardsForDrill, type HazardReport } from './postgres/hazards';
import { AURORA_STORAGE_NOTE } from './source-kind';
import { START_ENV } from '../../src/contract';

/** One check of the pre-flight, as logged and as a drill's evidence record carries it. */
export interface PreflightCheck {
  readonly name: string;
  readonly seconds: number;
  /** `refused`: the run stops in the plan step; `noted`: findings to read, nothing stops. */
  readonly outcome: 'passed' | 'noted' | 'refused' | 'skipped';
  readonly findings: readonly string[];
}

export interface PreflightReport {
  /** The databases the checks read, as they are on the original now. */
  readonly databases: readonly string[];
  readonly checks: readonly PreflightCheck[];
}

export interface PreflightDeps {
  readonly data: DataPath;
  readonly rds: RdsControl;
  readonly log: StepLog;
  /** A drill: hazards are findings for the record, never refusals. */
  readonly drill: boolean;
}

export const PREFLIGHT_CHECKS = {
  DATABASES: 'databases on the original now',
  ROLES: 'roles and memberships',
  HAZARDS: 'swap hazards',
  TABLES: 'TABLES names now',
  STORAGE: 'free storage',
} as const;

/** The sentence the copy's refusals end with; the plan's refusal says it its own way. */
const NOTHING_WRITTEN = / ?Nothing was written to the original\.$/;

/**
 * Runs the pre-flight on `original` for `plan`. Throws a PlanError listing
 * every refusal at once; returns the report (logged line by line) otherwise.
 * Undefined when the data path cannot inspect the original.
 */
export async function runPreflight(plan: RecoveryPlan, original: PgTarget, deps: PreflightDeps): Promise<PreflightReport | undefined> {
  const inspector = deps.data.preflight;
  const { log } = deps;
  if (!inspector) return undefined;
  const checks: PreflightCheck[] = [];
  const refusals: string[] = [];
  const timed = async (name: string, fn: (findings: string[]) => Promise<PreflightCheck['outcome']>): Promise<void> => {
    const started = performance.now();
    const findings: string[] = [];
    let outcome: PreflightCheck['outcome'];
    try {
      outcome = await fn(findings);
    } catch (err) {
      // A check that cannot read is not a refusal: the copy checks again at T.
      findings.push(`could not be checked (${(err as Error).message}); the copy checks it at the restore time`);
      outcome = 'skipped';
    }
    const check = { name, seconds: Math.round(performance.now() - started) / 1000, outcome, findings };
    checks.push(check);
    log.info(`pre-flight: ${name}: ${outcome} (${check.seconds.toFixed(2)} s)`);
    for (const finding of findings) log.info(`  ${finding}`);
  };
  // With DATABASES empty, every database that existed at T is recovered: one on the original now may have been created since,
  // so what it would be refused for is only noted (the copy refuses it at T if it existed then).
  const sure = plan.databases !== undefined || plan.tables !== undefined;
  const refuse = (findings: string[], message: string, suffix = ''): 'refused' | 'noted' => {
    const line = `${message.replace(NOTHING_WRITTEN, '')}${suffix}`;
    if (!sure) {
      findings.push(`${line} (${START_ENV.DATABASES} is empty: this is refused at the restore time if the database existed then; `
        + `name the databases in ${START_ENV.DATABASES} to have it refused before the restore)`);
      return 'noted';
    }
    findings.push(line);
    refusals.push(line);
    return 'refused';
  };

  // Which databases: those named, or (TABLES) the only one, or every one on the original now.
  let databases: string[] = [];
  await timed(PREFLIGHT_CHECKS.DATABASES, async (findings) => {
    const now = await deps.data.listDatabases(original);
    const named = plan.databases ? [...plan.databases] : undefined;
    if (named) {
      const absent = named.filter((d) => !now.includes(d));
      for (const d of absent) findings.push(`${JSON.stringify(d)} does not exist on the original now: it is looked up at the restore time (a database dropped since T is recovered into place)`);
      databases = named.filter((d) => now.includes(d));
    } else if (plan.tables) {
      if (now.length === 1) databases = now;
      else findings.push(`${now.length} databases on the original now, and ${START_ENV.DATABASES} is empty: the database that holds TABLES is chosen at the restore time`);
    } else {
      databases = now;
    }
    return findings.length > 0 ? 'noted' : 'passed';
  });

  await timed(PREFLIGHT_CHECKS.ROLES, async (findings) => {
    let outcome: PreflightCheck['outcome'] = 'passed';
    for (const database of databases) {
      const refusal = await inspector.roleRefusal(original, database, plan.tables);
      if (refusal) outcome = refuse(findings, refusal);
    }
    return outcome;
  });

  if (plan.tables) {
    await timed(PREFLIGHT_CHECKS.TABLES, async (findings) => {
      for (const database of databases) {
        for (const t of await inspector.tablesNow(original, database, plan.tables!)) {
          if (!t.found) findings.push(`${t.name} is not in ${JSON.stringify(database)} on the original now: it is looked up at the restore time (it may have been dropped since)`);
        }
      }
      return findings.length > 0 ? 'noted' : 'passed';
    });
    if (plan.tableMode === 'swap') {
      await timed(PREFLIGHT_CHECKS.HAZARDS, async (findings) => {
        const lines: string[] = [];
        for (const database of databases) lines.push(...await inspector.tableSwapRefusals(original, database, plan.tables!));
        if (lines.length === 0) return 'passed';
        // As the swap step words it, where it would come after the restore.
        return refuse(findings, `${START_ENV.TABLE_MODE}=swap refused, because:\n${lines.map((r) => `  - ${r}`).join('\n')}\n`
          + `Remove or move those objects and run again, or use ${START_ENV.TABLE_MODE}=side-by-side.`);
      });
    }
  } else {
    await timed(PREFLIGHT_CHECKS.HAZARDS, async (findings) => {
      const reports: HazardReport[] = [];
      for (const database of databases) {
        const found = await inspector.hazards(original, database, plan.strategy, plan.acceptHazards);
        reports.push({ findings: [...found.findings], warnings: [...found.warnings], leftOutEventTriggers: [] });
      }
      const sink = { warn: (line: string) => findings.push(line) };
      if (deps.drill) {
        const byDatabase = reviewHazardsForDrill(reports, plan.acceptHazards, { warn: (line) => !line.startsWith('drill: ') && sink.warn(line) });
        findings.push(...[...byDatabase.values()].flat());
        return findings.length > 0 ? 'noted' : 'passed';
      }
      try {
        enforceHazards(reports, plan.acceptHazards, sink);
      } catch (err) {
        return refuse(findings, (err as Error).message);
      }
      return findings.length > 0 ? 'noted' : 'passed';
    });
  }

  await timed(PREFLIGHT_CHECKS.STORAGE, async (findings) => {
    if (plan.source.kind === 'cluster') {
      findings.push(AURORA_STORAGE_NOTE);
      return 'skipped';
    }
    let storage: OriginalStorage | undefined;
    if (deps.rds.originalStorage) storage = await deps.rds.originalStorage(plan.source);
    if (!storage) {
      findings.push('free storage on the original is not known now (no recent FreeStorageSpace datapoint); the copy measures it again');
      return 'skipped';
    }
    const sizes = [];
    for (const database of databases) sizes.push({ database, bytes: await inspector.sizeBytes(original, database, plan.tables) });
    if (plan.tables) {
      const needed = sizes.reduce((sum, s) => sum + s.bytes, 0) * DISK_MARGIN;
      if (needed > storage.freeBytes + storage.growableBytes) {
        findings.push(`the chosen tables take about ${mib(needed)} now (with indexes, plus ${Math.round((DISK_MARGIN - 1) * 100)}%), more than the ${mib(storage.freeBytes)} free`
          + `${storage.growableBytes > 0 ? ` and the ${mib(storage.growableBytes)} storage autoscaling may add` : ''}: the restore into ${START_ENV.TABLES}'s schema may run out of room`);
        return 'noted';
      }
      findings.push(`the chosen tables take about ${mib(needed)} now; ${mib(storage.freeBytes)} free`);
      return 'passed';
    }
    // The size now stands in for the size at T, for the copy's own check (it measures again then).
    const plans = sizes.map((s) => ({ database: s.database, sourceBytes: s.bytes, targetBytes: s.bytes }));
    const sink = { info: (line: string) => findings.push(`pre-flight, now: ${line}`), warn: (line: string) => findings.push(`pre-flight, now: ${line}`) } as unknown as StepLog;
    try {
      checkOriginalStorage(plans, { originalStorage: storage, strategy: plan.strategy, log: sink });
    } catch (err) {
      return refuse(findings, (err as Error).message, ' (sizes as the databases are now; the copy measures them again at the restore time)');
    }
    return findings.some((f) => f.includes('fits only if')) ? 'noted' : 'passed';
  });

  if (refusals.length > 0) {
    throw new PlanError(refusals.map((r) => `pre-flight on the original: ${r}`));
  }
  return { databases, checks };
}
