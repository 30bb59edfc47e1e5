"""Validator: run the real `nginx -t` on rendered config text.

The one module in swarmop.proxy that starts a process. It wraps the http-context
text in a minimal main config under a private temporary prefix (pid, temp
paths and logs stay inside it), so the check needs no /etc/nginx and leaves
nothing behind.
"""

from __future__ import annotations

import grp
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_NGINX = Path("/opt/swarmop/nginx/usr/sbin/nginx")
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass(frozen=True)
class NginxCheck:
    ok: bool
    output: str


def default_user() -> str | None:
    """The `user` directive nginx needs when started as root: its built-in
    default group `nobody` does not exist on Debian, `nogroup` does."""
    if os.geteuid() != 0:
        return None
    try:
        grp.getgrnam("nogroup")
    except KeyError:
        return "nobody"
    return "nobody nogroup"


def main_config(include: Path, prefix: Path, *, user: str | None) -> str:
    """A complete nginx.conf that includes `include` in the http context."""
    temp = "\n".join(f"    {name}_temp_path {prefix}/tmp/{name};" for name in _TEMP_PATHS)
    user_line = f"user {user};\n" if user else ""
    return (
        f"{user_line}worker_processes 1;\n"
        f"pid {prefix}/nginx.pid;\n"
        "error_log stderr;\n"
        "events { worker_connections 64; }\n"
        "http {\n"
        "    access_log off;\n"
        f"{temp}\n"
        f"    include {include};\n"
        "}\n"
    )


def nginx_test(
    config_text: str,
    *,
    nginx: Path = DEFAULT_NGINX,
    user: str | None = None,
    timeout: float = 30.0,
) -> NginxCheck:
    """`nginx -t` on `config_text` as an http-context include.

    `user` defaults to `default_user()`. A missing binary or a hung check is a
    failed check with the reason as output, never an exception.
    """
    if not nginx.exists():
        return NginxCheck(False, f"nginx binary not found at {nginx}")
    with tempfile.TemporaryDirectory(prefix="swarmop-nginx-t-") as directory:
        prefix = Path(directory)
        (prefix / "tmp").mkdir()
        include = prefix / "swarmop.conf"
        include.write_text(config_text, encoding="utf-8")
        main = prefix / "nginx.conf"
        main.write_text(
            main_config(include, prefix, user=user if user is not None else default_user()),
            encoding="utf-8",
        )
        try:
            done = subprocess.run(
                [str(nginx), "-t", "-q", "-p", str(prefix), "-c", str(main), "-e", "stderr"],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return NginxCheck(False, f"nginx -t could not run: {error}")
        return NginxCheck(done.returncode == 0, (done.stdout + done.stderr).strip())
