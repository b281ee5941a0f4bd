#!/usr/bin/env bash
# PostgreSQL majors other than bookworm's 15, for the PG_MAJOR test axis (#18).
# Called by scripts/setup.sh; runs alone too:  PG_MAJORS=15,17,18 bash scripts/setup-pg-majors.sh
#
#   PG_MAJORS     majors to have, comma-separated (default 15: bookworm's packages, installed by setup.sh)
#   PG_CACHE_DIR  where 17 and 18 go (default /var/cache/cdk-rds-pitr): pg17/, pg18/, each with bin/
#                 holding server AND client of that major. A directory is reused when it is complete
#                 (its .complete file, written last, names the recipe below); delete it to reinstall.
#
# 17: Debian trixie's binary packages (postgresql-17, postgresql-client-17, libpq5, postgresql-17-cron),
#     unpacked with dpkg -x. They need glibc 2.38 and bookworm has 2.36, so trixie's libc, loader and the
#     few libraries whose bookworm version is too old are unpacked beside them and every binary is pointed
#     at them with patchelf (interpreter + DT_RPATH); everything else comes from bookworm.
# 18: Debian sid's source package postgresql-18 (upstream tarball), built with OpenSSL, libxml and ICU (as RDS
#     has them; the type-matrix tests need xml) but without readline, contrib included. No pg_cron: sid's pg-cron source is
#     not served here and its postgresql-18-cron binary needs glibc 2.38 (__isoc23_strtol), so the pg_cron
#     hazard tests skip on 18 (they run on 15 and 17).
#
# The trixie/sid indexes live in $PG_CACHE_DIR/apt, used only through the -o options below: the system's
# apt sources are not touched, so later `apt-get install` of bookworm packages is unaffected.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_MAJORS="${PG_MAJORS:-15}"
PG_CACHE_DIR="${PG_CACHE_DIR:-/var/cache/cdk-rds-pitr}"
# What each cached directory was made with: a changed recipe reinstalls it.
RECIPE_17="trixie binaries: postgresql-17 postgresql-client-17 libpq5 postgresql-17-cron; patchelf"
CONFIGURE_18="--with-openssl --with-libxml --with-icu --without-readline"
RECIPE_18="sid source postgresql-18: configure $CONFIGURE_18; contrib"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

wanted=()
for major in ${PG_MAJORS//,/ }; do
  case "$major" in
    15) ;; # bookworm's packages: scripts/setup.sh
    17|18)
      recipe="RECIPE_$major"
      if [ "$(cat "$PG_CACHE_DIR/pg$major/.complete" 2>/dev/null)" = "${!recipe}" ]; then
        echo "setup: PostgreSQL $major: cached in $PG_CACHE_DIR/pg$major"
      else
        wanted+=("$major")
      fi ;;
    *) echo "setup: PG_MAJORS=\"$PG_MAJORS\": major \"$major\" is not one this project installs; accepted: 15, 17, 18" >&2; exit 1 ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || exit 0

$sudo mkdir -p "$PG_CACHE_DIR"
[ -z "$sudo" ] || $sudo chown "$(id -u):$(id -g)" "$PG_CACHE_DIR"

# Build tools and patchelf, from bookworm.
missing=()
for pkg in build-essential bison flex pkg-config libssl-dev libxml2-dev libicu-dev zlib1g-dev patchelf dpkg-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} with apt"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# apt against trixie (binaries) and sid (sources) only, with its own source list, indexes and archive dir.
APT_DIR="$PG_CACHE_DIR/apt"
mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial"
printf '%s\n' 'deb http://deb.debian.org/debian trixie main' 'deb-src http://deb.debian.org/debian sid main' >"$APT_DIR/sources.list"
other_apt() {
  $sudo apt-get -q -o Dir::Etc::sourcelist="$APT_DIR/sources.list" -o Dir::Etc::sourceparts=- \
    -o Dir::State::Lists="$APT_DIR/lists" -o Dir::Cache::archives="$APT_DIR/archives" \
    -o APT::Sandbox::User=root "$@"
}
echo "setup: apt indexes of trixie and sid (in $APT_DIR only)"
other_apt update -qq

# Seconds since $1 (for the timing lines).
since() { echo $(($(date +%s) - $1)); }

install_pg17() {
  local start dest work lib f
  start=$(date +%s)
  dest="$PG_CACHE_DIR/pg17"
  work=$(mktemp -d)
  echo "setup: PostgreSQL 17: trixie's packages into $dest"
  (cd "$work" && other_apt download \
    postgresql-17/trixie postgresql-client-17/trixie libpq5/trixie postgresql-17-cron/trixie \
    libc6/trixie libssl3t64/trixie libicu76/trixie libldap2/trixie libzstd1/trixie libstdc++6/trixie libgcc-s1/trixie >/dev/null)
  rm -rf "$dest"
  mkdir -p "$dest"
  for f in "$work"/*.deb; do dpkg -x "$f" "$dest"; done
  rm -rf "$work"
  lib="$dest/usr/lib/x86_64-linux-gnu"
  # JIT needs trixie's LLVM, which is not unpacked: without llvmjit.so the server runs with JIT unavailable.
  rm -rf "$dest"/usr/lib/postgresql/17/lib/llvmjit* "$dest"/usr/lib/postgresql/17/lib/bitcode
  for f in "$dest"/usr/lib/postgresql/17/bin/* "$dest"/usr/lib/postgresql/17/lib/*.so "$lib"/libpq.so.5.*; do
    [ -L "$f" ] && continue
    head -c4 "$f" | grep -q ELF || continue
    case "$f" in */bin/*) patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" "$f" ;; esac
    # DT_RPATH (not RUNPATH): it also applies to the libraries these load, e.g. pgcrypto's libcrypto.
    patchelf --force-rpath --set-rpath "$lib" "$f"
  done
  ln -s usr/lib/postgresql/17/bin "$dest/bin"
  if "$lib/ld-linux-x86-64.so.2" --list "$dest/bin/postgres" | grep -q 'not found'; then
    echo "setup: PostgreSQL 17: libraries missing for $dest/bin/postgres:" >&2
    "$lib/ld-linux-x86-64.so.2" --list "$dest/bin/postgres" | grep 'not found' >&2
    exit 1
  fi
  "$dest/bin/postgres" --version
  "$dest/bin/pg_dump" --version
  echo "$RECIPE_17" >"$dest/.complete"
  echo "setup: PostgreSQL 17 took $(since "$start") s"
}

install_pg18() {
  local start dest work src
  start=$(date +%s)
  dest="$PG_CACHE_DIR/pg18"
  work=$(mktemp -d)
  echo "setup: PostgreSQL 18: building sid's source package into $dest (about 3 minutes on 2 cores)"
  (cd "$work" && other_apt source --download-only postgresql-18 >/dev/null)
  tar -C "$work" -xjf "$work"/postgresql-18_*.orig.tar.bz2
  rm -rf "$dest"
  src=$(echo "$work"/postgresql-18.*/)
  # The prefix is the final directory: the binaries find libpq by their build-time rpath.
  (cd "$src" && ./configure -q --prefix="$dest" $CONFIGURE_18 >/dev/null \
    && make -s -j"$(nproc)" >/dev/null && make -s -j"$(nproc)" -C contrib >/dev/null \
    && make -s install >/dev/null && make -s -C contrib install >/dev/null)
  rm -rf "$work"
  "$dest/bin/postgres" --version
  echo "$RECIPE_18" >"$dest/.complete"
  echo "setup: PostgreSQL 18 took $(since "$start") s"
}

for major in "${wanted[@]}"; do "install_pg$major"; done
