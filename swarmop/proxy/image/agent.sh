#!/bin/sh
# swarmop proxy agent: runs beside nginx and applies the config swarmop publishes.
#
# Watches the Consul key <prefix>/proxy/<service>/config with blocking queries,
# tests every new config with `nginx -t` inside the full nginx config, moves it
# into place atomically and reloads nginx. The outcome goes to
# <prefix>/proxy/<service>/status/<agent-name>, with the last reload's result
# and time and what the last change of the live config did (server names
# added, removed, changed); it is written again every heartbeat while idle, so
# the operator can tell a quiet agent from a gone one. A config that fails the
# test is never moved into place: the last good one stays live.
#
# POSIX sh and busybox only. HTTP goes through `nc` (busybox wget crashes in
# these containers); the token travels in a header, never in a URL.
#
# Environment:
#   CONSUL_HTTP_ADDR        host:port of Consul's HTTP API (required)
#   CONSUL_HTTP_TOKEN       ACL token (optional)
#   SWARMOP_PROXY_SERVICE   name of this proxy service, e.g. nginx (required)
#   SWARMOP_PREFIX          Consul key prefix (default swarmop)
#   SWARMOP_AGENT_NAME      status key name (default: the container's host name)
#   SWARMOP_WAIT            blocking query wait (default 55s)
#   SWARMOP_MIN_INTERVAL    seconds between two queries, the rate limit (default 1)
#   SWARMOP_HEARTBEAT       seconds after which an idle agent reports again (default 50)
#   SWARMOP_NGINX, SWARMOP_NGINX_CONF, SWARMOP_CONF_DIR, SWARMOP_CONF_NAME,
#   SWARMOP_RUN_DIR         paths, defaults for the swarmop nginx image

set -u

log() { echo "swarmop-agent: $*" >&2; }

CONSUL="${CONSUL_HTTP_ADDR:-}"
CONSUL="${CONSUL#http://}"
CONSUL="${CONSUL%/}"
SERVICE="${SWARMOP_PROXY_SERVICE:-}"
PREFIX="${SWARMOP_PREFIX:-swarmop}"
AGENT_NAME="${SWARMOP_AGENT_NAME:-$(hostname)}"
WAIT="${SWARMOP_WAIT:-55s}"
MIN_INTERVAL="${SWARMOP_MIN_INTERVAL:-1}"
HEARTBEAT="${SWARMOP_HEARTBEAT:-50}"
NGINX="${SWARMOP_NGINX:-/usr/sbin/nginx}"
NGINX_CONF="${SWARMOP_NGINX_CONF:-/etc/nginx/nginx.conf}"
CONF_DIR="${SWARMOP_CONF_DIR:-/etc/nginx/conf.d}"
CONF_NAME="${SWARMOP_CONF_NAME:-swarmop.conf}"
RUN_DIR="${SWARMOP_RUN_DIR:-/swarmop/run}"
MAX_BACKOFF=30

# Everything below goes into URLs or file names: allow only safe characters.
safe() {
    case "$1" in
        "" | *[!A-Za-z0-9._/:-]* | *..*) return 1 ;;
    esac
    return 0
}
case "$HEARTBEAT" in
    "" | *[!0-9]*) log "refusing to start: SWARMOP_HEARTBEAT must be whole seconds (got '$HEARTBEAT')"; exit 2 ;;
esac
for value in "$CONSUL" "$SERVICE" "$PREFIX" "$AGENT_NAME" "$WAIT"; do
    if ! safe "$value"; then
        log "refusing to start: CONSUL_HTTP_ADDR, SWARMOP_PROXY_SERVICE, SWARMOP_PREFIX," \
            "SWARMOP_AGENT_NAME and SWARMOP_WAIT must be set to plain names (got '$value')"
        exit 2
    fi
done
case "$CONSUL" in
    *:*) CONSUL_HOST="${CONSUL%:*}" CONSUL_PORT="${CONSUL##*:}" ;;
    *) CONSUL_HOST="$CONSUL" CONSUL_PORT=8500 ;;
esac

KEY="$PREFIX/proxy/$SERVICE/config"
STATUS_KEY="$PREFIX/proxy/$SERVICE/status/$AGENT_NAME"
LIVE="$CONF_DIR/$CONF_NAME"
mkdir -p "$RUN_DIR" || exit 1

# http METHOD PATH [BODY_FILE] [TIMEOUT]: sets HTTP_STATUS and HTTP_INDEX and
# leaves the body in $RUN_DIR/body. Fails on transport errors and on truncated
# or malformed responses.
http() {
    method="$1" path="$2" body="${3:-}" limit="${4:-10}"
    {
        printf '%s %s HTTP/1.0\r\nHost: %s\r\n' "$method" "$path" "$CONSUL"
        if [ -n "${CONSUL_HTTP_TOKEN:-}" ]; then
            printf 'X-Consul-Token: %s\r\n' "$CONSUL_HTTP_TOKEN"
        fi
        if [ -n "$body" ]; then
            printf 'Content-Length: %s\r\n\r\n' "$(wc -c < "$body")"
            cat "$body"
        else
            printf '\r\n'
        fi
    } | timeout "$limit" nc -w 5 "$CONSUL_HOST" "$CONSUL_PORT" > "$RUN_DIR/response" 2>/dev/null
    # Only digits leave this awk: nothing from the network is ever evaluated.
    awk '
        { n += length($0) + 1; line = $0; sub(/\r$/, "", line) }
        NR == 1 { split(line, parts, " "); status = parts[2]; next }
        line == "" { found = 1; exit }
        {
            colon = index(line, ":")
            if (colon == 0) next
            name = tolower(substr(line, 1, colon - 1))
            value = substr(line, colon + 1)
            gsub(/[^0-9]/, "", value)
            if (name == "x-consul-index") idx = value
            if (name == "content-length") clen = value
        }
        END {
            gsub(/[^0-9]/, "", status)
            if (!found) n = -1
            print (status == "" ? 0 : status), (idx == "" ? 0 : idx), (clen == "" ? -1 : clen), n
        }
    ' "$RUN_DIR/response" > "$RUN_DIR/head"
    read -r HTTP_STATUS HTTP_INDEX length header < "$RUN_DIR/head" || return 1
    [ "$header" -gt 0 ] || return 1
    tail -c +"$((header + 1))" "$RUN_DIR/response" > "$RUN_DIR/body"
    if [ "$length" -ge 0 ] && [ "$(wc -c < "$RUN_DIR/body")" -ne "$length" ]; then
        log "truncated response for $path"
        return 1
    fi
    return 0
}

json_string() {
    tr -d '\000-\010\013-\037' < "$1" | head -c 4000 |
        sed 's/\\/\\\\/g; s/"/\\"/g; s/	/\\t/g' |
        awk '{ if (NR > 1) printf "%s", "\\n"; printf "%s", $0 }'
}

file_hash() {
    if [ -s "$1" ]; then sha256sum < "$1" | cut -d' ' -f1; else sha256sum < /dev/null | cut -d' ' -f1; fi
}

now_iso() { date -u +%Y-%m-%dT%H:%M:%SZ; }

# Server names of a config file, each with a signature: its server block and the
# upstream blocks it proxies to, so a changed upstream changes the host too.
# Names keep only the characters a server name may have (nothing else reaches
# the JSON); blocks are found by brace depth, comments dropped.
host_signatures() {
    [ -s "$1" ] || return 0
    awk '
        {
            line = $0
            sub(/#.*/, "", line)
            opens = gsub(/\{/, "{", line)
            closes = gsub(/\}/, "}", line)
            if (depth == 0 && opens > 0) {
                head = line
                sub(/\{.*/, "", head)
                split(head, words, " ")
                kind = words[1]; name = words[2]; text = ""; names = ""; refs = ""
            }
            if (depth > 0 || opens > 0) text = text line "\036"
            if (kind == "server" && match(line, /(^|[{;])[ \t]*server_name[ \t][^;]*/)) {
                value = substr(line, RSTART, RLENGTH)
                sub(/.*server_name[ \t]/, "", value)
                names = names " " value
            }
            if (kind == "server" && match(line, /proxy_pass[ \t]+[a-z]+:\/\/[A-Za-z0-9_.-]+/)) {
                target = substr(line, RSTART, RLENGTH)
                sub(/.*:\/\//, "", target)
                refs = refs " " target
            }
            depth += opens - closes
            if (depth <= 0 && (opens > 0 || closes > 0) && kind != "") {
                depth = 0
                if (kind == "upstream") upstream[name] = text
                if (kind == "server") { count++; server_text[count] = text; server_names[count] = names; server_refs[count] = refs }
                kind = ""
            }
        }
        END {
            for (i = 1; i <= count; i++) {
                signature = server_text[i]
                n = split(server_refs[i], targets, " ")
                for (j = 1; j <= n; j++) signature = signature "|" upstream[targets[j]]
                n = split(server_names[i], hosts, " ")
                for (j = 1; j <= n; j++) {
                    host = hosts[j]
                    gsub(/[^A-Za-z0-9.*_-]/, "", host)
                    if (host != "") sig[host] = sig[host] signature
                }
            }
            for (host in sig) print host "\t" sig[host]
        }
    ' "$1"
}

# change_summary OLD NEW: the JSON members saying what moving NEW over OLD changed.
change_summary() {
    host_signatures "$1" > "$RUN_DIR/hosts.old"
    host_signatures "$2" > "$RUN_DIR/hosts.new"
    awk -F '\t' -v time="$(now_iso)" -v old="$RUN_DIR/hosts.old" '
        FILENAME == old { before[$1] = $2; next }
        { after[$1] = $2 }
        function add(list, name) { return list (list == "" ? "" : ",") "\"" name "\"" }
        END {
            for (host in after) {
                if (!(host in before)) added = add(added, host)
                else if (before[host] != after[host]) changed = add(changed, host)
            }
            for (host in before) if (!(host in after)) removed = add(removed, host)
            printf "\"changed_time\":\"%s\",\"added\":[%s],\"removed\":[%s],\"changed\":[%s]", time, added, removed, changed
        }
    ' "$RUN_DIR/hosts.old" "$RUN_DIR/hosts.new"
}

# report STATE HASH MESSAGE_FILE
report() {
    reload_result="" reload_time=""
    [ -s "$RUN_DIR/last_reload" ] && read -r reload_result reload_time < "$RUN_DIR/last_reload"
    {
        printf '{"state":"%s","hash":"%s","live_hash":"%s","time":"%s","agent":"%s",' \
            "$1" "$2" "$LIVE_HASH" "$(now_iso)" "$AGENT_NAME"
        printf '"reload":"%s","reload_time":"%s",' "$reload_result" "$reload_time"
        if [ -s "$RUN_DIR/last_change" ]; then
            cat "$RUN_DIR/last_change"
        else
            printf '"changed_time":"","added":[],"removed":[],"changed":[]'
        fi
        printf ',"message":"'
        json_string "$3"
        printf '"}'
    } > "$RUN_DIR/status.json"
    [ "$3" = "$RUN_DIR/last_message" ] || cp "$3" "$RUN_DIR/last_message"
    LAST_STATE="$1" LAST_HASH="$2" LAST_REPORT="$(date +%s)"
    if http PUT "/v1/kv/$STATUS_KEY" "$RUN_DIR/status.json" && [ "$HTTP_STATUS" = 200 ]; then
        REPORTED="$1:$2"
    else
        log "could not write status to $STATUS_KEY"
    fi
}

# The last report again, with a fresh time, once HEARTBEAT seconds have passed.
heartbeat() {
    [ -n "$LAST_STATE" ] || return 0
    [ $(($(date +%s) - LAST_REPORT)) -ge "$HEARTBEAT" ] || return 0
    report "$LAST_STATE" "$LAST_HASH" "$RUN_DIR/last_message"
}

# nginx -t on the whole nginx config with the candidate in place of the live file.
test_candidate() {
    stage="$RUN_DIR/test"
    rm -rf "$stage" && mkdir -p "$stage/conf.d" || return 1
    for file in "$CONF_DIR"/*.conf; do
        [ -e "$file" ] && [ "$file" != "$LIVE" ] && cp "$file" "$stage/conf.d/"
    done
    cp "$1" "$stage/conf.d/$CONF_NAME"
    sed "s#$CONF_DIR/#$stage/conf.d/#g" "$NGINX_CONF" > "$stage/nginx.conf"
    if ! grep -q "$stage/conf.d/" "$stage/nginx.conf"; then
        echo "$NGINX_CONF does not include $CONF_DIR/: cannot test the candidate" > "$RUN_DIR/test.out"
        return 1
    fi
    "$NGINX" -t -q -c "$stage/nginx.conf" > "$RUN_DIR/test.out" 2>&1
}

# The master's pid, from the pid directive of the main config.
nginx_master() {
    pid_file="$(sed -n 's/^[[:space:]]*pid[[:space:]][[:space:]]*\([^;[:space:]]*\)[[:space:]]*;.*/\1/p' \
        "$NGINX_CONF" | head -n 1)"
    [ -n "$pid_file" ] && [ -s "$pid_file" ] && read -r master < "$pid_file" && echo "$master"
}

# The master's workers that still accept connections: after a reload the old
# ones retitle themselves "worker process is shutting down".
serving_workers() {
    for stat in /proc/[0-9]*/stat; do
        read -r pid _ _ ppid _ < "$stat" 2> /dev/null || continue
        [ "$ppid" = "$1" ] || continue
        title="$(tr '\0' ' ' < "/proc/$pid/cmdline" 2> /dev/null)"
        case "$title" in
            *"is shutting down"*) ;;
            *"worker process"*) echo "$pid" ;;
        esac
    done
}

# `nginx -s reload` only signals the master. The config counts as live once
# every worker that accepts connections was started after the signal: until
# then an old worker may still answer with the previous config. A master that
# never replaces its workers (a listen address it cannot bind, say) keeps the
# old config, and that is reported as a failed reload.
await_new_workers() {
    master="$1" old="$2" waited=0
    while [ "$waited" -lt 100 ]; do
        current="$(serving_workers "$master")"
        if [ -n "$current" ]; then
            stale=""
            for pid in $current; do
                case " $old " in *" $pid "*) stale=1 ;; esac
            done
            [ -z "$stale" ] && return 0
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "nginx (master $master) did not start workers with the new config within 10s" \
        > "$RUN_DIR/reload.out"
    return 1
}

reload_nginx() {
    tries=0
    master="$(nginx_master)"
    old="$( [ -n "$master" ] && serving_workers "$master" | tr '\n' ' ')"
    until "$NGINX" -s reload -c "$NGINX_CONF" > "$RUN_DIR/reload.out" 2>&1; do
        tries=$((tries + 1))
        # nginx may still be starting next to us: its pid file appears shortly.
        [ "$tries" -ge 10 ] && return 1
        sleep 1
        master="$(nginx_master)"
        old="$( [ -n "$master" ] && serving_workers "$master" | tr '\n' ' ')"
    done
    # Without a master to watch (no pid directive, /proc hidden) the signal is
    # all there is to go by.
    [ -z "$master" ] && return 0
    await_new_workers "$master" "$old"
}

apply() {
    candidate="$1" hash="$2"
    if ! test_candidate "$candidate"; then
        log "config $hash failed nginx -t; keeping $LIVE_HASH"
        FAILED_HASH="$hash"
        report error "$hash" "$RUN_DIR/test.out"
        return
    fi
    summary="$(change_summary "$LIVE" "$candidate")"
    previous_hash="$LIVE_HASH"
    rm -f "$RUN_DIR/previous.conf"
    [ -e "$LIVE" ] && cp "$LIVE" "$RUN_DIR/previous.conf"
    if ! install_live "$candidate"; then
        echo "could not write $LIVE" > "$RUN_DIR/test.out"
        report error "$hash" "$RUN_DIR/test.out"
        return
    fi
    if reload_nginx; then
        LIVE_HASH="$hash"
        FAILED_HASH=""
        printf '%s' "$summary" > "$RUN_DIR/last_change"
        echo "ok $(now_iso)" > "$RUN_DIR/last_reload"
        log "config $hash is live"
        : > "$RUN_DIR/empty"
        report ok "$hash" "$RUN_DIR/empty"
        return
    fi
    # nginx kept serving the previous config: put that file back, so the file
    # on disk is what nginx serves and a restarted nginx starts with it.
    if [ -e "$RUN_DIR/previous.conf" ]; then
        install_live "$RUN_DIR/previous.conf"
    else
        rm -f "$LIVE"
    fi
    LIVE_HASH="$previous_hash"
    FAILED_HASH="$hash"
    log "config $hash passed nginx -t but nginx did not take it; keeping $LIVE_HASH"
    echo "error $(now_iso)" > "$RUN_DIR/last_reload"
    report error "$hash" "$RUN_DIR/reload.out"
}

# Same directory, so the rename is atomic: nginx never reads a partial file.
install_live() {
    cp "$1" "$CONF_DIR/.$CONF_NAME.tmp" && mv -f "$CONF_DIR/.$CONF_NAME.tmp" "$LIVE"
}

LIVE_HASH="$(file_hash "$LIVE")"
FAILED_HASH=""
REPORTED=""
LAST_STATE="" LAST_HASH="" LAST_REPORT=0
INDEX=1
FAILURES=0
log "watching $KEY on $CONSUL as $AGENT_NAME"

while :; do
    if http GET "/v1/kv/$KEY?raw&index=$INDEX&wait=$WAIT" "" 70 &&
        { [ "$HTTP_STATUS" = 200 ] || [ "$HTTP_STATUS" = 404 ]; }; then
        FAILURES=0
        new="$HTTP_INDEX"
        [ "$new" -ge 1 ] 2>/dev/null || new=1
        if [ "$new" -lt "$INDEX" ]; then
            # Consul's index went backwards (snapshot restore, ...): start over.
            INDEX=1
        else
            INDEX="$new"
        fi
        if [ "$HTTP_STATUS" = 200 ]; then
            cp "$RUN_DIR/body" "$RUN_DIR/candidate"
            hash="$(file_hash "$RUN_DIR/candidate")"
            if [ "$hash" = "$LIVE_HASH" ]; then
                [ "$REPORTED" = "ok:$hash" ] || { : > "$RUN_DIR/empty"; report ok "$hash" "$RUN_DIR/empty"; }
            elif [ "$hash" != "$FAILED_HASH" ]; then
                apply "$RUN_DIR/candidate" "$hash"
            fi
        fi
        heartbeat
        sleep "$MIN_INTERVAL"
    else
        FAILURES=$((FAILURES + 1))
        delay=1 step=1
        while [ "$step" -lt "$FAILURES" ] && [ "$delay" -lt "$MAX_BACKOFF" ]; do
            delay=$((delay * 2)) step=$((step + 1))
        done
        [ "$delay" -gt "$MAX_BACKOFF" ] && delay="$MAX_BACKOFF"
        log "query failed (status ${HTTP_STATUS:-none}), retrying in ${delay}s"
        sleep "$delay"
    fi
done
