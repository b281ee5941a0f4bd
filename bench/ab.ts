/**
 * Interleaved comparison of runner variants (B only), for judging one data-path
 * change at a time on a noisy machine:
 *
 *   ts-node --project tsconfig.dev.json bench/ab.ts --dataset skewed --route two-hosts --scale 3 --runs 3 \
 *     --variant base=/tmp/runner-base.js --variant new=assets/runner/runner.js[,--stream-min-bytes,0]
 *
 * Each run executes every variant once, on the same clusters (target reset in
 * between), the order rotating from run to run. Prints per variant: median wall time, CPU seconds
 * (source/target/clients) and the runner's step durations, and checks each
 * result against the source as the bench does.
 */
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BENCH_DB, buildDatasets, resetTarget, sourceTables, startClusters, tableFingerprints } from './dataset';
import { parseBenchOptions } from './options';
import { runPathB, type PathRun } from './paths';
import { LocalCluster, makeWorkDir } from '../local/cluster';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const variants: Array<{ name: string; runner: string; args: string[] }> = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--variant') {
      const [name, spec] = argv[++i].split(/=(.*)/s);
      const [runner, ...args] = spec.split(',');
      variants.push({ name, runner, args });
    } else {
      rest.push(argv[i]);
    }
  }
  const options = parseBenchOptions(rest, 2);
  const workDir = await makeWorkDir('pitr-ab-');
  const clusters = (await startClusters(options.route)).map((c) => (c as PromiseFulfilledResult<LocalCluster>).value);
  const [source, target] = clusters;
  try {
    for (const [i, v] of variants.entries()) {
      const copy = join(workDir, `runner-${i}.js`);
      copyFileSync(v.runner, copy);
      v.runner = copy;
    }
    await buildDatasets(source, target, options.dataset, options.size);
    const tables = await sourceTables(source);
    const expected = await tableFingerprints(source, BENCH_DB, tables);
    const results = new Map<string, PathRun[]>(variants.map((v) => [v.name, []]));
    for (let run = 1; run <= options.runs; run++) {
      // The order rotates from run to run: a variant that always runs right after another inherits its leftovers
      // (dirty buffers, checkpoints), which measured as ~1 s on the skewed dataset at scale 5.
      for (const v of variants.map((_, i) => variants[(i + run - 1) % variants.length])) {
        await resetTarget(target);
        const r = await runPathB({ source, target, workDir }, v.runner, options.jobs, undefined, v.args);
        const got = await tableFingerprints(target, r.database, tables);
        const bad = tables.filter((t) => got.get(t)?.hashSum !== expected.get(t)?.hashSum || got.get(t)?.rows !== expected.get(t)?.rows);
        process.stderr.write(`run ${run} ${v.name}: ${(r.wallMs / 1000).toFixed(2)} s, CPU ${r.cpu.source.toFixed(1)}/${r.cpu.target.toFixed(1)}/${r.cpu.clients.toFixed(1)}`
          + `${r.failures.length ? ` FAILED ${r.failures[0].stderrTail}` : ''}${bad.length ? ` MISMATCH ${bad.join(',')}` : ''}\n`);
        results.get(v.name)!.push(r);
        // The critical chain: statements of 300 ms or more, when they started and how long they took.
        for (const st of r.statements.filter((x) => x.durationMs >= 300)) {
          process.stderr.write(`    ${(st.atMs / 1000).toFixed(2).padStart(6)} +${(st.durationMs / 1000).toFixed(2).padStart(5)} s ${st.cluster.padEnd(6)} ${st.text.slice(0, 110)}\n`);
        }
      }
    }
    process.stdout.write(`\n${options.dataset} ${options.route} scale ${options.scaleName}, ${options.runs} run(s), -j ${options.jobs}\n`);
    for (const v of variants) {
      const rs = results.get(v.name)!;
      process.stdout.write(`${v.name} ${v.args.join(' ')}: wall ${(median(rs.map((r) => r.wallMs)) / 1000).toFixed(2)} s; CPU s src/tgt/cli `
        + `${median(rs.map((r) => r.cpu.source)).toFixed(1)}/${median(rs.map((r) => r.cpu.target)).toFixed(1)}/${median(rs.map((r) => r.cpu.clients)).toFixed(1)}; `
        + `walls ${rs.map((r) => (r.wallMs / 1000).toFixed(2)).join(' ')}\n`);
      const phases = [...new Set(rs.flatMap((r) => Object.keys(r.phases)))];
      for (const p of phases) process.stdout.write(`    ${(median(rs.map((r) => r.phases[p] ?? 0)) / 1000).toFixed(2).padStart(7)} s  ${p}\n`);
    }
  } finally {
    for (const c of clusters) await c.destroy().catch(() => undefined);
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err: Error) => {
  process.stderr.write(`ab: FAILED: ${err.stack}\n`);
  process.exit(1);
});
