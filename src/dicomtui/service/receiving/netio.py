"""Socket tuning for the SCP: no Nagle, quick ACKs, and big reads.

A sender that leaves Nagle on stalls ~40 ms per image against a receiver whose ACKs are
delayed (ARCHITECTURE.md, "Rules for the network"). Re-arming TCP_QUICKACK before each
read on Linux removes the stall; reading whole PDUs with recv_into avoids pynetdicom's
4 KiB read loop.
"""

from __future__ import annotations

import socket

from pynetdicom.transport import (
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)

_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def tune(sock: socket.socket) -> None:
    """Set TCP_NODELAY (and QUICKACK where the OS has it) on a connected socket."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _QUICKACK is not None:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
    except OSError:
        pass  # not a TCP socket (tests may use others); tuning is best effort


class TunedAssociationSocket(AssociationSocket):
    """An AssociationSocket that re-arms QUICKACK and reads into one buffer."""

    def recv(self, nr_bytes: int) -> bytearray:
        sock = self.socket
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        read = 0
        while read < nr_bytes:
            if _QUICKACK is not None:
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            got = sock.recv_into(view[read:], nr_bytes - read)
            if not got:
                break
            read += got
        view.release()
        if read < nr_bytes:  # peer closed: hand back what arrived, as the base class does
            del buffer[read:]
        return buffer

    def send(self, bytestream: bytes) -> None:
        """Send, then re-arm QUICKACK: the peer's next message follows our answer."""
        super().send(bytestream)
        if _QUICKACK is not None and self.socket is not None:
            try:
                self.socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                pass


class TunedRequestHandler(RequestHandler):
    """Creates associations on a tuned socket."""

    def _create_association(self):
        assoc = super()._create_association()
        tune(self.request)
        # The socket wrapper is already built and has queued its connection event; it
        # only gains a faster recv(), so switching its class is safe and loses nothing.
        assoc.dul.socket.__class__ = TunedAssociationSocket
        return assoc


class TunedServer(ThreadedAssociationServer):
    """The threaded association server with our request handler and socket options."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("request_handler", TunedRequestHandler)
        super().__init__(*args, **kwargs)
