"""An example handler module: `swarmop run examples/hello.py`.

Services labelled `example=hello` get a label `example.seen` with the desired
replica count and its source; a Consul key `swarmop/services/<name>/replicas`
or the label `swarmop.replicas` changes it. Nodes are logged once a minute.
"""

from __future__ import annotations

from typing import Any

import swarmop


@swarmop.on.startup()
def start(memo: Any, logger: Any, **_: Any) -> None:
    memo.greeting = "hello"
    logger.info("example handlers loaded")


@swarmop.on.create("service", labels={"example": "hello"})
@swarmop.on.update("service", labels={"example": "hello"}, id="hello-update")
def hello(
    *,
    service: swarmop.ServiceView,
    desired: Any,
    patch: swarmop.Patch,
    logger: Any,
    memo: Any,
    reason: str,
    **_: Any,
) -> str:
    replicas = desired.get("replicas")
    text = "unset" if replicas is None else f"{replicas.value} from {replicas.source.value}"
    logger.info(f"{memo.greeting} {service.name} ({reason}): replicas {text}")
    patch.set_label("example.seen", text)
    return f"seen: replicas {text}"  # the ok status message


@swarmop.on.field("service", field="desired.replicas", labels={"example": "hello"})
def replicas_changed(old: Any, new: Any, logger: Any, **_: Any) -> None:
    logger.info(f"desired replicas {old} -> {new}")


@swarmop.on.delete("service", labels={"example": "hello"})
def gone(name: str, logger: Any, **_: Any) -> None:
    logger.info(f"{name} was removed")


@swarmop.timer("node", interval=60)
def node_tick(node: swarmop.NodeView, cluster: Any, logger: Any, **_: Any) -> None:
    # A timer has no retries of its own: it reports on the node's status instead.
    if node.state != "ready":
        cluster.report("node", node.hostname, "error", f"node is {node.state}")
    else:
        cluster.report("node", node.hostname, "ok")  # withdraws an earlier report
    logger.debug(f"{node.hostname} is {node.availability}")
