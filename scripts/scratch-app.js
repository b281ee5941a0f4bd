// The user's app for scripts/scratch-app.sh, run inside a throwaway directory
// where the packed cdk-rds-pitr, aws-cdk-lib and cdk-nag are installed.
// Exits 1 on any cdk-nag AwsSolutions finding from the construct.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance } = require('node:perf_hooks');
const cdk = require('aws-cdk-lib');
const { Aspects, App, Stack, aws_ec2: ec2, aws_kms: kms, aws_rds: rds, aws_secretsmanager: secretsmanager } = cdk;
const { AwsSolutionsChecks } = require('cdk-nag');
const { PitrRecovery } = require('cdk-rds-pitr');

const version = require('aws-cdk-lib/package.json').version;
const env = { account: '123456789012', region: 'eu-west-1' };

/** The stacks a user writes; `withRecovery: false` is the same stack without the construct, for timing. */
const shapes = {
  // An instance created in the app with a generated secret: the one-line use.
  created: (stack, withRecovery) => {
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    const instance = new rds.DatabaseInstance(stack, 'Db', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),
      vpc,
      storageEncrypted: true,
      credentials: rds.Credentials.fromGeneratedSecret('postgres'),
    });
    if (withRecovery) new PitrRecovery(stack, 'Dr', { instance });
  },
  // An imported instance whose master secret (RDS-managed, customer key) is passed by ARN.
  imported: (stack, withRecovery) => {
    const vpc = ec2.Vpc.fromVpcAttributes(stack, 'Vpc', {
      vpcId: 'vpc-0123456789abcdef0', availabilityZones: ['eu-west-1a', 'eu-west-1b'], privateSubnetIds: ['subnet-0123456789abcdef0', 'subnet-0fedcba9876543210'],
    });
    const instance = rds.DatabaseInstance.fromDatabaseInstanceAttributes(stack, 'Db', {
      instanceIdentifier: 'orders-db',
      instanceEndpointAddress: 'orders-db.abc.eu-west-1.rds.amazonaws.com',
      port: 5432,
      securityGroups: [ec2.SecurityGroup.fromSecurityGroupId(stack, 'DbSg', 'sg-0123456789abcdef0')],
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),
    });
    // Something of the user's own, so the stack without the construct is not empty.
    new cdk.CfnWaitConditionHandle(stack, 'UserResource');
    if (!withRecovery) return;
    new PitrRecovery(stack, 'Dr', {
      instance,
      vpc,
      credentials: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Master',
        'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0f1e2d3c-aaaa-bbbb-cccc-0123456789ab-AbCdEf'),
      credentialsEncryptionKey: kms.Key.fromKeyArn(stack, 'MasterKey', 'arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-0123456789ab'),
    });
  },
  // aws-cdk-lib's own managed master password (newer releases): instance.secret is the RDS-managed secret.
  managed: (stack, withRecovery) => {
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 2, natGateways: 1 });
    const key = new kms.Key(stack, 'MasterKey', { enableKeyRotation: true });
    const instance = new rds.DatabaseInstance(stack, 'Db', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),
      vpc,
      storageEncrypted: true,
      manageMasterUserPassword: true,
      credentials: rds.Credentials.fromUsername('postgres', { encryptionKey: key }),
    });
    if (instance.node.defaultChild.manageMasterUserPassword !== true) return 'skipped';
    if (withRecovery) new PitrRecovery(stack, 'Dr', { instance });
  },
};

function synth(shape, { withRecovery, nag }) {
  const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'cdk.out-')) });
  const stack = new Stack(app, `User${shape[0].toUpperCase()}${shape.slice(1)}`, { env });
  if (shapes[shape](stack, withRecovery) === 'skipped') return undefined;
  if (nag) Aspects.of(app).add(new AwsSolutionsChecks());
  const started = performance.now();
  const assembly = app.synth();
  return { ms: performance.now() - started, stack, artifact: assembly.getStackArtifact(stack.artifactId) };
}

let failed = false;
// Warm-up: module loading and the first synth's one-off costs are not the construct's.
synth('created', { withRecovery: false, nag: false });
for (const shape of Object.keys(shapes)) {
  const timing = [0, 1, 2].map(() => [synth(shape, { withRecovery: false, nag: false }), synth(shape, { withRecovery: true, nag: false })]);
  if (timing[0][0] === undefined) {
    console.log(`  aws-cdk-lib ${version} ${shape}: skipped (this aws-cdk-lib has no DatabaseInstance manageMasterUserPassword)`);
    continue;
  }
  const median = (xs) => xs.sort((a, b) => a - b)[1];
  const added = median(timing.map(([a, b]) => b.ms - a.ms));

  const run = synth(shape, { withRecovery: true, nag: true });
  const findings = run.artifact.messages
    .filter((m) => (m.level === 'error' || m.level === 'warning') && String(m.entry.data).startsWith('AwsSolutions-'))
    .map((m) => ({ path: m.id, rule: String(m.entry.data).split(':')[0] }));
  const fromConstruct = findings.filter((f) => f.path.includes('/Dr/'));
  const template = run.artifact.template;
  const project = Object.values(template.Resources).find((r) => r.Type === 'AWS::CodeBuild::Project');
  const secretVar = project.Properties.Environment.EnvironmentVariables.find((v) => v.Name === 'SECRET_ARN').Value;
  let problem = '';
  if (shape === 'managed' && !JSON.stringify(secretVar).includes('MasterUserSecret.SecretArn')) {
    problem = `SECRET_ARN is ${JSON.stringify(secretVar)}, not the RDS-managed secret`;
  }
  console.log(`  aws-cdk-lib ${version} ${shape}: synth adds ${added.toFixed(0)} ms with the construct; `
    + `cdk-nag AwsSolutions findings from the construct: ${fromConstruct.length} (from the rest of the user's stack: ${findings.length - fromConstruct.length})`
    + (problem ? `; ${problem}` : ''));
  for (const f of fromConstruct) console.log(`    ${f.rule} ${f.path}`);
  if (fromConstruct.length > 0 || problem) failed = true;
}
process.exit(failed ? 1 : 0);
