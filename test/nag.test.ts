/**
 * cdk-nag AwsSolutions: zero unsuppressed findings. The construct ships its
 * own suppressions as `cdk_nag` metadata on its resources, so a user's stack
 * shows no finding from it; the lab stack suppresses only its own instance's.
 * Each suppression names the finding it covers and why; a suppression that no
 * longer matches a finding fails the test too, so the lists cannot go stale.
 */
import { App, Aspects, CfnResource, Duration, Stack, aws_ec2 as ec2, aws_events as events, aws_kms as kms, aws_rds as rds, aws_sns as sns } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, NagPackSuppression, NagSuppressions } from 'cdk-nag';
import { PitrAuroraLabStack, PitrLabStack } from './lab-stack';
import { PitrRecovery, PitrRecoveryProps } from '../src/pitr-recovery';

interface Suppressions {
  readonly path: string;
  readonly suppressions: NagPackSuppression[];
}

const SUPPRESSIONS: Suppressions[] = [
  // ---- the lab's own instance: a throwaway target, not part of the construct
  {
    path: '/Lab/Instance/Resource',
    suppressions: [
      { id: 'AwsSolutions-RDS3', reason: 'Lab instance: single-AZ keeps the throwaway lab cheap; PITR does not depend on Multi-AZ.' },
      { id: 'AwsSolutions-RDS10', reason: 'Lab instance: it must be destroyed after the integ run, which deletion protection would block.' },
      { id: 'AwsSolutions-RDS11', reason: 'Lab instance: the port is not a control; the instance is private and only the recovery build\'s security group is admitted.' },
    ],
  },
  {
    path: '/Lab/Instance/Secret/Resource',
    suppressions: [{ id: 'AwsSolutions-SMG4', reason: 'Lab secret lives for one integ run; rotation needs a rotation function that this lab does not test.' }],
  },
];

interface Finding {
  readonly path: string;
  /** e.g. `AwsSolutions-IAM5[Resource::*]` or `AwsSolutions-RDS3` */
  readonly finding: string;
}

function nagFindings(suppress: boolean): Finding[] {
  const app = new App();
  const stack = new PitrLabStack(app, 'Lab');
  if (suppress) applySuppressions(stack);
  return findingsOf(stack);
}

function findingsOf(stack: Stack): Finding[] {
  Aspects.of(stack).add(new AwsSolutionsChecks({ verbose: true }));
  const annotations = Annotations.fromStack(stack);
  const pattern = Match.stringLikeRegexp('AwsSolutions-');
  return [...annotations.findError('*', pattern), ...annotations.findWarning('*', pattern)]
    .map((m) => ({ path: m.id, finding: String(m.entry.data).match(/^AwsSolutions-[A-Za-z0-9]+(\[[^\]]*\])?/)![0] }));
}

function applySuppressions(stack: Stack): void {
  for (const { path, suppressions } of SUPPRESSIONS) {
    NagSuppressions.addResourceSuppressionsByPath(stack, path, suppressions);
  }
}

function covers(suppression: NagPackSuppression, finding: string): boolean {
  const [rule, applies] = finding.match(/^([^[]+)(?:\[(.*)\])?$/)!.slice(1);
  if (rule !== suppression.id) return false;
  if (applies === undefined || suppression.appliesTo === undefined) return applies === undefined || suppression.appliesTo === undefined;
  return suppression.appliesTo.some((a) => (typeof a === 'string'
    ? a === applies
    : new RegExp(a.regex.slice(1, a.regex.lastIndexOf('/'))).test(applies)));
}

describe('cdk-nag AwsSolutions on the lab stack', () => {
  test('no unsuppressed finding', () => {
    expect(nagFindings(true)).toEqual([]);
  });

  test('every suppression has a reason and still covers a real finding on its path', () => {
    const findings = nagFindings(false);
    expect(findings.length).toBeGreaterThan(0);
    for (const { path, suppressions } of SUPPRESSIONS) {
      for (const suppression of suppressions) {
        expect(suppression.reason.length).toBeGreaterThanOrEqual(40);
        const used = findings.some((f) => f.path === path && covers(suppression, f.finding));
        const which = { path, id: suppression.id, appliesTo: suppression.appliesTo };
        expect({ ...which, used }).toEqual({ ...which, used: true });
      }
    }
  });

  test('every finding is on a path with a written suppression (none on the whole stack)', () => {
    const paths = new Set(SUPPRESSIONS.map((s) => s.path));
    const uncovered = nagFindings(false).filter((f) => !paths.has(f.path) || !SUPPRESSIONS
      .find((s) => s.path === f.path)!.suppressions.some((s) => covers(s, f.finding)));
    expect(uncovered).toEqual([]);
  });
});

/** A stack as a user writes it: explicit env, a VPC, an instance with generated credentials, the one line. */
function userStack(): { stack: Stack; recovery: PitrRecovery } {
  const stack = new Stack(new App(), 'User', { env: { account: '123456789012', region: 'eu-west-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc');
  const instance = new rds.DatabaseInstance(stack, 'Db', { engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }), vpc });
  return { stack, recovery: new PitrRecovery(stack, 'Dr', { instance }) };
}

interface ShippedRule {
  readonly id: string;
  readonly reason: string;
  readonly applies_to?: NagPackSuppression['appliesTo'];
}

describe('cdk-nag AwsSolutions on a user\'s stack', () => {
  test('no finding from the construct, with no suppression written by the user', () => {
    const findings = findingsOf(userStack().stack).filter((f) => f.path.startsWith('/User/Dr/'));
    expect(findings).toEqual([]);
  });

  test('every suppression the construct ships has a reason and covers a real finding on its resource', () => {
    const { stack, recovery } = userStack();
    const shipped: Array<{ path: string; rule: ShippedRule }> = [];
    for (const construct of recovery.node.findAll()) {
      if (!(construct instanceof CfnResource)) continue;
      const rules = (construct.getMetadata('cdk_nag') as { rules_to_suppress?: ShippedRule[] } | undefined)?.rules_to_suppress ?? [];
      for (const rule of rules) shipped.push({ path: `/${construct.node.path}`, rule });
      // Without the metadata, the findings it suppresses show.
      if (rules.length > 0) delete construct.cfnOptions.metadata!.cdk_nag;
    }
    expect(shipped.length).toBeGreaterThanOrEqual(10);
    const findings = findingsOf(stack);
    for (const { path, rule } of shipped) {
      expect(rule.reason.length).toBeGreaterThanOrEqual(40);
      const suppression: NagPackSuppression = { id: rule.id, reason: rule.reason, appliesTo: rule.applies_to };
      const used = findings.some((f) => f.path === path && covers(suppression, f.finding));
      const which = { path, id: rule.id, appliesTo: rule.applies_to };
      expect({ ...which, used }).toEqual({ ...which, used: true });
    }
  });
});

describe('cdk-nag AwsSolutions on a user\'s stack with restore drills', () => {
  test('no finding from the construct with a drill schedule, a recovery time objective and a notification topic', () => {
    const stack = new Stack(new App(), 'User', { env: { account: '123456789012', region: 'eu-west-1' } });
    const vpc = new ec2.Vpc(stack, 'Vpc');
    const instance = new rds.DatabaseInstance(stack, 'Db', { engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }), vpc });
    const topic = new sns.Topic(stack, 'Ops', { enforceSSL: true });
    new PitrRecovery(stack, 'Dr', {
      instance, drillSchedule: events.Schedule.rate(Duration.days(7)), recoveryTimeObjective: Duration.hours(4), notificationTopic: topic,
    });
    expect(findingsOf(stack).filter((f) => f.path.startsWith('/User/Dr/'))).toEqual([]);
  });
});

describe('cdk-nag AwsSolutions on a user\'s stack without NAT', () => {
  test('no finding from the construct with isolated subnets, createVpcEndpoints, scheduled housekeeping and a KMS-encrypted topic', () => {
    const stack = new Stack(new App(), 'User', { env: { account: '123456789012', region: 'eu-west-1' } });
    const vpc = new ec2.Vpc(stack, 'Vpc', { natGateways: 0, subnetConfiguration: [{ name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const vpcSubnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    const instance = new rds.DatabaseInstance(stack, 'Db', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }), vpc, vpcSubnets, storageEncryptionKey: new kms.Key(stack, 'DbKey', { enableKeyRotation: true }),
    });
    const topic = new sns.Topic(stack, 'Ops', { enforceSSL: true, masterKey: new kms.Key(stack, 'TopicKey', { enableKeyRotation: true }) });
    new PitrRecovery(stack, 'Dr', {
      instance,
      vpcSubnets,
      createVpcEndpoints: true,
      notificationTopic: topic,
      housekeepingSchedule: { schedule: events.Schedule.rate(Duration.days(1)), olderThan: Duration.days(14) },
    });
    expect(findingsOf(stack).filter((f) => f.path.startsWith('/User/Dr/'))).toEqual([]);
  });
});

/** A user's stack with an Aurora PostgreSQL cluster (issue #20): its VPC, the cluster with a writer, the one line. */
function userAuroraStack(props: Partial<PitrRecoveryProps> = {}): { stack: Stack; recovery: PitrRecovery } {
  const stack = new Stack(new App(), 'User', { env: { account: '123456789012', region: 'eu-west-1' } });
  const vpc = new ec2.Vpc(stack, 'Vpc');
  const cluster = new rds.DatabaseCluster(stack, 'Db', {
    engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
    writer: rds.ClusterInstance.provisioned('Writer'),
    vpc,
  });
  return { stack, recovery: new PitrRecovery(stack, 'Dr', { cluster, ...props }) };
}

describe('cdk-nag AwsSolutions with an Aurora PostgreSQL cluster', () => {
  test('no finding from the construct, with no suppression written by the user; with drills and housekeeping too', () => {
    expect(findingsOf(userAuroraStack().stack).filter((f) => f.path.startsWith('/User/Dr/'))).toEqual([]);
    const scheduled = userAuroraStack({
      drillSchedule: events.Schedule.rate(Duration.days(7)),
      housekeepingSchedule: { schedule: events.Schedule.rate(Duration.days(1)), olderThan: Duration.days(14) },
    });
    expect(findingsOf(scheduled.stack).filter((f) => f.path.startsWith('/User/Dr/'))).toEqual([]);
  });

  test('every cluster suppression the construct ships has a reason and covers a real finding on its resource', () => {
    const { stack, recovery } = userAuroraStack();
    const shipped: Array<{ path: string; rule: ShippedRule }> = [];
    for (const construct of recovery.node.findAll()) {
      if (!(construct instanceof CfnResource)) continue;
      const rules = (construct.getMetadata('cdk_nag') as { rules_to_suppress?: ShippedRule[] } | undefined)?.rules_to_suppress ?? [];
      for (const rule of rules) shipped.push({ path: `/${construct.node.path}`, rule });
      if (rules.length > 0) delete construct.cfnOptions.metadata!.cdk_nag;
    }
    const findings = findingsOf(stack);
    for (const { path, rule } of shipped) {
      expect(rule.reason.length).toBeGreaterThanOrEqual(40);
      const suppression: NagPackSuppression = { id: rule.id, reason: rule.reason, appliesTo: rule.applies_to };
      for (const applies of rule.applies_to ?? [undefined]) {
        const one: NagPackSuppression = { ...suppression, appliesTo: applies === undefined ? undefined : [applies] };
        const used = findings.some((f) => f.path === path && covers(one, f.finding));
        const which = { path, id: rule.id, appliesTo: applies };
        expect({ ...which, used }).toEqual({ ...which, used: true });
      }
    }
  });

  test('the Aurora lab stack: no finding from the construct', () => {
    const stack = new PitrAuroraLabStack(new App(), 'AuroraLab');
    expect(findingsOf(stack).filter((f) => f.path.startsWith('/AuroraLab/Dr/'))).toEqual([]);
  });
});
