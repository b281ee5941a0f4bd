import { Annotations, Stack, aws_ec2 as ec2 } from 'aws-cdk-lib';
import { Construct } from 'constructs';

/**
 * The AWS APIs the recovery build calls from its subnets, as interface
 * endpoint service names (`com.amazonaws.<region>.<name>`), each with what
 * fails without it when the subnets have no NAT. README "Network
 * requirements" lists the same.
 */
export const BUILD_ENDPOINT_SERVICES = [
  { name: 'rds', why: 'every RDS call: the plan step fails at its first DescribeDBInstances' },
  { name: 'secretsmanager', why: 'reading the master credentials: the plan step fails' },
  { name: 'logs', why: 'the build log never reaches CloudWatch Logs' },
  { name: 'monitoring', why: 'the free-storage check (skipped with a warning) and a drill\'s metrics (the stale-drill alarm fires)' },
  { name: 'codebuild', why: 'BatchGetBuilds on the build\'s own project: the runner cannot tell a live copy from a dead one' },
  { name: 'events', why: 'a drill\'s evidence event' },
  { name: 'sns', why: 'a drill\'s message to the notification topic' },
] as const;

/** Endpoints made for one VPC, shared by every PitrRecovery of that stack that asks for them. */
interface VpcEndpoints {
  readonly stack: Stack;
  readonly interfaces: ec2.InterfaceVpcEndpoint[];
}
const endpointsByVpc = new WeakMap<ec2.IVpc, VpcEndpoints>();

/**
 * Interface endpoints for BUILD_ENDPOINT_SERVICES and an S3 gateway endpoint
 * in the build's subnets, open to the build only. A VPC takes one
 * private-DNS interface endpoint per service, so a second PitrRecovery of the
 * same stack and VPC reuses the first one's.
 */
export function addBuildEndpoints(scope: Construct, vpc: ec2.IVpc, subnets: ec2.SubnetSelection, build: ec2.IConnectable): void {
  const stack = Stack.of(scope);
  let endpoints = endpointsByVpc.get(vpc);
  if (endpoints && endpoints.stack !== stack) {
    throw new Error(`PitrRecovery: \`createVpcEndpoints\` is set for VPC ${vpc.node.path} in stacks ${endpoints.stack.stackName} and ${stack.stackName}; `
      + 'a VPC takes one interface endpoint with private DNS per service. Accepted: `createVpcEndpoints` on the constructs of one stack only '
      + '(the others reach the endpoints through the VPC\'s DNS). Nothing was created.');
  }
  if (!endpoints) {
    const interfaces = BUILD_ENDPOINT_SERVICES.map(({ name }) => new ec2.InterfaceVpcEndpoint(scope, `Endpoint-${name}`, {
      vpc,
      service: new ec2.InterfaceVpcEndpointAwsService(name),
      subnets: { ...subnets, onePerAz: true },
      privateDnsEnabled: true,
      // Only the recovery builds that use it are admitted (below), not the whole VPC.
      open: false,
    }));
    new ec2.GatewayVpcEndpoint(scope, 'Endpoint-s3', { vpc, service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [subnets] });
    endpoints = { stack, interfaces };
    endpointsByVpc.set(vpc, endpoints);
  }
  for (const endpoint of endpoints.interfaces) endpoint.connections.allowDefaultPortFrom(build, 'PITR recovery build (cdk-rds-pitr)');
}

/**
 * A synth-time warning when the build's subnets are isolated (no route to a
 * NAT or an internet gateway) and no endpoints are created: every AWS call
 * of the build would time out.
 */
export function warnIfIsolatedWithoutEndpoints(scope: Construct, vpc: ec2.IVpc, subnets: ec2.SubnetSelection): void {
  if (!isIsolated(vpc, subnets)) return;
  Annotations.of(scope).addWarningV2('cdk-rds-pitr:IsolatedSubnetsWithoutEndpoints',
    'PitrRecovery: the build runs in isolated subnets (no NAT) and `createVpcEndpoints` is not set. Unless the VPC already has them, '
    + `the build needs interface endpoints for ${BUILD_ENDPOINT_SERVICES.map((s) => s.name).join(', ')} and an S3 gateway endpoint; without them `
    + 'the plan step fails at its first RDS call. Set `createVpcEndpoints: true`, or acknowledge this warning if the endpoints exist.');
}

function isIsolated(vpc: ec2.IVpc, selection: ec2.SubnetSelection): boolean {
  if (selection.subnetType === ec2.SubnetType.PRIVATE_ISOLATED) return true;
  let selected: ec2.ISubnet[];
  try {
    selected = vpc.selectSubnets(selection).subnets;
  } catch {
    return false; // CodeBuild reports a selection that matches nothing.
  }
  const isolated = new Set(vpc.isolatedSubnets.map((s) => s.subnetId));
  return selected.length > 0 && selected.every((s) => isolated.has(s.subnetId));
}
