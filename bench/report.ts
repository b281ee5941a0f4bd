/**
 * Turns the runs into the numbers the issue asks for: median, min and max per
 * path, the Markdown table, and the one-line verdict that ends the output.
 */
import type { PathRun } from './paths';

export interface Checks {
  /** Objects in the target database after the run that the source does not have. */
  readonly staleObjects: readonly string[];
  /** Objects in the source the target lacks after the run. */
  readonly missingObjects: readonly string[];
  /** Tables whose row count differs from the source (`name: target vs source`). */
  readonly rowMismatches: readonly string[];
}

export type CheckedPathRun = PathRun & { readonly checks: Checks };

export interface PhaseRun {
  readonly wallMs: number;
  readonly peakRssBytes: number;
  readonly exitCode: number;
}

export interface RunRecord {
  readonly run: number;
  readonly a: CheckedPathRun;
  readonly b: CheckedPathRun;
  readonly dumpOnly: PhaseRun;
  readonly restoreOnly: PhaseRun;
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(values: readonly number[]): Spread {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1] };
}

export interface PathSummary {
  readonly wallS: Spread;
  /** Database size (10^6 bytes) over wall time, at the median wall time. */
  readonly throughputMBps: number;
  readonly peakRssMiB: Spread;
  /** As the issue defines it: A the whole restore, B the swap the runner reports. */
  readonly definedUnavailableS?: Spread;
  /** Longest gap between two successful probe writes. */
  readonly probeUnavailableS: Spread;
  readonly exitCodes: readonly number[];
  readonly staleObjects: readonly string[];
  readonly missingObjects: readonly string[];
  readonly rowMismatchRuns: number;
  /** Median duration of each named phase (B: the runner's steps). */
  readonly phasesS: Readonly<Record<string, number>>;
}

export interface Summary {
  readonly a: PathSummary;
  readonly b: PathSummary;
  readonly bSucceeded: boolean;
  readonly dumpOnlyS: Spread;
  readonly restoreOnlyS: Spread;
  /** The slowest single phase, per run. */
  readonly lowerBoundS: Spread;
  readonly speedupAOverB: number;
  readonly bOverLowerBound: number;
  /** The window the verdict line quotes: A as defined (whole restore), B as the probe saw it. */
  readonly unavailableAS: number;
  readonly unavailableBS: number;
}

export function summarize(runs: readonly RunRecord[], databaseBytes: number): Summary {
  const a = summarizePath(runs.map((r) => r.a), databaseBytes);
  const b = summarizePath(runs.map((r) => r.b), databaseBytes);
  const lowerBoundS = spread(runs.map((r) => Math.max(r.dumpOnly.wallMs, r.restoreOnly.wallMs) / 1000));
  return {
    a,
    b,
    // Exit 0 alone is not enough: the target must equal the source afterwards.
    bSucceeded: runs.every((r) => r.b.failures.length === 0 && correct(r.b.checks)),
    dumpOnlyS: spread(runs.map((r) => r.dumpOnly.wallMs / 1000)),
    restoreOnlyS: spread(runs.map((r) => r.restoreOnly.wallMs / 1000)),
    lowerBoundS,
    speedupAOverB: a.wallS.median / b.wallS.median,
    bOverLowerBound: b.wallS.median / lowerBoundS.median,
    unavailableAS: (a.definedUnavailableS ?? a.probeUnavailableS).median,
    unavailableBS: b.probeUnavailableS.median,
  };
}

export function correct(checks: Checks): boolean {
  return checks.staleObjects.length === 0 && checks.missingObjects.length === 0 && checks.rowMismatches.length === 0;
}

function summarizePath(runs: readonly CheckedPathRun[], databaseBytes: number): PathSummary {
  const wallS = spread(runs.map((r) => r.wallMs / 1000));
  const defined = runs.map((r) => r.definedUnavailableMs).filter((v): v is number => v !== undefined);
  const phaseNames = [...new Set(runs.flatMap((r) => Object.keys(r.phases)))];
  return {
    wallS,
    throughputMBps: databaseBytes / 1e6 / wallS.median,
    peakRssMiB: spread(runs.map((r) => r.peakRssBytes / 2 ** 20)),
    definedUnavailableS: defined.length === runs.length ? spread(defined.map((v) => v / 1000)) : undefined,
    probeUnavailableS: spread(runs.map((r) => r.probe.longestGapMs / 1000)),
    exitCodes: runs.map((r) => (r.failures.length === 0 ? 0 : r.failures[0].exitCode)),
    staleObjects: [...new Set(runs.flatMap((r) => r.checks.staleObjects))].sort(),
    missingObjects: [...new Set(runs.flatMap((r) => r.checks.missingObjects))].sort(),
    rowMismatchRuns: runs.filter((r) => r.checks.rowMismatches.length > 0).length,
    phasesS: Object.fromEntries(phaseNames.map((name) => [name, spread(runs.map((r) => (r.phases[name] ?? 0) / 1000)).median])),
  };
}

const s = (x: Spread, digits = 2): string => (x.min === x.max ? x.median.toFixed(digits) : `${x.median.toFixed(digits)} (${x.min.toFixed(digits)}–${x.max.toFixed(digits)})`);

export function markdownTable(summary: Summary, runs: number, jobs: number): string {
  const { a, b } = summary;
  const stale = (p: PathSummary): string => (p.staleObjects.length === 0 ? 'none' : `${p.staleObjects.length}: ${p.staleObjects.map((o) => `\`${o}\``).join(', ')}`);
  const rows: string[][] = [
    ['', 'A: old PoC (`pg_dump -Fc`, `pg_restore -c` into the live db)', `B: \`copy --strategy swap --jobs ${jobs}\``, `dump only (\`-Fd -j ${jobs} -Z0\`)`, `restore only (\`-j ${jobs}\`, fresh db)`],
    ['---', '---', '---', '---', '---'],
    [`wall time, s — median (min–max) of ${runs}`, s(a.wallS), s(b.wallS), s(summary.dumpOnlyS), s(summary.restoreOnlyS)],
    ['throughput, MB/s of database size', a.throughputMBps.toFixed(1), b.throughputMBps.toFixed(1), '', ''],
    ['peak RSS of client processes, MiB', s(a.peakRssMiB, 0), s(b.peakRssMiB, 0), '', ''],
    ['write-unavailable, as defined, s', `${a.definedUnavailableS ? s(a.definedUnavailableS) : 'n/a'} (the whole restore)`, `${b.definedUnavailableS ? s(b.definedUnavailableS) : 'not reported'} (the swap, from the runner's log)`, '', ''],
    ['write-unavailable, seen by the probe, s', s(a.probeUnavailableS), s(b.probeUnavailableS), '', ''],
    ['exit codes', a.exitCodes.join(', '), b.exitCodes.join(', '), '', ''],
    ['stale objects left (not in the source)', stale(a), stale(b), '', ''],
    ['objects missing (in the source, not the target)', String(a.missingObjects.length), String(b.missingObjects.length), '', ''],
    ['runs with row counts differing from the source', String(a.rowMismatchRuns), String(b.rowMismatchRuns), '', ''],
  ];
  const table = rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
  const phases = Object.entries(b.phasesS).map(([name, secs]) => `  - ${name}: ${secs.toFixed(2)} s`).join('\n');
  return [
    table,
    '',
    `- lower bound (slowest single phase): ${s(summary.lowerBoundS)} s; B / lower bound = ${summary.bOverLowerBound.toFixed(2)}`,
    `- A phases (median): dump ${(a.phasesS.dump ?? 0).toFixed(2)} s, restore ${(a.phasesS.restore ?? 0).toFixed(2)} s`,
    ...(phases ? ['- B runner steps (median):', phases] : []),
  ].join('\n');
}

export function verdictLine(summary: Summary): string {
  if (!summary.bSucceeded) {
    return `speedup A/B = n/a (B failed), unavailable window A = ${summary.unavailableAS.toFixed(2)} s, B = n/a`;
  }
  return `speedup A/B = ${summary.speedupAOverB.toFixed(2)}, unavailable window A = ${summary.unavailableAS.toFixed(2)} s, B = ${summary.unavailableBS.toFixed(2)} s`;
}
