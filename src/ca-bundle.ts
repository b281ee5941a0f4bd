import { createHash, X509Certificate } from 'crypto';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Annotations, Stack, Token } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { RUNNER_CA_BUNDLE_FILE, pemCertificates, rdsCaRegions, regionalCaBundleUrl } from './contract';

/**
 * The runner's source directory: the shipped one, or, with `caBundleFile`, a
 * copy whose CA bundle is that file. The copy's path is derived from its
 * content, so synthesizing again reuses it instead of filling the temp dir.
 */
export function runnerSourceDir(scope: Construct, runnerDir: string, caBundleFile: string | undefined): string {
  const shipped = fs.readFileSync(path.join(runnerDir, RUNNER_CA_BUNDLE_FILE), 'utf8');
  const region = Stack.of(scope).region;
  if (caBundleFile === undefined) {
    if (!Token.isUnresolved(region)) {
      const covered = rdsCaRegions(shipped);
      if (!covered.has(region)) {
        throw new Error(`PitrRecovery: the stack's region ${region} has no RDS root certificate in the CA bundle shipped with cdk-rds-pitr `
          + `(it covers ${[...covered].sort().join(', ')}), so every connection with sslmode=verify-full would fail. Download `
          + `${regionalCaBundleUrl(region)} and pass its path as \`caBundleFile\`. Nothing was created.`);
      }
    }
    return runnerDir;
  }
  const pem = readCaBundle(caBundleFile);
  if (!Token.isUnresolved(region) && !rdsCaRegions(pem).has(region)) {
    Annotations.of(scope).addWarningV2('cdk-rds-pitr:CaBundleMissesRegion',
      `PitrRecovery: \`caBundleFile\` ${caBundleFile} holds no current RDS root certificate of the stack's region ${region} `
      + `(an "Amazon RDS ${region} Root CA ..." subject); connections with sslmode=verify-full fail unless it holds the CA that signs `
      + `the instance's certificate. The regional bundle is ${regionalCaBundleUrl(region)}.`);
  }
  const files = fs.readdirSync(runnerDir).filter((name) => name !== RUNNER_CA_BUNDLE_FILE).sort();
  const hash = createHash('sha256');
  for (const name of files) hash.update(name).update('\0').update(fs.readFileSync(path.join(runnerDir, name))).update('\0');
  hash.update(pem);
  const dir = path.join(os.tmpdir(), `cdk-rds-pitr-runner-${hash.digest('hex').slice(0, 32)}`);
  if (!fs.existsSync(path.join(dir, RUNNER_CA_BUNDLE_FILE))) {
    const staging = fs.mkdtempSync(`${dir}.tmp-`);
    for (const name of files) fs.copyFileSync(path.join(runnerDir, name), path.join(staging, name));
    const header = `# RDS CA certificates from caBundleFile ${path.basename(caBundleFile)} (given to the construct; replaces the shipped bundle).\n`;
    fs.writeFileSync(path.join(staging, RUNNER_CA_BUNDLE_FILE), header + pemCertificates(pem).join('\n') + '\n');
    try {
      fs.renameSync(staging, dir);
    } catch {
      // Another synth wrote the same content first.
      fs.rmSync(staging, { recursive: true, force: true });
    }
  }
  return dir;
}

/** The PEM text of `caBundleFile`; throws naming the prop, the value and what is accepted. */
function readCaBundle(file: string): string {
  const accepted = 'the path of a PEM file with the RDS CA certificates, such as the regional bundle '
    + 'https://truststore.pki.rds.amazonaws.com/<region>/<region>-bundle.pem';
  if (Token.isUnresolved(file)) {
    throw new Error(`PitrRecovery: \`caBundleFile\` is a token; accepted: ${accepted}, known at synth time. Nothing was created.`);
  }
  let pem: string;
  try {
    pem = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`PitrRecovery: \`caBundleFile\` ${JSON.stringify(file)} cannot be read (${(err as Error).message}); accepted: ${accepted}. Nothing was created.`);
  }
  const blocks = pemCertificates(pem);
  const now = new Date();
  let current = 0;
  for (const [i, block] of blocks.entries()) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(block);
    } catch (err) {
      throw new Error(`PitrRecovery: \`caBundleFile\` ${JSON.stringify(file)}: certificate ${i + 1} is not a valid X.509 certificate `
        + `(${(err as Error).message}); accepted: ${accepted}. Nothing was created.`);
    }
    if (new Date(cert.validTo) > now) current++;
  }
  if (current === 0) {
    throw new Error(`PitrRecovery: \`caBundleFile\` ${JSON.stringify(file)} holds ${blocks.length === 0 ? 'no PEM certificate' : 'only expired certificates'}; `
      + `accepted: ${accepted}. Nothing was created.`);
  }
  return pem;
}
