// Jest snapshot serializer: replaces CDK asset hashes (64 hex chars) so that
// snapshots do not churn whenever the bundled Lambda or runner changes.
const HASH = /[0-9a-f]{64}/g;
module.exports = {
  test: (val) => typeof val === 'string' && /[0-9a-f]{64}/.test(val),
  serialize: (val) => JSON.stringify(val.replace(HASH, '[ASSET-HASH]')),
};
