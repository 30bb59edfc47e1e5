#!/usr/bin/env bash
# Machine-level installs the sandbox needs: Docker Engine (Debian's docker.io),
# busybox-static, Debian's nginx binary and Consul 1.8.7 from Debian's bullseye
# suite. Idempotent: each step checks first and does nothing when already done.
#
# Tools that are not installed system-wide (nginx, consul) are unpacked under
# $SWARMOP_TOOLS (default /opt/swarmop), where `swarmop sandbox` looks for them.
set -euo pipefail

TOOLS=${SWARMOP_TOOLS:-/opt/swarmop}
CONSUL_WANTED=1.8.7
# Moved only by this script's tests (tests/unit/test_setup_machine.py).
APT_DIR=${SWARMOP_SETUP_APT_DIR:-/etc/apt}
POLICY_RC_D=${SWARMOP_SETUP_POLICY_RC_D:-/usr/sbin/policy-rc.d}
# shellcheck source=scripts/setup-machine-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/setup-machine-lib.sh"
log() { printf 'setup: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  log "not root: skipping machine-level installs (the sandbox needs root; cluster tests will skip)"
  exit 0
fi

# Whatever way the script ends (a failed install under set -e, Ctrl-C), it
# removes the policy-rc.d it added and its temporary directories.
added_policy=0
work_dirs=()
remove_added_policy() {
  if [ "$added_policy" -eq 1 ]; then
    rm -f "$POLICY_RC_D"
    added_policy=0
  fi
}
clean_up() {
  remove_added_policy
  if [ "${#work_dirs[@]}" -gt 0 ]; then
    rm -rf "${work_dirs[@]}"
  fi
}
trap clean_up EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
new_work_dir() {
  work=$(mktemp -d)
  work_dirs+=("$work")
}

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
  if [ ! -e "$POLICY_RC_D" ]; then
    added_policy=1
    printf '#!/bin/sh\nexit 101\n' > "$POLICY_RC_D"
    chmod +x "$POLICY_RC_D"
  fi
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    log "apt-get install ${missing[*]} failed (run it by hand to see why)" >&2
    exit 1
  fi
  remove_added_policy
fi

# nginx: Debian's binary only (nginx-light is a metapackage over `nginx`);
# unpacked, never installed, so no nginx service appears on the host.
if [ ! -x "$TOOLS/nginx/usr/sbin/nginx" ]; then
  log "unpacking Debian's nginx binary into $TOOLS/nginx"
  apt_update_once
  new_work_dir
  (cd "$work" && apt-get -o APT::Sandbox::User=root download -qq nginx >/dev/null)
  mkdir -p "$TOOLS/nginx"
  dpkg-deb -x "$work"/nginx_*.deb "$TOOLS/nginx"
  # Its shared libraries must exist on the host for the image builder's ldd.
  apt-get install -y -qq --no-install-recommends libpcre2-8-0 libssl3 zlib1g libcrypt1 >/dev/null
fi

# Consul 1.8.7 from Debian's bullseye suite, through a private apt
# configuration so the machine's own sources stay untouched. The archive's URI
# is read from the machine's apt sources at run time (never written here).
if [ ! -x "$TOOLS/consul/usr/bin/consul" ]; then
  log "unpacking Consul from Debian bullseye into $TOOLS/consul"
  debian=$(debian_archive_uri "$APT_DIR") || exit 1
  new_work_dir
  mkdir -p "$work/lists/partial" "$work/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $debian bullseye main" > "$work/sources.list"
  opts=(-o APT::Sandbox::User=root -o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$work/lists" -o Dir::Cache::Archives="$work/archives")
  apt-get "${opts[@]}" update -qq
  (cd "$work" && apt-get "${opts[@]}" download -qq consul >/dev/null)
  mkdir -p "$TOOLS/consul"
  dpkg-deb -x "$work"/consul_*.deb "$TOOLS/consul"
fi
# Checked on every run, so a wrong or broken copy is reported, not used.
consul_version=$(check_consul "$TOOLS/consul" "$CONSUL_WANTED") || exit 1

log "machine ready: docker $(dockerd --version | awk '{print $3}' | tr -d ,)," \
    "consul $consul_version," \
    "nginx $("$TOOLS/nginx/usr/sbin/nginx" -v 2>&1 | awk -F/ '{print $2}')"
