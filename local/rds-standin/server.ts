/**
 * The RDS stand-in: a loopback HTTP server speaking the RDS Query API to the
 * AWS SDK v3 RDS client (point it there with `AWS_ENDPOINT_URL_RDS`), in
 * front of `RdsStandInEngine`, whose instances are real PostgreSQL.
 *
 * It implements exactly the actions the recovery runner's AWS adapters
 * (`aws/rds-control.ts`, and `aws/rds-cluster-control.ts` for Aurora DB
 * clusters) and the trigger Lambda (`lambda/`) call; any other
 * action, and any parameter an implemented action does not understand, is
 * refused with an error that says so. Not shipped: only tests and the
 * rehearsal use it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AURORA_ENGINE, type StandInClusterSnapshot, type StandInDbCluster } from './clusters';
import { RdsStandInEngine, type StandInInstance, type StandInOptions, type StandInSnapshot } from './engine';
import { QueryParams, RDS_API_VERSION, RdsFault, errorXml, list, successXml, type XmlValue } from './query-protocol';

/** One request as received, for tests to assert on. Passwords are replaced by `********`. */
export interface StandInCall {
  readonly action: string;
  readonly params: Readonly<Record<string, string>>;
  /** The RDS error code answered, if any. */
  readonly fault?: string;
}

type Handler = (params: QueryParams) => Promise<Readonly<Record<string, XmlValue>>>;

/** Parameters every action accepts. */
const COMMON = ['Action', 'Version'];
const PAGE = ['MaxRecords', 'Marker'];
/** RDS's storage types for PostgreSQL. */
const STORAGE_TYPES = ['standard', 'gp2', 'gp3', 'io1', 'io2'];

export class RdsStandIn {
  static async start(options: StandInOptions = {}): Promise<RdsStandIn> {
    const standIn = new RdsStandIn(new RdsStandInEngine(options));
    await new Promise<void>((resolve, reject) => {
      standIn.server.once('error', reject);
      standIn.server.listen(0, '127.0.0.1', () => resolve());
    });
    return standIn;
  }

  readonly calls: StandInCall[] = [];
  private readonly server: Server;
  /** Storage each restore asked for (RestoreDBInstanceToPointInTime's StorageType, Iops, StorageThroughput, AllocatedStorage). */
  private readonly storage = new Map<string, { StorageType: string; Iops?: number; StorageThroughput?: number; AllocatedStorage: number }>();
  private readonly actions: Record<string, { readonly params: readonly string[]; readonly handle: Handler }>;

  private constructor(readonly engine: RdsStandInEngine) {
    this.server = createServer((req, res) => this.serve(req, res));
    this.actions = {
      DescribeDBInstances: { params: ['DBInstanceIdentifier', 'Filters.*', ...PAGE], handle: (p) => this.describeDBInstances(p) },
      DescribeDBInstanceAutomatedBackups: { params: ['DBInstanceIdentifier', 'DbiResourceId', ...PAGE], handle: (p) => this.describeAutomatedBackups(p) },
      ListTagsForResource: { params: ['ResourceName'], handle: (p) => this.listTags(p) },
      CreateDBSnapshot: { params: ['DBInstanceIdentifier', 'DBSnapshotIdentifier', 'Tags.*'], handle: (p) => this.createSnapshot(p) },
      DescribeDBSnapshots: { params: ['DBSnapshotIdentifier', 'DBInstanceIdentifier', 'SnapshotType', ...PAGE], handle: (p) => this.describeSnapshots(p) },
      DeleteDBSnapshot: { params: ['DBSnapshotIdentifier'], handle: (p) => this.deleteSnapshot(p) },
      RestoreDBInstanceToPointInTime: {
        params: [
          'SourceDBInstanceIdentifier', 'TargetDBInstanceIdentifier', 'RestoreTime', 'UseLatestRestorableTime', 'DBSubnetGroupName',
          'VpcSecurityGroupIds.*', 'DBParameterGroupName', 'OptionGroupName', 'Port', 'PubliclyAccessible', 'MultiAZ', 'DeletionProtection',
          'CopyTagsToSnapshot', 'BackupRetentionPeriod', 'Tags.*', 'DBInstanceClass', 'StorageType', 'Iops', 'StorageThroughput', 'AllocatedStorage',
        ],
        handle: (p) => this.restore(p),
      },
      ModifyDBInstance: { params: ['DBInstanceIdentifier', 'MasterUserPassword', 'ApplyImmediately'], handle: (p) => this.modify(p) },
      DeleteDBInstance: { params: ['DBInstanceIdentifier', 'SkipFinalSnapshot', 'FinalDBSnapshotIdentifier', 'DeleteAutomatedBackups'], handle: (p) => this.delete(p) },
      AddTagsToResource: { params: ['ResourceName', 'Tags.*'], handle: (p) => this.addTags(p) },
      // Aurora PostgreSQL DB clusters (clusters.ts).
      DescribeDBClusters: { params: ['DBClusterIdentifier', 'Filters.*', 'IncludeShared', ...PAGE], handle: (p) => this.describeDBClusters(p) },
      CreateDBClusterSnapshot: { params: ['DBClusterIdentifier', 'DBClusterSnapshotIdentifier', 'Tags.*'], handle: (p) => this.createClusterSnapshot(p) },
      DescribeDBClusterSnapshots: {
        params: ['DBClusterIdentifier', 'DBClusterSnapshotIdentifier', 'SnapshotType', 'IncludeShared', 'IncludePublic', ...PAGE],
        handle: (p) => this.describeClusterSnapshots(p),
      },
      DeleteDBClusterSnapshot: { params: ['DBClusterSnapshotIdentifier'], handle: (p) => this.deleteClusterSnapshot(p) },
      RestoreDBClusterToPointInTime: {
        params: [
          'DBClusterIdentifier', 'SourceDBClusterIdentifier', 'RestoreType', 'RestoreToTime', 'UseLatestRestorableTime', 'Port', 'DBSubnetGroupName',
          'VpcSecurityGroupIds.*', 'Tags.*', 'KmsKeyId', 'DBClusterParameterGroupName', 'DeletionProtection', 'CopyTagsToSnapshot',
          'ServerlessV2ScalingConfiguration.MinCapacity', 'ServerlessV2ScalingConfiguration.MaxCapacity', 'EngineMode', 'EnableIAMDatabaseAuthentication',
        ],
        handle: (p) => this.restoreCluster(p),
      },
      CreateDBInstance: {
        params: [
          'DBInstanceIdentifier', 'DBInstanceClass', 'Engine', 'DBClusterIdentifier', 'Tags.*', 'PubliclyAccessible', 'DBParameterGroupName',
          'AvailabilityZone', 'PromotionTier', 'CopyTagsToSnapshot', 'AutoMinorVersionUpgrade', 'EnablePerformanceInsights', 'MonitoringInterval',
        ],
        handle: (p) => this.createInstance(p),
      },
      ModifyDBCluster: { params: ['DBClusterIdentifier', 'MasterUserPassword', 'ApplyImmediately'], handle: (p) => this.modifyCluster(p) },
      DeleteDBCluster: { params: ['DBClusterIdentifier', 'SkipFinalSnapshot', 'FinalDBSnapshotIdentifier', 'DeleteAutomatedBackups'], handle: (p) => this.deleteCluster(p) },
    };
  }

  /** `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL_RDS`. */
  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Actions received so far, in order (optionally only one kind). */
  actionsCalled(action?: string): StandInCall[] {
    return this.calls.filter((c) => action === undefined || c.action === action);
  }

  /** Closes the server and removes every instance's cluster. */
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.engine.dispose();
  }

  // ------------------------------------------------------------ transport

  private serve(req: IncomingMessage, res: ServerResponse): void {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      void this.answer(req, body).then(({ status, xml }) => {
        res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': 'standin' });
        res.end(xml);
      });
    });
  }

  private async answer(req: IncomingMessage, body: string): Promise<{ status: number; xml: string }> {
    const params = QueryParams.parse(body);
    const action = params.action;
    const recorded: Record<string, string> = {};
    for (const name of params.names()) recorded[name] = /Password/.test(name) ? '********' : params.string(name)!;
    try {
      if (req.method !== 'POST') throw new RdsFault('InvalidAction', `The RDS stand-in answers POST requests only, not ${req.method}.`);
      if (!req.headers.authorization?.startsWith('AWS4-HMAC-SHA256 ')) {
        throw new RdsFault('MissingAuthenticationToken', 'Request is missing Authentication Token (the stand-in expects a SigV4-signed request).', 403);
      }
      if (params.version !== RDS_API_VERSION) {
        throw new RdsFault('InvalidParameterValue', `Version ${JSON.stringify(params.version)} is not supported; the stand-in speaks ${RDS_API_VERSION}.`);
      }
      const implemented = this.actions[action];
      if (!implemented) {
        throw new RdsFault('InvalidAction', `The RDS stand-in does not implement action ${JSON.stringify(action)}; it implements `
          + `${Object.keys(this.actions).join(', ')} (what the recovery runner and the trigger Lambda call).`);
      }
      // `List.*` covers `List.Member.N...`, and `List=` alone, which the SDK sends for an empty list.
      const accepts = (p: string, name: string): boolean => p === name || (p.endsWith('.*') && (name === p.slice(0, -2) || name.startsWith(p.slice(0, -1))));
      const unknown = params.names().filter((name) => !COMMON.includes(name) && !implemented.params.some((p) => accepts(p, name)));
      if (unknown.length > 0) {
        throw new RdsFault('InvalidParameterValue', `The RDS stand-in does not implement parameter(s) ${unknown.join(', ')} of ${action}; it implements ${implemented.params.join(', ')}.`);
      }
      const result = await implemented.handle(params);
      this.calls.push({ action, params: recorded });
      return { status: 200, xml: successXml(action, result) };
    } catch (err) {
      const fault = err instanceof RdsFault ? err : new RdsFault('InternalFailure', `RDS stand-in: ${(err as Error).message}`, 500, 'Receiver');
      this.calls.push({ action, params: recorded, fault: fault.code });
      return { status: fault.httpStatus, xml: errorXml(fault) };
    }
  }

  // ------------------------------------------------------------ actions

  private async describeDBInstances(p: QueryParams): Promise<Record<string, XmlValue>> {
    const id = p.string('DBInstanceIdentifier');
    const filters = readFilters(p, ['db-cluster-id', 'db-instance-id']);
    const all = (id ? [this.engine.instance(id)] : this.engine.listInstances()).filter((i) => matches(filters, {
      'db-cluster-id': i.dbClusterId ? [i.dbClusterId, this.engine.clusters.listClusters().find((c) => c.id === i.dbClusterId)?.arn ?? ''] : [],
      'db-instance-id': [i.id, i.arn],
    }));
    const { page, marker } = paginate(all, p);
    return { DBInstances: list('DBInstance', page.map((i) => this.instanceXml(i))), Marker: marker };
  }

  private async describeAutomatedBackups(p: QueryParams): Promise<Record<string, XmlValue>> {
    const id = p.string('DBInstanceIdentifier');
    const resourceId = p.string('DbiResourceId');
    const matching = this.engine.listInstances().filter((i) => i.automatedBackup
      && (id === undefined || i.id === id.toLowerCase()) && (resourceId === undefined || i.resourceId === resourceId));
    if ((id !== undefined || resourceId !== undefined) && matching.length === 0) {
      // GUESS: an identifier with no automated backup is a fault, as DBInstanceAutomatedBackupNotFound exists for it.
      throw new RdsFault('DBInstanceAutomatedBackupNotFound', `No automated backup found for ${id ?? resourceId}.`, 404);
    }
    const { page, marker } = paginate(matching, p);
    return {
      DBInstanceAutomatedBackups: list('DBInstanceAutomatedBackup', page.map((i) => ({
        DBInstanceArn: i.arn,
        DbiResourceId: i.resourceId,
        Region: this.engine.region,
        DBInstanceIdentifier: i.id,
        RestoreWindow: { EarliestTime: i.automatedBackup!.earliest, LatestTime: this.engine.latestRestorableTime(i) },
        AllocatedStorage: 20,
        Status: 'active',
        Port: i.cluster?.port,
        InstanceCreateTime: i.createdAt,
        MasterUsername: i.masterUsername,
        Engine: 'postgres',
        EngineVersion: i.engineVersion,
        BackupRetentionPeriod: i.backupRetentionPeriod,
        DBInstanceAutomatedBackupsArn: `arn:aws:rds:${this.engine.region}:${this.engine.accountId}:auto-backup:ab-${i.resourceId.slice(3).toLowerCase()}`,
        Encrypted: true,
        StorageType: 'gp3',
      }))),
      Marker: marker,
    };
  }

  private async listTags(p: QueryParams): Promise<Record<string, XmlValue>> {
    return { TagList: list('Tag', this.engine.tagsOf(p.required('ResourceName')).map((t) => ({ ...t }))) };
  }

  private async createSnapshot(p: QueryParams): Promise<Record<string, XmlValue>> {
    const snapshot = await this.engine.createSnapshot(p.required('DBInstanceIdentifier'), p.required('DBSnapshotIdentifier'), p.tags());
    return { DBSnapshot: this.snapshotXml(snapshot) };
  }

  private async describeSnapshots(p: QueryParams): Promise<Record<string, XmlValue>> {
    const id = p.string('DBSnapshotIdentifier');
    const instanceId = p.string('DBInstanceIdentifier');
    const all: StandInSnapshot[] = id
      ? [this.engine.snapshot(id)]
      : this.engine.listSnapshots().filter((s) => instanceId === undefined || s.instanceId === instanceId.toLowerCase());
    // Every snapshot here is manual (CreateDBSnapshot); automated ones live in the source's automated backup.
    const type = p.string('SnapshotType');
    if (type !== undefined && type !== 'manual') all.length = 0;
    const { page, marker } = paginate(all, p);
    return { DBSnapshots: list('DBSnapshot', page.map((s) => this.snapshotXml(s))), Marker: marker };
  }

  private async deleteSnapshot(p: QueryParams): Promise<Record<string, XmlValue>> {
    const snapshot = await this.engine.deleteSnapshot(p.required('DBSnapshotIdentifier'));
    return { DBSnapshot: this.snapshotXml({ ...snapshot, status: 'deleted' }) };
  }

  private async restore(p: QueryParams): Promise<Record<string, XmlValue>> {
    // Storage is recorded and reported, not enforced: every instance here is a local cluster on the same disk.
    const storageType = p.string('StorageType');
    if (storageType !== undefined && !STORAGE_TYPES.includes(storageType)) {
      throw new RdsFault('InvalidParameterValue', `Invalid storage type: ${storageType}`);
    }
    if (p.integer('StorageThroughput') !== undefined && storageType !== 'gp3') {
      throw new RdsFault('InvalidParameterCombination', 'You can only specify StorageThroughput for gp3 storage.');
    }
    const instance = await this.engine.restoreToPointInTime({
      sourceId: p.required('SourceDBInstanceIdentifier'),
      targetId: p.required('TargetDBInstanceIdentifier'),
      restoreTime: p.timestamp('RestoreTime'),
      useLatest: p.boolean('UseLatestRestorableTime') ?? false,
      port: p.integer('Port'),
      instanceClass: p.string('DBInstanceClass'),
      subnetGroup: p.string('DBSubnetGroupName'),
      securityGroups: p.list('VpcSecurityGroupIds', 'VpcSecurityGroupId'),
      parameterGroup: p.string('DBParameterGroupName'),
      optionGroup: p.string('OptionGroupName'),
      backupRetentionPeriod: p.integer('BackupRetentionPeriod'),
      tags: p.tags(),
    });
    this.storage.set(instance.id, {
      StorageType: storageType ?? 'gp3', Iops: p.integer('Iops'), StorageThroughput: p.integer('StorageThroughput'), AllocatedStorage: p.integer('AllocatedStorage') ?? 20,
    });
    return { DBInstance: this.instanceXml(instance) };
  }

  private async modify(p: QueryParams): Promise<Record<string, XmlValue>> {
    const id = p.required('DBInstanceIdentifier');
    const password = p.string('MasterUserPassword');
    if (password === undefined) {
      throw new RdsFault('InvalidParameterCombination', 'The RDS stand-in implements ModifyDBInstance for MasterUserPassword only, and none was given.');
    }
    if (password.length < 8 || password.length > 128) {
      throw new RdsFault('InvalidParameterValue', 'The parameter MasterUserPassword is not a valid password because it is shorter than 8 characters or longer than 128.');
    }
    return { DBInstance: this.instanceXml(await this.engine.setMasterPassword(id, password)) };
  }

  private async delete(p: QueryParams): Promise<Record<string, XmlValue>> {
    const instance = await this.engine.deleteInstance(p.required('DBInstanceIdentifier'), {
      skipFinalSnapshot: p.boolean('SkipFinalSnapshot') ?? false,
      finalSnapshotId: p.string('FinalDBSnapshotIdentifier'),
    });
    return { DBInstance: this.instanceXml(instance) };
  }

  private async addTags(p: QueryParams): Promise<Record<string, XmlValue>> {
    this.engine.addTags(p.required('ResourceName'), p.tags());
    return {};
  }

  // ------------------------------------------------------------ Aurora DB cluster actions

  private async describeDBClusters(p: QueryParams): Promise<Record<string, XmlValue>> {
    const id = p.string('DBClusterIdentifier');
    const filters = readFilters(p, ['db-cluster-id']);
    const all = (id ? [this.engine.clusters.cluster(id)] : this.engine.clusters.listClusters())
      .filter((c) => matches(filters, { 'db-cluster-id': [c.id, c.arn] }));
    const { page, marker } = paginate(all, p);
    return { DBClusters: list('DBCluster', page.map((c) => this.clusterXml(c))), Marker: marker };
  }

  private async createClusterSnapshot(p: QueryParams): Promise<Record<string, XmlValue>> {
    const snapshot = await this.engine.clusters.createSnapshot(p.required('DBClusterIdentifier'), p.required('DBClusterSnapshotIdentifier'), p.tags());
    return { DBClusterSnapshot: this.clusterSnapshotXml(snapshot) };
  }

  private async describeClusterSnapshots(p: QueryParams): Promise<Record<string, XmlValue>> {
    const id = p.string('DBClusterSnapshotIdentifier');
    const clusterId = p.string('DBClusterIdentifier');
    const all: StandInClusterSnapshot[] = id
      ? [this.engine.clusters.snapshot(id)]
      : this.engine.clusters.listSnapshots().filter((s) => clusterId === undefined || s.clusterId === clusterId.toLowerCase());
    // Every DB cluster snapshot here is manual (CreateDBClusterSnapshot).
    const type = p.string('SnapshotType');
    if (type !== undefined && type !== 'manual') all.length = 0;
    const { page, marker } = paginate(all, p);
    return { DBClusterSnapshots: list('DBClusterSnapshot', page.map((s) => this.clusterSnapshotXml(s))), Marker: marker };
  }

  private async deleteClusterSnapshot(p: QueryParams): Promise<Record<string, XmlValue>> {
    const snapshot = await this.engine.clusters.deleteSnapshot(p.required('DBClusterSnapshotIdentifier'));
    return { DBClusterSnapshot: this.clusterSnapshotXml({ ...snapshot, status: 'deleted' }) };
  }

  private async restoreCluster(p: QueryParams): Promise<Record<string, XmlValue>> {
    const engineMode = p.string('EngineMode');
    if (engineMode !== undefined && engineMode !== 'provisioned') {
      throw new RdsFault('InvalidParameterValue', `The RDS stand-in restores provisioned Aurora clusters only (EngineMode ${JSON.stringify(engineMode)}).`);
    }
    const min = p.number('ServerlessV2ScalingConfiguration.MinCapacity');
    const max = p.number('ServerlessV2ScalingConfiguration.MaxCapacity');
    if ((min === undefined) !== (max === undefined)) {
      throw new RdsFault('InvalidParameterCombination', 'ServerlessV2ScalingConfiguration needs both MinCapacity and MaxCapacity.');
    }
    const cluster = await this.engine.clusters.restoreToPointInTime({
      sourceId: p.required('SourceDBClusterIdentifier'),
      targetId: p.required('DBClusterIdentifier'),
      restoreType: p.string('RestoreType'),
      restoreTime: p.timestamp('RestoreToTime'),
      useLatest: p.boolean('UseLatestRestorableTime') ?? false,
      port: p.integer('Port'),
      subnetGroup: p.string('DBSubnetGroupName'),
      securityGroups: p.list('VpcSecurityGroupIds', 'VpcSecurityGroupId'),
      parameterGroup: p.string('DBClusterParameterGroupName'),
      kmsKeyId: p.string('KmsKeyId'),
      serverlessV2: min !== undefined && max !== undefined ? { MinCapacity: min, MaxCapacity: max } : undefined,
      tags: p.tags(),
    });
    return { DBCluster: this.clusterXml(cluster) };
  }

  private async createInstance(p: QueryParams): Promise<Record<string, XmlValue>> {
    const clusterId = p.string('DBClusterIdentifier');
    if (clusterId === undefined) {
      throw new RdsFault('InvalidParameterCombination', 'The RDS stand-in implements CreateDBInstance only for an instance in an Aurora DB cluster (DBClusterIdentifier).');
    }
    const member = await this.engine.clusters.createMember({
      instanceId: p.required('DBInstanceIdentifier'),
      clusterId,
      instanceClass: p.required('DBInstanceClass'),
      engine: p.required('Engine'),
      tags: p.tags(),
    });
    return { DBInstance: this.instanceXml(member) };
  }

  private async modifyCluster(p: QueryParams): Promise<Record<string, XmlValue>> {
    const password = p.string('MasterUserPassword');
    if (password === undefined) {
      throw new RdsFault('InvalidParameterCombination', 'The RDS stand-in implements ModifyDBCluster for MasterUserPassword only, and none was given.');
    }
    return { DBCluster: this.clusterXml(await this.engine.clusters.setMasterPassword(p.required('DBClusterIdentifier'), password)) };
  }

  private async deleteCluster(p: QueryParams): Promise<Record<string, XmlValue>> {
    const cluster = await this.engine.clusters.deleteCluster(p.required('DBClusterIdentifier'), {
      skipFinalSnapshot: p.boolean('SkipFinalSnapshot') ?? false,
      finalSnapshotId: p.string('FinalDBSnapshotIdentifier'),
    });
    return { DBCluster: this.clusterXml(cluster) };
  }

  // ------------------------------------------------------------ shapes

  private instanceXml(i: StandInInstance): Record<string, XmlValue> {
    const cluster = i.cluster;
    // An Aurora member's endpoint is its DB cluster volume's server (clusters.ts).
    const served = i.dbClusterId ? this.memberEndpoint(i) : cluster && i.host ? { host: i.host, port: cluster.port } : undefined;
    // GUESS: the endpoint is reported from the first status after `creating` (RDS publishes it once the host is up).
    const endpoint = served && i.status !== 'creating' ? { Address: served.host, Port: served.port, HostedZoneId: 'Z2R2ITUGPM61AM' } : undefined;
    return {
      DBInstanceIdentifier: i.id,
      DBInstanceClass: i.instanceClass,
      Engine: i.dbClusterId ? AURORA_ENGINE : 'postgres',
      DBClusterIdentifier: i.dbClusterId,
      DBInstanceStatus: i.status,
      MasterUsername: i.masterUsername,
      Endpoint: endpoint,
      AllocatedStorage: this.storage.get(i.id)?.AllocatedStorage ?? 20,
      InstanceCreateTime: i.status === 'creating' ? undefined : i.createdAt,
      PreferredBackupWindow: '03:00-03:30',
      BackupRetentionPeriod: i.backupRetentionPeriod,
      DBSecurityGroups: list('DBSecurityGroup', []),
      VpcSecurityGroups: list('VpcSecurityGroupMembership', i.securityGroups.map((id) => ({ VpcSecurityGroupId: id, Status: 'active' }))),
      DBParameterGroups: list('DBParameterGroup', [{ DBParameterGroupName: i.parameterGroup, ParameterApplyStatus: 'in-sync' }]),
      AvailabilityZone: `${this.engine.region}a`,
      DBSubnetGroup: { DBSubnetGroupName: i.subnetGroup, DBSubnetGroupDescription: 'stand-in', VpcId: 'vpc-0standin', SubnetGroupStatus: 'Complete' },
      PreferredMaintenanceWindow: 'sun:04:00-sun:04:30',
      // Documented: MasterUserPassword is shown (masked) while a password change is pending.
      PendingModifiedValues: i.pendingMasterPassword ? { MasterUserPassword: '****' } : {},
      LatestRestorableTime: this.engine.latestRestorableTime(i),
      MultiAZ: false,
      EngineVersion: i.engineVersion,
      AutoMinorVersionUpgrade: true,
      LicenseModel: 'postgresql-license',
      OptionGroupMemberships: list('OptionGroupMembership', [{ OptionGroupName: i.optionGroup, Status: 'in-sync' }]),
      PubliclyAccessible: false,
      StorageType: this.storage.get(i.id)?.StorageType ?? 'gp3',
      Iops: this.storage.get(i.id)?.Iops,
      StorageThroughput: this.storage.get(i.id)?.StorageThroughput,
      DbInstancePort: 0,
      StorageEncrypted: true,
      DbiResourceId: i.resourceId,
      CACertificateIdentifier: 'rds-ca-rsa2048-g1',
      DeletionProtection: false,
      DBInstanceArn: i.arn,
      TagList: list('Tag', i.tags.map((t) => ({ ...t }))),
      MasterUserSecret: i.masterUserSecretArn ? { SecretArn: i.masterUserSecretArn, SecretStatus: 'active' } : undefined,
    };
  }

  private memberEndpoint(i: StandInInstance): { host: string; port: number } | undefined {
    const owner = this.engine.clusters.listClusters().find((c) => c.id === i.dbClusterId);
    return owner ? this.engine.clusters.endpointOf(owner) : undefined;
  }

  private clusterXml(c: StandInDbCluster): Record<string, XmlValue> {
    const endpoint = this.engine.clusters.endpointOf(c);
    const members = this.engine.clusters.members(c);
    const zones = ['a', 'b', 'c'].map((z) => `${this.engine.region}${z}`);
    return {
      AllocatedStorage: 1,
      AvailabilityZones: list('AvailabilityZone', zones),
      BackupRetentionPeriod: c.backupRetentionPeriod,
      DBClusterIdentifier: c.id,
      DBClusterParameterGroup: c.parameterGroup,
      DBSubnetGroup: c.subnetGroup,
      Status: c.status,
      EarliestRestorableTime: c.automatedBackup?.earliest,
      // GUESS: the endpoints' names are reported once the cluster volume exists (see clusters.ts endpointOf).
      Endpoint: endpoint?.host,
      ReaderEndpoint: endpoint?.host,
      MultiAZ: false,
      Engine: AURORA_ENGINE,
      EngineVersion: c.engineVersion,
      LatestRestorableTime: this.engine.clusters.latestRestorableTime(c),
      Port: endpoint?.port,
      MasterUsername: c.masterUsername,
      PreferredBackupWindow: '03:00-03:30',
      PreferredMaintenanceWindow: 'sun:04:00-sun:04:30',
      // Documented (DBClusterMember IsClusterWriter): whether the instance is the cluster's primary. The stand-in's first member is.
      DBClusterMembers: list('DBClusterMember', members.map((m, index) => ({
        DBInstanceIdentifier: m.id, IsClusterWriter: index === 0, DBClusterParameterGroupStatus: 'in-sync', PromotionTier: 1,
      }))),
      VpcSecurityGroups: list('VpcSecurityGroupMembership', c.securityGroups.map((id) => ({ VpcSecurityGroupId: id, Status: 'active' }))),
      HostedZoneId: 'Z2R2ITUGPM61AM',
      StorageEncrypted: c.storageEncrypted,
      KmsKeyId: c.kmsKeyId,
      DbClusterResourceId: c.resourceId,
      DBClusterArn: c.arn,
      IAMDatabaseAuthenticationEnabled: false,
      CloneGroupId: c.cloneGroupId,
      ClusterCreateTime: c.status === 'creating' ? undefined : c.createdAt,
      EngineMode: 'provisioned',
      // Documented (ClusterPendingModifiedValues MasterUserPassword): shown (masked) while a password change is pending.
      PendingModifiedValues: c.pendingPassword !== undefined ? { MasterUserPassword: '****' } : undefined,
      DeletionProtection: false,
      HttpEndpointEnabled: false,
      CopyTagsToSnapshot: false,
      TagList: list('Tag', c.tags.map((t) => ({ ...t }))),
      ServerlessV2ScalingConfiguration: c.serverlessV2 ? { ...c.serverlessV2 } : undefined,
      MasterUserSecret: c.masterUserSecretArn ? { SecretArn: c.masterUserSecretArn, SecretStatus: 'active', KmsKeyId: c.kmsKeyId } : undefined,
    };
  }

  private clusterSnapshotXml(s: StandInClusterSnapshot): Record<string, XmlValue> {
    const cluster = this.engine.clusters.listClusters().find((c) => c.id === s.clusterId);
    return {
      AvailabilityZones: list('AvailabilityZone', ['a', 'b', 'c'].map((z) => `${this.engine.region}${z}`)),
      DBClusterSnapshotIdentifier: s.id,
      DBClusterIdentifier: s.clusterId,
      SnapshotCreateTime: s.status === 'creating' ? undefined : s.createdAt,
      Engine: AURORA_ENGINE,
      EngineMode: 'provisioned',
      AllocatedStorage: 0,
      Status: s.status,
      Port: cluster ? this.engine.clusters.endpointOf(cluster)?.port : undefined,
      VpcId: 'vpc-0standin',
      ClusterCreateTime: cluster?.createdAt,
      MasterUsername: cluster?.masterUsername,
      EngineVersion: cluster?.engineVersion,
      LicenseModel: 'postgresql-license',
      SnapshotType: 'manual',
      PercentProgress: s.status === 'creating' ? 0 : 100,
      StorageEncrypted: cluster?.storageEncrypted ?? true,
      KmsKeyId: cluster?.kmsKeyId,
      DBClusterSnapshotArn: s.arn,
      IAMDatabaseAuthenticationEnabled: false,
      TagList: list('Tag', s.tags.map((t) => ({ ...t }))),
      DbClusterResourceId: cluster?.resourceId,
    };
  }

  private snapshotXml(s: StandInSnapshot): Record<string, XmlValue> {
    const instance = this.engine.listInstances().find((i) => i.id === s.instanceId);
    return {
      DBSnapshotIdentifier: s.id,
      DBInstanceIdentifier: s.instanceId,
      SnapshotCreateTime: s.status === 'creating' ? undefined : s.createdAt,
      Engine: 'postgres',
      AllocatedStorage: 20,
      Status: s.status,
      Port: instance?.cluster?.port,
      AvailabilityZone: `${this.engine.region}a`,
      VpcId: 'vpc-0standin',
      InstanceCreateTime: instance?.createdAt,
      MasterUsername: instance?.masterUsername,
      EngineVersion: instance?.engineVersion,
      SnapshotType: 'manual',
      PercentProgress: s.status === 'creating' ? 0 : 100,
      Encrypted: true,
      DBSnapshotArn: s.arn,
      DbiResourceId: instance?.resourceId,
      TagList: list('Tag', s.tags.map((t) => ({ ...t }))),
    };
  }
}

/** `Filters.Filter.N.Name` / `Filters.Filter.N.Values.Value.M`: the named filters, each with its values. Unknown names are refused. */
function readFilters(p: QueryParams, known: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let n = 1; p.string(`Filters.Filter.${n}.Name`) !== undefined; n++) {
    const name = p.string(`Filters.Filter.${n}.Name`)!;
    if (!known.includes(name)) throw new RdsFault('InvalidParameterValue', `The RDS stand-in does not implement filter ${JSON.stringify(name)} here; it implements ${known.join(', ')}.`);
    out.set(name, p.list(`Filters.Filter.${n}.Values`, 'Value'));
  }
  return out;
}

/** Whether a record whose filterable values are `values` passes every filter (a filter passes when any of its values matches). */
function matches(filters: ReadonlyMap<string, readonly string[]>, values: Readonly<Record<string, readonly string[]>>): boolean {
  return [...filters].every(([name, wanted]) => {
    const have = values[name] ?? [];
    return wanted.some((w) => have.includes(w) || have.includes(w.toLowerCase()));
  });
}

/** DescribeX paging: MaxRecords 20..100 (default 100), Marker is the index of the next record. */
function paginate<T>(all: readonly T[], p: QueryParams): { page: T[]; marker?: string } {
  const max = p.integer('MaxRecords') ?? 100;
  if (max < 20 || max > 100) throw new RdsFault('InvalidParameterValue', `Invalid value ${max} for MaxRecords. Must be between 20 and 100`);
  const start = Number(p.string('Marker') ?? '0');
  if (!Number.isInteger(start) || start < 0) throw new RdsFault('InvalidParameterValue', 'Invalid Marker.');
  const page = all.slice(start, start + max);
  return { page, marker: start + max < all.length ? String(start + max) : undefined };
}
