"""The seeds' example on the sandbox: web backends, a database pinned to SSD, nginx.

Every step checks first, so deploying twice changes nothing. Services use
endpoint mode dnsrr (no IPVS here, virtual IPs do not route) and nginx publishes
port 80 in host mode (the ingress routing mesh needs IPVS too).
"""

from __future__ import annotations

import docker
import docker.types

from swarmop.clients.swarm_write import update_node
from swarmop.sandbox.info import BUSYBOX_IMAGE, NGINX_IMAGE

NETWORK = "swarmop-example"
WEB_SERVICE = "web"
DB_SERVICE = "db"
NGINX_SERVICE = "nginx"
SSD_LABEL = ("storage", "ssd")
DB_CONSTRAINT = "node.labels.storage==ssd"
PROXY_HOST = "test.local"
WEB_PORT = 8080

DB_COMMAND = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def ssd_node_hostname(hostnames: list[str]) -> str:
    """The one node labelled storage=ssd: node-3 when there is one, else the last node."""
    return "node-3" if "node-3" in hostnames else hostnames[-1]


def _label_ssd_node(api: docker.APIClient, hostname: str) -> None:
    key, value = SSD_LABEL
    for node in api.nodes():
        if node["Description"]["Hostname"] != hostname:
            continue

        def add_label(spec: dict[str, object]) -> bool:
            labels = spec.setdefault("Labels", {})
            assert isinstance(labels, dict)
            if labels.get(key) == value:
                return False
            labels[key] = value
            return True

        update_node(api, node["ID"], add_label)


def _ensure_network(api: docker.APIClient) -> None:
    if not api.networks(names=[NETWORK]):
        api.create_network(NETWORK, driver="overlay", attachable=True, scope="swarm")


def _service_exists(api: docker.APIClient, name: str) -> bool:
    return any(service["Spec"]["Name"] == name for service in api.services(filters={"name": name}))


def _create(
    api: docker.APIClient,
    name: str,
    container: docker.types.ContainerSpec,
    *,
    replicas: int,
    labels: dict[str, str],
    constraints: list[str] | None = None,
    ports: list[dict[str, object]] | None = None,
) -> None:
    if _service_exists(api, name):
        return
    task = docker.types.TaskTemplate(
        container_spec=container,
        placement=docker.types.Placement(constraints=constraints) if constraints else None,
        networks=[docker.types.NetworkAttachmentConfig(NETWORK)],
        restart_policy=docker.types.RestartPolicy(condition="any", delay=1_000_000_000),
    )
    endpoint = docker.types.EndpointSpec(mode="dnsrr", ports=ports or None)
    api.create_service(
        task,
        name=name,
        labels=labels,
        mode=docker.types.ServiceMode("replicated", replicas=replicas),
        endpoint_spec=endpoint,
    )


def nginx_agent_env(consul_addr_in_swarm: str) -> dict[str, str]:
    """The proxy agent beside nginx watches its config key in Consul (docs/proxy.md)."""
    return {
        "CONSUL_HTTP_ADDR": consul_addr_in_swarm,
        "SWARMOP_PROXY_SERVICE": NGINX_SERVICE,
        "SWARMOP_AGENT_NAME": "{{.Node.Hostname}}-{{.Task.Slot}}",
    }


def deploy(api: docker.APIClient, hostnames: list[str], *, consul_addr_in_swarm: str) -> None:
    _label_ssd_node(api, ssd_node_hostname(hostnames))
    _ensure_network(api)
    _create(
        api,
        WEB_SERVICE,
        docker.types.ContainerSpec(BUSYBOX_IMAGE, command=None),
        replicas=2,
        labels={
            "swarmop.replicas": "2",
            "swarmop.proxy.host": PROXY_HOST,
            "swarmop.proxy.port": str(WEB_PORT),
            "swarmop.proxy.network": NETWORK,
        },
    )
    _create(
        api,
        DB_SERVICE,
        docker.types.ContainerSpec(BUSYBOX_IMAGE, command=DB_COMMAND),
        replicas=1,
        labels={"swarmop.role": "db", "swarmop.placement": DB_CONSTRAINT},
        constraints=[DB_CONSTRAINT],
    )
    _create(
        api,
        NGINX_SERVICE,
        docker.types.ContainerSpec(NGINX_IMAGE, env=nginx_agent_env(consul_addr_in_swarm)),
        replicas=1,
        labels={},
        ports=[{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 80, "PublishMode": "host"}],
    )
