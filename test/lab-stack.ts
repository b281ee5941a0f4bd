/**
 * The lab stack: a private PostgreSQL 16 instance and the one line a user
 * writes. Shared by the integ test (deployed for real), the template
 * snapshot test and the cdk-nag test, so all three look at the same stack.
 * PitrAuroraLabStack is its Aurora PostgreSQL variant (issue #20).
 */
import {
  CfnOutput, Duration, RemovalPolicy, Stack, StackProps,
  aws_ec2 as ec2,
  aws_rds as rds,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { LATEST, RecoveryRequest, START_ENV } from '../src/contract';
import { PitrRecovery } from '../src/pitr-recovery';

/** The database the lab creates, so a recovery has something to copy. */
export const LAB_DATABASE = 'lab';

/** The lab's VPC: NAT for the build, flow logs for cdk-nag. */
function labVpc(scope: Construct): ec2.Vpc {
  return new ec2.Vpc(scope, 'Vpc', {
    maxAzs: 2,
    natGateways: 1,
    subnetConfiguration: [
      { name: 'Public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
      { name: 'Private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 24 },
    ],
    flowLogs: { All: { destination: ec2.FlowLogDestination.toCloudWatchLogs() } },
  });
}

export class PitrLabStack extends Stack {
  public readonly vpc: ec2.Vpc;
  public readonly instance: rds.DatabaseInstance;
  public readonly recovery: PitrRecovery;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    this.vpc = labVpc(this);

    this.instance = new rds.DatabaseInstance(this, 'Instance', {
      engine: rds.DatabaseInstanceEngine.postgres({ version: rds.PostgresEngineVersion.VER_16 }),
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MICRO),
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      publiclyAccessible: false,
      credentials: rds.Credentials.fromGeneratedSecret('postgres'),
      databaseName: LAB_DATABASE,
      allocatedStorage: 20,
      storageEncrypted: true,
      backupRetention: Duration.days(1),
      deletionProtection: false,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.recovery = new PitrRecovery(this, 'Dr', { instance: this.instance });
    // The build reaches RDS, Secrets Manager and S3 through the NAT gateway.
    this.recovery.node.addDependency(this.vpc.internetConnectivityEstablished);

    const sourceId = this.instance.instanceIdentifier;
    new CfnOutput(this, 'StartBuildCommand', {
      description: 'Recover to the latest restorable time by starting the build directly',
      value: `aws codebuild start-build --project-name ${this.recovery.project.projectName} --environment-variables-override `
        + `name=${START_ENV.RESTORE_TIME},value=${LATEST},type=PLAINTEXT name=${START_ENV.CONFIRM},value=${sourceId},type=PLAINTEXT`,
    });
    const request: RecoveryRequest = { restoreTime: LATEST, confirm: sourceId };
    new CfnOutput(this, 'InvokeCommand', {
      description: 'Recover to the latest restorable time through the validating trigger function',
      value: `aws lambda invoke --function-name ${this.recovery.triggerFunction.functionName} --cli-binary-format raw-in-base64-out `
        + `--payload '${JSON.stringify(request)}' response.json && cat response.json`,
    });
  }
}

/**
 * The Aurora PostgreSQL lab (issue #20): a private Aurora PostgreSQL 16
 * cluster with one writer, encrypted, and its own PitrRecovery, the one line
 * a user writes for a cluster.
 */
export class PitrAuroraLabStack extends Stack {
  public readonly vpc: ec2.Vpc;
  public readonly cluster: rds.DatabaseCluster;
  public readonly recovery: PitrRecovery;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    this.vpc = labVpc(this);
    this.cluster = new rds.DatabaseCluster(this, 'Cluster', {
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_4 }),
      writer: rds.ClusterInstance.provisioned('Writer', {
        instanceType: ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MEDIUM),
        publiclyAccessible: false,
      }),
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      credentials: rds.Credentials.fromGeneratedSecret('postgres'),
      defaultDatabaseName: LAB_DATABASE,
      storageEncrypted: true,
      backup: { retention: Duration.days(1) },
      deletionProtection: false,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.recovery = new PitrRecovery(this, 'Dr', { cluster: this.cluster });
    // The build reaches RDS, Secrets Manager and S3 through the NAT gateway.
    this.recovery.node.addDependency(this.vpc.internetConnectivityEstablished);

    const request: RecoveryRequest = { restoreTime: LATEST, confirm: this.cluster.clusterIdentifier };
    new CfnOutput(this, 'InvokeCommand', {
      description: 'Recover the cluster to the latest restorable time through the validating trigger function',
      value: `aws lambda invoke --function-name ${this.recovery.triggerFunction.functionName} --cli-binary-format raw-in-base64-out `
        + `--payload '${JSON.stringify(request)}' response.json && cat response.json`,
    });
  }
}
