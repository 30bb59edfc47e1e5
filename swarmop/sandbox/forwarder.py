"""A TCP forwarder from an address inside a network namespace to one on the host.

Containers on the sandbox's nodes cannot reach the host's loopback, where Consul
listens. This process creates its listening socket inside the hub namespace (a
socket keeps the namespace it was created in) and opens every outgoing
connection from the host's namespace:

    python -m swarmop.sandbox.forwarder --sandbox NAME --netns /run/netns/NS \
        --listen ADDR:PORT --target 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import socket
import sys
import threading
from collections.abc import Sequence

_CLONE_NEWNET = 0x40000000
_BUFFER = 65536


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns failed: {os.strerror(errno)}")


def listen_in_netns(netns_path: str, address: tuple[str, int]) -> socket.socket:
    """A listening socket bound inside `netns_path`; the caller stays in its own namespace."""
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    try:
        _setns(target)
        try:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(address)
            listener.listen(128)
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
    return listener


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(_BUFFER)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _serve_one(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(client, target), daemon=True).start()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m swarmop.sandbox.forwarder")
    parser.add_argument("--sandbox", required=True, help="sandbox name (marks the process)")
    parser.add_argument("--netns", required=True, help="path of the namespace to listen in")
    parser.add_argument("--listen", required=True, type=_address)
    parser.add_argument("--target", required=True, type=_address)
    args = parser.parse_args(argv)
    try:
        listener = listen_in_netns(args.netns, args.listen)
    except OSError as error:
        print(
            f"forwarder: cannot listen on {args.listen} in {args.netns}: {error}", file=sys.stderr
        )
        return 1
    print(f"forwarder: {args.listen} in {args.netns} -> {args.target}", flush=True)
    serve(listener, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
