"""SIGTERM while `swarmop run` is still starting (loading handler modules) is a
clean stop with status 0, not death by signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_sigterm_while_loading_handlers_exits_cleanly(tmp_path: Path) -> None:
    loading = tmp_path / "loading"
    module = tmp_path / "slow_handlers.py"
    module.write_text(
        f"import pathlib, time\npathlib.Path({str(loading)!r}).touch()\ntime.sleep(60)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONSUL_"))}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/absent.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "swarmop", "run", str(module)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not loading.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the handler module was never loaded"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
