"""Block network access from Python during the tests, allowing only loopback and local sockets.

``tests/conftest.py`` installs the guard in the test process and puts this folder on
``PYTHONPATH``, so that every Python subprocess the tests start (Jupyter kernels run by papermill
and nbval, the command line run as a subprocess) imports it as ``sitecustomize`` and is guarded
too. A blocked attempt raises ``OSError(ENETUNREACH)``, as a machine without a network would, and
is recorded: in :data:`attempts` in this process, and as a line in the file named by
``CINQA_NETGUARD_LOG`` from any process, so that attempts a library catches and ignores are
still seen. Connections that libzmq makes in C (kernel channels) are not seen here; they are loopback.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from typing import Any

ENV_ON = "CINQA_NETGUARD"
ENV_LOG = "CINQA_NETGUARD_LOG"
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

attempts: list[str] = []
_saved: dict[tuple[Any, str], Any] = {}


class NetworkBlocked(OSError):
    """A socket tried to reach a non-loopback address while the tests ran."""


def is_local(host: object) -> bool:
    """Say whether ``host`` (an address literal or a name) stays on this machine."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.split("%", 1)[0].strip("[]").lower()
    if name in LOCAL_NAMES or name == "":
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def _allowed(family: int, address: object) -> bool:
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True  # AF_UNIX, netlink and the like never leave the machine
    if not isinstance(address, tuple) or not address:
        return False
    return is_local(address[0])


def _record(what: str) -> None:
    attempts.append(what)
    log = os.environ.get(ENV_LOG)
    if log:
        try:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()}\t{what}\n")
        except OSError:
            pass


def _refuse(what: str) -> NetworkBlocked:
    _record(what)
    return NetworkBlocked(errno.ENETUNREACH, f"network access blocked in the cinqa tests: {what}")


def _wrap_socket_methods() -> None:
    cls = socket.socket
    connect, connect_ex, sendto = cls.connect, cls.connect_ex, cls.sendto

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if not _allowed(self.family, address):
            raise _refuse(f"connect {address!r}")
        return connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> int:
        if not _allowed(self.family, address):
            _refuse(f"connect_ex {address!r}")
            return errno.ENETUNREACH
        return connect_ex(self, address)

    def guarded_sendto(self: socket.socket, data: Any, *args: Any) -> int:
        address = args[-1] if args else None
        if not _allowed(self.family, address):
            raise _refuse(f"sendto {address!r}")
        return sendto(self, data, *args)

    for name, new in (("connect", guarded_connect), ("connect_ex", guarded_connect_ex),
                      ("sendto", guarded_sendto)):
        _saved[(cls, name)] = cls.__dict__.get(name)  # None: inherited from _socket.socket
        setattr(cls, name, new)


def _wrap_resolver() -> None:
    getaddrinfo = socket.getaddrinfo
    own = {socket.gethostname().lower()}

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        # A name lookup asks a DNS server: refused unless the name is this machine's or a literal address.
        text = host.decode("ascii", "replace") if isinstance(host, bytes) else host
        if text is not None and not is_local(text) and str(text).lower() not in own:
            try:
                ipaddress.ip_address(str(text).split("%", 1)[0].strip("[]"))
            except ValueError:
                raise _refuse(f"getaddrinfo {text!r}") from None
        return getaddrinfo(host, *args, **kwargs)

    _saved[(socket, "getaddrinfo")] = getaddrinfo
    socket.getaddrinfo = guarded_getaddrinfo  # socket.create_connection looks it up here too


def install() -> None:
    """Guard this process's sockets (once)."""
    if _saved:
        return
    _wrap_socket_methods()
    _wrap_resolver()


def uninstall() -> None:
    """Restore this process's sockets as they were."""
    for (owner, name), original in _saved.items():
        if original is None:
            delattr(owner, name)
        else:
            setattr(owner, name, original)
    _saved.clear()


if os.environ.get(ENV_ON) == "1":
    install()
