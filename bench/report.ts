/**
 * Turns the runs into the numbers the issue asks for: median, min and max per
 * path, the Markdown table, where B's time goes, and the one-line verdict
 * that ends the output.
 */
import type { PathRun } from './paths';

export interface Checks {
  /** Objects in the path's result database that the source does not have. */
  readonly staleObjects: readonly string[];
  /** Objects in the source the result lacks. */
  readonly missingObjects: readonly string[];
  /** Tables whose row count differs from the source (`name: result vs source`). */
  readonly rowMismatches: readonly string[];
  /** Tables whose rows differ from the source's (count or content hash; see tableFingerprints). */
  readonly contentMismatches: readonly string[];
}

export type CheckedPathRun = PathRun & { readonly checks: Checks };

export interface RunRecord {
  readonly run: number;
  readonly a: CheckedPathRun;
  readonly b: CheckedPathRun;
  /** Absent when pgcopydb is not installed. */
  readonly c?: CheckedPathRun;
  readonly d: CheckedPathRun;
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
  readonly contentMismatchRuns: number;
  /** Exit 0 in every run and the result equal to the source (no missing objects, same rows and content). */
  readonly succeeded: boolean;
  /** Median duration of each named phase. */
  readonly phasesS: Readonly<Record<string, number>>;
  /** Median CPU seconds of the source server, the target server and the client processes. */
  readonly cpuS: { readonly source: number; readonly target: number; readonly clients: number };
  /** The logged statements of the run with the median wall time. */
  readonly medianRun: CheckedPathRun;
}

export interface Summary {
  readonly a: PathSummary;
  readonly b: PathSummary;
  /** Undefined when C was skipped (pgcopydb not installed). */
  readonly c?: PathSummary;
  readonly d: PathSummary;
  readonly bSucceeded: boolean;
  readonly dumpOnlyS: Spread;
  readonly restoreOnlyS: Spread;
  /** The slowest single phase of D (dump or restore), per run. */
  readonly lowerBoundS: Spread;
  readonly speedupAOverB: number;
  /** C's median wall time over B's: at least 1 when B is as fast as pgcopydb. */
  readonly speedupCOverB?: number;
  readonly speedupDOverB: number;
  readonly bOverLowerBound: number;
  /** The window the verdict line quotes: A as defined (whole restore), B as the probe saw it. */
  readonly unavailableAS: number;
  readonly unavailableBS: number;
}

export function summarize(runs: readonly RunRecord[], databaseBytes: number): Summary {
  const a = summarizePath(runs.map((r) => r.a), databaseBytes);
  const b = summarizePath(runs.map((r) => r.b), databaseBytes);
  const cRuns = runs.map((r) => r.c).filter((c): c is CheckedPathRun => c !== undefined);
  const c = cRuns.length > 0 ? summarizePath(cRuns, databaseBytes) : undefined;
  const d = summarizePath(runs.map((r) => r.d), databaseBytes);
  const lowerBoundS = spread(runs.map((r) => Math.max(r.d.phases.dump ?? 0, r.d.phases.restore ?? 0) / 1000));
  return {
    a,
    b,
    c,
    d,
    // Exit 0 alone is not enough: the target must equal the source afterwards.
    bSucceeded: b.succeeded,
    dumpOnlyS: spread(runs.map((r) => (r.d.phases.dump ?? 0) / 1000)),
    restoreOnlyS: spread(runs.map((r) => (r.d.phases.restore ?? 0) / 1000)),
    lowerBoundS,
    speedupAOverB: a.wallS.median / b.wallS.median,
    speedupCOverB: c ? c.wallS.median / b.wallS.median : undefined,
    speedupDOverB: d.wallS.median / b.wallS.median,
    bOverLowerBound: b.wallS.median / lowerBoundS.median,
    unavailableAS: (a.definedUnavailableS ?? a.probeUnavailableS).median,
    unavailableBS: b.probeUnavailableS.median,
  };
}

/** The result equals the source: nothing stale, nothing missing, every table's rows and content the same. */
export function correct(checks: Checks): boolean {
  return checks.staleObjects.length === 0 && checks.missingObjects.length === 0
    && checks.rowMismatches.length === 0 && checks.contentMismatches.length === 0;
}

function summarizePath(runs: readonly CheckedPathRun[], databaseBytes: number): PathSummary {
  const wallS = spread(runs.map((r) => r.wallMs / 1000));
  const defined = runs.map((r) => r.definedUnavailableMs).filter((v): v is number => v !== undefined);
  const phaseNames = [...new Set(runs.flatMap((r) => Object.keys(r.phases)))];
  const byWall = [...runs].sort((x, y) => x.wallMs - y.wallMs);
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
    contentMismatchRuns: runs.filter((r) => r.checks.contentMismatches.length > 0).length,
    succeeded: runs.every((r) => r.failures.length === 0 && correct(r.checks)),
    phasesS: Object.fromEntries(phaseNames.map((name) => [name, spread(runs.map((r) => (r.phases[name] ?? 0) / 1000)).median])),
    cpuS: {
      source: spread(runs.map((r) => r.cpu.source)).median,
      target: spread(runs.map((r) => r.cpu.target)).median,
      clients: spread(runs.map((r) => r.cpu.clients)).median,
    },
    medianRun: byWall[Math.floor((byWall.length - 1) / 2)],
  };
}

const s = (x: Spread, digits = 2): string => (x.min === x.max ? x.median.toFixed(digits) : `${x.median.toFixed(digits)} (${x.min.toFixed(digits)}–${x.max.toFixed(digits)})`);

export interface ReportContext {
  readonly runs: number;
  readonly jobs: number;
  /** The source's largest table (`schema.name`), whose chain of statements is shown for B and C. */
  readonly largestTable: string;
}

/** Why C has no column: pgcopydb is not installed. */
export const C_SKIPPED = 'C: skipped, pgcopydb not installed';

export function markdownTable(summary: Summary, context: ReportContext): string {
  const { a, b, c, d } = summary;
  const { runs, jobs } = context;
  const paths: Array<[string, PathSummary | undefined]> = [
    ['A: old PoC (`pg_dump -Fc`, `pg_restore -c` into the live db)', a],
    [`B: \`copy --strategy swap --jobs ${jobs}\``, b],
    [c ? `C: \`pgcopydb clone --table-jobs ${jobs} --index-jobs ${jobs}\`, fresh db` : C_SKIPPED, c],
    [`D: \`pg_dump -Fd -j ${jobs} -Z0\` + \`pg_restore -j ${jobs}\` + \`vacuumdb -Z\`, fresh db`, d],
  ];
  const cell = (f: (p: PathSummary) => string, fresh?: string): string[] => paths.map(([, p], i) => {
    if (!p) return '—';
    if (fresh !== undefined && i >= 2) return fresh;
    return f(p);
  });
  const stale = (p: PathSummary): string => (p.staleObjects.length === 0 ? 'none' : `${p.staleObjects.length}: ${p.staleObjects.map((o) => `\`${o}\``).join(', ')}`);
  const rows: string[][] = [
    ['', ...paths.map(([name]) => name)],
    ['---', ...paths.map(() => '---')],
    [`wall time, s — median (min–max) of ${runs}`, ...cell((p) => s(p.wallS))],
    ['throughput, MB/s of database size', ...cell((p) => p.throughputMBps.toFixed(1))],
    ['peak RSS of client processes, MiB', ...cell((p) => s(p.peakRssMiB, 0))],
    ['CPU s: source server / target server / clients (median)', ...cell((p) => `${p.cpuS.source.toFixed(1)} / ${p.cpuS.target.toFixed(1)} / ${p.cpuS.clients.toFixed(1)}`)],
    ['write-unavailable, as defined, s', `${a.definedUnavailableS ? s(a.definedUnavailableS) : 'n/a'} (the whole restore)`,
      `${b.definedUnavailableS ? s(b.definedUnavailableS) : 'not reported'} (the swap, from the runner's log)`, ...cell(() => '', 'n/a (fresh db, no swap)').slice(2)],
    ['write-unavailable, seen by the probe, s', ...cell((p) => s(p.probeUnavailableS), 'n/a')],
    ['exit codes', ...cell((p) => p.exitCodes.join(', '))],
    ['stale objects left (not in the source)', ...cell(stale)],
    ['objects missing (in the source, not the result)', ...cell((p) => String(p.missingObjects.length))],
    ['runs with row counts differing from the source', ...cell((p) => String(p.rowMismatchRuns))],
    ['runs with table contents differing from the source', ...cell((p) => String(p.contentMismatchRuns))],
  ];
  const table = rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
  const lines = [
    table,
    '',
    `- lower bound (D's slowest single phase): ${s(summary.lowerBoundS)} s (dump ${s(summary.dumpOnlyS)} s, restore ${s(summary.restoreOnlyS)} s); B / lower bound = ${summary.bOverLowerBound.toFixed(2)}`,
    `- A phases (median): dump ${(a.phasesS.dump ?? 0).toFixed(2)} s, restore ${(a.phasesS.restore ?? 0).toFixed(2)} s`,
    `- D phases (median): ${Object.entries(d.phasesS).map(([name, secs]) => `${name} ${secs.toFixed(2)} s`).join(', ')}`,
    ...(c ? [`- C phases (median; pgcopydb's own summary, whole seconds above 10 s): ${Object.entries(c.phasesS).map(([name, secs]) => `${name.replace(/^pgcopydb: /, '')} ${secs.toFixed(2)} s`).join(', ')}`] : [`- ${C_SKIPPED}`]),
    `- B's own verification (runner log): ${runnerCoverage(b.medianRun)}`,
    '',
    whereBTimeGoes(b),
    '',
    ...chains(context.largestTable, [['B', b], ['C', c], ['D', d]]),
  ];
  return lines.join('\n');
}

function runnerCoverage(run: PathRun): string {
  const v = run.runnerVerified;
  if (!v) return 'not reported';
  const counted = v.tables - v.checksummed;
  return `${v.tables} tables, ${v.checksummed} with content checksums${counted > 0 ? `; ${counted} only counted (above the runner's checksum size limit)` : ''}`;
}

/** B's runner steps with their share of B's median wall time (ANALYZE and verification run side by side). */
export function whereBTimeGoes(b: PathSummary): string {
  const wall = b.wallS.median;
  const rows = Object.entries(b.phasesS).map(([name, secs]) => `| ${name} | ${secs.toFixed(2)} | ${(100 * secs / wall).toFixed(0)}% |`);
  return [
    `Where B's time goes (runner steps, median of each; ANALYZE and verification run side by side, so shares can add up to more than 100%; B's wall ${wall.toFixed(2)} s):`,
    '',
    '| B step | s | share of B |',
    '| --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/**
 * Per path, the largest table's statements in start order, from both servers'
 * logs (statements of 100 ms or more, in the run with the median wall time):
 * its dump, load, each index, constraint, ANALYZE and verification reads.
 */
function chains(largestTable: string, paths: Array<[string, PathSummary | undefined]>): string[] {
  const bare = largestTable.split('.').pop()!.replace(/"/g, '');
  const mentions = new RegExp(`(^|[^A-Za-z0-9_])"?${bare.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"?($|[^A-Za-z0-9_])`);
  const out: string[] = [];
  for (const [name, p] of paths) {
    if (!p) continue;
    const statements = p.medianRun.statements.filter((st) => mentions.test(st.text));
    if (statements.length === 0) continue;
    out.push(`${name}: statements on the largest table, \`${bare}\` (server logs, ≥ 100 ms; run of ${(p.medianRun.wallMs / 1000).toFixed(2)} s):`, '');
    out.push('| starts at, s | ends at, s | takes, s | server | client | statement |', '| --- | --- | --- | --- | --- | --- |');
    for (const st of statements) {
      out.push(`| ${(st.atMs / 1000).toFixed(2)} | ${((st.atMs + st.durationMs) / 1000).toFixed(2)} | ${(st.durationMs / 1000).toFixed(2)} | ${st.cluster} | ${st.application || '—'} | \`${st.text.slice(0, 100).replace(/\|/g, '\\|').replace(/`/g, "'")}\` |`);
    }
    out.push('');
  }
  return out;
}

export function verdictLine(summary: Summary, cSkipped: boolean): string {
  const c = (): string => {
    if (cSkipped) return 'C/B = n/a (C skipped: pgcopydb not installed)';
    if (!summary.c || summary.speedupCOverB === undefined) return 'C/B = n/a';
    if (!summary.c.succeeded) return 'C/B = n/a (C failed)';
    return `C/B = ${summary.speedupCOverB.toFixed(2)}`;
  };
  if (!summary.bSucceeded) {
    return `speedup A/B = n/a (B failed), ${cSkipped ? c() : 'C/B = n/a (B failed)'}, unavailable window A = ${summary.unavailableAS.toFixed(2)} s, B = n/a`;
  }
  return `speedup A/B = ${summary.speedupAOverB.toFixed(2)}, ${c()}, unavailable window A = ${summary.unavailableAS.toFixed(2)} s, B = ${summary.unavailableBS.toFixed(2)} s`;
}
