"""Time `sandbox up` (3 nodes, Consul, images) with a cold and a warm image cache, and `down`.

    .venv/bin/python bench/sandbox_up.py [--name NAME] [--rounds N]

Needs root. Uses its own sandbox (default name `swarmop-bench`) and removes it.
Cold: the image tarball cache is emptied first, so the images are assembled
again. Warm: the cached tarballs are reused. Also times an `up` on a sandbox that
is already up (a check only). Target: up under 60 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable

from swarmop.sandbox import Sandbox
from swarmop.sandbox.layout import CACHE_BASE


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--name", default="swarmop-bench")
    parser.add_argument("--rounds", type=int, default=3, help="warm rounds (default 3)")
    args = parser.parse_args()
    sandbox = Sandbox(args.name)
    sandbox.down()

    shutil.rmtree(CACHE_BASE / "images", ignore_errors=True)
    cold_up = timed(lambda: sandbox.up(nodes=3))
    again = timed(lambda: sandbox.up(nodes=3))
    downs = [timed(sandbox.down)]
    warm_ups = []
    for _ in range(args.rounds):
        warm_ups.append(timed(lambda: sandbox.up(nodes=3)))
        downs.append(timed(sandbox.down))

    print(f"sandbox up, cold image cache : {cold_up:6.2f} s")
    print(
        f"sandbox up, warm image cache : {statistics.median(warm_ups):6.2f} s median "
        f"(min {min(warm_ups):.2f}, max {max(warm_ups):.2f}, {len(warm_ups)} rounds)"
    )
    print(f"sandbox up, already up       : {again:6.2f} s")
    print(
        f"sandbox down                 : {statistics.median(downs):6.2f} s median "
        f"(min {min(downs):.2f}, max {max(downs):.2f}, {len(downs)} rounds)"
    )
    target_met = max(cold_up, *warm_ups) < 60
    print(f"target up < 60 s             : {'met' if target_met else 'MISSED'}")
    return 0 if target_met else 1


if __name__ == "__main__":
    sys.exit(main())
