/**
 * `npx projen rehearse --drill`: a restore drill against the rehearsal's
 * original, through the same rig as the recovery rehearsal (by default
 * `runner.js recover` with MODE=drill against the RDS stand-in and moto,
 * which also takes the published metrics, event and SNS message). It prints
 * the evidence record, then checks that the original is untouched, by its
 * own catalog and counters (original-state.ts): every table's content,
 * every setting, the database list, roles, write counters, and a session
 * held open across the drill that must still be alive.
 *
 * With `--compare-recovery`, a real recovery to the latest restorable time
 * follows, timed from start to end, and the drill's estimate is compared
 * with it.
 */
import { Client } from 'pg';
import type { LocalCluster } from './cluster';
import { diffOriginalState, readOriginalState, settleAutovacuum } from './original-state';
import type { EvidenceRecord } from '../buildspec/runner/drill';
import { formatDuration, type StepLog } from '../buildspec/runner/log';
import { LATEST, START_ENV } from '../src/contract';

/** The part of the rehearsal's rig a drill needs. */
export interface DrillRig {
  readonly source: LocalCluster;
  recover(start: Readonly<Record<string, string>>, password: string, signal?: AbortSignal): Promise<{ readonly ok: boolean; readonly why?: string }>;
}

export const EVIDENCE_PREFIX = ' EVIDENCE ';

/** Wraps an output sink so that the last evidence line that passes through it can be read back. */
export function evidenceTap(out: (line: string) => void): { out: (line: string) => void; last: () => EvidenceRecord | undefined; reset: () => void } {
  let last: string | undefined;
  return {
    out: (line) => {
      if (line.includes(EVIDENCE_PREFIX)) last = line;
      out(line);
    },
    last: () => (last === undefined ? undefined : JSON.parse(last.slice(last.indexOf(EVIDENCE_PREFIX) + EVIDENCE_PREFIX.length)) as EvidenceRecord),
    reset: () => {
      last = undefined;
    },
  };
}

export interface DrillRehearsalResult {
  readonly outcome: 'passed' | 'drill-failed' | 'original-touched';
  readonly record?: EvidenceRecord;
  /** With compareRecovery: the real recovery's wall-clock seconds. */
  readonly recoverySeconds?: number;
}

export async function rehearseDrill(options: {
  readonly rig: DrillRig;
  readonly log: StepLog;
  readonly tap: ReturnType<typeof evidenceTap>;
  readonly password: string;
  readonly sourceId: string;
  readonly database: string;
  readonly compareRecovery: boolean;
  readonly signal?: AbortSignal;
}): Promise<DrillRehearsalResult> {
  const { rig, log, tap } = options;
  const src = rig.source;
  const before = await log.step('Rehearsal: record the original (content, catalog, settings, write counters) and hold a session open', async () => {
    await settleAutovacuum(src);
    return readOriginalState(src);
  });
  const held = new Client({ host: src.host, port: src.port, user: 'postgres', database: options.database });
  await held.connect();
  let heldPid: number;
  try {
    heldPid = (await held.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    log.info(`session ${heldPid} on ${JSON.stringify(options.database)} stays open across the drill`);
    log.info('---- the restore drill, as on AWS: MODE=drill ----');
    tap.reset();
    const run = await rig.recover({ [START_ENV.MODE]: 'drill', [START_ENV.RESTORE_TIME]: LATEST }, options.password, options.signal);
    const record = tap.last();
    if (!run.ok || !record?.succeeded) {
      log.warn(`REHEARSAL FAILED: the drill failed: ${record?.failure?.reason ?? run.why ?? 'no evidence record was printed'}`);
      return { outcome: 'drill-failed', record };
    }
    log.info('---- the evidence record ----');
    for (const line of JSON.stringify(record, null, 2).split('\n')) log.info(line);

    log.info('---- independent check: is the original untouched? ----');
    const problems = await log.step('Rehearsal: compare the original with its state before the drill', async () => {
      const found = diffOriginalState(before, await readOriginalState(src));
      try {
        await held.query('SELECT 1');
        const alive = await src.sql(`SELECT count(*) FROM pg_stat_activity WHERE pid = ${heldPid}`);
        if (alive !== '1') found.push(`session ${heldPid} is not in pg_stat_activity any more`);
      } catch (err) {
        found.push(`session ${heldPid} was ended: ${(err as Error).message}`);
      }
      return found;
    });
    if (problems.length > 0) {
      log.warn(`REHEARSAL FAILED: the drill changed the original:\n  ${problems.slice(0, 30).join('\n  ')}`);
      return { outcome: 'original-touched', record };
    }
    const contents = Object.values(before.content as Record<string, readonly string[]>).reduce((n, f) => n + f.length, 0);
    log.info(`the original is untouched: ${Object.keys(before.content).length} databases (${contents} facts: every table's rows and checksum, objects, privileges), `
      + `the database list, roles, memberships, settings and pg_stat_database write counters are as before; session ${heldPid} is still alive`);
    if (!options.compareRecovery) {
      log.info('REHEARSAL PASSED: the drill succeeded and the original is byte-for-byte untouched.');
      return { outcome: 'passed', record };
    }
  } finally {
    await held.end().catch(() => undefined);
  }

  // A real recovery, now, for the estimate to be compared with.
  log.info('---- --compare-recovery: a real recovery to the latest restorable time, timed ----');
  const record = tap.last()!;
  const started = Date.now();
  const recovery = await rig.recover({ [START_ENV.RESTORE_TIME]: LATEST, [START_ENV.CONFIRM]: options.sourceId }, options.password, options.signal);
  const seconds = (Date.now() - started) / 1000;
  if (!recovery.ok) {
    log.warn(`REHEARSAL FAILED: the drill passed, but the recovery it was compared with failed: ${recovery.why}`);
    return { outcome: 'drill-failed', record, recoverySeconds: seconds };
  }
  const estimate = record.recoveryTimeEstimate!.seconds;
  log.info(`estimate vs actual: the drill estimated ${formatDuration(estimate * 1000)} (${estimate} s); the recovery took ${formatDuration(seconds * 1000)} `
    + `(${seconds.toFixed(1)} s, wall clock of the whole build phase); estimate / actual = ${(estimate / seconds).toFixed(2)}`);
  log.info('REHEARSAL PASSED: the drill succeeded, the original was untouched by it, and the recovery it was compared with succeeded.');
  return { outcome: 'passed', record, recoverySeconds: seconds };
}
