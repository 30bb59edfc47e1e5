"""The stack file's nginx and example-app images, built without a registry.

docker-stack.yml runs `swarmop/nginx` (nginx with swarmop's config agent, the
files in `swarmop/proxy/image/`) and `swarmop/busybox` (the seeds' example web
backend and the stand-in database). They are not published anywhere: this
builds them the way the sandbox builds its own, from this machine's static
busybox and nginx binaries (plus the shared libraries `ldd` lists for nginx),
and `docker import`s them into the Docker hosts given. An image already there
with the same content is left alone.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from swarmop.sandbox import images, rootfs
from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.tools import TOOLS_BASE

NGINX_REPOSITORY = "swarmop/nginx"
APP_REPOSITORY = "swarmop/busybox"
DEFAULT_TAG = "latest"
"""What docker-stack.yml names (SWARMOP_NGINX_IMAGE, APP_IMAGE)."""


@dataclass(frozen=True)
class Binaries:
    busybox: Path
    nginx: Path


def _find(program: str, fallback: Path) -> Path | None:
    found = shutil.which(
        program, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    )
    if found:
        return Path(found)
    return fallback if fallback.is_file() else None


def _require_static(busybox: Path) -> None:
    """The image has no C library: a dynamically linked busybox would not start in it."""
    result = subprocess.run(["ldd", str(busybox)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    if result.returncode == 0 and "statically linked" not in output:
        raise SandboxError(
            f"{busybox} is dynamically linked and would not run in the image: "
            "give a static busybox (Debian: apt-get install busybox-static) with --busybox"
        )


def find_binaries(busybox: str | None = None, nginx: str | None = None) -> Binaries:
    """The binaries to build from: the paths given, else this machine's."""
    chosen_busybox = Path(busybox) if busybox else _find("busybox", Path("/bin/busybox"))
    chosen_nginx = (
        Path(nginx) if nginx else _find("nginx", TOOLS_BASE / "nginx" / "usr" / "sbin" / "nginx")
    )
    missing = [
        f"{name} not found{hint}"
        for name, path, hint in (
            ("busybox", chosen_busybox, " (Debian: busybox-static; or --busybox PATH)"),
            ("nginx", chosen_nginx, " (Debian: nginx-light or nginx; or --nginx PATH)"),
        )
        if path is None or not path.is_file()
    ]
    if missing:
        raise SandboxError("; ".join(missing))
    assert chosen_busybox is not None and chosen_nginx is not None
    _require_static(chosen_busybox)
    return Binaries(busybox=chosen_busybox, nginx=chosen_nginx)


def stack_image_tags(tag: str = DEFAULT_TAG) -> tuple[str, str]:
    """(nginx image, example app image) under one tag."""
    return f"{NGINX_REPOSITORY}:{tag}", f"{APP_REPOSITORY}:{tag}"


def build_stack_images(binaries: Binaries, tag: str, workdir: Path) -> list[images.BuiltImage]:
    """Both images as tarballs under `workdir`, with their `docker import` changes."""
    nginx_tag, app_tag = stack_image_tags(tag)
    return [
        images._build(
            nginx_tag,
            rootfs.nginx_image(binaries.busybox, binaries.nginx, images.PROXY_IMAGE_FILES),
            workdir,
        ),
        images._build(app_tag, rootfs.busybox_image(binaries.busybox), workdir),
    ]


def install_stack_images(
    docker_hosts: Sequence[str], binaries: Binaries, tag: str = DEFAULT_TAG
) -> list[str]:
    """Build both images and import them into every host; returns their tags."""
    if not docker_hosts:
        raise SandboxError("no Docker host to import the images into")
    with tempfile.TemporaryDirectory(prefix="swarmop-images-") as workdir:
        built = build_stack_images(binaries, tag, Path(workdir))
        images.import_everywhere(list(docker_hosts), built)
    return [image.tag for image in built]
