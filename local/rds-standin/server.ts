/**
 * The RDS stand-in: a loopback HTTP server speaking the RDS Query API to the
 * AWS SDK v3 RDS client (point it there with `AWS_ENDPOINT_URL_RDS`), in
 * front of `RdsStandInEngine`, whose instances are real PostgreSQL.
 *
 * It implements exactly the actions the recovery runner's AWS adapter
 * (`aws/rds-control.ts`) and the trigger Lambda (`lambda/`) call; any other
 * action, and any parameter an implemented action does not understand, is
 * refused with an error that says so. Not shipped: only tests and the
 * rehearsal use it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
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
      DescribeDBInstances: { params: ['DBInstanceIdentifier', ...PAGE], handle: (p) => this.describeDBInstances(p) },
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
    const all = id ? [this.engine.instance(id)] : this.engine.listInstances();
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

  // ------------------------------------------------------------ shapes

  private instanceXml(i: StandInInstance): Record<string, XmlValue> {
    const cluster = i.cluster;
    // GUESS: the endpoint is reported from the first status after `creating` (RDS publishes it once the host is up).
    const endpoint = cluster && i.host && i.status !== 'creating' ? { Address: i.host, Port: cluster.port, HostedZoneId: 'Z2R2ITUGPM61AM' } : undefined;
    return {
      DBInstanceIdentifier: i.id,
      DBInstanceClass: i.instanceClass,
      Engine: 'postgres',
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

/** DescribeX paging: MaxRecords 20..100 (default 100), Marker is the index of the next record. */
function paginate<T>(all: readonly T[], p: QueryParams): { page: T[]; marker?: string } {
  const max = p.integer('MaxRecords') ?? 100;
  if (max < 20 || max > 100) throw new RdsFault('InvalidParameterValue', `Invalid value ${max} for MaxRecords. Must be between 20 and 100`);
  const start = Number(p.string('Marker') ?? '0');
  if (!Number.isInteger(start) || start < 0) throw new RdsFault('InvalidParameterValue', 'Invalid Marker.');
  const page = all.slice(start, start + max);
  return { page, marker: start + max < all.length ? String(start + max) : undefined };
}
