"""Reverse-proxy configuration: validate, plan, render, debounce, deliver.

Public API (see docs/proxy.md):
- `plan_proxy(services) -> ProxyPlan`: desired state + task addresses of all
  services -> config text, hash, virtual hosts, per-service errors. Pure.
- `render_nginx(vhosts)`, `NginxRenderer(template_dir)`, `config_hash(text)`.
- `vhost_from_desired`, `drop_conflicts`, `VirtualHost`, `ProxyError`.
- `DebouncedApplier` / `ReloadDebouncer`: coalesce bursts into few reloads.
- `publish_config(consul, ...)`, `read_agent_status(consul, ...)`: Consul delivery.
- `nginx_test(text)`: the real `nginx -t` on rendered text.
"""

from swarmop.proxy.allowlist import InvalidProxyValue
from swarmop.proxy.debounce import DebouncedApplier, ReloadDebouncer
from swarmop.proxy.model import ProxyError, VirtualHost
from swarmop.proxy.nginx_check import NginxCheck, nginx_test
from swarmop.proxy.plan import ProxyPlan, ProxyServiceInput, plan_proxy
from swarmop.proxy.publish import (
    AgentStatus,
    PublishResult,
    proxy_keys,
    publish_config,
    read_agent_status,
)
from swarmop.proxy.render import DuplicateRoute, NginxRenderer, config_hash, render_nginx
from swarmop.proxy.validate import drop_conflicts, is_proxied, vhost_from_desired

__all__ = [
    "AgentStatus",
    "DebouncedApplier",
    "DuplicateRoute",
    "InvalidProxyValue",
    "NginxCheck",
    "NginxRenderer",
    "ProxyError",
    "ProxyPlan",
    "ProxyServiceInput",
    "PublishResult",
    "ReloadDebouncer",
    "VirtualHost",
    "config_hash",
    "drop_conflicts",
    "is_proxied",
    "nginx_test",
    "plan_proxy",
    "proxy_keys",
    "publish_config",
    "read_agent_status",
    "render_nginx",
    "vhost_from_desired",
]
