/**
 * The rehearsal's command line, bundled to assets/rehearsal/rehearse.js (not
 * shipped): `npx projen rehearse [options]`. See rehearse.ts.
 */
import { REHEARSE_EXIT, REHEARSE_HELP, parseRehearseArgs, rehearse } from './rehearse';
import { runAsMain, withStopSignals } from '../buildspec/runner/stop-signals';

export async function main(argv: readonly string[]): Promise<number> {
  let options;
  try {
    options = parseRehearseArgs(argv);
  } catch (err) {
    process.stderr.write(`rehearse: ${(err as Error).message}\n`);
    return REHEARSE_EXIT.USAGE;
  }
  if (options.help) {
    process.stdout.write(`${REHEARSE_HELP}\n`);
    return REHEARSE_EXIT.PASSED;
  }
  return withStopSignals((signal) => rehearse(options, signal));
}

if (require.main === module) runAsMain(main, 'rehearse', REHEARSE_EXIT.SETUP_FAILED);
