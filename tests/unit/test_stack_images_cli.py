"""`swarmop images` refuses what would build a broken image, before touching any daemon."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from swarmop.cli.main import main
from swarmop.sandbox.errors import SandboxError
from swarmop.sandbox.stack_images import find_binaries, stack_image_tags


def test_a_dynamically_linked_busybox_is_refused() -> None:
    dynamic = shutil.which("ls")
    assert dynamic is not None
    with pytest.raises(SandboxError, match="dynamically linked"):
        find_binaries(busybox=dynamic, nginx=dynamic)


def test_missing_binaries_are_named(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match=r"busybox not found.*nginx not found"):
        find_binaries(busybox=str(tmp_path / "busybox"), nginx=str(tmp_path / "nginx"))


def test_tags_are_the_stack_files_names() -> None:
    assert stack_image_tags() == ("swarmop/nginx:latest", "swarmop/busybox:latest")
    assert stack_image_tags("1.0") == ("swarmop/nginx:1.0", "swarmop/busybox:1.0")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--tag", "a b"], "not a valid image tag"),
        (["-H", "tcp://10.1.2.3:2375"], "refusing plaintext Docker API"),
        (["-H", "ftp://x"], "give unix:///path or tcp://host:port"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["images", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("swarmop images: ") and message in err
    assert len(err.strip().splitlines()) == 1
