"""A minimal Redis (RESP2) client, so tests can look at what the router wrote."""

from __future__ import annotations

import socket
import ssl


class Resp:
    def __init__(self, port: int, password: str, host: str = "127.0.0.1",
                 tls: ssl.SSLContext | None = None, server_name: str | None = None):
        self.sock = socket.create_connection((host, port), timeout=5)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_name or host)
        self.file = self.sock.makefile("rb")
        self("AUTH", password)

    def __call__(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.file.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")

    def close(self) -> None:
        self.sock.close()
