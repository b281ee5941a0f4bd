/**
 * Swap hazards: what a recovery of one database would silently break on the
 * original, found by the check step before anything is written. Each
 * finding says what would happen and what the operator can do. A finding
 * with a `hazard` name stops the run unless the operator accepts it
 * (ACCEPT_HAZARDS); one without can never end well and always stops it;
 * warnings (nothing to decide) are only logged.
 *
 * Everything here only reads catalogs and views the RDS master user can
 * read: pg_replication_slots, pg_subscription's public columns,
 * pg_prepared_xacts, pg_stat_activity (with pg_read_all_stats, which
 * rds_superuser has), pg_event_trigger, and cron.job through its own policy.
 */
import type { Client } from 'pg';
import { ident, literal } from './names';
import { HAZARDS, START_ENV, type Hazard, type Strategy } from '../../../src/contract';

export interface HazardFinding {
  readonly database: string;
  /** The ACCEPT_HAZARDS name that lets the run go on; undefined when nothing can make it safe. */
  readonly hazard?: Hazard;
  /** What would happen, then what to do. */
  readonly message: string;
}

export interface HazardReport {
  readonly findings: HazardFinding[];
  readonly warnings: string[];
  /** Event triggers of the point-in-time copy to leave out of the restore (the accepted hazard `event-triggers`); usually none. */
  readonly leftOutEventTriggers: readonly string[];
}

export interface HazardContext {
  readonly database: string;
  readonly strategy: Strategy;
  readonly existsOnTarget: boolean;
  readonly accepted: readonly Hazard[];
  /** Connected to the original's maintenance database. */
  readonly target: Client;
  /** Connected to `database` on the point-in-time copy. */
  readonly source: Client;
  /** Runs `fn` connected to another database of the original (pg_cron's); rejects if it cannot connect. */
  readonly onTargetDatabase: <T>(database: string, fn: (client: Client) => Promise<T>) => Promise<T>;
  /**
   * The plan's pre-flight (issue #19): `source` is the database on the
   * original itself, standing in for the copy at T. What the copy's checks
   * would find twice (its subscriptions are the original's) is left out.
   * @default false
   */
  readonly inspectingOriginal?: boolean;
}

const list = (names: readonly string[]): string => names.map((n) => JSON.stringify(n)).join(', ');

/** Looks for every hazard of recovering `ctx.database` with `ctx.strategy`. */
export async function findHazards(ctx: HazardContext): Promise<HazardReport> {
  const db = JSON.stringify(ctx.database);
  const kept = 'the pre-recovery copy';
  const findings: HazardFinding[] = [];
  const warnings: string[] = [];
  const add = (hazard: Hazard | undefined, message: string): void => {
    findings.push({ database: ctx.database, hazard, message: `${db}: ${message}` });
  };

  if (ctx.existsOnTarget) {
    // Logical replication slots belong to the database by OID: a renamed database keeps them.
    const slots = (await ctx.target.query<{ slot_name: string; active: boolean }>(
      "SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'logical' AND database = $1 ORDER BY 1", [ctx.database])).rows;
    if (slots.length > 0) {
      const names = list(slots.map((s) => s.slot_name));
      const drops = slots.map((s) => `SELECT pg_drop_replication_slot(${literal(s.slot_name)});`).join(' ');
      if (ctx.strategy === 'replace') {
        add(undefined, `logical replication slot(s) ${names} on the original: DROP DATABASE refuses while they exist, so strategy replace cannot run. `
          + `Drop them first (${drops}) and re-create them after the recovery (their consumers must re-snapshot), or use strategy swap.`);
      } else {
        add(HAZARDS.LOGICAL_SLOTS, `logical replication slot(s) ${names} on the original stay with ${kept} after the swap: CDC consumers would go on `
          + `reading the old database and see none of the recovered data. Drop them before (${drops}) and re-create them on the recovered database `
          + `afterwards (consumers must re-snapshot), or accept this with ${HAZARDS.LOGICAL_SLOTS}.`);
      }
    }

    const subscriptions = (await ctx.target.query<{ subname: string; subenabled: boolean }>(
      'SELECT subname, subenabled FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = $1) ORDER BY 1', [ctx.database])).rows;
    if (subscriptions.length > 0) {
      const disable = subscriptions.filter((s) => s.subenabled).map((s) => `ALTER SUBSCRIPTION ${ident(s.subname)} DISABLE;`).join(' ');
      add(HAZARDS.SUBSCRIPTIONS, `subscription(s) ${list(subscriptions.map((s) => s.subname))} apply changes into ${db} on the original; after the recovery `
        + `they would go on applying into ${kept}, and the recovered database would receive nothing${disable ? ' (an enabled subscription\'s worker may also hold the database so the swap cannot end it)' : ''}. `
        + `${disable ? `Disable them first (${disable}), ` : ''}re-create them in the recovered database afterwards, or accept this with ${HAZARDS.SUBSCRIPTIONS}.`);
    }

    const prepared = (await ctx.target.query<{ gid: string }>('SELECT gid FROM pg_prepared_xacts WHERE database = $1 ORDER BY prepared', [ctx.database])).rows;
    if (prepared.length > 0) {
      const sql = prepared.map((p) => `COMMIT PREPARED ${literal(p.gid)}; -- or ROLLBACK PREPARED ${literal(p.gid)};`).join(' ');
      add(undefined, `${prepared.length} prepared transaction(s) on the original (${list(prepared.map((p) => p.gid))}) hold ${db}: `
        + `${ctx.strategy === 'swap' ? 'the rename' : 'DROP DATABASE'} cannot proceed while they exist. Resolve each one first: ${sql}`);
    }

    // The pre-flight's own session in the database is not one the swap would end.
    const ownSessions = ctx.inspectingOriginal ? [(await ctx.source.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid] : [];
    const sessions = (await ctx.target.query<{ app: string; n: number; superuser: number }>(`
      SELECT coalesce(nullif(a.application_name, ''), '(no application_name)') AS app, count(*)::int AS n,
             count(*) FILTER (WHERE r.rolsuper AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))::int AS superuser
        FROM pg_stat_activity a LEFT JOIN pg_roles r ON r.oid = a.usesysid
       WHERE a.datname = $1 AND a.pid <> pg_backend_pid() AND a.pid <> ALL($2::int[]) AND a.backend_type = 'client backend'
       GROUP BY 1 ORDER BY 2 DESC, 1`, [ctx.database, ownSessions])).rows;
    if (sessions.length > 0) {
      const total = sessions.reduce((sum, s) => sum + s.n, 0);
      warnings.push(`${db}: ${total} session(s) connected now will be ended by the ${ctx.strategy === 'swap' ? 'swap' : 'drop'}: `
        + sessions.map((s) => `${s.app} (${s.n})`).join(', '));
      const untouchable = sessions.reduce((sum, s) => sum + s.superuser, 0);
      if (untouchable > 0) {
        warnings.push(`${db}: ${untouchable} of them belong to superuser roles this user cannot end; if they are still there at the swap, `
          + 'it waits 30 s and then gives up, changing nothing.');
      }
    }
  }

  // pg_cron: its scheduler keeps a connection to the database it lives in (cron.database_name), and its job table lives there.
  const cronDatabase = (await ctx.target.query<{ db: string | null }>("SELECT current_setting('cron.database_name', true) AS db")).rows[0].db;
  if (cronDatabase) {
    if (cronDatabase === ctx.database && ctx.existsOnTarget) {
      add(HAZARDS.PG_CRON, `pg_cron lives in ${db} (cron.database_name): recovering it puts the job table back to its state at the restore time `
        + '(jobs added or changed since are lost, jobs removed since come back) and pg_cron\'s scheduler holds a connection the recovery cannot end. '
        + `Leave ${db} out of the databases to recover, or accept this with ${HAZARDS.PG_CRON} and review cron.job afterwards.`);
    } else {
      const jobs = await ctx.onTargetDatabase(cronDatabase, async (c) => {
        // cron.job shows each user its own jobs through a row policy; the runner's sessions turn row security off (as pg_dump does), which makes that an error.
        await c.query('SET row_security = on');
        return c.query<{ jobid: string; jobname: string | null }>('SELECT jobid::text AS jobid, jobname FROM cron.job WHERE database = $1 ORDER BY jobid', [ctx.database]);
      }).then(
        (r) => r.rows,
        (err: Error) => {
          warnings.push(`${db}: could not read pg_cron's jobs in ${JSON.stringify(cronDatabase)} (${err.message}); jobs that target ${db} were not checked.`);
          return [];
        });
      if (jobs.length > 0) {
        warnings.push(`${db}: ${jobs.length} pg_cron job(s) of those this user can see target it (${jobs.map((j) => j.jobname ?? `job ${j.jobid}`).join(', ')}): after the recovery they run `
          + 'against the recovered database; a run in progress at the swap is ended.');
      }
    }
  }

  // In the point-in-time copy: what a dump by this user would leave out.
  const targetPowers = (await ctx.target.query<{ superuser: boolean; rds: boolean }>(`
    SELECT rolsuper AS superuser, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'rds_superuser') AND pg_has_role(current_user, 'rds_superuser', 'MEMBER') AS rds
      FROM pg_roles WHERE rolname = current_user`)).rows[0];
  const eventTriggers = (await ctx.source.query<{ evtname: string }>('SELECT evtname FROM pg_event_trigger ORDER BY 1')).rows.map((r) => r.evtname);
  // On RDS the master user (rds_superuser) may create event triggers; elsewhere only a superuser may.
  const skipEventTriggers = eventTriggers.length > 0 && !targetPowers.superuser && !targetPowers.rds;
  const inCopy = ctx.inspectingOriginal ? 'on the original (and so, most likely, in the point-in-time copy)' : 'in the point-in-time copy';
  if (skipEventTriggers) {
    add(HAZARDS.EVENT_TRIGGERS, `event trigger(s) ${list(eventTriggers)} ${inCopy} cannot be created by this user (not a superuser), so the restore `
      + `would fail at its very end. Accept ${HAZARDS.EVENT_TRIGGERS} to restore without them (they are listed again at the end) and re-create them as a superuser.`);
  }
  if (ctx.inspectingOriginal) return { findings, warnings, leftOutEventTriggers: [] };
  const copySubscriptions = (await ctx.source.query<{ subname: string }>(
    'SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1')).rows;
  if (copySubscriptions.length > 0 && !targetPowers.superuser) {
    add(HAZARDS.SUBSCRIPTIONS, `subscription(s) ${list(copySubscriptions.map((s) => s.subname))} in the point-in-time copy are left out of the copy `
      + '(pg_dump dumps subscriptions only for a superuser): the recovered database would have none. '
      + `Re-create them afterwards, or accept this with ${HAZARDS.SUBSCRIPTIONS}.`);
  }
  const copyPrepared = Number((await ctx.source.query<{ n: string }>('SELECT count(*)::text AS n FROM pg_prepared_xacts WHERE database = current_database()')).rows[0].n);
  if (copyPrepared > 0) {
    warnings.push(`${db}: ${copyPrepared} transaction(s) were prepared but not committed at the restore time; their changes are not part of the point-in-time copy.`);
  }

  return { findings, warnings, leftOutEventTriggers: skipEventTriggers && ctx.accepted.includes(HAZARDS.EVENT_TRIGGERS) ? eventTriggers : [] };
}

/**
 * A drill's view of the hazards: it swaps nothing, so none of them stops it,
 * but a recovery now would have to accept or resolve each one. Logs the
 * warnings and returns, per database, one line per finding saying what a
 * recovery would need (for the evidence record).
 */
export function reviewHazardsForDrill(
  reports: readonly HazardReport[], accepted: readonly Hazard[], log: { warn: (line: string) => void },
): Map<string, string[]> {
  const byDatabase = new Map<string, string[]>();
  for (const report of reports) {
    for (const warning of report.warnings) log.warn(warning);
    for (const finding of report.findings) {
      const line = finding.hazard === undefined
        ? `[cannot be accepted] ${finding.message} A recovery now would be refused until this is resolved.`
        : accepted.includes(finding.hazard)
          ? `[${finding.hazard}, accepted in ${START_ENV.ACCEPT_HAZARDS}] ${finding.message}`
          : `[${finding.hazard}] ${finding.message} A recovery now needs ${START_ENV.ACCEPT_HAZARDS}=${finding.hazard}.`;
      log.warn(`drill: swap hazard a recovery would meet: ${line}`);
      byDatabase.set(finding.database, [...byDatabase.get(finding.database) ?? [], line]);
    }
  }
  return byDatabase;
}

/**
 * Logs every warning and every accepted hazard, and throws one error listing
 * every hazard that stops the run (all databases at once), before anything
 * is written.
 */
export function enforceHazards(reports: readonly HazardReport[], accepted: readonly Hazard[], log: { warn: (line: string) => void }): void {
  const stopping: HazardFinding[] = [];
  for (const report of reports) {
    for (const warning of report.warnings) log.warn(warning);
    for (const finding of report.findings) {
      if (finding.hazard && accepted.includes(finding.hazard)) log.warn(`accepted hazard ${finding.hazard}: ${finding.message}`);
      else stopping.push(finding);
    }
  }
  if (stopping.length === 0) return;
  const acceptable = [...new Set(stopping.map((f) => f.hazard).filter((h): h is Hazard => h !== undefined))];
  const lines = stopping.map((f) => `  - ${f.hazard ? `[${f.hazard}] ` : '[cannot be accepted] '}${f.message}`);
  const way = acceptable.length === stopping.length
    ? ` To go on anyway, accept ${acceptable.length === 1 ? 'it' : 'them'}: ${START_ENV.ACCEPT_HAZARDS}=${acceptable.join(',')} (copy: --accept-hazard; Lambda: "acceptHazards").`
    : '';
  throw new Error(`the recovery would break what depends on the original:\n${lines.join('\n')}\n${way ? `${way.trim()}\n` : ''}Nothing was written to the original.`);
}
