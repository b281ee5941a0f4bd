/**
 * Every shell command in README.md works as written:
 * - each `aws ...` command is parsed as the AWS CLI parses it: by a real AWS
 *   CLI v2 when one is installed (run against a capture server on loopback,
 *   so no AWS call is ever made and a parse error shows before any request),
 *   and always by a port of the CLI's shorthand rules (readme-blocks.ts),
 *   which the real CLI cross-checks;
 * - what a `start-build` would send is accepted by the runner's own start
 *   contract parser (plan.ts, housekeeping.ts, drill.ts), and what a
 *   `lambda invoke` sends is accepted by the trigger Lambda, whose StartBuild
 *   overrides are in turn accepted by the runner;
 * - the example reply is what the Lambda answers;
 * - every value in the variables table can be passed in the form the README
 *   gives for it (a comma or a quote needs the JSON form);
 * - every other command names a projen task or a file that exists.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CodeBuildClient, StartBuildCommand } from '@aws-sdk/client-codebuild';
import { DescribeDBInstanceAutomatedBackupsCommand, DescribeDBInstancesCommand, RDSClient } from '@aws-sdk/client-rds';
import { mockClient } from 'aws-sdk-client-mock';
import {
  PLACEHOLDERS, ShorthandSyntaxError, fillPlaceholders, parseListOfStructuresArgument, parseShorthand, readReadme, shellCommands, shellWords,
  type ShellCommand,
} from './readme-blocks';
import { readDrillRequest } from '../buildspec/runner/drill';
import { readHousekeepingRequest } from '../buildspec/runner/housekeeping';
import { readStartRequest } from '../buildspec/runner/plan';
import { startRecovery } from '../lambda/start-recovery';
import { BUILD_ENV, MODES, PROJECT_ENV, START_ENV, parseMode } from '../src/contract';

const execFileAsync = promisify(execFile);
const ROOT = join(__dirname, '..');
const PROJECT = PLACEHOLDERS['<project>'];
const INSTANCE = PLACEHOLDERS['<instance id>'];
const BUILD_ID = `${PROJECT}:6f1c2a7e-0000-4000-8000-000000000001`;
const DUMMY_ENV = {
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'readme-test-only',
  AWS_REGION: 'us-east-1',
  AWS_DEFAULT_REGION: 'us-east-1',
  AWS_CONFIG_FILE: '/dev/null',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  AWS_PAGER: '',
  AWS_MAX_ATTEMPTS: '1',
};
Object.assign(process.env, DUMMY_ENV);

const commands = shellCommands();
const awsCommands = commands.filter((c) => c.text.startsWith('aws '));
const otherCommands = commands.filter((c) => !c.text.startsWith('aws '));

// ---------------------------------------------------------------- what a command sends

interface Call {
  readonly service: string;
  readonly operation: string;
  /** `--environment-variables-override` as the CLI sends it. */
  readonly overrides?: unknown[];
  /** `--payload` as the CLI sends it (with --cli-binary-format raw-in-base64-out). */
  readonly payload?: string;
  readonly options: Readonly<Record<string, string[]>>;
}

/** What the port of the CLI's rules makes of a command. Throws the CLI's kind of error. */
function parseAsCli(command: ShellCommand): Call {
  const words = shellWords(fillPlaceholders(command.text), fillPlaceholders(command.prelude));
  if (words[0] !== 'aws' || words.length < 3) throw new Error(`not an aws <service> <operation> command: ${command.text}`);
  const options: Record<string, string[]> = {};
  let name: string | undefined;
  for (const word of words.slice(3)) {
    if (word.startsWith('--')) {
      name = word;
      if (options[name]) throw new Error(`${name} given twice`);
      options[name] = [];
    } else if (name) {
      options[name].push(word);
    }
  }
  const overrideWords = options['--environment-variables-override'];
  const binary = options['--cli-binary-format'];
  if (binary && !(binary.length === 1 && ['raw-in-base64-out', 'base64'].includes(binary[0]))) {
    throw new Error(`--cli-binary-format: ${JSON.stringify(binary)}; the AWS CLI v2 accepts raw-in-base64-out or base64`);
  }
  return {
    service: words[1],
    operation: words[2],
    options,
    ...(overrideWords ? { overrides: parseListOfStructuresArgument(overrideWords) } : {}),
    ...(options['--payload'] ? { payload: options['--payload'][0] } : {}),
  };
}

/** An AWS CLI v2 on this machine, if any (`--cli-binary-format` is v2 only). */
function findAwsV2(): string | undefined {
  const candidates = new Set<string>();
  try {
    candidates.add(execFileSync('bash', ['-c', 'command -v aws'], { encoding: 'utf8' }).trim());
  } catch {
    // none on PATH
  }
  for (const path of ['/usr/bin/aws', '/usr/local/bin/aws']) if (existsSync(path)) candidates.add(path);
  for (const path of candidates) {
    try {
      if (path && /^aws-cli\/2\./.test(execFileSync(path, ['--version'], { encoding: 'utf8', env: { ...process.env, ...DUMMY_ENV } }))) return path;
    } catch {
      // not runnable
    }
  }
  return undefined;
}
const AWS_V2 = findAwsV2();

interface Captured {
  readonly target?: string;
  readonly path: string;
  readonly body: string;
}

/** A loopback server that records what the CLI sends and answers every request with an error: nothing leaves the machine. */
async function captureServer(): Promise<{ server: Server; endpoint: string; requests: Captured[] }> {
  const requests: Captured[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => {
      requests.push({ target: req.headers['x-amz-target'] as string | undefined, path: req.url ?? '', body });
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': 'ValidationException' });
      res.end(JSON.stringify({ __type: 'ValidationException', message: 'readme test: captured, not sent to AWS' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/** Runs the README's command text through bash with `aws` pointed at the capture server. */
async function runRealCli(command: ShellCommand, endpoint: string): Promise<{ code: number; stderr: string }> {
  const script = `aws() { "$AWS_V2_BIN" --endpoint-url "$CAPTURE_ENDPOINT" "$@"; }\n${fillPlaceholders(command.prelude)}\n${fillPlaceholders(command.text)}`;
  try {
    await execFileAsync('bash', ['-c', script], { env: { ...process.env, ...DUMMY_ENV, AWS_V2_BIN: AWS_V2!, CAPTURE_ENDPOINT: endpoint }, timeout: 60_000 });
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code?: number; stderr?: string };
    return { code: e.code ?? -1, stderr: e.stderr ?? '' };
  }
}

// ---------------------------------------------------------------- what the runner and the Lambda accept

const PROJECT_VARIABLES: Record<string, string> = {
  [PROJECT_ENV.SOURCE_INSTANCE_ID]: INSTANCE,
  [PROJECT_ENV.SECRET_ARN]: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:orders-db/master-AbCdEf',
  [PROJECT_ENV.PG_CA_BUNDLE]: '/tmp/rds-ca/global-bundle.pem',
  [PROJECT_ENV.WAIT_TIMEOUT_MINUTES]: '240',
  // The construct sets STRATEGY on the project; an override replaces it.
  [START_ENV.STRATEGY]: 'swap',
  [BUILD_ENV.BUILD_ID]: BUILD_ID,
};

/** The build's environment for these overrides, read by the runner's parser for its MODE; throws its refusal. */
function runnerAccepts(overrides: readonly unknown[]): Record<string, string> {
  const env: Record<string, string> = { ...PROJECT_VARIABLES };
  overrides.forEach((o, i) => {
    const { name, value, type } = o as Record<string, unknown>;
    if (typeof name !== 'string' || typeof value !== 'string') {
      // What StartBuild's parameter validation answers (botocore / the SDK), before anything is sent.
      throw new Error(`Invalid type for parameter environmentVariablesOverride[${i}]: ${JSON.stringify(o)}; name and value must be strings `
        + '(the AWS CLI shorthand reads an unquoted comma as a list: use the JSON form)');
    }
    if (type !== 'PLAINTEXT') throw new Error(`environmentVariablesOverride[${i}].type: ${JSON.stringify(type)}; the README should pass PLAINTEXT`);
    if (!(Object.values(START_ENV) as string[]).includes(name)) throw new Error(`${name} is not a start variable (grantStartRecovery allows only START_ENV)`);
    env[name] = value;
  });
  const mode = parseMode(env[START_ENV.MODE]?.trim());
  if (mode === 'recover') readStartRequest(env, { cpus: 2 });
  else if (mode === 'housekeeping') readHousekeepingRequest(env);
  else readDrillRequest(env, { cpus: 2 });
  return env;
}

const DAY = 86_400_000;

/** The trigger Lambda's handler on a request, with RDS and CodeBuild answered in memory; resolves to its reply and its StartBuild overrides. */
async function lambdaAccepts(request: unknown): Promise<{ reply: Record<string, unknown>; overrides: unknown[] }> {
  const rds = new RDSClient({ region: 'us-east-1' });
  const codebuild = new CodeBuildClient({ region: 'us-east-1' });
  const rdsMock = mockClient(rds);
  const codebuildMock = mockClient(codebuild);
  rdsMock.on(DescribeDBInstancesCommand).resolves({
    DBInstances: [{ DBInstanceIdentifier: INSTANCE, DBInstanceStatus: 'available', BackupRetentionPeriod: 35, LatestRestorableTime: new Date(), DbiResourceId: 'db-ABC' }],
  });
  // A window that holds the README's example times (35 days of backups).
  rdsMock.on(DescribeDBInstanceAutomatedBackupsCommand).resolves({
    DBInstanceAutomatedBackups: [{ Status: 'active', DbiResourceId: 'db-ABC', RestoreWindow: { EarliestTime: new Date(Date.parse('2026-11-20T00:00:00Z') - 35 * DAY) } }],
  });
  codebuildMock.on(StartBuildCommand).resolves({ build: { id: BUILD_ID, projectName: PROJECT, logs: { deepLink: 'https://console.aws.amazon.com/cloudwatch/home?region=us-east-1#logEvent:group=g;stream=s' } } });
  const reply = await startRecovery(request, {
    config: { projectName: PROJECT, sourceId: INSTANCE, sourceKind: 'instance', region: 'us-east-1' }, rds, codebuild, log: () => undefined,
  });
  const overrides = codebuildMock.commandCalls(StartBuildCommand)[0].args[0].input.environmentVariablesOverride ?? [];
  return { reply: reply as unknown as Record<string, unknown>, overrides };
}

// ---------------------------------------------------------------- tests

describe('README shell commands', () => {
  test('the README has aws commands of each kind it documents', () => {
    const kinds = new Set(awsCommands.map((c) => c.text.split(/\s+/).slice(1, 3).join(' ')));
    expect([...kinds]).toEqual(expect.arrayContaining(['codebuild start-build', 'lambda invoke', 'codebuild stop-build']));
  });

  describe.each(awsCommands.map((c) => [`line ${c.line}: ${c.text.slice(0, 90)}`, c] as const))('%s', (_, command) => {
    test('parses as the AWS CLI parses it', () => {
      expect(() => parseAsCli(command)).not.toThrow();
    });

    if (command.text.includes('start-build')) {
      test('what it sends is accepted by the runner (the start contract)', () => {
        const call = parseAsCli(command);
        expect(call.overrides?.length).toBeGreaterThan(0);
        runnerAccepts(call.overrides!);
      });
    }

    if (command.text.includes('lambda invoke')) {
      test('the payload is accepted by the trigger Lambda, and its StartBuild by the runner', async () => {
        const call = parseAsCli(command);
        expect(call.options['--cli-binary-format']).toEqual(['raw-in-base64-out']);
        const { overrides } = await lambdaAccepts(JSON.parse(call.payload!));
        runnerAccepts(overrides);
      });
    }
  });

  test('each section with `--cli-binary-format` says that it needs AWS CLI v2', () => {
    const readme = readReadme();
    const sections = readme.split(/\n(?=#{2,3} )/);
    const using = sections.filter((s) => s.includes('--cli-binary-format'));
    expect(using.length).toBeGreaterThan(0);
    for (const section of using) expect({ section: section.split('\n')[0], saysV2: /AWS CLI\s+v2/.test(section) }).toEqual({ section: section.split('\n')[0], saysV2: true });
  });

  test(`the real AWS CLI v2 (${AWS_V2 ?? 'not installed'}) sends what the port of its rules says, for every command`, async () => {
    if (!AWS_V2) {
      // CI installs it (scripts/setup.sh); elsewhere the port of its rules above is what checked the commands.
      if (process.env.CI) throw new Error('no AWS CLI v2 on this machine: scripts/setup.sh installs Debian\'s awscli (v2)');
      process.stderr.write('readme-commands: no AWS CLI v2 installed (Debian: apt-get install awscli); the commands were checked by the port of its shorthand rules only\n');
      return;
    }
    const { server, endpoint, requests } = await captureServer();
    try {
      for (const command of awsCommands) {
        requests.length = 0;
        const { stderr } = await runRealCli(command, endpoint);
        // A parse error is reported before any request; a request means the CLI read the whole command.
        expect({ line: command.line, stderr: requests.length === 0 ? stderr : '', requests: requests.length }).toEqual({ line: command.line, stderr: '', requests: 1 });
        const sent = requests[0];
        const expected = parseAsCli(command);
        if (expected.overrides) expect(JSON.parse(sent.body).environmentVariablesOverride).toEqual(expected.overrides);
        // A prelude that reads the clock (`date -u -d '10 minutes ago'`) ran twice, maybe a second apart.
        const clock = (text: string) => (command.prelude ? text.replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/g, '<time>') : text);
        if (expected.payload !== undefined) expect(clock(sent.body)).toBe(clock(expected.payload));
      }
    } finally {
      server.close();
    }
  });

  test.each(otherCommands.map((c) => [`line ${c.line}: ${c.text.slice(0, 90)}`, c] as const))('%s names a task or file that exists', (_, command) => {
    const words = shellWords(command.text.replace(/<[^>]+>/g, 'x').replace(/\[[^\]]*\]/g, ''));
    const tasks = Object.keys(JSON.parse(readFileSync(join(ROOT, '.projen', 'tasks.json'), 'utf8')).tasks);
    if (words[0] === 'npx' && words[1] === 'projen') expect(tasks).toContain(words[2]);
    else if (words[0] === 'npx') expect(existsSync(join(ROOT, 'node_modules', '.bin', words[1] === '--' ? words[2] : words[1]))).toBe(true);
    else expect(words.slice(1).filter((w) => /\.(sh|js|ts)$/.test(w)).every((w) => existsSync(join(ROOT, w)) || w.startsWith('bench/results') || w.startsWith('/tmp/'))).toBe(true);
  });
});

describe('the port of the AWS CLI shorthand rules, on the cases the README warns about', () => {
  const cases: Array<[string, string, unknown]> = [
    ['an unquoted comma makes a list (StartBuild then refuses it)', 'name=DATABASES,value=orders,billing,type=PLAINTEXT', ['orders', 'billing']],
    ['a double quote inside a value does not parse', 'name=TABLES,value="Sales"."Order Items",type=PLAINTEXT', ShorthandSyntaxError],
    ['a single-quoted value keeps its comma', "name=DATABASES,value='orders,billing',type=PLAINTEXT", 'orders,billing'],
    ['a value without comma or quote is a string', 'name=RESTORE_TIME,value=2026-11-24T09:30:00Z,type=PLAINTEXT', '2026-11-24T09:30:00Z'],
  ];

  test.each(cases)('%s', (_, word, expected) => {
    if (expected === ShorthandSyntaxError) expect(() => parseShorthand(word)).toThrow(ShorthandSyntaxError);
    else expect(parseShorthand(word)).toEqual({ name: word.split(',')[0].slice(5), value: expected, type: 'PLAINTEXT' });
  });

  test('the real AWS CLI v2 agrees on each case (when installed)', async () => {
    if (!AWS_V2) return;
    const { server, endpoint, requests } = await captureServer();
    try {
      for (const [, word, expected] of cases) {
        requests.length = 0;
        const quoted = `'${word.replace(/'/g, "'\\''")}'`;
        const { stderr } = await runRealCli({ text: `aws codebuild start-build --project-name p --environment-variables-override ${quoted}`, prelude: '', line: 0, from: 'inline', section: '' }, endpoint);
        if (typeof expected === 'string') {
          expect(JSON.parse(requests[0].body).environmentVariablesOverride[0].value).toBe(expected);
        } else {
          // Refused before any request: a list fails StartBuild's parameter validation, a quote the shorthand parser.
          expect(requests).toHaveLength(0);
          expect(stderr).toMatch(expected === ShorthandSyntaxError ? /Error parsing parameter '--environment-variables-override'/ : /Invalid type for parameter environmentVariablesOverride\[0\]\.value/);
        }
      }
    } finally {
      server.close();
    }
  });
});

describe('the Lambda reply shown in the README', () => {
  test('is what the Lambda answers to the payload above it (keys, and restoreTime as sent back)', async () => {
    const lines = readReadme().split('\n');
    const at = lines.findIndex((l) => /^# \{"buildId"/.test(l));
    expect(at).toBeGreaterThan(0);
    const shown = JSON.parse(lines[at].slice(2));
    const invoke = commands.filter((c) => c.text.includes('lambda invoke') && c.line < at + 1).pop()!;
    const { reply } = await lambdaAccepts(JSON.parse(parseAsCli(invoke).payload!));
    expect(Object.keys(shown).sort()).toEqual(Object.keys(reply).sort());
    expect(shown.restoreTime).toBe(reply.restoreTime);
  });
});

// ---------------------------------------------------------------- the variables table

interface TableRow {
  readonly variable: string;
  readonly lambdaField?: string;
  readonly lambdaList: boolean;
  readonly meaning: string;
  readonly example: string;
}

function variablesTable(): TableRow[] {
  const lines = readReadme().split('\n');
  const header = lines.findIndex((l) => l.startsWith('| Variable (CodeBuild override) |'));
  if (header < 0) throw new Error('README: the variables table (| Variable (CodeBuild override) | ...) is missing');
  const rows: TableRow[] = [];
  for (let i = header + 2; i < lines.length && lines[i].startsWith('|'); i++) {
    const cells = lines[i].split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
    const code = (cell: string) => /`([^`]+)`/.exec(cell)?.[1];
    rows.push({
      variable: code(cells[0])!,
      lambdaField: code(cells[1]),
      lambdaList: /a list/.test(cells[1]),
      meaning: cells[2],
      example: /^`(.*)`$/.exec(cells[3])![1],
    });
  }
  return rows;
}

describe('the variables table', () => {
  const rows = variablesTable();

  test('lists every start variable, and only those', () => {
    expect(rows.map((r) => r.variable).sort()).toEqual(Object.values(START_ENV).sort());
  });

  test.each(rows.map((r) => [r.variable, r] as const))('%s: its example value reaches the build intact in the form the README gives', (_, row) => {
    const shorthand = `name=${row.variable},value=${row.example},type=PLAINTEXT`;
    let sent: unknown;
    try {
      sent = parseShorthand(shorthand).value;
    } catch (err) {
      if (!(err instanceof ShorthandSyntaxError)) throw err;
    }
    if (sent === row.example) return;
    // The shorthand mangles it (a comma makes a list, a quote does not parse): the README must say to use the JSON
    // form for this variable, and show a start-build that passes such a value in that form.
    expect({ variable: row.variable, rowSaysJson: /JSON form/.test(row.meaning) }).toEqual({ variable: row.variable, rowSaysJson: true });
    const shown = awsCommands.filter((c) => c.text.includes('start-build')).map(parseAsCli)
      .flatMap((c) => (c.options['--environment-variables-override'][0]?.trim().startsWith('[') ? c.overrides! : []))
      .filter((o) => (o as { name: string }).name === row.variable && /[,"]/.test((o as { value: string }).value));
    expect({ variable: row.variable, jsonExamples: shown.length > 0 }).toEqual({ variable: row.variable, jsonExamples: true });
  });

  test.each(rows.filter((r) => r.lambdaField).map((r) => [r.lambdaField!, r] as const))('Lambda field %s takes the example value', async (_, row) => {
    const mode = row.variable === START_ENV.MODE ? row.example : /^Housekeeping/.test(row.meaning) ? 'housekeeping' : 'recover';
    const base: Record<string, unknown> = mode === 'housekeeping' ? { mode, olderThan: '7d', dryRun: true }
      : mode === 'drill' ? { mode } : { restoreTime: 'latest', confirm: INSTANCE };
    const value = row.lambdaList ? row.example.split(',') : row.lambdaField === 'dryRun' ? row.example === 'true' : row.example;
    const request = { ...base, [row.lambdaField!]: value };
    if (row.variable === START_ENV.TABLES) request.databases = ['orders'];
    if (row.variable === START_ENV.TABLE_MODE) Object.assign(request, { tables: ['billing.invoice'], databases: ['orders'] });
    const { overrides } = await lambdaAccepts(request);
    runnerAccepts(overrides);
  });

  test('mode: every value the table documents is accepted by the Lambda (recover, the default, included)', async () => {
    const row = rows.find((r) => r.variable === START_ENV.MODE)!;
    const documented = [...row.meaning.matchAll(/`([a-z]+)`/g)].map((m) => m[1]).filter((v) => (MODES as readonly string[]).includes(v));
    expect(documented.sort()).toEqual([...MODES].sort());
    const requests: Record<string, Record<string, unknown>> = {
      recover: { mode: 'recover', restoreTime: 'latest', confirm: INSTANCE },
      housekeeping: { mode: 'housekeeping', olderThan: '7d', dryRun: true },
      drill: { mode: 'drill' },
    };
    // MODE=changes is documented as a CodeBuild override only; the Lambda refuses it (changes-units.test.ts).
    for (const mode of documented.filter((m) => m !== 'changes')) await lambdaAccepts(requests[mode]);
  });
});
