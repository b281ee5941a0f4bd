/**
 * The layout the README describes, checked from the imports themselves:
 * buildspec/runner/ holds exactly what CodeBuild runs (everything in it is
 * reachable from main.ts, and nothing in it reaches local/, test/ or bench/),
 * and no module imports itself back through a circle.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import * as ts from 'typescript';

const ROOT = resolve(__dirname, '..');

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...tsFiles(path));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** The repository files a module imports (relative specifiers only; packages are not ours). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  const out: string[] = [];
  for (const ref of info.importedFiles) {
    if (!ref.fileName.startsWith('.')) continue;
    const base = resolve(dirname(file), ref.fileName);
    const target = [`${base}.ts`, join(base, 'index.ts'), base].find((p) => existsSync(p) && statSync(p).isFile());
    if (!target) throw new Error(`${relative(ROOT, file)} imports ${ref.fileName}, which does not resolve`);
    out.push(target);
  }
  return out;
}

const graph = new Map<string, string[]>();
function load(file: string): string[] {
  let edges = graph.get(file);
  if (!edges) {
    edges = importsOf(file);
    graph.set(file, edges);
    for (const next of edges) load(next);
  }
  return edges;
}

const rel = (p: string) => relative(ROOT, p);

describe('layout', () => {
  const runnerDir = join(ROOT, 'buildspec', 'runner');
  const main = join(runnerDir, 'main.ts');

  test('everything in buildspec/runner/ is reachable from the runner entry point (main.ts)', () => {
    const seen = new Set<string>();
    const walk = (f: string) => {
      if (seen.has(f)) return;
      seen.add(f);
      for (const n of load(f)) walk(n);
    };
    walk(main);
    const unreachable = tsFiles(runnerDir).filter((f) => !seen.has(f)).map(rel);
    expect(unreachable).toEqual([]);
  });

  test('the runner imports nothing from local/, test/ or bench/ (only src/contract and itself)', () => {
    const offending: string[] = [];
    for (const file of tsFiles(runnerDir)) {
      for (const target of load(file)) {
        const r = rel(target);
        if (!r.startsWith('buildspec/runner/') && !r.startsWith('src/')) offending.push(`${rel(file)} -> ${r}`);
      }
    }
    expect(offending).toEqual([]);
  });

  test('no import circles in src/, lambda/, buildspec/, local/', () => {
    const files = ['src', 'lambda', 'buildspec', 'local'].flatMap((d) => tsFiles(join(ROOT, d)));
    for (const f of files) load(f);
    // Tarjan's strongly connected components: a component of more than one module is a circle.
    let index = 0;
    const idx = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const circles: string[][] = [];
    const visit = (v: string) => {
      idx.set(v, index); low.set(v, index); index++;
      stack.push(v); onStack.add(v);
      for (const w of graph.get(v) ?? []) {
        if (!idx.has(w)) {
          visit(w);
          low.set(v, Math.min(low.get(v)!, low.get(w)!));
        } else if (onStack.has(w)) {
          low.set(v, Math.min(low.get(v)!, idx.get(w)!));
        }
      }
      if (low.get(v) === idx.get(v)) {
        const comp: string[] = [];
        let w: string;
        do { w = stack.pop()!; onStack.delete(w); comp.push(rel(w)); } while (w !== v);
        if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) circles.push(comp.sort());
      }
    };
    for (const f of files) if (!idx.has(f)) visit(f);
    expect(circles).toEqual([]);
  });

  test('the import reader finds real edges, so the checks above are not vacuous', () => {
    // The checks above pass on an empty graph too; prove the reader finds real edges.
    const edges = load(join(ROOT, 'local', 'cluster.ts')).map(rel);
    expect(edges).toContain('buildspec/runner/postgres/binaries.ts');
    expect(edges).toContain('local/test-ca.ts');
  });
});
