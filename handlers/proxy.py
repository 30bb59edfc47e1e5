"""The proxy handler: keep the nginx config in Consul following the running tasks.

A daemon bound to the proxy service (SWARMOP_PROXY_SERVICE, default `nginx`)
lists services and running tasks every SWARMOP_PROXY_INTERVAL seconds (tasks
have no events), plans the config with `swarmop.proxy.plan`, coalesces bursts
with the proxy's debouncer and publishes with a check-and-set to
`<prefix>/proxy/<service>/config`. The agent beside nginx tests it with
`nginx -t`, moves it into place and reloads; that works wherever nginx runs.
A service left out of the config (an invalid value, a host + path another
service claims too) is reported on that service's own status with
`cluster.report` (blocked, "proxy: excluded: ..."), and the report withdrawn
once it is served again; the daemon's event log records both.

The agents' reports (`<prefix>/proxy/<service>/status/*`) are read every pass
too: a config an agent refused, or an agent that is stale, is put on the proxy
service's own status and logged (see proxy_agents). User templates come from
the directory in SWARMOP_PROXY_TEMPLATES, read when the daemon starts.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
from consul.exceptions import ConsulException

import swarmop
from swarmop.desired import DesiredState
from swarmop.proxy.debounce import ReloadDebouncer
from swarmop.proxy.model import ProxyError
from swarmop.proxy.plan import ProxyPlan, ProxyServiceInput, plan_proxy
from swarmop.proxy.publish import AgentStatus, PublishResult, publish_config, read_agent_status
from swarmop.proxy.render import NginxRenderer
from swarmop.proxy.validate import is_proxied

from . import facts as f
from .decision import Outcome, Status
from .proxy_agents import Published, agents_status
from .proxy_plan import addresses_by_network, excluded_message

PROXY_SERVICE = os.environ.get("SWARMOP_PROXY_SERVICE", "nginx")
TEMPLATES_ENV = "SWARMOP_PROXY_TEMPLATES"
INTERVAL = float(os.environ.get("SWARMOP_PROXY_INTERVAL", "1"))


def proxy_inputs(
    services: Iterable[swarmop.ServiceView],
    running_tasks: Iterable[swarmop.TaskView],
    network_names: Mapping[str, str],
    desired_of: Callable[[swarmop.ServiceView], DesiredState],
) -> list[ProxyServiceInput]:
    """The planner's input for every proxied service (pure)."""
    by_service: dict[str, list[swarmop.TaskView]] = {}
    for task in running_tasks:
        by_service.setdefault(task.service_id, []).append(task)
    inputs: list[ProxyServiceInput] = []
    for service in services:
        desired = desired_of(service)
        if not is_proxied(desired):
            continue
        tasks = by_service.get(service.id, [])
        inputs.append(
            ProxyServiceInput(
                service.name,
                desired,
                addresses_by_network(
                    f.network_names(service, network_names), f.task_addresses(tasks)
                ),
            )
        )
    return inputs


@dataclass
class ProxyKeeper:
    """Plan -> debounce -> publish, on an injected clock (pure but for `publish`)."""

    publish: Callable[[ProxyPlan], PublishResult]
    renderer: NginxRenderer
    debouncer: ReloadDebouncer[ProxyPlan] = field(default_factory=ReloadDebouncer)
    submitted_hash: str | None = None
    published_hash: str | None = None
    errors: Mapping[str, tuple[ProxyError, ...]] = field(default_factory=dict)
    publishes: int = 0

    def tick(
        self, inputs: Iterable[ProxyServiceInput], now: float
    ) -> tuple[ProxyPlan, PublishResult | None, dict[str, str]]:
        """One pass. Returns the plan, what publishing did (None: nothing due),
        and the exclusion messages that changed since the last pass, by service
        ('' = served again)."""
        plan = plan_proxy(inputs, renderer=self.renderer)
        if plan.config_hash != self.submitted_hash:
            self.debouncer.submit(plan, now)
            self.submitted_hash = plan.config_hash
        result: PublishResult | None = None
        due = self.debouncer.take(now)
        if due is not None:
            result = self.publish(due)
            if result is PublishResult.CONFLICT:
                self.submitted_hash = None  # someone else wrote: plan and try again
            else:
                self.published_hash = due.config_hash
                if result is PublishResult.PUBLISHED:
                    self.publishes += 1
        changed: dict[str, str] = {}
        for name in sorted(set(plan.errors) | set(self.errors)):
            new = plan.errors.get(name, ())
            if new != self.errors.get(name, ()):
                changed[name] = excluded_message(new) if new else ""
        self.errors = dict(plan.errors)
        return plan, result, changed


class _ConsulShim:
    """py-consul's `kv.get`/`kv.put` shape over the operator's Consul client."""

    def __init__(self, kv: Any) -> None:
        self._kv = kv
        self.kv = self

    def get(self, key: str, recurse: bool = False) -> tuple[int, Any]:
        if recurse:
            index, entries = self._kv.get_tree(key)
            return index, [
                {
                    "Key": entry.key,
                    "Value": None if entry.value is None else entry.value.encode("utf-8"),
                    "ModifyIndex": entry.modify_index,
                }
                for entry in entries.values()
            ] or None
        entry = self._kv.get(key)
        if entry is None:
            return 0, None
        value = None if entry.value is None else entry.value.encode("utf-8")
        return entry.modify_index, {"Value": value, "ModifyIndex": entry.modify_index}

    def put(self, key: str, value: str | bytes, cas: int | None = None) -> bool:
        return bool(self._kv.put(key, value, cas=cas))


def _network_names(api: Any) -> dict[str, str]:
    return {str(net["Id"]): str(net["Name"]) for net in api.networks()}


def is_proxy_service(name: str, **_: Any) -> bool:
    return name == PROXY_SERVICE


def template_dir(env: Mapping[str, str]) -> str | None:
    """The user template directory named by SWARMOP_PROXY_TEMPLATES (None: unset).

    Raises ValueError when it names no directory: rendering the packaged
    template instead would silently replace the user's config.
    """
    value = env.get(TEMPLATES_ENV, "").strip()
    if not value:
        return None
    if not os.path.isdir(value):
        raise ValueError(f"{TEMPLATES_ENV}={value!r} is not a directory")
    return value


def renderer_from_env(env: Mapping[str, str]) -> NginxRenderer:
    """The daemon's renderer: the user's templates first, then the packaged ones.

    Raises ValueError for a bad directory and jinja2's TemplateError for a
    template that does not compile.
    """
    return NginxRenderer(template_dir(env))


@swarmop.daemon("service", id="swarmop.proxy", when=is_proxy_service)
def keep_proxy_config(cluster: Any, logger: logging.Logger, stopped: Any, **_: Any) -> None:
    if cluster.consul is None:
        logger.warning(
            "proxy configs need Consul: the agent beside nginx reads them from "
            "<prefix>/proxy/%s/config; not publishing",
            PROXY_SERVICE,
        )
        return
    try:
        renderer = renderer_from_env(os.environ)
    except (ValueError, jinja2.TemplateError) as error:
        text = f"proxy: templates unusable, not publishing: {error}"
        logger.error("%s", text)
        cluster.report("service", PROXY_SERVICE, "error", text)
        return
    consul = _ConsulShim(cluster.consul)
    prefix = cluster.prefix

    def publish(plan: ProxyPlan) -> PublishResult:
        return publish_config(
            consul,
            prefix=prefix,
            proxy_service=PROXY_SERVICE,
            config=plan.config,
            expected_hash=plan.config_hash,
        )

    def agents() -> dict[str, AgentStatus]:
        return read_agent_status(consul, prefix=prefix, proxy_service=PROXY_SERVICE)

    keeper = ProxyKeeper(publish=publish, renderer=renderer)
    watch = AgentWatch(agents)
    try:
        _keep(cluster, logger, stopped, keeper, watch)
    finally:
        # Without this daemon nothing is excluded any more (the proxy service is
        # gone, or the operator stops): withdraw what it put on services' statuses.
        for service in keeper.errors:
            cluster.report("service", service, "ok")
        if watch.reported:
            cluster.report("service", PROXY_SERVICE, "ok")


@dataclass
class AgentWatch:
    """Follows the agents' reports; says when the proxy service's status must change."""

    read: Callable[[], Mapping[str, AgentStatus]]
    published: Published | None = None
    reported: Status | None = None

    def check(self, published_hash: str | None, now: float) -> tuple[bool, Status | None]:
        """(changed, status): whether the proxy service's report must change, and
        to what (None: withdraw it)."""
        if published_hash is not None and (
            self.published is None or self.published.hash != published_hash
        ):
            self.published = Published(published_hash, now)
        try:
            found = agents_status(self.read(), self.published, now)
        except swarmop.ConsulUnavailable:
            return False, self.reported  # passing: looked at again next pass
        except ConsulException as error:
            # Refused (ACLs, a bad request): it stays so until someone acts.
            found = Status.pending(f"proxy: cannot read the agents' reports: {error}")
        if found == self.reported:
            return False, found
        self.reported = found
        return True, found


def report_agents(cluster: Any, logger: logging.Logger, found: Status | None) -> None:
    """Put the agents' problem on the proxy service's status, or withdraw it."""
    if found is None:
        logger.info("proxy: every agent serves the published config")
        cluster.report("service", PROXY_SERVICE, "ok")
        return
    if found.outcome is Outcome.ERROR:
        logger.error("%s", found.message)
    else:
        logger.warning("%s", found.message)
    cluster.report("service", PROXY_SERVICE, found.outcome.value, found.message)


def report_exclusion(cluster: Any, logger: logging.Logger, service: str, text: str) -> None:
    """Put a service's exclusion on its status, or withdraw it ('' = served again)."""
    if text:
        logger.warning("%s: %s", service, text)
        cluster.report("service", service, "blocked", text)
    else:
        logger.info("%s: proxy serves it again", service)
        cluster.report("service", service, "ok")


def _keep(
    cluster: Any, logger: logging.Logger, stopped: Any, keeper: ProxyKeeper, watch: AgentWatch
) -> None:
    api = cluster.api
    names = _network_names(api)
    clock = time.monotonic
    while True:
        services = [swarmop.ServiceView(attrs) for attrs in api.services()]
        tasks = [
            task
            for task in (
                swarmop.TaskView(attrs) for attrs in api.tasks(filters={"desired-state": "running"})
            )
            if task.running
        ]
        if any(t not in names for s in services for t in s.networks):
            names = _network_names(api)
        inputs = proxy_inputs(
            services, tasks, names, lambda s: cluster.desired("service", s.name, s.labels)
        )
        plan, result, changed = keeper.tick(inputs, clock())
        if result is PublishResult.PUBLISHED:
            logger.info(
                "proxy config published: %d virtual host(s), sha256 %s",
                len(plan.vhosts),
                keeper.published_hash and keeper.published_hash[:12],
            )
        elif result is PublishResult.CONFLICT:
            logger.warning("proxy config changed in Consul meanwhile; planning again")
        listed = {service.name for service in services}
        for service, text in changed.items():
            # A removed service's status goes with it; a report would bring it back.
            if text or service in listed:
                report_exclusion(cluster, logger, service, text)
        changed_agents, found = watch.check(keeper.published_hash, time.time())
        if changed_agents:
            report_agents(cluster, logger, found)
        wait = INTERVAL
        deadline = keeper.debouncer.deadline()
        if deadline is not None:
            wait = max(0.05, min(wait, deadline - clock()))
        if stopped.wait(wait):
            return
