/**
 * Runner settings for a stand-in AWS (the rehearsal), read by `recover`
 * only when set. The construct never sets them, and on AWS they should stay
 * unset: RDS takes minutes per status, so polling faster only spends API
 * quota; and 16 MiB is where streaming a table starts to pay off.
 *
 * - `PITR_POLL_INTERVAL_MS`: the first wait between two status polls
 *   (default 5 s); later waits double up to ten times it (default 30 s).
 *   The rehearsal's stand-in changes status in milliseconds, not minutes.
 * - `PITR_STREAM_MIN_BYTES`: tables of at least this size stream COPY to
 *   COPY between the instances (default 16 MiB). The rehearsal's sample
 *   tables are small; 256 KiB sends its larger ones down the streaming route
 *   as a production database's would.
 */
import { AWS_POLLING, type Polling } from './run-state';
import { TUNING_ENV } from '../../src/contract';

const POLL_MIN_MS = 50;

export interface RunnerTuning {
  readonly polling?: Polling;
  readonly streamMinBytes?: number;
  /** One phrase per setting that is in effect, for the log. */
  readonly inEffect: readonly string[];
}

/** Reads the tuning variables; throws naming the variable, its value and what is accepted. */
export function readRunnerTuning(env: Readonly<Record<string, string | undefined>>): RunnerTuning {
  const inEffect: string[] = [];
  const integer = (name: string, min: number, max: number): number | undefined => {
    const text = env[name];
    if (text === undefined || text === '') return undefined;
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) {
      throw new Error(`${name}: ${JSON.stringify(text)} is not accepted; accepted: a whole number from ${min} to ${max}, or unset (the default, for AWS). Nothing was created or changed.`);
    }
    return value;
  };
  const pollMs = integer(TUNING_ENV.POLL_INTERVAL_MS, POLL_MIN_MS, AWS_POLLING.maxMs);
  const streamMinBytes = integer(TUNING_ENV.STREAM_MIN_BYTES, 0, Number.MAX_SAFE_INTEGER);
  let polling: Polling | undefined;
  if (pollMs !== undefined) {
    polling = { ...AWS_POLLING, initialMs: pollMs, maxMs: Math.min(pollMs * 10, AWS_POLLING.maxMs) };
    inEffect.push(`${TUNING_ENV.POLL_INTERVAL_MS}=${pollMs}: status polls every ${pollMs} ms, backing off to ${polling.maxMs} ms`);
  }
  if (streamMinBytes !== undefined) inEffect.push(`${TUNING_ENV.STREAM_MIN_BYTES}=${streamMinBytes}: tables from ${streamMinBytes} bytes stream`);
  return { polling, streamMinBytes, inEffect };
}
