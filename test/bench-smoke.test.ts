/**
 * The bench's own instruments, on real processes and a real PostgreSQL
 * cluster. Nothing here is about speed: it checks that the bench measures
 * what it says it measures, and refuses what it cannot run.
 */
import { runMeasured, WriteProbe } from '../bench/measure';
import { NAMED_SCALES, parseBenchOptions, UsageError } from '../bench/options';
import { runnerStepDurations, runnerUnavailableMs } from '../bench/paths';
import { spread, verdictLine, type Summary } from '../bench/report';
import { LocalCluster } from '../buildspec/runner/local/cluster';

describe('bench flags', () => {
  test('defaults: the ~1 GB dataset, 3 runs, -j = cores', () => {
    const options = parseBenchOptions([], 2);
    expect(options).toEqual({ scaleName: 'default', size: NAMED_SCALES.default, runs: 3, jobs: 2, save: false, keep: false });
  });

  test('named and numeric scales, --flag=value and --flag value', () => {
    expect(parseBenchOptions(['--scale', 'smoke', '--runs=1', '--jobs', '4', '--save'], 2)).toMatchObject({ scaleName: 'smoke', size: NAMED_SCALES.smoke, runs: 1, jobs: 4, save: true });
    expect(parseBenchOptions(['--scale=7'], 2).size).toEqual({ pgbenchScale: 7, extraRows: 7 * 30_000 });
  });

  test.each([
    [['--scale', 'huge'], /--scale "huge" is not accepted; use smoke, default, or an integer from 1 to 1000/],
    [['--runs', '0'], /--runs "0" is not accepted; use an integer from 1 to 50/],
    [['--jobs', '2.5'], /--jobs "2.5" is not accepted/],
    [['--runs'], /--runs needs a value/],
    [['--fast'], /unknown argument "--fast"/],
  ])('refuses %j, naming the flag, the value and what is accepted', (argv, message) => {
    expect(() => parseBenchOptions(argv, 2)).toThrow(UsageError);
    expect(() => parseBenchOptions(argv, 2)).toThrow(message);
  });
});

describe('bench report', () => {
  test('median, min and max', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(spread([4, 1, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4 });
  });

  test('the verdict line, and no speedup claimed when B failed', () => {
    const summary = { speedupAOverB: 2.345, unavailableAS: 38.2, unavailableBS: 0.234, bSucceeded: true } as Summary;
    expect(verdictLine(summary)).toBe('speedup A/B = 2.35, unavailable window A = 38.20 s, B = 0.23 s');
    expect(verdictLine({ ...summary, bSucceeded: false })).toBe('speedup A/B = n/a (B failed), unavailable window A = 38.20 s, B = n/a');
  });

  test('reads step durations and the unavailable window from the runner log format', () => {
    const log = [
      '2026-01-01T00:00:00.000Z > "bench": copy data',
      '2026-01-01T00:00:09.000Z < "bench": copy data: done in 9.25 s',
      '2026-01-01T00:00:09.100Z < "bench": swap in (block connections, end sessions, rename): done in 231 ms',
      '2026-01-01T00:00:09.200Z < "bench": verify "bench__pitr_20260101000000": done in 2 min 5 s',
      '2026-01-01T00:00:09.300Z   "bench": unavailable for 231 ms (swap); verified 9 tables, 100 rows',
    ].join('\n');
    expect(runnerStepDurations(log)).toEqual({
      '"bench": copy data': 9250,
      '"bench": swap in (block connections, end sessions, rename)': 231,
      '"bench": verify "bench__pitr_<stamp>"': 125_000,
    });
    expect(runnerUnavailableMs(log)).toBe(231);
    expect(runnerUnavailableMs('no such line')).toBeUndefined();
  });
});

describe('bench instruments', () => {
  test('runMeasured records the exit code, stdin from a file, and the RSS of the whole process tree', async () => {
    // A child shell that starts a grandchild holding ~64 MiB: only a tree sum sees it.
    const run = await runMeasured('bash', ['-c', 'python3 -c "b = bytearray(64 * 2**20); import time; time.sleep(0.5)"; read line; echo "got $line"; exit 3'], { stdinFile: __filename });
    expect(run.exitCode).toBe(3);
    expect(run.stdout).toBe('got /**\n');
    expect(run.peakRssBytes).toBeGreaterThan(64 * 2 ** 20);
  });

  describe('write probe on real PostgreSQL', () => {
    let cluster: LocalCluster;
    beforeAll(async () => {
      cluster = await LocalCluster.create();
      await cluster.sql('CREATE TABLE probe (at timestamptz NOT NULL DEFAULT clock_timestamp(), source text NOT NULL)');
    });
    afterAll(async () => {
      await cluster?.destroy();
    });

    test('a table locked for 800 ms shows up as a write gap of at least 800 ms, and the writes land', async () => {
      const probe = new WriteProbe(cluster.uri(), 'probe');
      probe.start();
      await new Promise((resolve) => setTimeout(resolve, 200));
      await cluster.sql('BEGIN; LOCK TABLE probe IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(0.8); COMMIT;');
      await new Promise((resolve) => setTimeout(resolve, 200));
      const result = await probe.stop();
      expect(result.longestGapMs).toBeGreaterThanOrEqual(800);
      expect(result.recovered).toBe(true);
      expect(result.failures).toBe(0);
      expect(Number(await cluster.sql("SELECT count(*) FROM probe WHERE source = 'probe'"))).toBe(result.writes);
    });

    test('a missing table counts as failed writes and an open gap until the end', async () => {
      const probe = new WriteProbe(cluster.uri(), 'no_such_table');
      probe.start();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const result = await probe.stop();
      expect(result.writes).toBe(0);
      expect(result.failures).toBeGreaterThan(0);
      expect(result.recovered).toBe(false);
      expect(result.firstError).toMatch(/no_such_table/);
      expect(result.longestGapMs).toBeGreaterThanOrEqual(300);
    });
  });
});
