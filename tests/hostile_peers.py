"""Hostile peers for the abuse and fuzz tests: raw sockets speaking broken DICOM UL.

Real PDUs come from pynetdicom itself (a request captured from a real AE, DIMSE messages
encoded by its own encoder); the tests then break them on purpose.
"""

from __future__ import annotations

import socket
import struct
import threading
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.pdu import P_DATA_TF

from helpers import encode_dataset

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ABORT = struct.pack(">BBIBBBB", 0x07, 0, 4, 0, 0, 0, 0)


def capture_request(abstract_syntaxes: tuple[str, ...] = (VERIFICATION, CT_IMAGE),
                    calling: str = "HOSTILE") -> bytes:
    """The bytes of a real A-ASSOCIATE-RQ, as a pynetdicom AE sends it."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        ae = AE(ae_title=calling)
        ae.acse_timeout = ae.network_timeout = 5
        for syntax in abstract_syntaxes:
            ae.add_requested_context(syntax, ExplicitVRLittleEndian)
        port = server.getsockname()[1]
        asker = threading.Thread(target=ae.associate, args=("127.0.0.1", port),
                                 kwargs={"ae_title": "DICOMTUI"}, daemon=True)
        asker.start()
        conn, _ = server.accept()
        with conn:
            header = recv_exactly(conn, 6)
            body = recv_exactly(conn, struct.unpack(">I", header[2:])[0])
        asker.join(timeout=10)
    return header + body


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def read_pdu(sock: socket.socket) -> tuple[int, bytes]:
    """(type, body) of the next PDU from the peer."""
    header = recv_exactly(sock, 6)
    return header[0], recv_exactly(sock, struct.unpack(">I", header[2:])[0])


def _pdus(message, context_id: int, max_pdu: int) -> list[bytes]:
    encoded = []
    for primitive in message.encode_msg(context_id, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        encoded.append(pdu.encode())
    return encoded


def echo_pdus(context_id: int = 1, message_id: int = 1) -> list[bytes]:
    """The P-DATA-TF PDUs of one C-ECHO-RQ."""
    primitive = C_ECHO()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = VERIFICATION
    message = C_ECHO_RQ()
    message.primitive_to_message(primitive)
    return _pdus(message, context_id, 16382)


def store_pdus(ds: Dataset, context_id: int = 3, max_pdu: int = 4096) -> list[bytes]:
    """The P-DATA-TF PDUs of one C-STORE-RQ of `ds` (Explicit VR Little Endian)."""
    primitive = C_STORE()
    primitive.MessageID, primitive.Priority = 1, 2
    primitive.AffectedSOPClassUID = ds.SOPClassUID
    primitive.AffectedSOPInstanceUID = ds.SOPInstanceUID
    primitive.DataSet = BytesIO(encode_dataset(ds))
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    return _pdus(message, context_id, max_pdu)


def connect(port: int, source: str = "127.0.0.1", timeout: float = 20.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                    source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def associate_raw(port: int, request: bytes, source: str = "127.0.0.1") -> socket.socket:
    """A connection whose association was accepted (the A-ASSOCIATE-AC read)."""
    sock = connect(port, source)
    sock.sendall(request)
    pdu_type, _ = read_pdu(sock)
    if pdu_type != 0x02:
        sock.close()
        raise ConnectionError(f"association not accepted (PDU type 0x{pdu_type:02X})")
    return sock


def rss_bytes(pid: int) -> int:
    """Resident memory of process `pid`."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")
