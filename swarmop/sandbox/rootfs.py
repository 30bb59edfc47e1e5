"""Root filesystems for the sandbox's images, described as plain entries.

An image is a list of entries (directory, file, symlink) plus the `docker import`
changes (CMD, ENV, ...). Describing it as data first gives a content hash of
exactly what goes into the tarball, so an unchanged image is never rebuilt.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from swarmop.sandbox.errors import SandboxError

# Bump when the builder's output changes for the same inputs.
BUILDER_VERSION = "1"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Entry:
    path: str  # inside the image, no leading slash
    kind: str  # "dir" | "file" | "symlink"
    mode: int = 0o755
    data: bytes = b""
    target: str = ""


@dataclass
class RootFs:
    entries: dict[str, Entry] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)

    def directory(self, path: str, mode: int = 0o755) -> None:
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            if sub not in self.entries:
                self.entries[sub] = Entry(sub, "dir", mode if depth == len(parts) else 0o755)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        path = path.strip("/")
        if "/" in path:
            self.directory(path.rsplit("/", 1)[0])
        self.entries[path] = Entry(path, "file", mode, data)

    def copy(self, path: str, source: Path, mode: int | None = None) -> None:
        real = source.resolve()
        self.file(
            path, real.read_bytes(), mode if mode is not None else real.stat().st_mode & 0o777
        )

    def symlink(self, path: str, target: str) -> None:
        path = path.strip("/")
        if "/" in path:
            self.directory(path.rsplit("/", 1)[0])
        self.entries[path] = Entry(path, "symlink", 0o777, target=target)

    def content_hash(self) -> str:
        digest = hashlib.sha256(f"builder {BUILDER_VERSION}\n".encode())
        for path in sorted(self.entries):
            entry = self.entries[path]
            digest.update(f"{entry.kind} {path} {entry.mode:o} {entry.target}\n".encode())
            digest.update(hashlib.sha256(entry.data).digest())
        for change in self.changes:
            digest.update(f"change {change}\n".encode())
        return digest.hexdigest()

    def write_tar(self, destination: Path) -> None:
        """Write the tarball atomically (a half-written cache file is never reused)."""
        destination.parent.mkdir(parents=True, exist_ok=True)
        tmp = destination.with_name(destination.name + f".{os.getpid()}.tmp")
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
            for path in sorted(self.entries):
                entry = self.entries[path]
                info = tarfile.TarInfo(path)
                info.mode = entry.mode
                info.mtime = 0
                if entry.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif entry.kind == "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = entry.target
                    tar.addfile(info)
                else:
                    info.size = len(entry.data)
                    tar.addfile(info, io.BytesIO(entry.data))
        os.replace(tmp, destination)


def busybox_base(busybox: Path) -> RootFs:
    """busybox with its applets, users root/nobody, and the usual top directories."""
    rootfs = RootFs()
    for directory in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "var", "run"):
        rootfs.directory(directory)
    rootfs.directory("tmp", 0o1777)
    rootfs.copy("bin/busybox", busybox, 0o755)
    listing = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=False)
    if listing.returncode != 0:
        raise SandboxError(f"{busybox} --list failed: {listing.stderr.strip()}")
    for applet in listing.stdout.split():
        # `busybox` itself is in the list: linking it would replace the binary.
        if applet != "busybox" and "/" not in applet:
            rootfs.symlink(f"bin/{applet}", "busybox")
    rootfs.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    rootfs.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    rootfs.file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n")
    rootfs.changes.append(f"ENV {PATH_ENV}")
    return rootfs


WEB_BACKEND = b"""#!/bin/sh
# The sandbox's web backend: serves /www on port 8080; index.html names the
# container, so a client can tell the tasks of one service apart.
mkdir -p /www
hostname > /www/index.html
httpd -f -p "${PORT:-8080}" -h /www &
trap 'kill $!; exit 0' TERM INT
wait
"""


def busybox_image(busybox: Path) -> RootFs:
    rootfs = busybox_base(busybox)
    rootfs.file("www/index.html", b"swarmop sandbox\n")
    rootfs.file("usr/local/bin/web-backend", WEB_BACKEND, 0o755)
    rootfs.changes.append('CMD ["/usr/local/bin/web-backend"]')
    return rootfs


NGINX_CONF = b"""user nobody nogroup;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr warn;

events {
    worker_connections 512;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /dev/stdout;
    sendfile on;
    include /etc/nginx/conf.d/*.conf;
}
"""

# A catch-all for unknown hosts; the proxy's rendered files go next to it.
DEFAULT_SERVER = b"""server {
    listen 80;
    server_name _;
    return 404;
}
"""

MIME_TYPES = b"""types {
    text/html html htm;
    text/css css;
    text/plain txt;
    application/javascript js;
    application/json json;
    image/png png;
    image/svg+xml svg;
}
"""

_LDD_PATH = re.compile(r"(/\S+)")


def shared_libraries(binary: Path) -> list[Path]:
    result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"ldd {binary} failed: {result.stderr.strip() or result.stdout}")
    libraries = []
    for line in result.stdout.splitlines():
        if "not found" in line:
            raise SandboxError(
                f"{binary} needs a library that is not installed: {line.strip()} (run `make setup`)"
            )
        match = _LDD_PATH.search(line.split("=>")[-1])
        if match:
            libraries.append(Path(match.group(1)))
    return libraries


def nginx_image(busybox: Path, nginx: Path, proxy_files: Path | None) -> RootFs:
    rootfs = busybox_base(busybox)
    rootfs.copy("usr/sbin/nginx", nginx, 0o755)
    for library in shared_libraries(nginx):
        rootfs.copy(str(library), library, 0o755)
    rootfs.file("etc/nginx/nginx.conf", NGINX_CONF)
    rootfs.file("etc/nginx/mime.types", MIME_TYPES)
    rootfs.file("etc/nginx/conf.d/00-default.conf", DEFAULT_SERVER)
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        rootfs.directory(f"var/lib/nginx/{temp}")
    rootfs.directory("var/log/nginx")
    rootfs.directory("var/lock")
    rootfs.symlink("var/log/nginx/access.log", "/dev/stdout")
    rootfs.symlink("var/log/nginx/error.log", "/dev/stderr")
    rootfs.directory("usr/share/nginx/html")
    has_entrypoint = False
    if proxy_files is not None and proxy_files.is_dir():
        for source in sorted(proxy_files.rglob("*")):
            if "__pycache__" in source.parts:
                continue
            relative = source.relative_to(proxy_files).as_posix()
            if source.is_dir():
                rootfs.directory(f"swarmop/{relative}")
            elif source.is_file():
                mode = 0o755 if source.suffix == ".sh" else source.stat().st_mode & 0o777
                rootfs.copy(f"swarmop/{relative}", source, mode)
        has_entrypoint = (proxy_files / "entrypoint.sh").is_file()
    rootfs.directory("swarmop")
    if has_entrypoint:
        # The entrypoint receives nginx's foreground command as its arguments.
        rootfs.changes.append('ENTRYPOINT ["/swarmop/entrypoint.sh"]')
    rootfs.changes.append('CMD ["/usr/sbin/nginx", "-g", "daemon off;"]')
    return rootfs
