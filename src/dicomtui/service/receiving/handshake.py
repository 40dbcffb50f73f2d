"""Before an association exists: the TLS handshake and the A-ASSOCIATE-RQ, on a deadline.

A new connection gets `handshake_timeout` seconds from accept to finish its TLS
handshake (on the TLS listener) and deliver one whole, plausible A-ASSOCIATE-RQ PDU.
Only then is a pynetdicom association made for it, so silent, slow or garbage-sending
connections never take an association slot. Also here: the PDU size limits the
association's socket applies later, and the A-ABORT we answer protocol errors with.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time

from pynetdicom.pdu import A_ASSOCIATE_RQ

ASSOCIATE_RQ = 0x01
P_DATA = 0x04
RQ_MIN = 68  # an A-ASSOCIATE-RQ's fixed fields (PS3.8 9.3.2)
CONTROL_PDU_LIMIT = 1 << 20  # any PDU but P-DATA-TF: far above what real peers send
KNOWN_PDU_TYPES = frozenset(range(0x01, 0x08))
# A-ABORT reasons, source 2 (service provider), PS3.8 9.3.8
UNRECOGNIZED_PDU, UNEXPECTED_PDU, INVALID_PARAMETER = 0x01, 0x02, 0x06
PROTOCOL_VERSION_NOT_SUPPORTED = 0x02  # A-ASSOCIATE-RJ, source 2 (PS3.8 9.3.4)


class Refused(Exception):
    """The connection broke a rule before its association; record and close it."""

    def __init__(self, rule: str, reason: str, reply: bytes = b"") -> None:
        super().__init__(reason)
        self.rule, self.reason, self.reply = rule, reason, reply  # reply: sent first


class PeerLeft(Exception):
    """The peer closed the connection before it asked for anything (not a refusal)."""


def abort_pdu(reason: int) -> bytes:
    """An A-ABORT PDU from the service provider with `reason`."""
    return struct.pack(">BBIBBBB", 0x07, 0, 4, 0, 0, 0x02, reason)


def reject_pdu(diagnostic: int) -> bytes:
    """An A-ASSOCIATE-RJ PDU: rejected-permanent, by the service provider (ACSE)."""
    return struct.pack(">BBIBBBB", 0x03, 0, 4, 0, 1, 0x02, diagnostic)


def pdu_limit(pdu_type: int, max_pdu: int) -> int | None:
    """The longest PDU body we read of this type (None: no limit, max_pdu is 0).

    P-DATA-TF PDUs may be as long as the max_pdu we announced; twice that (at least
    1 MiB) is accepted, so a sender that miscounts still works while a length of
    gigabytes is refused before anything is allocated for it.
    """
    if pdu_type != P_DATA:
        return CONTROL_PDU_LIMIT
    return max(2 * max_pdu, 1 << 20) if max_pdu else None


def tls_handshake(
    sock: socket.socket, context: ssl.SSLContext, deadline: float
) -> ssl.SSLSocket:
    """The server side of a TLS handshake, finished by `deadline` (Refused, PeerLeft;
    the connection is closed then: the TLS socket owns it from the start)."""
    tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    try:
        tls.settimeout(_left(deadline, "no TLS handshake"))
        tls.do_handshake()
    except Exception as exc:
        tls.close()
        raise _handshake_failure(exc) from None
    return tls


def _handshake_failure(exc: Exception) -> Exception:
    if isinstance(exc, TimeoutError):
        return Refused("handshake_timeout", "TLS handshake not finished in time")
    if isinstance(exc, ssl.SSLError):
        return Refused("tls", f"TLS handshake failed: {tls_reason(exc)}")
    if isinstance(exc, OSError):
        return PeerLeft(str(exc))
    return exc  # Refused (the deadline had passed), or a surprise for the caller


TLS_HINTS = {
    "WRONG_VERSION_NUMBER": "plain DICOM or another protocol on the TLS port?",
    "HTTP_REQUEST": "plain DICOM or another protocol on the TLS port?",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "tls_ca_file asks every peer for a certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the peer does not trust our certificate's CA",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer does not accept our certificate",
}


def tls_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's short reason (e.g. 'TLSV1_ALERT_UNKNOWN_CA') with what it usually
    means, for the refusal record and the log line."""
    reason = getattr(exc, "reason", None) or ""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"{reason}: {exc.verify_message} (not signed by a CA in tls_ca_file?)"
    hint = TLS_HINTS.get(reason)
    return f"{reason} ({hint})" if hint else reason or str(exc)


def read_request(sock: socket.socket, deadline: float) -> bytes:
    """One whole A-ASSOCIATE-RQ PDU (header included), by `deadline`.

    Raises Refused for anything else, and PeerLeft when the peer goes before its
    first byte."""
    header = _read(sock, 6, deadline, first=True)
    pdu_type, _, length = struct.unpack(">BBI", header)
    if pdu_type != ASSOCIATE_RQ:
        known = pdu_type in KNOWN_PDU_TYPES
        raise Refused(
            "protocol",
            f"first PDU is type 0x{pdu_type:02X}, not an A-ASSOCIATE-RQ",
            abort_pdu(UNEXPECTED_PDU if known else UNRECOGNIZED_PDU),
        )
    if not RQ_MIN <= length <= CONTROL_PDU_LIMIT:
        raise Refused(
            "protocol",
            f"A-ASSOCIATE-RQ claims {length} bytes (at most {CONTROL_PDU_LIMIT})",
            abort_pdu(INVALID_PARAMETER),
        )
    request = header + _read(sock, length, deadline)
    refusal = refusal_of(request)
    if refusal is not None:
        raise refusal
    return request


def refusal_of(request: bytes) -> Refused | None:
    """Why pynetdicom would not take this A-ASSOCIATE-RQ, or None when it would.

    An association made for a request its DUL cannot decode, or rejects by itself (an
    unknown protocol version), waits `acse_timeout` for a request that never comes,
    holding an association slot all the while; so such requests end here."""
    pdu = A_ASSOCIATE_RQ()
    try:
        pdu.decode(request)
        pdu.to_primitive()
    except Exception as exc:  # the decoder raises many kinds on garbage
        problem = f"{type(exc).__name__}: {exc}"[:120]
        return Refused(
            "protocol",
            f"malformed A-ASSOCIATE-RQ ({problem})",
            abort_pdu(INVALID_PARAMETER),
        )
    if pdu.protocol_version != 1:
        return Refused(
            "protocol",
            f"A-ASSOCIATE-RQ of protocol version {pdu.protocol_version} (only 1 exists)",
            reject_pdu(PROTOCOL_VERSION_NOT_SUPPORTED),
        )
    return None


def _read(sock: socket.socket, size: int, deadline: float, first: bool = False) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        sock.settimeout(_left(deadline, "no A-ASSOCIATE-RQ"))
        try:
            got = sock.recv(size - len(buffer))
        except TimeoutError:
            got = None
        except OSError as exc:
            raise PeerLeft(str(exc)) from None
        if got is None:
            raise Refused("handshake_timeout", _late(buffer, first))
        if not got:
            if first and not buffer:
                raise PeerLeft("closed before sending anything")
            raise PeerLeft(f"closed after {len(buffer)} of {size} bytes")
        buffer += got
    return bytes(buffer)


def _left(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Refused("handshake_timeout", f"{what} within handshake_timeout")
    return left


def _late(buffer: bytearray, first: bool) -> str:
    if first and not buffer:
        return "no A-ASSOCIATE-RQ within handshake_timeout (silent connection)"
    return "A-ASSOCIATE-RQ not complete within handshake_timeout (slow sender)"
