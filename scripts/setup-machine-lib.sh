# Functions of scripts/setup-machine.sh, sourced by it and by its tests
# (tests/unit/test_setup_machine.py). Each prints its result on stdout and, when
# it fails, says why on stderr and returns 1.

# URIs of deb822 stanzas (`Types: deb`, not `Enabled: no`) in the given files.
_deb822_uris() {
  awk '
    function flush(   n, i, u) {
      if (types ~ /(^|[ \t])deb([ \t]|$)/ && tolower(enabled) !~ /^no/) {
        n = split(uris, u, /[ \t]+/)
        for (i = 1; i <= n; i++) if (u[i] != "") print u[i]
      }
      types = ""; uris = ""; enabled = ""
    }
    FNR == 1 && NR > 1 { flush() }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    tolower($1) == "types:" { types = substr($0, index($0, ":") + 1) }
    tolower($1) == "uris:" { uris = substr($0, index($0, ":") + 1) }
    tolower($1) == "enabled:" { enabled = $2 }
    END { flush() }
  ' "$@"
}

# URIs of one-line `deb [options] URI suite components` entries in the given files.
_one_line_uris() {
  awk '
    /^[ \t]*deb[ \t]/ {
      line = $0
      sub(/^[ \t]*deb[ \t]+/, "", line)
      if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
      split(line, field, /[ \t]+/)
      if (field[1] != "") print field[1]
    }
  ' "$@"
}

# debian_archive_uri [APT_DIR]: Debian's own archive URI (not its security
# archive) from the machine's apt sources: sources.list.d/*.sources (deb822),
# then the deb lines of sources.list and sources.list.d/*.list.
debian_archive_uri() {
  local dir=${1:-/etc/apt} file uri
  local deb822=() one_line=()
  for file in "$dir"/sources.list.d/*.sources; do
    [ -f "$file" ] && deb822+=("$file")
  done
  [ -f "$dir/sources.list" ] && one_line+=("$dir/sources.list")
  for file in "$dir"/sources.list.d/*.list; do
    [ -f "$file" ] && one_line+=("$file")
  done
  uri=$(
    {
      [ "${#deb822[@]}" -eq 0 ] || _deb822_uris "${deb822[@]}"
      [ "${#one_line[@]}" -eq 0 ] || _one_line_uris "${one_line[@]}"
    } | grep -i 'debian' | grep -vi 'security' | head -n1 || true
  )
  if [ -z "$uri" ]; then
    echo "setup: no Debian archive URI in $dir (looked in sources.list.d/*.sources," \
      "sources.list and sources.list.d/*.list); Consul comes from Debian's bullseye suite" \
      "on that archive, so add the machine's Debian source and run again" >&2
    return 1
  fi
  printf '%s\n' "${uri%/}"
}

# consul_version BINARY: the version the binary reports (`1.8.7`).
consul_version() {
  local binary=$1 out version
  if ! out=$("$binary" version 2>&1); then
    echo "setup: $binary does not run: $out" >&2
    return 1
  fi
  version=$(printf '%s\n' "$out" | sed -n '1s/^Consul v\([0-9][0-9.]*\).*/\1/p')
  if [ -z "$version" ]; then
    echo "setup: $binary is not Consul: \`version\` says: $(printf '%s\n' "$out" | head -n1)" >&2
    return 1
  fi
  printf '%s\n' "$version"
}

# check_consul DIR WANTED: the Consul unpacked into DIR (DIR/usr/bin/consul) is
# WANTED (1.8.7) itself; another release of its series (1.8.x) is accepted with a
# warning; anything else is refused. Prints the version found.
check_consul() {
  local dir=$1 wanted=$2 version
  version=$(consul_version "$dir/usr/bin/consul") || return 1
  case "$version" in
    "$wanted") ;;
    "${wanted%.*}".*)
      echo "setup: warning: $dir holds Consul $version, not $wanted (the version the" \
        "project is tested with)" >&2
      ;;
    *)
      echo "setup: $dir holds Consul $version, but the sandbox needs Consul ${wanted%.*}.x" \
        "($wanted from Debian bullseye): remove $dir and run make setup again" >&2
      return 1
      ;;
  esac
  printf '%s\n' "$version"
}
