"""Listeners: one per --web.listen-address, each naming the address it really bound."""

from __future__ import annotations

import argparse
import socket

import pytest
import requests

from tests.conftest import build_exporter
from trtc_exporter.cli import build_parser
from trtc_exporter.web.serve import ServeError, make_servers


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _args(*listens: str) -> argparse.Namespace:
    argv = [part for listen in listens for part in ("--web.listen-address", listen)]
    return build_parser().parse_args(argv)


def test_every_listen_address_gets_a_listener() -> None:
    """Two flags, two listeners (a repeated address binds once), each with its real address."""
    ports = [_free_port(), _free_port()]
    args = _args(f"127.0.0.1:{ports[0]}", f"127.0.0.1:{ports[1]}", f"127.0.0.1:{ports[1]}")
    servers = make_servers(build_exporter({"targets": [{"task_id": "t1"}]}), args)
    try:
        assert [s.bound_address() for s in servers] == [f"127.0.0.1:{p}" for p in ports]
        assert all(s.loop.limits.max_connections == 512 for s in servers)
    finally:
        for server in servers:
            server.server_close()


def test_the_default_names_all_interfaces() -> None:
    """":port" binds every interface and says so, instead of claiming 127.0.0.1."""
    servers = make_servers(build_exporter({"targets": [{"task_id": "t1"}]}),
                           _args(f":{_free_port()}"))
    try:
        address = servers[0].bound_address()
        assert address.startswith(("[::]:", "0.0.0.0:"))
    finally:
        servers[0].server_close()


def test_a_listener_that_cannot_bind_closes_the_others() -> None:
    """When the second address is taken, ServeError names it and the first is released."""
    first, taken = _free_port(), socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        args = _args(f"127.0.0.1:{first}", f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(ServeError, match=r"--web\.listen-address 127\.0\.0\.1:"):
            make_servers(build_exporter({"targets": [{"task_id": "t1"}]}), args)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{first}/", timeout=2)
    finally:
        taken.close()
