#!/usr/bin/env bash
# The install phase's PostgreSQL client: the major version of the source
# instance's EngineVersion, read at run time (runner.js client-major), from
# the Amazon Linux 2023 repositories. Every line it prints starts with
# "[install]"; it exits non-zero, having changed nothing on AWS, when the
# client cannot be installed.
#
# Which repositories: the CodeBuild image is a container image whose dnf
# goes to cdn.amazonlinux.com (package amazon-linux-repo-cdn). A VPC without
# NAT cannot reach it. There, dnf is pointed at the region's Amazon Linux 2023
# repository in S3 (bucket al2023-repos-<region>-de612dc2, as the EC2 image's
# /etc/yum.repos.d/amazonlinux.repo names it), on the regional S3 host: an S3
# gateway endpoint reaches that host, but not the dualstack one.
#
# Seams for the tests (test/install-client.test.ts): PITR_DNF_VARS_DIR
# (default /etc/dnf/vars) and the dnf and curl found on PATH.
set -u

say() { echo "[install] $*"; }
fail() {
  echo "[install] FAILED: $*" >&2
  exit 1
}

# 1. Which client: the runner asks RDS (it prints its own FAILED line on stderr).
major="$(node runner.js client-major)" || exit 1
case "${major}" in
  1[5-9]) ;;
  *) fail "runner.js client-major printed \"${major}\", not a PostgreSQL major version. Nothing was installed, created or changed." ;;
esac
package="postgresql${major}"

# 2. Which repositories: a timed probe of the image's own (the CDN).
arch="$(uname -m)"
cdn_probe="https://cdn.amazonlinux.com/al2023/core/mirrors/latest/${arch}/mirror.list"
repo_options=()
if curl --silent --show-error --fail --output /dev/null --connect-timeout 5 --max-time 15 "${cdn_probe}"; then
  say "package repositories: cdn.amazonlinux.com answers (the image's default repositories)"
else
  region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
  if [ -z "${region}" ]; then
    fail "cdn.amazonlinux.com cannot be reached and neither AWS_REGION nor AWS_DEFAULT_REGION is set, so the region's repository in S3 is unknown. Nothing was installed, created or changed."
  fi
  domain="amazonaws.com"
  case "${region}" in cn-*) domain="amazonaws.com.cn" ;; esac
  host="al2023-repos-${region}-de612dc2.s3.${region}.${domain}"
  say "package repositories: cdn.amazonlinux.com cannot be reached from the build's subnets (no NAT?); using the region's Amazon Linux 2023 repository in S3 instead, https://${host} (reachable through an S3 gateway endpoint)"
  repos="$(mktemp -d)"
  cat >"${repos}/pitr-al2023-s3.repo" <<EOF
[pitr-al2023-s3]
name=Amazon Linux 2023 repository (S3, ${region})
mirrorlist=https://${host}/core/mirrors/\$releasever/\$basearch/mirror.list
priority=10
enabled=1
repo_gpgcheck=0
type=rpm
gpgcheck=1
gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-amazon-linux-2023
EOF
  # The mirror lists may name hosts through dnf's variables, as the EC2 image's repository file does: the regional, IPv4 host.
  vars="${PITR_DNF_VARS_DIR:-/etc/dnf/vars}"
  if ! mkdir -p "${vars}" || ! printf '%s' "${region}" >"${vars}/awsregion" || ! printf '%s' "${domain}" >"${vars}/awsdomain" || ! : >"${vars}/dualstack"; then
    fail "could not write dnf's variables to ${vars}. Nothing was installed, created or changed."
  fi
  repo_options=("--setopt=reposdir=${repos}")
fi

# 3. The client, from the newest repositories: the image pins an Amazon Linux release, and newer clients only exist in later ones.
say "installing ${package} (dnf --releasever=latest)"
if ! dnf install -y --releasever=latest --allowerasing --setopt=install_weak_deps=False "${repo_options[@]}" "${package}"; then
  fail "package ${package} could not be installed. Either the package repositories are unreachable from the build's subnets (they need NAT, or an S3 gateway endpoint; see the \"package repositories\" line above), or Amazon Linux 2023 has no ${package} (dnf --releasever=latest list 'postgresql1*'). Nothing was created or changed."
fi

# 4. The runner runs what is on PATH: it must be the server's major.
for tool in pg_dump pg_restore; do
  printed="$("${tool}" --version 2>&1)"
  installed="$(printf '%s' "${printed}" | sed -nE 's/^[a-z_]+ \(PostgreSQL\) ([0-9]+).*/\1/p')"
  if [ "${installed}" != "${major}" ]; then
    fail "${tool} on PATH ($(command -v "${tool}")) prints \"${printed}\", not major ${major}, the instance's. Nothing was created or changed."
  fi
done
say "client for PostgreSQL ${major}: $(pg_dump --version), $(pg_restore --version), $(psql --version)"
