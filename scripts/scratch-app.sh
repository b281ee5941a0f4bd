#!/usr/bin/env bash
# A new user's first synth, from the packed library: `npm pack` this package,
# install the tarball into a throwaway CDK app with aws-cdk-lib 2.176.0 (the
# peer minimum) and with the newest aws-cdk-lib on the registry, synthesize
# user-style stacks (explicit env) under cdk-nag's AwsSolutionsChecks, and
# fail on any finding from the construct, or on a synth error.
#
# Needs only node, npm and the npm registry. Prints the synth time the
# construct adds and the total runtime.
#
#   bash scripts/scratch-app.sh                 # bundle + jsii compile first
#   SCRATCH_SKIP_BUILD=1 bash scripts/scratch-app.sh   # lib/ and assets/ are current (CI, after compile)
#   SCRATCH_CDK_VERSIONS="2.176.0 2.245.0" bash scripts/scratch-app.sh
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

MIN_CDK=2.176.0
CONSTRUCTS=10.5.1
CDK_NAG=2.38.2

if [ "${SCRATCH_SKIP_BUILD:-}" != "1" ]; then
  npx projen bundle
  npx projen compile
fi
for f in lib/index.js assets/trigger/index.js assets/runner/runner.js; do
  [ -f "$f" ] || { echo "scratch-app: $f is missing; run without SCRATCH_SKIP_BUILD=1 (bundle + compile)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/cdk-rds-pitr-scratch.XXXXXX")
trap 'rm -rf "$work"' EXIT
tarball="$work/$(npm pack --silent --pack-destination "$work" | tail -1)"
echo "scratch-app: packed $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KB)"

versions=${SCRATCH_CDK_VERSIONS:-"$MIN_CDK $(npm view aws-cdk-lib version)"}
status=0
for version in $versions; do
  app="$work/app-$version"
  mkdir -p "$app"
  echo '{ "name": "scratch-app", "private": true }' > "$app/package.json"
  t0=$(date +%s)
  (cd "$app" && npm install --no-audit --no-fund --prefer-offline --loglevel=error \
    "aws-cdk-lib@$version" "constructs@$CONSTRUCTS" "cdk-nag@$CDK_NAG" "$tarball" >/dev/null)
  echo "scratch-app: aws-cdk-lib $version installed in $(( $(date +%s) - t0 )) s"
  cp scripts/scratch-app.js "$app/app.js"
  # The synth output directories go into the work directory, removed on exit.
  (cd "$app" && TMPDIR="$work" node app.js) || status=1
done

echo "scratch-app: $( [ $status -eq 0 ] && echo PASSED || echo FAILED ) in $(( $(date +%s) - started )) s"
exit $status
