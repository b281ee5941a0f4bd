/**
 * The build-log excerpt in README.md ("What you see in the build log") comes
 * from a real rehearsal run: `npx projen readme:logs` runs the rehearsal
 * (`node assets/rehearsal/rehearse.js`, which runs `runner.js recover` as the
 * build phase does), takes the runner's lines and writes them between the
 * README's markers. test/readme-logs.test.ts runs the rehearsal again and
 * compares, line by line, with what varies from run to run normalized.
 * Never shipped (local/).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..');
export const README = join(ROOT, 'README.md');
export const REHEARSAL = join(ROOT, 'assets', 'rehearsal', 'rehearse.js');
export const REGENERATE = 'npx projen readme:logs';

export const BEGIN_MARKER = `<!-- build log excerpt: generated from a rehearsal by \`${REGENERATE}\`; do not edit by hand -->`;
export const END_MARKER = '<!-- end of build log excerpt -->';
const STEPS_ELIDED = '    ... (one line per step with its duration)';

/** Runs the rehearsal; resolves to everything it printed. Rejects when it did not pass. */
export function runRehearsal(args: readonly string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [REHEARSAL, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AWS_EC2_METADATA_DISABLED: 'true' } });
    let output = '';
    child.stdout.on('data', (c: Buffer) => { output += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { output += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`the rehearsal exited ${code}; its output:\n${output}`))));
  });
}

const TIMESTAMPED = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z /;

/**
 * The runner's own lines from a rehearsal's output: from its first line to
 * its last, without the rehearsal's lines around them or the runtime's
 * warnings (lines without a timestamp), with the step table of the summary
 * shortened to one line.
 */
export function runnerExcerpt(output: string): string[] {
  const lines = output.split('\n');
  const start = lines.findIndex((l) => /---- the recovery runbook/.test(l));
  const end = lines.findIndex((l, i) => i > start && /---- independent check/.test(l));
  if (start < 0 || end < 0) throw new Error('the rehearsal output has no runner section (---- the recovery runbook ... ---- independent check)');
  const runner = lines.slice(start + 1, end).filter((l) => TIMESTAMPED.test(l));
  const out: string[] = [];
  for (let i = 0; i < runner.length; i++) {
    out.push(runner[i]);
    if (/ {2}Steps:$/.test(runner[i])) {
      while (i + 1 < runner.length && /^\S+ {5}/.test(runner[i + 1])) i++;
      out.push(STEPS_ELIDED);
    }
  }
  return out;
}

/** What varies from run to run, replaced by a name: times, durations, ports, stamps, sizes, paths, versions, parallelism. */
export function normalizeLine(line: string): string {
  return line
    .replace(TIMESTAMPED, '<t> ')
    .replace(/\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z/g, '<time>')
    .replace(/\b\d+(\.\d+)? (ms|s)\b/g, '<duration>')
    .replace(/\b\d+(\.\d+)? (KiB|MiB|GiB|bytes)\b/g, '<size>')
    .replace(/\b(127\.0\.0\.\d+|localhost):\d+/g, '<host>:<port>')
    // A temporary path holds a stamp and a random suffix: it goes first, whole.
    .replace(/\/tmp\/[\w.-]+/g, '<tmp>')
    .replace(/(?<!\d)\d{14}(?!\d)/g, '<stamp>')
    .replace(/\bpostgres \d+(\.\d+)?\b/g, 'postgres <version>')
    // The client and server versions and where the client is: the excerpt is the same on every major.
    .replace(/\((\/[\w.+-]+)+\/(pg_dump|pg_restore|psql)\)/g, '(<bin>/$2)')
    .replace(/\b(EngineVersion|pg_dump|pg_restore|psql|PostgreSQL) \d+(\.\d+)*/g, '$1 <version>')
    .replace(/ \((Debian|Ubuntu)[^)]*\)/g, '')
    .replace(/\bserver_version_num \d+/g, 'server_version_num <n>')
    // How many kinds of schema objects the verification counts depends on the major (18 has one more).
    .replace(/\b\d+ kinds of schema objects\b/g, '<n> kinds of schema objects')
    .replace(/-j \d+/g, '-j <n>')
    .replace(/\bjobs: \d+/g, 'jobs: <n>')
    .replace(/\b\d+ at a time\b/g, '<n> at a time')
    .replace(/\s+/g, ' ')
    .trimEnd();
}

/**
 * Progress lines whose number depends on timing (a status seen once, twice or not at all), and the pre-flight's
 * storage check, whose outcome depends on whether the stand-in's first FreeStorageSpace datapoint exists yet.
 */
function isProgressLine(normalized: string): boolean {
  return /\(elapsed <duration>\)$/.test(normalized)
    || /pre-flight: free storage: \w+ \(<duration>\)$/.test(normalized)
    || /free storage on the original is not known now|pre-flight, now: storage on the original/.test(normalized);
}

/**
 * Compares the README's excerpt with a run's, line by line after
 * normalizing. Steps that run side by side may swap places: a stretch of up
 * to 6 lines that differs only in order matches. Returns the differences,
 * empty when they match.
 */
export function compareExcerpts(shown: readonly string[], run: readonly string[]): string[] {
  const a = shown.map(normalizeLine).filter((l) => !isProgressLine(l));
  const b = run.map(normalizeLine).filter((l) => !isProgressLine(l));
  const problems: string[] = [];
  let i = 0;
  while (i < Math.max(a.length, b.length) && problems.length < 10) {
    if (a[i] === b[i]) {
      i++;
      continue;
    }
    let matched = false;
    for (let width = 2; width <= 6 && !matched; width++) {
      const x = a.slice(i, i + width).sort();
      const y = b.slice(i, i + width).sort();
      if (x.length === width && y.length === width && x.every((l, k) => l === y[k])) {
        i += width;
        matched = true;
      }
    }
    if (!matched) {
      problems.push(`line ${i + 1} of the excerpt:\n  README:    ${a[i] ?? '(nothing: the run prints more lines)'}\n  rehearsal: ${b[i] ?? '(nothing: the README shows more lines)'}`);
      // Resynchronize on the next line both have, so one inserted line is reported once.
      const next = b.indexOf(a[i], i);
      const nextA = a.indexOf(b[i], i);
      if (next > i && (nextA < 0 || next - i <= nextA - i)) b.splice(i, next - i);
      else if (nextA > i) a.splice(i, nextA - i);
      else i++;
    }
  }
  return problems;
}

/** The excerpt between the README's markers (the ```text block), or undefined when the markers are missing. */
export function readmeExcerpt(readme: string): string[] | undefined {
  const begin = readme.indexOf(BEGIN_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (begin < 0 || end < begin) return undefined;
  const block = /```text\n([\s\S]*?)\n```/.exec(readme.slice(begin, end));
  return block ? block[1].split('\n') : undefined;
}

/** The README with `excerpt` between its markers; throws when they are missing. */
export function withExcerpt(readme: string, excerpt: readonly string[]): string {
  const begin = readme.indexOf(BEGIN_MARKER);
  const end = readme.indexOf(END_MARKER);
  if (begin < 0 || end < begin) throw new Error(`README.md has no build log markers (${BEGIN_MARKER} ... ${END_MARKER}) to write between`);
  return `${readme.slice(0, begin)}${BEGIN_MARKER}\n\`\`\`text\n${excerpt.join('\n')}\n\`\`\`\n${readme.slice(end)}`;
}

/** `--force` rewrites the excerpt even when only times, ports and stamps differ (otherwise it is left alone: no churn). */
async function main(argv: readonly string[]): Promise<number> {
  process.stdout.write('readme:logs: running the rehearsal (about 30 s)...\n');
  const excerpt = runnerExcerpt(await runRehearsal());
  const before = readFileSync(README, 'utf8');
  const old = readmeExcerpt(before);
  const differences = old ? compareExcerpts(old, excerpt) : ['no excerpt yet'];
  if (differences.length === 0 && !argv.includes('--force')) {
    process.stdout.write(`readme:logs: README.md already shows what the runner prints (${excerpt.length} lines; only times, ports and stamps differ): left as it is (--force rewrites it)\n`);
    return 0;
  }
  writeFileSync(README, withExcerpt(before, excerpt));
  process.stdout.write(`readme:logs: README.md build log excerpt rewritten: ${excerpt.length} lines (was ${old?.length ?? 0}), ${differences.length} difference(s) before; read the diff before committing\n`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: Error) => {
    process.stderr.write(`readme:logs: ${err.message}\n`);
    process.exitCode = 1;
  });
}
