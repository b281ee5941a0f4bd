/**
 * IAM simulation helpers (not a test file): the identity policies a
 * synthesized template attaches to a role, with CloudFormation intrinsics
 * replaced by the values they take at deploy time, and a simulator call.
 */
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { Template } from 'aws-cdk-lib/assertions';
import type { IamRequest } from './iam-calls';

export interface DeployValues {
  readonly partition: string;
  readonly region: string;
  readonly account: string;
  /** `Ref` of a logical id, by logical-id prefix (generated ids end in a hash). */
  readonly refs: Record<string, string>;
  /** `Fn::GetAtt` `<prefix>.<attribute>`, by logical-id prefix. */
  readonly attributes: Record<string, string>;
}

export interface Policy {
  readonly name: string;
  readonly policy: { Version: string; Statement: unknown[] };
}

/** Replaces intrinsics by deploy-time values; an unknown reference becomes `unresolved:<id>`, which matches nothing. */
export function resolve(value: unknown, values: DeployValues): unknown {
  if (Array.isArray(value)) return value.map((v) => resolve(v, values));
  if (value === null || typeof value !== 'object') return value;
  const v = value as Record<string, unknown>;
  if ('Ref' in v) {
    const ref = String(v.Ref);
    if (ref === 'AWS::Partition') return values.partition;
    if (ref === 'AWS::Region') return values.region;
    if (ref === 'AWS::AccountId') return values.account;
    if (ref === 'AWS::URLSuffix') return 'amazonaws.com';
    return byPrefix(values.refs, ref) ?? `unresolved:${ref}`;
  }
  if ('Fn::GetAtt' in v) {
    const [id, attribute] = v['Fn::GetAtt'] as [string, string];
    const found = Object.entries(values.attributes).find(([key]) => {
      const [prefix, attr] = key.split('.');
      return id.startsWith(prefix) && attr === attribute;
    });
    return found ? found[1] : `unresolved:${id}.${attribute}`;
  }
  if ('Fn::Join' in v) {
    const [sep, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => String(resolve(p, values))).join(sep);
  }
  if ('Fn::Select' in v) {
    const [index, list] = v['Fn::Select'] as [number, unknown];
    return (resolve(list, values) as unknown[])[Number(index)];
  }
  if ('Fn::Split' in v) {
    const [sep, text] = v['Fn::Split'] as [string, unknown];
    return String(resolve(text, values)).split(sep);
  }
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, resolve(x, values)]));
}

function byPrefix(map: Record<string, string>, id: string): string | undefined {
  return Object.entries(map).find(([prefix]) => id.startsWith(prefix))?.[1];
}

/** Every identity policy attached to the role whose logical id starts with `rolePrefix`: inline, AWS::IAM::Policy and managed. */
export function identityPoliciesOf(template: Template, rolePrefix: string, values: DeployValues): Policy[] {
  const roles = Object.entries(template.findResources('AWS::IAM::Role')).filter(([id]) => id.startsWith(rolePrefix));
  if (roles.length !== 1) throw new Error(`expected one role ${rolePrefix}*, found ${roles.map(([id]) => id).join(', ') || 'none'}`);
  const [roleId, role] = roles[0];
  const policies: Policy[] = [];
  for (const inline of (role.Properties.Policies ?? []) as Array<{ PolicyName: string; PolicyDocument: any }>) {
    policies.push({ name: inline.PolicyName, policy: resolve(inline.PolicyDocument, values) as Policy['policy'] });
  }
  if ((role.Properties.ManagedPolicyArns ?? []).length > 0) throw new Error(`${roleId} has managed policies; the simulation does not model them`);
  for (const [id, p] of Object.entries(template.findResources('AWS::IAM::Policy'))) {
    const attached = ((p.Properties.Roles ?? []) as Array<{ Ref?: string }>).some((r) => r.Ref === roleId);
    if (attached) policies.push({ name: id, policy: resolve(p.Properties.PolicyDocument, values) as Policy['policy'] });
  }
  return policies;
}

export type Decision = 'Allowed' | 'ImplicitlyDenied' | 'ExplicitlyDenied';

/**
 * The simulator's decision for one request by a principal holding `policies`,
 * on a resource with `resourcePolicy` (a KMS key's key policy: KMS allows
 * nothing the key policy does not); validation errors throw.
 */
export async function decide(policies: readonly Policy[], request: IamRequest, values: DeployValues, resourcePolicy?: Policy['policy']): Promise<Decision> {
  const result = await runSimulation({
    ...(resourcePolicy ? { resourcePolicy } : {}),
    identityPolicies: policies.map((p) => ({ name: p.name, policy: p.policy })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    request: {
      action: request.action,
      principal: `arn:${values.partition}:iam::${values.account}:role/simulated`,
      resource: { accountId: values.account, resource: request.resource },
      contextVariables: request.context,
    },
  } as any, {});
  if (result.resultType === 'error') {
    throw new Error(`simulator refused ${request.action} on ${request.resource}: ${JSON.stringify(result.errors)}`);
  }
  return result.overallResult as Decision;
}
