#!/usr/bin/env bash
# One-time setup for contributors and CI: installs what a fresh machine lacks.
# - PostgreSQL 15 server binaries + contrib (Debian packages), used by the tests,
#   the rehearsal and the bench to start throwaway clusters on loopback;
# - PostgreSQL 17/18 (server and client) when PG_MAJORS names them (scripts/setup-pg-majors.sh);
# - the npm dependencies.
# moto_server (Python) must already be on PATH: the AWS-facing tests talk to it.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pg=false
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_pg=true
[ -f /usr/share/postgresql/15/extension/pgcrypto.control ] || need_pg=true
[ -x /usr/lib/postgresql/15/bin/pgbench ] || need_pg=true
# pg_cron: the swap-hazard tests run it on a throwaway cluster, as RDS offers it.
[ -f /usr/lib/postgresql/15/lib/pg_cron.so ] || need_pg=true
if $need_pg; then
  echo "setup: installing PostgreSQL 15 (server, client, contrib, pg_cron) with apt"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # The Debian package would create and start a "main" cluster; we only want the binaries.
  $sudo mkdir -p /etc/postgresql-common
  echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql-15 postgresql-client-15 postgresql-contrib postgresql-15-cron >/dev/null
fi
# pgcopydb (Debian package, 0.10 on bookworm): path C of `npx projen bench`; the bench skips C without it.
command -v pgcopydb >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq pgcopydb >/dev/null || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq pgcopydb >/dev/null; }; }
# AWS CLI v2 (Debian's awscli, 2.9 on bookworm): test/readme-commands.test.ts runs the README's aws commands through it
# against a loopback capture server (a pip-installed v1 lacks --cli-binary-format). Looked for at /usr/bin/aws.
/usr/bin/aws --version 2>/dev/null | grep -q '^aws-cli/2' || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq awscli >/dev/null || { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq awscli >/dev/null; }; }
id postgres >/dev/null 2>&1 || { echo "setup: the 'postgres' user is missing; the PostgreSQL packages should have created it" >&2; exit 1; }
command -v runuser >/dev/null || { echo "setup: runuser (util-linux) is required" >&2; exit 1; }

# Other PostgreSQL majors (#18): PG_MAJORS=15,17,18 (default 15) installs each into
# $PG_CACHE_DIR/pg<major> (default /var/cache/cdk-rds-pitr), outside the repository, reused when present.
# PG_MAJOR=<major> then picks them for the tests, the rehearsal and the bench.
bash scripts/setup-pg-majors.sh

echo "setup: npm install"
npm install --no-audit --no-fund
# Checked after npm install: the rehearsal does not need moto, only the AWS-facing tests do.
if ! command -v moto_server >/dev/null; then
  echo "setup: moto_server is not on PATH; npx projen rehearse works without it, but npx projen test needs it: pip install 'moto[server]'" >&2
  exit 1
fi
echo "setup: done. Next: npx projen rehearse   (the local recovery rehearsal)   and   npx projen test"
