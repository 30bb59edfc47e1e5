"""A throwaway CA and a TLS-terminating loopback proxy, to put real Docker and
Consul endpoints of the sandbox behind TLS as a production setup would.

Certificates come from the `openssl` command line; the proxy forwards the
decrypted bytes to a unix socket or a TCP address and can require a client
certificate signed by the CA (as `dockerd --tlsverify` does).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

SERVER_EXTENSIONS = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
CLIENT_EXTENSIONS = "extendedKeyUsage=clientAuth\n"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Authority:
    """A CA with one server and one client certificate, in Docker's file names:
    ca.pem, cert.pem, key.pem (the client's) and server-cert.pem, server-key.pem."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server-cert.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server-key.pem"


def make_authority(folder: Path, name: str) -> Authority:
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-keyout", "ca-key.pem", "-out", "ca.pem", "-subj", f"/CN={name} test CA",
        cwd=folder,
    )  # fmt: skip
    for stem, key, cert, extensions in (
        ("server", "server-key.pem", "server-cert.pem", SERVER_EXTENSIONS),
        ("client", "key.pem", "cert.pem", CLIENT_EXTENSIONS),
    ):
        (folder / f"{stem}.ext").write_text(extensions)
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
            "-out", f"{stem}.csr", "-subj", f"/CN={name} {stem}",
            cwd=folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
            "-CAcreateserial", "-days", "1", "-out", cert, "-extfile", f"{stem}.ext",
            cwd=folder,
        )  # fmt: skip
    return Authority(folder)


class TLSProxy:
    """Listens with TLS on 127.0.0.1 and forwards each connection in the clear to
    `upstream`: a unix socket path, or (host, port)."""

    def __init__(
        self,
        authority: Authority,
        upstream: str | tuple[str, int],
        *,
        require_client_cert: bool = False,
    ) -> None:
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(authority.server_cert, authority.server_key)
        if require_client_cert:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(authority.ca)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.handshake_failures = 0
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _connect_upstream(self) -> socket.socket:
        if isinstance(self.upstream, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.upstream)
            return sock
        return socket.create_connection(self.upstream)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            secure = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshake_failures += 1
            client.close()
            return
        try:
            upstream = self._connect_upstream()
        except OSError:
            secure.close()
            return
        threading.Thread(target=_pipe, args=(upstream, secure), daemon=True).start()
        _pipe(secure, upstream)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
