/**
 * The lab stack as CloudFormation would deploy it, minus AWS: synthesize
 * `PitrLabStack`, then read from the template and the asset manifest what
 * CodeBuild and Lambda would be given: the project's environment variables,
 * its source (the runner asset, with the shipped buildspec.yml), the trigger
 * function's environment and code, and the cleanup rule's event pattern.
 * References (`Ref`, `Fn::GetAtt`) resolve to the physical ids the test
 * "deployed" (the stand-in's instance, moto's secret). Not a test file.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { PitrAuroraLabStack, PitrLabStack } from '../lab-stack';

type Cfn = string | number | boolean | null | Cfn[] | { [key: string]: Cfn };

interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, Cfn>;
}

export interface LabDeployment {
  readonly stackName: string;
  /** Logical ids of the resources the tests map to physical ones (`instance`: the source, the DB cluster of the Aurora lab). */
  readonly logicalIds: { readonly instance: string; readonly secret: string; readonly project: string; readonly trigger: string };
  /** The CodeBuild project's environment variables as synthesized, in order (values unresolved). */
  readonly projectEnvironment: ReadonlyArray<{ readonly Name: string; readonly Type: string; readonly Value: Cfn }>;
  /** The buildspec file name the project names (CodeBuild reads it from the source). */
  readonly buildspecFile: string;
  /** The staged runner asset: what CodeBuild downloads as the build's source. */
  readonly runnerSourceDir: string;
  /** The staged trigger asset (index.js). */
  readonly triggerCodeDir: string;
  readonly triggerHandler: string;
  readonly triggerEnvironment: Readonly<Record<string, Cfn>>;
  /** The cleanup rule's EventPattern (values unresolved). */
  readonly cleanupEventPattern: Cfn;
  /** The cleanup sweep's schedule rule: its schedule expression and the input it sends the trigger. */
  readonly cleanupSweep: { readonly schedule: string; readonly input: unknown };
  /** Resolves `Ref`/`Fn::GetAtt`/`Fn::Join`/`Fn::Sub` with the given physical ids (by logical id). */
  resolve(value: Cfn, physical: Readonly<Record<string, string>>): string;
  /** Removes the synthesized cloud assembly. */
  dispose(): void;
}

/** `aurora`: the Aurora PostgreSQL lab (PitrAuroraLabStack), whose source is its DB cluster. */
export function synthesizeLab(options: { readonly aurora?: boolean } = {}): LabDeployment {
  const outdir = mkdtempSync(join(tmpdir(), 'pitr-lab-synth-'));
  const app = new App({ outdir });
  const stack = options.aurora ? new PitrAuroraLabStack(app, 'PitrAuroraRecoveryLab') : new PitrLabStack(app, 'PitrRecoveryLab');
  // The lab's RDS instance reads deprecated L1 properties while synthesizing: not this test's concern.
  const deprecated = process.env.JSII_DEPRECATED;
  process.env.JSII_DEPRECATED = 'quiet';
  let assembly;
  try {
    assembly = app.synth();
  } finally {
    if (deprecated === undefined) delete process.env.JSII_DEPRECATED;
    else process.env.JSII_DEPRECATED = deprecated;
  }
  const artifact = assembly.getStackByName(stack.stackName);
  const template = artifact.template as { Resources: Record<string, CfnResource> };
  const resources = Object.entries(template.Resources);
  const only = (type: string, filter: (r: CfnResource) => boolean = () => true): [string, CfnResource] => {
    const found = resources.filter(([, r]) => r.Type === type && filter(r));
    if (found.length !== 1) throw new Error(`lab template: expected exactly one ${type}, found ${found.length}`);
    return found[0];
  };

  const [instanceId] = only(options.aurora ? 'AWS::RDS::DBCluster' : 'AWS::RDS::DBInstance');
  const [secretId] = only('AWS::SecretsManager::SecretTargetAttachment');
  const [projectId, project] = only('AWS::CodeBuild::Project');
  const targetsTrigger = (r: CfnResource): boolean => JSON.stringify(r.Properties?.Targets ?? []).includes('Trigger');
  const [ruleId, rule] = only('AWS::Events::Rule', (r) => targetsTrigger(r) && r.Properties?.EventPattern !== undefined);
  const [, sweep] = only('AWS::Events::Rule', (r) => targetsTrigger(r) && r.Properties?.ScheduleExpression !== undefined);
  const triggerId = ((rule.Properties!.Targets as Array<{ Arn: { 'Fn::GetAtt': [string, string] } }>)[0].Arn)['Fn::GetAtt'][0];
  const trigger = template.Resources[triggerId];
  void ruleId;

  const props = project.Properties as unknown as { Source: { BuildSpec: string; Location: Cfn }; Environment: { EnvironmentVariables: LabDeployment['projectEnvironment'] } };
  const manifest = JSON.parse(readFileSync(join(outdir, `${artifact.id}.assets.json`), 'utf8')) as {
    files: Record<string, { source: { path: string }; destinations: Record<string, { objectKey: string }> }>;
  };
  // The project's S3 source location ends in the asset's object key: find the staged directory behind it.
  const assetDir = (location: Cfn): string => {
    const text = JSON.stringify(location);
    const entry = Object.values(manifest.files).find((f) => Object.values(f.destinations).some((d) => text.includes(d.objectKey)));
    if (!entry) throw new Error(`lab template: no staged asset matches ${text}`);
    return join(outdir, entry.source.path);
  };
  const triggerProps = trigger.Properties as unknown as { Code: { S3Key: Cfn }; Handler: string; Environment: { Variables: Record<string, Cfn> } };

  return {
    stackName: stack.stackName,
    logicalIds: { instance: instanceId, secret: secretId, project: projectId, trigger: triggerId },
    projectEnvironment: props.Environment.EnvironmentVariables,
    buildspecFile: props.Source.BuildSpec,
    runnerSourceDir: assetDir(props.Source.Location),
    triggerCodeDir: assetDir(triggerProps.Code.S3Key),
    triggerHandler: triggerProps.Handler,
    triggerEnvironment: triggerProps.Environment.Variables,
    cleanupEventPattern: rule.Properties!.EventPattern,
    cleanupSweep: {
      schedule: String(sweep.Properties!.ScheduleExpression),
      input: JSON.parse(String((sweep.Properties!.Targets as Array<{ Input: string }>)[0].Input)),
    },
    resolve: (value, physical) => resolveCfn(value, physical),
    dispose: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

function resolveCfn(value: Cfn, physical: Readonly<Record<string, string>>): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value && !Array.isArray(value)) {
    if ('Ref' in value) {
      const id = physical[value.Ref as string];
      if (id === undefined) throw new Error(`lab deployment: no physical id for Ref ${JSON.stringify(value.Ref)}`);
      return id;
    }
    if ('Fn::GetAtt' in value) {
      const [logical, attribute] = value['Fn::GetAtt'] as [string, string];
      const id = physical[`${logical}.${attribute}`];
      if (id === undefined) throw new Error(`lab deployment: no physical value for Fn::GetAtt ${logical}.${attribute}`);
      return id;
    }
    if ('Fn::Join' in value) {
      const [separator, parts] = value['Fn::Join'] as [string, Cfn[]];
      return parts.map((p) => resolveCfn(p, physical)).join(separator);
    }
  }
  throw new Error(`lab deployment: cannot resolve ${JSON.stringify(value)}`);
}

/**
 * EventBridge's matching for the pattern forms the construct uses: every
 * pattern field must be present in the event; a list matches when the
 * event's value equals one of its (resolved) entries; objects recurse.
 */
export function matchesEventPattern(pattern: Cfn, event: unknown, physical: Readonly<Record<string, string>>): boolean {
  if (Array.isArray(pattern)) return pattern.some((p) => resolveCfn(p, physical) === event);
  if (pattern && typeof pattern === 'object') {
    if (!event || typeof event !== 'object') return false;
    return Object.entries(pattern).every(([key, sub]) => key in event && matchesEventPattern(sub, (event as Record<string, unknown>)[key], physical));
  }
  return false;
}
