/**
 * A throwaway certificate authority for local "instances", so the rehearsal
 * and the tests connect with `sslmode=verify-full` exactly as the runner does
 * on AWS with the RDS CA bundle: the server certificate must chain to the CA
 * file the client is given and name the host the client connects to.
 *
 * Certificates are made with the `openssl` command line (EC P-256: fast to
 * generate), valid for two days, in a temp directory the caller removes.
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isRoot, postgresUser } from './os-user';

const execFileAsync = promisify(execFile);

export interface ServerCertificate {
  readonly certFile: string;
  readonly keyFile: string;
}

export class TestCa {
  /** Creates a new CA in a fresh temp directory. `name` goes into its subject, so a wrong CA is easy to tell apart in errors. */
  static async create(name = 'cdk-rds-pitr test CA'): Promise<TestCa> {
    const dir = mkdtempSync(join(tmpdir(), 'pitr-ca-'));
    // The server (run as `postgres` when we are root) reads its certificate and key from here.
    chmodSync(dir, 0o755);
    const ca = new TestCa(dir, join(dir, 'ca.pem'), join(dir, 'ca.key'));
    await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', `/CN=${name}`, '-keyout', ca.keyFile, '-out', ca.caFile,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    return ca;
  }

  private readonly issued = new Map<string, Promise<ServerCertificate>>();
  private serial = 0;

  private constructor(
    readonly dir: string,
    /** The CA certificate: what the client gets as `sslrootcert` (on AWS: `PG_CA_BUNDLE`). */
    readonly caFile: string,
    private readonly keyFile: string,
  ) {}

  /**
   * A server certificate for `names` (IP addresses become IP subjectAltNames,
   * the rest DNS names), with a private key the PostgreSQL server accepts:
   * mode 0600, owned by `postgres` when we are root.
   */
  serverCertificate(names: readonly string[]): Promise<ServerCertificate> {
    const key = names.join(',');
    let issued = this.issued.get(key);
    if (!issued) {
      issued = this.issue(names);
      this.issued.set(key, issued);
    }
    return issued;
  }

  /** Removes every file of this CA. */
  destroy(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async issue(names: readonly string[]): Promise<ServerCertificate> {
    const base = join(this.dir, `server-${++this.serial}`);
    const keyFile = `${base}.key`;
    const certFile = `${base}.pem`;
    const extFile = `${base}.ext`;
    const san = names.map((n) => (isIP(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
    writeFileSync(extFile, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-subj', `/CN=${names[0]}`, '-keyout', keyFile, '-out', `${base}.csr`]);
    await openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', this.caFile, '-CAkey', this.keyFile, '-set_serial', String(this.serial + 1000),
      '-days', '2', '-extfile', extFile, '-out', certFile]);
    await chmodForPostgres(keyFile);
    return { certFile, keyFile };
  }
}

async function openssl(args: string[]): Promise<void> {
  await execFileAsync('openssl', args).catch((err: { stderr?: string; message: string; code?: string }) => {
    const hint = err.code === 'ENOENT' ? ' (openssl is not installed)' : '';
    throw new Error(`openssl ${args[0]} failed${hint}: ${(err.stderr ?? '').trim() || err.message}`);
  });
}

/** PostgreSQL refuses a key file that others can read, or (as root) one it does not own. */
async function chmodForPostgres(file: string): Promise<void> {
  chmodSync(file, 0o600);
  if (isRoot()) {
    const { uid, gid } = await postgresUser();
    chownSync(file, uid, gid);
  }
}
