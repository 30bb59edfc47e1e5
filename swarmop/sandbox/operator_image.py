"""The operator's container image, built without a registry, for the sandbox and CI.

1. A base image `swarmop/python:local`: the machine's own Python (its prefix,
   `sys.base_prefix`: interpreter, libpython, the standard library without
   site-packages and tests, pip) plus the shared libraries `ldd` lists, on the
   sandbox's busybox root filesystem; `docker import`ed into the manager.
2. A wheelhouse: `pip wheel <repo> -w <repo>/wheelhouse` (swarmop and its
   dependencies).
3. `docker build` of the repository's Dockerfile on the manager's daemon with
   `BASE_IMAGE=swarmop/python:local` and pip pointed at the wheelhouse, so the
   build needs no network; then `docker save` from the manager and `docker load`
   into every other node.

`python -m swarmop.sandbox.operator_image --name NAME` does all of it and prints
the times.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from swarmop.sandbox import images, rootfs
from swarmop.sandbox.dockerd import api_client
from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.info import SandboxInfo
from swarmop.sandbox.layout import CACHE_BASE
from swarmop.sandbox.sandbox import running_sandbox_from_args
from swarmop.sandbox.tools import find_tools

PYTHON_IMAGE = "swarmop/python:local"
OPERATOR_IMAGE = "swarmop/operator:local"
REPO = Path(__file__).resolve().parents[2]
_SKIPPED_STDLIB = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "__pycache__"}
_LIBDIR = "usr/lib/x86_64-linux-gnu"
_MANYLINUX_LIBS = (
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libutil.so.1",
    "libgcc_s.so.1",
    "libz.so.1",
)


def python_base(busybox: Path, prefix: Path | None = None) -> rootfs.RootFs:
    """The machine's Python under /usr/local, with pip and the libraries it needs."""
    prefix = Path(prefix or sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    binary = prefix / "bin" / version
    stdlib = prefix / "lib" / version
    if not binary.is_file() or not (stdlib / "os.py").is_file():
        raise SandboxError(f"{prefix} does not look like a Python installation")
    image = rootfs.busybox_base(busybox)
    image.copy(f"usr/local/bin/{version}", binary, 0o755)
    image.symlink("usr/local/bin/python3", version)
    image.symlink("usr/local/bin/python", version)
    needed: set[Path] = set(rootfs.shared_libraries(binary))
    for source in sorted(stdlib.rglob("*")):
        relative = source.relative_to(stdlib)
        if set(relative.parts) & _SKIPPED_STDLIB or source.suffix == ".pyc":
            continue
        target = f"usr/local/lib/{version}/{relative.as_posix()}"
        if source.is_dir():
            image.directory(target)
        elif source.is_file():
            image.copy(target, source)
            if source.suffix == ".so":
                needed.update(rootfs.shared_libraries(source))
    for package in ("pip",):
        found = stdlib / "site-packages" / package
        if found.is_dir():
            for source in sorted(found.rglob("*")):
                if "__pycache__" in source.parts or not source.is_file():
                    continue
                inside = source.relative_to(stdlib).as_posix()
                image.copy(f"usr/local/lib/{version}/{inside}", source)
    # Binary wheels (manylinux) link against these without the interpreter needing them.
    for name in _MANYLINUX_LIBS:
        found_lib = Path("/lib/x86_64-linux-gnu") / name
        if found_lib.exists():
            needed.add(found_lib)
    for library in sorted(needed):
        # libpython lives in the prefix (found there through the rpath on the
        # machine); in the image it goes where the loader looks by default.
        if str(library).startswith(str(prefix)):
            image.copy(f"{_LIBDIR}/{library.name}", library, 0o755)
        else:
            image.copy(str(library), library, 0o755)
    image.changes.append("ENV LANG=C.UTF-8")
    image.changes.append(f'CMD ["/usr/local/bin/{version}"]')
    return image


def build_wheelhouse(repo: Path = REPO) -> Path:
    wheelhouse = repo / "wheelhouse"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", str(repo), "-w", str(wheelhouse)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SandboxError(f"pip wheel failed: {result.stderr.strip()[-2000:]}")
    return wheelhouse


def build_operator_image(
    info: SandboxInfo, busybox: Path, *, repo: Path = REPO, tag: str = OPERATOR_IMAGE
) -> dict[str, float]:
    """Build the image on the manager and load it into every node; returns timings."""
    timings: dict[str, float] = {}
    started = time.monotonic()
    base = images._build(PYTHON_IMAGE, python_base(busybox), CACHE_BASE / "images")
    images.import_into(info.manager_docker_host, [base])
    timings["base"] = time.monotonic() - started

    started = time.monotonic()
    wheelhouse = build_wheelhouse(repo)
    timings["wheelhouse"] = time.monotonic() - started
    try:
        timings.update(_build_and_distribute(info, repo, tag))
    finally:
        shutil.rmtree(wheelhouse, ignore_errors=True)  # only the build context needs it
    return timings


def _build_and_distribute(info: SandboxInfo, repo: Path, tag: str) -> dict[str, float]:
    timings: dict[str, float] = {}

    started = time.monotonic()
    api = api_client(info.manager_docker_host, timeout=900)
    try:
        log: list[str] = []
        for chunk in api.build(
            path=str(repo),
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            buildargs={
                "BASE_IMAGE": PYTHON_IMAGE,
                "PACKAGE": "swarmop",
                "PIP_OPTIONS": "--no-index --find-links /src/wheelhouse",
            },
        ):
            if "stream" in chunk:
                log.append(str(chunk["stream"]))
            if "error" in chunk:
                raise SandboxError(f"docker build: {chunk['error']}\n{''.join(log)[-3000:]}")
        timings["build"] = time.monotonic() - started

        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            tarball = Path(tmp) / "operator.tar"
            with tarball.open("wb") as out:
                for piece in api.get_image(tag):
                    out.write(piece)
            for node in info.nodes:
                if node.docker_host == info.manager_docker_host:
                    continue
                other = api_client(node.docker_host, timeout=300)
                try:
                    with tarball.open("rb") as data:
                        list(other.load_image(data))
                finally:
                    other.close()
        timings["distribute"] = time.monotonic() - started
        timings["size_mb"] = float(api.inspect_image(tag)["Size"]) / 1e6
    finally:
        api.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    info = running_sandbox_from_args(argv, "build the operator image into a sandbox")
    if info is None:
        return 1
    timings = build_operator_image(info, Path(find_tools().busybox))
    print(" ".join(f"{key}={value:.1f}" for key, value in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
