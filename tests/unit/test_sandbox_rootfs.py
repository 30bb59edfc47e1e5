"""Image root filesystems: contents, content hash, tarball.

The image tests need busybox and Debian's nginx binary (`make setup`): without
them they skip, and fail under SWARMOP_REQUIRE_CLUSTER=1."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from swarmop.sandbox import rootfs
from swarmop.sandbox.testing import skip_or_fail
from swarmop.sandbox.tools import TOOLS_BASE


@pytest.fixture
def busybox() -> Path:
    found = shutil.which("busybox")
    if found is None:
        skip_or_fail("busybox not installed (make setup installs busybox-static)")
    return Path(found)


@pytest.fixture
def nginx() -> Path:
    found = shutil.which("nginx") or str(TOOLS_BASE / "nginx/usr/sbin/nginx")
    if not Path(found).is_file():
        skip_or_fail(f"nginx binary {found} not installed (make setup unpacks it)")
    return Path(found)


def test_busybox_image_keeps_the_binary_and_links_the_applets(busybox: Path) -> None:
    image = rootfs.busybox_image(busybox)
    assert image.entries["bin/busybox"].kind == "file"
    assert image.entries["bin/sh"] == rootfs.Entry("bin/sh", "symlink", 0o777, target="busybox")
    assert image.entries["usr/local/bin/web-backend"].mode == 0o755
    assert b"hostname > /www/index.html" in image.entries["usr/local/bin/web-backend"].data
    assert any(change.startswith("ENV PATH=") for change in image.changes)


def test_content_hash_is_stable_and_follows_every_input() -> None:
    def make(data: bytes, change: str = 'CMD ["x"]') -> rootfs.RootFs:
        image = rootfs.RootFs()
        image.file("etc/x", data)
        image.changes.append(change)
        return image

    assert make(b"a").content_hash() == make(b"a").content_hash()
    assert make(b"a").content_hash() != make(b"b").content_hash()
    assert make(b"a").content_hash() != make(b"a", 'CMD ["y"]').content_hash()


def test_tarball_holds_the_entries_with_parents(tmp_path: Path) -> None:
    image = rootfs.RootFs()
    image.file("usr/local/bin/tool", b"#!/bin/sh\n", 0o755)
    image.symlink("bin/sh", "busybox")
    image.directory("tmp", 0o1777)
    target = tmp_path / "image.tar"
    image.write_tar(target)
    with tarfile.open(target) as tar:
        members = {member.name: member for member in tar.getmembers()}
    assert {"usr", "usr/local", "usr/local/bin", "usr/local/bin/tool", "bin/sh", "tmp"} <= set(
        members
    )
    assert members["usr/local/bin/tool"].mode == 0o755
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777
    assert not list(tmp_path.glob("*.tmp"))


def test_nginx_image_copies_proxy_files_and_uses_their_entrypoint(
    tmp_path: Path, busybox: Path, nginx: Path
) -> None:
    proxy = tmp_path / "proxy"
    proxy.mkdir()
    (proxy / "entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n')
    image = rootfs.nginx_image(busybox, nginx, proxy)
    assert image.entries["swarmop/entrypoint.sh"].mode == 0o755
    assert 'ENTRYPOINT ["/swarmop/entrypoint.sh"]' in image.changes
    assert b"user nobody nogroup;" in image.entries["etc/nginx/nginx.conf"].data
    assert b"nobody" in image.entries["etc/passwd"].data
    assert any(path.startswith(("lib", "usr/lib")) and ".so" in path for path in image.entries)

    without = rootfs.nginx_image(busybox, nginx, None)
    assert not any(change.startswith("ENTRYPOINT") for change in without.changes)
