/**
 * What README.md says about the construct and the runner, checked against
 * them: the stack outputs it names exist in a synthesized stack with the
 * same command text; the project-level variables, the notification states,
 * the Lambda's fields per mode and the limits are the contract's; the
 * trigger bundle's size is what it says; and the code no longer says what
 * the README corrected (the CA bundle is not downloaded; `copy` streams on
 * one host too).
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack, aws_ec2 as ec2, aws_rds as rds, aws_sns as sns } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { PLACEHOLDERS, readReadme, shellCommands } from './readme-blocks';
import { COPY_USAGE } from '../buildspec/runner/copy-cli';
import { readStartRequest } from '../buildspec/runner/plan';
import { DEFAULT_STREAM_MIN_BYTES } from '../buildspec/runner/postgres/data-path';
import {
  BUILD_ENV, DEAD_BUILD_STATES, DRILL_REQUEST_FIELDS, HOUSEKEEPING_REQUEST_FIELDS, MAX_AGE_DAYS, MAX_JOBS, PROJECT_ENV, RECOVERY_REQUEST_FIELDS,
  START_ENV, parseAge, parseRestoreTime,
} from '../src/contract';
import { PitrRecovery, PitrRecoveryProps } from '../src/index';

const ROOT = join(__dirname, '..');
const readme = readReadme();
const INSTANCE = PLACEHOLDERS['<instance id>'];

/** A stack with the construct, as a user's (no region: outputs without --region). */
function synth(props: (stack: Stack) => Partial<PitrRecoveryProps> = () => ({})): Template {
  const stack = new Stack(new App(), 'Readme');
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  const instance = rds.DatabaseInstance.fromDatabaseInstanceAttributes(stack, 'Imported', {
    instanceIdentifier: INSTANCE,
    instanceEndpointAddress: 'orders-db.abc.eu-west-1.rds.amazonaws.com',
    port: 5432,
    securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'DbSg', 'sg-0123456789abcdef0')],
    engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_15 }),
  });
  const credentials = rds.DatabaseSecret.fromSecretCompleteArn(stack, 'Creds', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-AbCdEf');
  new PitrRecovery(stack, 'Dr', { instance, vpc, credentials, ...props(stack) });
  return Template.fromStack(stack);
}

/** An output's value as text, with the project's and the function's Refs written as the README's placeholders. */
function outputText(template: Template, value: unknown): string {
  const resources = template.toJSON().Resources as Record<string, { Type: string }>;
  const part = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const ref = (v as { Ref?: string }).Ref;
    if (ref && resources[ref]?.Type === 'AWS::CodeBuild::Project') return '<project>';
    if (ref && resources[ref]?.Type === 'AWS::Lambda::Function') return '<trigger function>';
    const fnJoin = (v as { 'Fn::Join'?: [string, unknown[]] })['Fn::Join'];
    if (fnJoin) return fnJoin[1].map(part).join(fnJoin[0]);
    throw new Error(`unexpected output part ${JSON.stringify(v)}`);
  };
  return part(value).split(INSTANCE).join('<instance id>');
}

const words = (text: string): string => text.replace(/\s+/g, ' ').trim();

/** The text of the README sentence that starts with `start` (up to its full stop). */
function sentence(start: string): string {
  const at = readme.indexOf(start);
  if (at < 0) throw new Error(`README.md: no sentence starting "${start}"`);
  return words(readme.slice(at, readme.indexOf('.', readme.indexOf(':', at) + 1) + 1));
}

const codeSpans = (text: string): string[] => [...text.matchAll(/`([^`]+)`/g)].map((m) => m[1]);

describe('stack outputs named in the README', () => {
  const template = synth();
  const outputs = template.toJSON().Outputs as Record<string, { Value: unknown; Description: string }>;

  test.each(['ProjectName', 'TriggerFunctionName', 'InstanceId', 'StartBuildCommand', 'InvokeCommand'])('...%s exists', (name) => {
    expect(readme).toContain(`\`...${name}\``);
    expect(Object.keys(outputs).filter((id) => id.startsWith('Dr') && id.includes(name))).toHaveLength(1);
  });

  test('every `...Name` the README mentions is an output', () => {
    const named = [...new Set([...readme.matchAll(/`\.\.\.([A-Za-z]+)`/g)].map((m) => m[1]))];
    expect(named.length).toBeGreaterThanOrEqual(5);
    for (const name of named) expect({ name, exists: Object.keys(outputs).some((id) => id.includes(name)) }).toEqual({ name, exists: true });
  });

  test.each([
    ['StartBuildCommand', 'codebuild start-build'],
    ['InvokeCommand', 'lambda invoke'],
  ])('%s is the first `aws %s` command in the README section Start a recovery, word for word', (name, kind) => {
    const [id] = Object.keys(outputs).filter((k) => k.includes(name));
    const shown = shellCommands().find((c) => c.section === 'Start a recovery' && c.text.startsWith(`aws ${kind}`))!;
    expect(words(outputText(template, outputs[id].Value))).toBe(words(shown.text));
  });

  test('InvokeCommand says it needs AWS CLI v2, as the README does', () => {
    const [id] = Object.keys(outputs).filter((k) => k.includes('InvokeCommand'));
    expect(outputs[id].Description).toMatch(/AWS CLI v2.*leave out --cli-binary-format raw-in-base64-out/);
  });
});

describe('what the construct sets, as the README lists it', () => {
  test('the project-level variables are the project\'s environment (with databases and a notification topic)', () => {
    const template = synth((stack) => ({ databases: ['orders', 'billing'], notificationTopic: new sns.Topic(stack, 'T') }));
    const project = Object.values(template.findResources('AWS::CodeBuild::Project'))[0] as any;
    const names = (project.Properties.Environment.EnvironmentVariables as Array<{ Name: string }>).map((v) => v.Name).sort();
    const listed = codeSpans(sentence('The construct sets the rest of the build\'s environment')).filter((s) => /^[A-Z_]+$/.test(s));
    // PG_CLIENT_VERSION is set only with the deprecated postgresClientVersion, left out here (the client is chosen at run time).
    expect(listed).toContain(PROJECT_ENV.PG_CLIENT_VERSION);
    expect(names).not.toContain(PROJECT_ENV.PG_CLIENT_VERSION);
    expect(listed.filter((n) => n !== PROJECT_ENV.PG_CLIENT_VERSION).sort()).toEqual(names);
    expect(names).toEqual(expect.arrayContaining([START_ENV.STRATEGY, START_ENV.DATABASES, PROJECT_ENV.NOTIFICATION_TOPIC_ARN]));
  });

  test('notificationTopic: the README lists the states the notification rule forwards', () => {
    const template = synth((stack) => ({ notificationTopic: new sns.Topic(stack, 'T') }));
    const rule = Object.values(template.findResources('AWS::Events::Rule')).find((r: any) => /notification topic/.test(r.Properties.Description)) as any;
    const states: string[] = rule.Properties.EventPattern.detail['build-status'];
    expect(states.sort()).toEqual(['IN_PROGRESS', 'SUCCEEDED', ...DEAD_BUILD_STATES].sort());
    const at = readme.indexOf('`notificationTopic` (');
    const described = codeSpans(readme.slice(at, readme.indexOf(')', readme.indexOf('message per drill', at))));
    expect(described.filter((s) => /^[A-Z_]+$/.test(s)).sort()).toEqual(states.sort());
    expect(readme.slice(at, at + 300)).toMatch(/message per drill/);
  });
});

describe('the Lambda\'s fields per mode, as the README lists them', () => {
  test('a recovery request', () => {
    expect(codeSpans(sentence('A recovery request takes')).filter((s) => /^[a-z][A-Za-z]+$/.test(s) && s !== 'recover').sort())
      .toEqual([...RECOVERY_REQUEST_FIELDS].sort());
  });

  test('housekeeping', () => {
    expect([...new Set(codeSpans(sentence('Through the trigger Lambda (it accepts exactly')).filter((s) => /^[a-z][A-Za-z]+$/.test(s)))].sort())
      .toEqual([...HOUSEKEEPING_REQUEST_FIELDS].sort());
  });

  test('a drill', () => {
    const text = sentence('Start one by hand, directly or through the trigger Lambda');
    const fields = codeSpans(text.slice(text.indexOf('accepts exactly'), text.indexOf('for a drill'))).filter((s) => /^[a-z][A-Za-z]+$/.test(s) && !['drill', 'latest', 'random'].includes(s));
    expect(fields.sort()).toEqual([...DRILL_REQUEST_FIELDS].sort());
  });
});

describe('limits and forms in the variables table', () => {
  const row = (variable: string): string => readme.split('\n').find((l) => l.startsWith(`| \`${variable}\` |`))!;

  test(`JOBS: 1 to ${MAX_JOBS}, as the runner accepts`, () => {
    expect(row(START_ENV.JOBS)).toContain(`1 to ${MAX_JOBS}`);
    const env = {
      [PROJECT_ENV.SOURCE_INSTANCE_ID]: INSTANCE, [START_ENV.RESTORE_TIME]: 'latest', [START_ENV.CONFIRM]: INSTANCE, [BUILD_ENV.BUILD_ID]: 'p:1',
    };
    expect(readStartRequest({ ...env, [START_ENV.JOBS]: String(MAX_JOBS) }, { cpus: 2 }).jobs).toBe(MAX_JOBS);
    expect(() => readStartRequest({ ...env, [START_ENV.JOBS]: String(MAX_JOBS + 1) }, { cpus: 2 })).toThrow(/JOBS: "65" is not accepted; accepted: a whole number from 1 to 64/);
  });

  test(`OLDER_THAN: at least 1h, at most ${MAX_AGE_DAYS}d`, () => {
    expect(row(START_ENV.OLDER_THAN)).toContain(`at least \`1h\`, at most \`${MAX_AGE_DAYS}d\``);
    expect(parseAge(`${MAX_AGE_DAYS}d`)).toBe(MAX_AGE_DAYS * 86_400_000);
    expect(() => parseAge(`${MAX_AGE_DAYS + 1}d`)).toThrow(/at most 3650d/);
  });

  test('RESTORE_TIME: seconds are required, as the README says', () => {
    expect(row(START_ENV.RESTORE_TIME)).toMatch(/with seconds and `Z`.*`2026-11-24T09:30Z` is refused/);
    expect(() => parseRestoreTime('2026-11-24T09:30Z')).toThrow(/not a valid restore time/);
    expect(parseRestoreTime('2026-11-24T09:30:00.123Z')).toEqual(new Date('2026-11-24T09:30:00.123Z'));
  });

  test('TABLES needs CONFIRM in either table mode, as the README says', () => {
    expect(readme).toMatch(/Both modes need `CONFIRM`/);
    expect(readme).not.toMatch(/like a database recovery it needs/);
    const env = { [PROJECT_ENV.SOURCE_INSTANCE_ID]: INSTANCE, [START_ENV.RESTORE_TIME]: 'latest', [BUILD_ENV.BUILD_ID]: 'p:1', [START_ENV.TABLES]: 'billing.invoice', [START_ENV.DATABASES]: 'orders' };
    expect(() => readStartRequest(env, { cpus: 2 })).toThrow(/CONFIRM: not set/);
    expect(() => readStartRequest({ ...env, [START_ENV.TABLE_MODE]: 'side-by-side' }, { cpus: 2 })).toThrow(/CONFIRM: not set/);
  });
});

describe('facts about the build the README states', () => {
  test('the trigger bundle is about the size the README says (needs `npx projen bundle`)', () => {
    const size = statSync(join(ROOT, 'assets', 'trigger', 'index.js')).size;
    const said = Number(/keeps its bundle at about (\d+) KB/.exec(readme)?.[1]);
    expect(said).toBeGreaterThan(0);
    // Within 15%: the README rounds, and small changes to the Lambda should not churn it.
    expect(Math.abs(size / 1000 - said) / said).toBeLessThan(0.15);
  });

  test('`copy --help` states the streaming threshold the data path uses, on every route', () => {
    expect(COPY_USAGE).toContain(`(default: ${DEFAULT_STREAM_MIN_BYTES}, 16 MiB, on every route`);
    expect(COPY_USAGE).not.toMatch(/never when both/);
  });

  test('no code string says the CA bundle is downloaded: it ships in the runner asset', () => {
    let found = '';
    try {
      found = execFileSync('git', ['grep', '-n', '-i', '-E', 'CA bundle[^.;]*download', '--', 'src', 'buildspec', 'lambda'], { cwd: ROOT, encoding: 'utf8' });
    } catch (err) {
      // git grep exits 1 when nothing matches.
      if ((err as { status?: number }).status !== 1) throw err;
    }
    const hits = found.split('\n').filter((l) => l && !/nothing is downloaded|no download/i.test(l));
    expect(hits).toEqual([]);
  });
});
