/**
 * MODE=changes (issue #21): the record of writes made after the restore time,
 * computed later for a recovery whose pre-recovery copies are still kept.
 * Needs the recovery's STAMP and CONFIRM (it writes the schema
 * `pitr_<stamp>_after` into the recovered databases on the original). No
 * temporary instance is involved: both databases are on the original.
 */
import { formatDuration, type StepLog } from './log';
import { PlanError } from './plan';
import type { PgTarget, RdsControl } from './ports';
import { changesSummary, recordChanges, type ChangesRecord } from './postgres/changes';
import { keptName } from './postgres/names';
import { connect } from './postgres/process';
import { sourceNoun } from './source-kind';
import { START_ENV, parseAfter, parseDatabaseList, quoteValue, sourceRefFromEnv } from '../../src/contract';

type Env = Readonly<Record<string, string | undefined>>;

export interface ChangesModeRequest {
  readonly sourceId: string;
  readonly stamp: string;
  /** Only these recovered databases; undefined: every database whose pre-recovery copy of that stamp is kept. */
  readonly databases?: readonly string[];
  readonly after?: Date;
}

export function readChangesModeRequest(env: Env): ChangesModeRequest {
  const problems: string[] = [];
  const value = (name: string): string | undefined => (env[name]?.trim() ? env[name]!.trim() : undefined);
  const attempt = <T>(fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      problems.push((err as Error).message);
      return undefined;
    }
  };
  const ref = sourceRefFromEnv(env);
  if ('problem' in ref) problems.push(ref.problem);
  const sourceId = 'problem' in ref ? undefined : ref.id;
  const stamp = value(START_ENV.STAMP);
  if (!stamp || !/^\d{14}$/.test(stamp)) {
    problems.push(`${START_ENV.STAMP}: ${quoteValue(stamp ?? '')} is not a run stamp; accepted: the 14 digits YYYYMMDDHHMMSS of the recovery, as in <db>__before_pitr_<stamp> `
      + '(the summary of every recovery and housekeeping DRY_RUN=true list them).');
  }
  const confirm = value(START_ENV.CONFIRM);
  if (sourceId && confirm !== sourceId) {
    problems.push(confirm === undefined
      ? `${START_ENV.CONFIRM}: not set; accepted: exactly ${JSON.stringify(sourceId)}, to confirm that the record is written into the recovered databases on the original (schema pitr_<stamp>_after).`
      : `${START_ENV.CONFIRM}: ${quoteValue(confirm)} does not match the source ${'problem' in ref ? 'instance' : sourceNoun(ref.kind)}; accepted: exactly ${JSON.stringify(sourceId)}.`);
  }
  const databases = attempt(() => parseDatabaseList(env[START_ENV.DATABASES]));
  const after = attempt(() => parseAfter(value(START_ENV.AFTER)));
  if (problems.length > 0) throw new PlanError(problems);
  return { sourceId: sourceId!, stamp: stamp!, databases, after };
}

export interface ChangesModeDeps {
  readonly rds: Pick<RdsControl, 'describeSource'>;
  readonly log: StepLog;
  readonly credentials: { readonly username: string; readonly password: string };
  readonly tls?: { readonly sslMode?: string; readonly sslRootCert?: string };
}

/** Resolves with one record per database; rejects (after logging RESULT: FAILED) when any could not be recorded. */
export async function runChangesMode(request: ChangesModeRequest, deps: ChangesModeDeps): Promise<ChangesRecord[]> {
  const { log } = deps;
  log.redact(deps.credentials.password);
  const records: ChangesRecord[] = [];
  let failure: Error | undefined;
  try {
    const pairs = await log.step('Find the pre-recovery copies of that run', async () => {
      const source = await deps.rds.describeSource(request.sourceId);
      const original: PgTarget = {
        host: source.endpoint.host,
        port: source.endpoint.port,
        user: deps.credentials.username,
        password: deps.credentials.password,
        maintenanceDatabase: 'postgres',
        sslMode: deps.tls?.sslMode,
        sslRootCert: deps.tls?.sslRootCert,
      };
      const client = await connect(original, 'postgres');
      let names: string[];
      try {
        names = (await client.query<{ d: string }>('SELECT datname AS d FROM pg_database WHERE NOT datistemplate ORDER BY 1')).rows.map((r) => r.d);
      } finally {
        await client.end().catch(() => undefined);
      }
      const candidates = request.databases ?? names;
      const found = candidates.filter((d) => names.includes(d) && names.includes(keptName(d, request.stamp)));
      const missing = (request.databases ?? []).filter((d) => !found.includes(d));
      if (missing.length > 0 || found.length === 0) {
        const kept = names.filter((n) => n.includes(`__before_pitr_${request.stamp}`));
        throw new Error(`${missing.length > 0 ? `${START_ENV.DATABASES}: ${missing.map((d) => quoteValue(d)).join(', ')} ha${missing.length > 1 ? 've' : 's'} no kept pre-recovery copy of run ${request.stamp} beside it` : `no database has a kept pre-recovery copy of run ${request.stamp}`}; `
          + `kept for that stamp: ${kept.length > 0 ? kept.map((k) => JSON.stringify(k)).join(', ') : 'none (dropped by housekeeping, or another stamp)'}. Nothing was written.`);
      }
      for (const d of found) log.info(`${JSON.stringify(d)} against ${JSON.stringify(keptName(d, request.stamp))}`);
      return { original, found };
    });
    for (const database of pairs.found) {
      records.push(await log.step(`Record writes made after the restore time in ${database}`, () => recordChanges(pairs.original, {
        database, keptAs: keptName(database, request.stamp), stamp: request.stamp, log, after: request.after,
      })));
    }
  } catch (err) {
    failure = err as Error;
  }
  const lines = ['', '==== Summary ====', 'Steps:', ...log.stepTable()];
  for (const r of records) lines.push(...changesSummary(r), `  compared in ${formatDuration(r.ms)}`);
  lines.push(failure ? `RESULT: FAILED: ${failure.message}` : `RESULT: SUCCESS: the writes made after the restore time recorded for ${records.length} database(s).`);
  for (const line of lines) log.info(line);
  if (failure) throw failure;
  return records;
}
