"""The sandbox's images: built once per content, imported into every node's daemon.

No registry exists here, so each node gets the image by `docker import` of a root
filesystem tarball. Tarballs are cached under their content hash, and a node that
already has the image with that hash (an image label) is skipped.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker.errors

import swarmop
from swarmop.sandbox import rootfs
from swarmop.sandbox.dockerd import api_client
from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.info import BUSYBOX_IMAGE, NGINX_IMAGE
from swarmop.sandbox.layout import CACHE_BASE
from swarmop.sandbox.tools import Tools

HASH_LABEL = "swarmop.sandbox.content-hash"
PROXY_IMAGE_FILES = Path(swarmop.__file__).resolve().parent / "proxy" / "image"


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    tarball: Path
    content_hash: str
    changes: tuple[str, ...]


def _build(tag: str, image: rootfs.RootFs, cache_dir: Path) -> BuiltImage:
    content_hash = image.content_hash()
    short = tag.rsplit("/", maxsplit=1)[-1].split(":", maxsplit=1)[0]
    tarball = cache_dir / f"{short}-{content_hash[:20]}.tar"
    if not tarball.is_file():
        image.write_tar(tarball)
    changes = (*image.changes, f"LABEL {HASH_LABEL}={content_hash}")
    return BuiltImage(tag, tarball, content_hash, changes)


def build_all(tools: Tools, cache_dir: Path = CACHE_BASE / "images") -> list[BuiltImage]:
    busybox = Path(tools.busybox)
    proxy_files = PROXY_IMAGE_FILES if PROXY_IMAGE_FILES.is_dir() else None
    return [
        _build(BUSYBOX_IMAGE, rootfs.busybox_image(busybox), cache_dir),
        _build(NGINX_IMAGE, rootfs.nginx_image(busybox, Path(tools.nginx), proxy_files), cache_dir),
    ]


def installed_hash(api: docker.APIClient, tag: str) -> str | None:
    try:
        labels = api.inspect_image(tag)["Config"].get("Labels") or {}
    except docker.errors.ImageNotFound:
        return None
    value = labels.get(HASH_LABEL)
    return str(value) if value else None


def import_into(docker_host: str, images: list[BuiltImage]) -> list[str]:
    """Import every image whose content differs on that node; returns the tags imported."""
    api = api_client(docker_host, timeout=120)
    imported = []
    try:
        for image in images:
            if installed_hash(api, image.tag) == image.content_hash:
                continue
            repository, _, tag = image.tag.rpartition(":")
            try:
                api.import_image_from_file(
                    str(image.tarball), repository=repository, tag=tag, changes=list(image.changes)
                )
            except docker.errors.APIError as error:
                raise SandboxError(f"importing {image.tag} into {docker_host}: {error}") from error
            if installed_hash(api, image.tag) != image.content_hash:
                raise SandboxError(
                    f"{image.tag} on {docker_host} lacks its content label after import"
                )
            imported.append(image.tag)
    finally:
        api.close()
    return imported


def import_everywhere(docker_hosts: list[str], images: list[BuiltImage]) -> None:
    with ThreadPoolExecutor(max_workers=max(1, len(docker_hosts))) as pool:
        list(pool.map(lambda host: import_into(host, images), docker_hosts))
