/**
 * Every TypeScript block in README.md compiles against this library (src/,
 * as 'cdk-rds-pitr') and aws-cdk-lib, with the TypeScript compiler API and
 * the project's own compiler options. A block is wrapped in a stack's
 * constructor (so `this` is a Stack); the names a block uses without
 * defining them (`instance`, `vpc`, `topic`, the aws-cdk-lib module aliases)
 * are declared around it, typed as a user's code would have them. The
 * drill's evidence record (a JSON block) must be a value of the runner's
 * EvidenceRecord type.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ts from 'typescript';
import { blocksOf } from './readme-blocks';

const ROOT = join(__dirname, '..');

/** aws-cdk-lib modules by the aliases the README uses. */
const MODULE_ALIASES: Record<string, string> = {
  rds: 'aws_rds',
  ec2: 'aws_ec2',
  events: 'aws_events',
  cloudwatch: 'aws_cloudwatch',
  cw_actions: 'aws_cloudwatch_actions',
  sns: 'aws_sns',
  kms: 'aws_kms',
  secretsmanager: 'aws_secretsmanager',
  iam: 'aws_iam',
  codebuild: 'aws_codebuild',
};
/** What a block may use without defining it, and its type. */
const AMBIENT: Record<string, string> = {
  instance: 'rds.DatabaseInstance',
  imported: 'rds.IDatabaseInstance',
  vpc: 'ec2.IVpc',
  topic: 'sns.ITopic',
  key: 'kms.IKey',
  engine: 'rds.IInstanceEngine',
  masterUserSecretArn: 'string',
  keyArn: 'string',
  grantee: 'iam.IGrantable',
};

/** What the library exports (src/index.ts and the modules it re-exports): a block may use them without importing them. */
function libraryExports(): string[] {
  const index = readFileSync(join(ROOT, 'src', 'index.ts'), 'utf8');
  const names = [...index.matchAll(/export \{([^}]+)\}/g)].flatMap((m) => m[1].split(',').map((n) => n.trim()));
  for (const m of index.matchAll(/export \* from '\.\/([\w-]+)'/g)) {
    const source = readFileSync(join(ROOT, 'src', `${m[1]}.ts`), 'utf8');
    names.push(...[...source.matchAll(/^export (?:abstract )?(?:class|enum|interface|const|function) (\w+)/gm)].map((e) => e[1]));
  }
  return names;
}
const LIBRARY = libraryExports();

/** The block as a module: its imports first, then the aliases and ambient names it does not import itself, then a stack around the rest. */
function wrap(block: string): string {
  const lines = block.split('\n');
  const imports = lines.filter((l) => /^import\s/.test(l));
  const body = lines.filter((l) => !/^import\s/.test(l));
  // The names an import binds (`{ A, B as C }`, `* as D`), not its module specifier.
  const bound = (l: string): string[] => (/^import\s+(.*?)\s+from\s/.exec(l)?.[1] ?? '').replace(/\b\w+\s+as\s+/g, '').match(/[A-Za-z_$][\w$]*/g) ?? [];
  const imported = new Set(imports.flatMap(bound));
  const aliases = Object.entries(MODULE_ALIASES).filter(([alias]) => !imported.has(alias)).map(([alias, mod]) => `${mod} as ${alias}`);
  const cdkNames = ['App', 'Duration', 'Stack'].filter((n) => !imported.has(n));
  return [
    ...imports,
    `import { ${[...cdkNames, ...aliases].join(', ')} } from 'aws-cdk-lib';`,
    ...(imported.has('path') ? [] : ["import * as path from 'node:path';"]),
    // An excerpt after the README's first example may leave out `import { PitrRecovery } from 'cdk-rds-pitr'`.
    `import { ${LIBRARY.filter((n) => !imported.has(n)).join(', ')} } from 'cdk-rds-pitr';`,
    ...Object.entries(AMBIENT).map(([name, type]) => `declare const ${name}: ${type};`),
    'export class ReadmeExampleStack extends Stack {',
    '  constructor(scope: App, id: string) {',
    '    super(scope, id);',
    ...body.map((l) => `    ${l}`),
    '  }',
    '}',
    'void Duration;',
    ...(imported.has('path') ? [] : ['void path;']),
  ].join('\n');
}

function compile(files: Record<string, string>): string[] {
  const configPath = join(ROOT, 'tsconfig.dev.json');
  const config = ts.getParsedCommandLineOfConfigFile(configPath, {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => undefined })!;
  const options: ts.CompilerOptions = {
    ...config.options,
    noEmit: true,
    // A block is an excerpt: an unused name in it is not an error of the example.
    noUnusedLocals: false,
    noUnusedParameters: false,
    baseUrl: ROOT,
    paths: { 'cdk-rds-pitr': ['src/index.ts'] },
  };
  const host = ts.createCompilerHost(options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.readFile = (name) => files[name] ?? readFile(name);
  host.fileExists = (name) => name in files || fileExists(name);
  const program = ts.createProgram(Object.keys(files), options, host);
  return ts.getPreEmitDiagnostics(program)
    .filter((d) => d.file && d.file.fileName in files)
    .map((d) => {
      const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
      const text = d.file!.text.split('\n')[line];
      return `README block ${/line-(\d+)/.exec(d.file!.fileName)?.[1] ?? '?'}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}  at: ${text.trim()}`;
    });
}

describe('README TypeScript blocks', () => {
  const blocks = blocksOf(['ts', 'typescript']);
  const negative = join(ROOT, 'test', '.readme-example-negative.ts');
  let problems: string[];

  beforeAll(() => {
    // One program for every block and the negative control: loading aws-cdk-lib's types is most of the time.
    const files = Object.fromEntries(blocks.map((b) => [join(ROOT, 'test', `.readme-example-line-${b.line}.ts`), wrap(b.text)]));
    // The drill's evidence record shown in the README: an object literal of the runner's own type (excess property checks catch a renamed field).
    for (const b of blocksOf(['json']).filter((j) => j.text.includes('"kind": "cdk-rds-pitr/restore-drill"'))) {
      files[join(ROOT, 'test', `.readme-example-line-${b.line}.ts`)] = `import type { EvidenceRecord } from '../buildspec/runner/drill';\nexport const record: EvidenceRecord = ${b.text};\n`;
    }
    files[negative] = wrap("import { PitrRecovery } from 'cdk-rds-pitr';\nnew PitrRecovery(this, 'Dr', { instance, noSuchProp: 1 });");
    problems = compile(files);
  });

  test('there are TypeScript examples (Use, RDS-managed passwords, restore drills) and the evidence record', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    expect(blocksOf(['json']).filter((j) => j.text.includes('"kind": "cdk-rds-pitr/restore-drill"'))).toHaveLength(1);
  });

  test('every block compiles against the library', () => {
    // Each message names the README line of its block and the failing line.
    expect(problems.filter((p) => !p.startsWith('README block ?'))).toEqual([]);
  });

  test('a block that uses the API wrongly does not compile (the check can fail)', () => {
    expect(problems.filter((p) => p.startsWith('README block ?')).join('\n')).toMatch(/noSuchProp/);
  });
});
