/**
 * SIGTERM (CodeBuild's stop and timeout) and SIGINT, turned into an abort
 * of the run: it stops at the next safe point, cleans up and exits non-zero.
 * Shared by the runner and the rehearsal.
 */

const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

/**
 * Turns SIGTERM/SIGINT into an abort of `run`, and keeps them from killing
 * the process while cleanup runs. A stopped run exits 143 (SIGTERM) or 130.
 */
export async function withStopSignals(run: (signal: AbortSignal) => Promise<number>): Promise<number> {
  const controller = new AbortController();
  let received: string | undefined;
  const onSignal = (name: string): void => {
    if (received) {
      process.stderr.write(`${name} received again: cleanup is in progress and deletes the temporary instance; please wait.\n`);
      return;
    }
    received = name;
    process.stderr.write(`${name} received: stopping at the next safe point, then cleaning up.\n`);
    controller.abort(new Error(`stopped by ${name} (CodeBuild sends SIGTERM when a build is stopped or times out)`));
  };
  const onTerm = (): void => onSignal('SIGTERM');
  const onInt = (): void => onSignal('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  try {
    const code = await run(controller.signal);
    return received && code !== 0 ? SIGNAL_EXIT[received] : code;
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
  }
}

/**
 * Runs an entry point's `main` with this process's arguments and exits with
 * its code. An idle keep-alive socket of an SDK client must not hold the
 * process (or the build) open once the run is over, hence the late exit.
 */
export function runAsMain(main: (argv: string[]) => Promise<number>, label: string, crashCode: number): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      setTimeout(() => process.exit(code), 5_000).unref();
    },
    (err) => {
      process.stderr.write(`${label}: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = crashCode;
    },
  );
}
