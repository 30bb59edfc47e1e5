"""LazyAPIClient: no daemon contact when made; each use retries until one works."""

from __future__ import annotations

from pathlib import Path

import docker.errors
import pytest

from swarmop.clients.docker import LazyAPIClient
from swarmop.settings import resolve_docker


def test_made_without_a_daemon_and_failing_only_when_used(tmp_path: Path) -> None:
    client = LazyAPIClient(resolve_docker(host=f"unix://{tmp_path}/absent.sock", env={}))
    client.close()  # nothing made yet: nothing to close
    for _ in range(2):  # a failed attempt is not cached
        with pytest.raises(docker.errors.DockerException, match="API version"):
            client.services()
