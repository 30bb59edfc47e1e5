"""Render virtual hosts to nginx config text. Pure: same input, same bytes.

Templates come from the package (`swarmop.templates`, `nginx/swarmop.conf.j2`)
or from a user directory searched first, so a user can override one template
and keep the rest. Autoescape is off (this is not HTML) and undefined names
raise, so a template typo fails loudly instead of rendering an empty directive.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from swarmop.proxy.model import VirtualHost

DEFAULT_TEMPLATE = "nginx/swarmop.conf.j2"
DEFAULT_LISTEN_PORT = 80


class DuplicateRoute(ValueError):
    """Two virtual hosts for one host + path; nginx would refuse the file."""


def config_hash(text: str) -> str:
    """sha256 hex of the UTF-8 text: what `sha256sum` prints for the same file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class NginxRenderer:
    """A Jinja2 environment bound to one template; reuse it across renders."""

    def __init__(
        self,
        template_dir: str | Path | None = None,
        *,
        template_name: str = DEFAULT_TEMPLATE,
        listen_port: int = DEFAULT_LISTEN_PORT,
    ) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if template_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(template_dir)))
        loaders.append(jinja2.PackageLoader("swarmop.templates", "."))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._template = self._env.get_template(template_name)
        self._listen_port = listen_port

    def render(self, vhosts: Iterable[VirtualHost]) -> str:
        # Rebuilding each vhost re-runs the allowlists: whatever produced these
        # objects, nothing unchecked reaches the template.
        checked = sorted(
            (dataclasses.replace(vhost) for vhost in vhosts),
            key=lambda vhost: (vhost.host, vhost.path, vhost.service),
        )
        return self._template.render(**_context(checked, self._listen_port))


def _context(vhosts: list[VirtualHost], listen_port: int) -> dict[str, Any]:
    servers: dict[str, list[dict[str, Any]]] = {}
    seen: dict[tuple[str, str], str] = {}
    for vhost in vhosts:
        route = (vhost.host, vhost.path)
        if route in seen:
            raise DuplicateRoute(
                f"{vhost.host}{vhost.path} is claimed by {seen[route]} and {vhost.service}"
            )
        seen[route] = vhost.service
        servers.setdefault(vhost.host, []).append(
            {
                "path": vhost.path,
                "service": vhost.service,
                "upstream": vhost.upstream_name if vhost.addresses else None,
            }
        )
    for locations in servers.values():
        if not any(location["path"] == "/" for location in locations):
            # Without it nginx would serve files from its own html/ directory.
            locations.append({"path": "/", "service": None, "upstream": None})
        locations.sort(key=lambda location: location["path"])
    return {
        "listen": listen_port,
        "server_names_hash_max_size": _names_hash_size(len(servers)),
        "vhosts": vhosts,
        "upstreams": [
            {"name": vhost.upstream_name, "servers": list(vhost.upstream_servers)}
            for vhost in sorted(vhosts, key=lambda vhost: vhost.upstream_name)
            if vhost.addresses
        ],
        "servers": [
            {"host": host, "locations": locations} for host, locations in sorted(servers.items())
        ],
    }


def _names_hash_size(names: int) -> int:
    """nginx's default (512) is too small for large fleets; it fails with
    "could not build server_names_hash" instead of growing."""
    size = 512
    while size < 4 * names:
        size *= 2
    return size


@lru_cache(maxsize=8)
def _renderer(template_dir: str | None, listen_port: int) -> NginxRenderer:
    return NginxRenderer(template_dir, listen_port=listen_port)


def render_nginx(
    vhosts: Iterable[VirtualHost],
    *,
    template_dir: str | Path | None = None,
    listen_port: int = DEFAULT_LISTEN_PORT,
) -> str:
    """The http-context config for `vhosts` (validated, conflict-free)."""
    directory = None if template_dir is None else str(template_dir)
    return _renderer(directory, listen_port).render(vhosts)
