/**
 * TLS for the stand-in's instances, so the runner connects with
 * `sslmode=verify-full` exactly as on AWS: a throwaway test CA (the runner's
 * `PG_CA_BUNDLE`) and one server certificate per instance host.
 *
 * The source instance listens on 127.0.0.1 with a certificate for
 * 127.0.0.1; every temporary instance is reached at 127.0.0.2 with a
 * certificate for 127.0.0.2 only, so a client that connects to the wrong
 * host, or trusts another CA, is refused as it would be on RDS.
 *
 * Stop-gap, in the stand-in's own files: `LocalCluster` cannot yet listen on
 * another loopback address or serve TLS by itself, so the copy is switched
 * to its own address and certificate after `recoverTo` brings it up.
 */
import { execFile } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { StandInPlacement } from './engine';
import { LocalCluster, makeWorkDir } from '../cluster';
import { restorePointInTimeCopy } from '../pitr-copy';

const execFileAsync = promisify(execFile);

export const SOURCE_HOST = '127.0.0.1';
export const TEMPORARY_HOST = '127.0.0.2';

export interface TestCa {
  readonly dir: string;
  /** PEM of the CA certificate: what the runner gets as PG_CA_BUNDLE. */
  readonly caFile: string;
  /** A certificate and key for `host`, signed by this CA (made on first use). */
  serverCert(host: string): Promise<{ readonly certFile: string; readonly keyFile: string }>;
}

/** A new CA in a directory the `postgres` user can read (server keys are given to it). */
export async function makeTestCa(name = 'cdk-rds-pitr stand-in test CA'): Promise<TestCa> {
  const dir = await makeWorkDir('pitr-ca-');
  const caKey = join(dir, 'ca.key');
  const caFile = join(dir, 'ca.pem');
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', caKey, '-out', caFile,
    '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const made = new Map<string, Promise<{ certFile: string; keyFile: string }>>();
  const issue = async (host: string): Promise<{ certFile: string; keyFile: string }> => {
    const keyFile = join(dir, `${host}.key`);
    const csr = join(dir, `${host}.csr`);
    const certFile = join(dir, `${host}.pem`);
    const ext = join(dir, `${host}.ext`);
    const san = /^[\d.]+$/.test(host) ? `IP:${host}` : `DNS:${host}`;
    writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
    await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', csr, '-subj', `/CN=${host}`]);
    await openssl(['x509', '-req', '-in', csr, '-CA', caFile, '-CAkey', caKey, '-CAcreateserial', '-out', certFile, '-days', '2', '-extfile', ext]);
    // PostgreSQL refuses a key others can read, and runs as `postgres` when we are root.
    chmodSync(keyFile, 0o600);
    if (process.getuid?.() === 0) await execFileAsync('chown', ['postgres:postgres', keyFile, certFile]);
    return { certFile, keyFile };
  };
  return {
    dir,
    caFile,
    serverCert: (host) => {
      if (!made.has(host)) made.set(host, issue(host));
      return made.get(host)!;
    },
  };
}

/** Source on 127.0.0.1, temporary instances on 127.0.0.2, each serving TLS with a certificate from `ca`. */
export function tlsPlacement(ca: TestCa): StandInPlacement {
  return {
    async createSource(master) {
      const { certFile, keyFile } = await ca.serverCert(SOURCE_HOST);
      const cluster = await LocalCluster.create({ archiveWal: true, master, settings: tlsSettings(certFile, keyFile) });
      return { cluster, host: SOURCE_HOST };
    },
    async restoreCopy(source, backupDir, target) {
      const { certFile, keyFile } = await ca.serverCert(TEMPORARY_HOST);
      const copy = await restorePointInTimeCopy(source, backupDir, target);
      try {
        // The copy inherits the source's configuration: give it its own address and certificate.
        // It keeps 127.0.0.1 too, for the local superuser's own connections (LocalCluster.sql).
        await copy.sql(`ALTER SYSTEM SET listen_addresses = '${SOURCE_HOST},${TEMPORARY_HOST}'`);
        await copy.sql(`ALTER SYSTEM SET ssl_cert_file = '${certFile}'`);
        await copy.sql(`ALTER SYSTEM SET ssl_key_file = '${keyFile}'`);
        await copy.stop();
        await copy.start();
      } catch (err) {
        await copy.destroy();
        throw err;
      }
      return { cluster: copy, host: TEMPORARY_HOST };
    },
  };
}

function tlsSettings(certFile: string, keyFile: string): Record<string, string> {
  return { ssl: 'on', ssl_cert_file: `'${certFile}'`, ssl_key_file: `'${keyFile}'` };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await execFileAsync('openssl', args);
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}
