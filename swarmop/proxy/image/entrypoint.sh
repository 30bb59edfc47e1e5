#!/bin/sh
# Entrypoint of the swarmop nginx image: start the config agent beside nginx,
# then run nginx (the image's command, "$@") in the foreground as PID 1, so the
# container lives and dies with nginx. nginx starts with the image's conf.d:
# a default server answering 404 until the first config arrives.
#
# The agent runs only when CONSUL_HTTP_ADDR and SWARMOP_PROXY_SERVICE are set,
# and is restarted if it ever exits.

if [ -n "${CONSUL_HTTP_ADDR:-}" ] && [ -n "${SWARMOP_PROXY_SERVICE:-}" ]; then
    (
        while :; do
            /bin/sh /swarmop/agent.sh
            echo "swarmop-agent: exited with $?, restarting in 2s" >&2
            sleep 2
        done
    ) &
else
    echo "swarmop: CONSUL_HTTP_ADDR or SWARMOP_PROXY_SERVICE unset; nginx runs without the agent" >&2
fi

if [ "$#" -eq 0 ]; then
    set -- /usr/sbin/nginx -g "daemon off;"
fi
exec "$@"
