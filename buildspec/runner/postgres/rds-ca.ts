/**
 * Which region's RDS root a CA file lacks, for a connection refused because
 * the server's certificate chains to an unknown CA: the usual cause on AWS is
 * a region the shipped bundle does not cover.
 */
import { readFileSync } from 'node:fs';
import { rdsCaRegions, regionalCaBundleUrl } from '../../../src/contract';

/** Node's codes for a certificate chain that ends at a CA the CA file does not hold. */
const UNKNOWN_CA_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

/** The region in an RDS endpoint (`<id>.<hash>.<region>.rds.amazonaws.com`, `.com.cn` in China), or undefined. */
export function regionOfRdsHost(host: string): string | undefined {
  return /\.([a-z]{2}(?:-[a-z]+)+-\d+)\.rds\.amazonaws\.com(?:\.cn)?\.?$/.exec(host.toLowerCase())?.[1];
}

/**
 * For an unknown-CA refusal by an RDS endpoint whose region has no root in
 * `caFile`: a sentence naming the region and the bundle to download; else ''.
 */
export function missingRegionalRootHint(host: string, caFile: string | undefined, code: string | undefined): string {
  if (!caFile || !code || !UNKNOWN_CA_CODES.has(code)) return '';
  const region = regionOfRdsHost(host);
  if (!region) return '';
  let regions: Set<string>;
  try {
    regions = rdsCaRegions(readFileSync(caFile, 'utf8'));
  } catch {
    return '';
  }
  if (regions.has(region)) return '';
  return `. The CA file ${caFile} holds no RDS root certificate of ${region}, the instance's region: download ${regionalCaBundleUrl(region)} `
    + 'and pass its path as the construct\'s `caBundleFile`';
}
