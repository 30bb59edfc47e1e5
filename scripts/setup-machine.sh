#!/usr/bin/env bash
# Machine-level installs the sandbox needs: Docker Engine (Debian's docker.io),
# busybox-static, Debian's nginx binary and Consul 1.8.7 from Debian's bullseye
# suite. Idempotent: each step checks first and does nothing when already done.
#
# Tools that are not installed system-wide (nginx, consul) are unpacked under
# $SWARMOP_TOOLS (default /opt/swarmop), where `swarmop sandbox` looks for them.
set -euo pipefail

TOOLS=${SWARMOP_TOOLS:-/opt/swarmop}
log() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  log "not root: skipping machine-level installs (the sandbox needs root; cluster tests will skip)"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
}

# Packages must not start services on the host: a dockerd in the host's own
# network namespace would add bridges and iptables rules there. policy-rc.d is
# Debian's switch for that; add one only for the duration of the install.
missing=()
for pkg in docker.io busybox-static iptables iproute2 util-linux faketime openssl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_update_once
  added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$added_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
fi

# Debian's own archive URI, read from the machine's apt configuration at run
# time (never written into the project).
debian_uri() {
  local uri=""
  if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
    uri=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/*.sources | grep -v security | grep -i debian | head -n1 || true)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "setup: cannot find Debian's archive URI in /etc/apt" >&2; exit 1; }
  printf '%s\n' "$uri"
}

# nginx: Debian's binary only (nginx-light is a metapackage over `nginx`);
# unpacked, never installed, so no nginx service appears on the host.
if [ ! -x "$TOOLS/nginx/usr/sbin/nginx" ]; then
  log "unpacking Debian's nginx binary into $TOOLS/nginx"
  apt_update_once
  work=$(mktemp -d)
  (cd "$work" && apt-get -o APT::Sandbox::User=root download -qq nginx >/dev/null)
  mkdir -p "$TOOLS/nginx"
  dpkg-deb -x "$work"/nginx_*.deb "$TOOLS/nginx"
  rm -rf "$work"
  # Its shared libraries must exist on the host for the image builder's ldd.
  apt-get install -y -qq --no-install-recommends libpcre2-8-0 libssl3 zlib1g libcrypt1 >/dev/null
fi

# Consul 1.8.7 from Debian's bullseye suite, through a private apt
# configuration so the machine's own sources stay untouched.
if [ ! -x "$TOOLS/consul/usr/bin/consul" ]; then
  log "unpacking Consul from Debian bullseye into $TOOLS/consul"
  work=$(mktemp -d)
  mkdir -p "$work/lists/partial" "$work/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_uri) bullseye main" > "$work/sources.list"
  opts=(-o APT::Sandbox::User=root -o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$work/lists" -o Dir::Cache::Archives="$work/archives")
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" download -qq consul >/dev/null)
  mkdir -p "$TOOLS/consul"
  dpkg-deb -x "$work"/consul_*.deb "$TOOLS/consul"
  rm -rf "$work"
fi

log "machine ready: docker $(dockerd --version | awk '{print $3}' | tr -d ,)," \
    "consul $("$TOOLS/consul/usr/bin/consul" version | head -n1 | awk '{print $2}')," \
    "nginx $("$TOOLS/nginx/usr/sbin/nginx" -v 2>&1 | awk -F/ '{print $2}')"
