"""The proxy forwarder: listens on 127.0.0.1:<port> inside a sandbox and connects each client to
the proxy's Unix socket, which the sandbox has mounted (the sandbox itself has no network).

A standalone standard-library script (Python >= 3.8, no agentgym import): the runtimes run it
with the sandbox's own ``python3``, from a read-only mount at ``/run/agentgym-forward.py``::

    python3 forward.py --listen 127.0.0.1:8000 --connect /run/agentgym/proxy.sock [--ready]
    python3 forward.py --probe 127.0.0.1:8000 [--timeout 5]

``--ready`` prints ``ready`` on stdout once the port listens, then closes stdout (the local
runtime waits for that line before it runs a command). ``--probe`` exits 0 as soon as an HTTP
request sent to the port gets an HTTP answer (so the whole chain, proxy included, works), 1
when none came within ``--timeout`` seconds.

One thread pair per connection copies bytes both ways; a half-close is passed on, so
streaming responses (SSE) and keep-alive connections behave as over TCP. The serving path
uses only the ``_socket`` and ``_thread`` builtins: a command waits for the forwarder to
listen, so its start-up time is on every sandboxed command's path.
"""

from __future__ import annotations

import _socket
import _thread
import os
import sys

__all__ = ["main", "probe", "serve"]

BUFFER = 65536


def _pump(src: _socket.socket, dst: _socket.socket, done: _thread.LockType | None = None) -> None:
    try:
        while True:
            data = src.recv(BUFFER)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:  # noqa: SIM105 - contextlib would cost start-up time
            dst.shutdown(_socket.SHUT_WR)
        except OSError:
            pass
        if done is not None:
            done.release()


def _handle(client: _socket.socket, unix_path: str) -> None:
    upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        upstream.connect(unix_path)
    except OSError as e:
        sys.stderr.write(f"agentgym forwarder: cannot connect to {unix_path}: {e}\n")
        client.close()
        upstream.close()
        return
    done = _thread.allocate_lock()
    done.acquire()
    _thread.start_new_thread(_pump, (upstream, client, done))
    _pump(client, upstream)
    done.acquire()  # the other direction finished too
    client.close()
    upstream.close()


def serve(host: str, port: int, unix_path: str, ready: bool = False) -> None:
    """Accept connections on ``host:port`` forever, each forwarded to ``unix_path``."""
    server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    server.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(128)
    if ready:
        os.write(1, b"ready\n")
        os.close(1)  # whoever waits on our stdout sees EOF after the line
    while True:
        fd, _ = server._accept()  # type: ignore[attr-defined]  # the builtin's accept
        client = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM, 0, fd)
        client.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        _thread.start_new_thread(_handle, (client, unix_path))


def probe(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether an HTTP request to ``host:port`` gets an HTTP answer within ``timeout`` seconds."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic())) as s:
                s.sendall(b"GET /health HTTP/1.0\r\nHost: agentgym\r\n\r\n")
                if s.recv(5) == b"HTTP/":
                    return True
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


USAGE = ("usage: forward.py --listen HOST:PORT --connect UNIX_SOCKET [--ready]\n"
         "       forward.py --probe HOST:PORT [--timeout SECONDS]\n")


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring); no argparse, to start fast."""
    args = list(sys.argv[1:] if argv is None else argv)
    opts: dict[str, str] = {}
    while args:
        flag = args.pop(0)
        if flag == "--ready":
            opts["ready"] = "1"
        elif flag in ("--listen", "--connect", "--probe", "--timeout") and args:
            opts[flag[2:]] = args.pop(0)
        else:
            sys.stderr.write(USAGE)
            return 2
    if "probe" in opts:
        return 0 if probe(*_address(opts["probe"]), timeout=float(opts.get("timeout", 5.0))) else 1
    if "listen" not in opts or "connect" not in opts:
        sys.stderr.write(USAGE)
        return 2
    host, port = _address(opts["listen"])
    serve(host, port, opts["connect"], ready="ready" in opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
