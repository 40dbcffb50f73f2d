"""What the host's network looks like: busy ports, and the addresses peers can use."""

from __future__ import annotations

import array
import fcntl
import socket
import struct

ANY_HOSTS = ("", "0.0.0.0", "::")
SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


def port_in_use(host: str, port: int) -> bool:
    """True if a listener could not bind `port` on `host` now (someone holds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as our listener does
        try:
            sock.bind((host or "0.0.0.0", port))
        except OSError:
            return True
    return False


def host_addresses(host: str) -> list[str]:
    """The addresses a remote PACS can reach us on: `host` itself when it is specific,
    else this machine's interface addresses (loopback only if there is nothing else)."""
    if host not in ANY_HOSTS:
        return [host]
    found = _interface_addresses()
    outside = [a for a in found if not a.startswith("127.")]
    return outside or found or ["127.0.0.1"]


def _interface_addresses() -> list[str]:
    addresses: list[str] = []
    try:
        names = [name for _index, name in socket.if_nameindex()]
    except OSError:
        return addresses
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for name in names:
            request = array.array("B", struct.pack("256s", name.encode()[:15]))
            try:
                fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
            except OSError:
                continue  # no IPv4 address on this interface
            address = socket.inet_ntoa(request.tobytes()[20:24])
            if address not in addresses:
                addresses.append(address)
    return addresses
