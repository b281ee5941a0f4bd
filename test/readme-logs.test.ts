/**
 * The build-log excerpt in README.md is what the runner prints today: a real
 * rehearsal run (`runner.js recover` against the RDS stand-in, as
 * `npx projen rehearse`) compared with the README line by line, with times,
 * durations, ports, stamps and sizes normalized (local/readme-logs.ts).
 * When the runner's log changes, `npx projen readme:logs` rewrites the
 * excerpt. Needs `npx projen bundle` and moto_server.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { readReadme } from './readme-blocks';
import {
  BEGIN_MARKER, REGENERATE, REHEARSAL, compareExcerpts, normalizeLine, readmeExcerpt, runRehearsal, runnerExcerpt, withExcerpt,
} from '../local/readme-logs';

const FIX = `Run \`${REGENERATE}\` to regenerate it from a rehearsal, and read the diff of README.md before committing.`;

describe('the build log excerpt in README.md', () => {
  test('is between its markers, generated', () => {
    const excerpt = readmeExcerpt(readReadme());
    if (!excerpt) throw new Error(`README.md: no build log excerpt between the markers ${BEGIN_MARKER} ... <!-- end of build log excerpt -->. ${FIX}`);
    expect(excerpt.length).toBeGreaterThan(20);
  });

  test('matches a real rehearsal run line by line (times, durations, ports, stamps and sizes aside)', async () => {
    if (!existsSync(REHEARSAL)) throw new Error(`${REHEARSAL} is missing: run \`npx projen bundle\` first`);
    const readme = readReadme();
    // Without markers (an old README), the ```text block of its build log section is what it shows.
    const shown = readmeExcerpt(readme) ?? /## What you see in the build log[\s\S]*?```text\n([\s\S]*?)\n```/.exec(readme)?.[1].split('\n') ?? [];
    const run = runnerExcerpt(await runRehearsal());
    const problems = compareExcerpts(shown, run);
    if (problems.length > 0) {
      throw new Error(`The README's build log excerpt no longer matches what the runner prints (${problems.length} difference(s)). ${FIX}\n\n${problems.join('\n\n')}`);
    }
  });
});

describe('the First recovery section', () => {
  test('every log text it quotes is in the build log excerpt (a failure\'s, in the runner)', () => {
    const readme = readReadme();
    const section = readme.slice(readme.indexOf('## First recovery'), readme.indexOf('\n## ', readme.indexOf('## First recovery') + 5));
    const excerpt = (readmeExcerpt(readme) ?? []).join('\n');
    const runnerDir = join(__dirname, '..', 'buildspec', 'runner');
    const runner = readdirSync(runnerDir).filter((f) => f.endsWith('.ts')).map((f) => readFileSync(join(runnerDir, f), 'utf8')).join('\n');
    // Multi-word spans that are not commands, options or placeholders: what the log prints.
    const quoted = [...section.replace(/```[\s\S]*?```/g, '').matchAll(/`([^`]+)`/g)].map((m) => m[1]).filter((t) => / /.test(t) && !/^(aws |--)|[<$]/.test(t));
    expect(quoted).toEqual(expect.arrayContaining(['Wait for the temporary instance', 'RESULT: SUCCESS', 'RESULT: FAILED']));
    for (const text of quoted) {
      expect({ text, printed: text.startsWith('RESULT: FAILED') ? runner.includes(text) : excerpt.includes(text) }).toEqual({ text, printed: true });
    }
  });
});

describe('the comparison (local/readme-logs.ts)', () => {
  const line = (t: string, text: string) => `2026-12-02T00:25:${t}Z ${text}`;
  const run = [
    line('55.466', '> Plan and validate'),
    line('55.555', '  source: rehearsal-db (postgres 15.18, 127.0.0.1:35991)'),
    line('55.555', '< Plan and validate: done in 45 ms'),
    line('56.000', '> "orders": dump schema'),
    line('56.001', '> "orders": create "orders__pitr_20261202002555"'),
    line('56.100', '  temporary instance x: creating (elapsed 8 ms)'),
  ];

  test('times, durations, ports, stamps and versions do not count', () => {
    const other = run.map((l) => l.replace('00:25:', '09:41:').replace('35991', '40001').replace('45 ms', '1.20 s').replace('15.18', '16.4')
      .replace('20261202002555', '20261204094100'));
    expect(compareExcerpts(run, other)).toEqual([]);
    expect(normalizeLine(run[1])).toBe('<t> source: rehearsal-db (postgres <version>, <host>:<port>)');
  });

  test('steps that run side by side may swap places; progress lines may come and go', () => {
    const swapped = [run[0], run[1], run[2], run[4], run[3]];
    expect(compareExcerpts(run, swapped)).toEqual([]);
  });

  test('a renamed, missing or added step is a difference, and the message says how to regenerate', () => {
    expect(compareExcerpts(run, run.map((l) => l.replace('dump schema', 'dump the schema')))).toHaveLength(1);
    expect(compareExcerpts(run, [...run.slice(0, 3), line('55.999', '> Drop in-progress copies of dead runs'), ...run.slice(3)])).toHaveLength(1);
    expect(compareExcerpts(run, run.slice(1))).toHaveLength(1);
    expect(FIX).toContain('npx projen readme:logs');
  });

  test('the summary step table is shortened to one line, and regeneration writes between the markers only', () => {
    const output = [
      'rehearsal setup', '  ---- the recovery runbook, as on AWS ----',
      line('57.000', '  Steps:'), line('57.000', '    Plan and validate     45 ms  ok'), line('57.000', '  Source: rehearsal-db'),
      '(node:1) Warning: not a runner line', '  ---- independent check ----',
    ].join('\n');
    const excerpt = runnerExcerpt(output);
    expect(excerpt).toEqual([line('57.000', '  Steps:'), '    ... (one line per step with its duration)', line('57.000', '  Source: rehearsal-db')]);
    const readme = `# x\nbefore\n${BEGIN_MARKER}\n\`\`\`text\nold\n\`\`\`\n<!-- end of build log excerpt -->\nafter\n`;
    const written = withExcerpt(readme, excerpt);
    expect(readmeExcerpt(written)).toEqual(excerpt);
    expect(written.startsWith('# x\nbefore\n')).toBe(true);
    expect(written.endsWith('<!-- end of build log excerpt -->\nafter\n')).toBe(true);
  });
});
