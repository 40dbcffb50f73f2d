"""DICOM TLS (PS3.15 Annex B, the BCP 195 profile): the TLS listener's context and ours
as an SCU.

TLS 1.2 at least, with the ssl module's secure defaults (forward-secret AEAD suites, no
compression, no renegotiation). The listener presents tls_cert_file/tls_key_file; with
tls_ca_file set it also requires a client certificate signed by one of those CAs. The
SCU verifies the peer against the CA file it is given (else the system's CAs), host name
included.
"""

from __future__ import annotations

import os
import ssl
import stat


class TLSConfigError(ValueError):
    """The TLS settings cannot make a context; the message names the setting and file."""


def server_context(cert_file: str, key_file: str, ca_file: str = "") -> ssl.SSLContext:
    """The TLS listener's context (TLSConfigError when a file is missing or bad)."""
    if not cert_file or not key_file:
        raise TLSConfigError(
            "tls_port is set but tls_cert_file and tls_key_file are not both set: "
            "the TLS listener needs a certificate and its key"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, cert_file, key_file, "tls_cert_file/tls_key_file")
    if ca_file:
        _load_cas(context, ca_file, "tls_ca_file")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(
    ca_file: str = "", cert_file: str = "", key_file: str = ""
) -> ssl.SSLContext:
    """Our SCU's context: verify the peer (against `ca_file`, else the system's CAs)
    and present `cert_file`/`key_file` when given."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        _load_cas(context, ca_file, "--tls-ca")
    if cert_file:
        _load_chain(context, cert_file, key_file or cert_file, "--tls-cert/--tls-key")
    return context


def key_file_warning(key_file: str) -> str | None:
    """A warning when a private key file can be read by anyone but its owner."""
    try:
        mode = stat.S_IMODE(os.stat(key_file).st_mode)
    except OSError:
        return None  # loading it reports that
    if mode & 0o077:
        return (
            f"tls_key_file {key_file} can be read by users other than its owner "
            f"(mode {mode:04o}); chmod 600 it"
        )
    return None


def _load_chain(context: ssl.SSLContext, cert_file: str, key_file: str, what: str) -> None:
    try:
        context.load_cert_chain(cert_file, key_file)
    except FileNotFoundError as exc:
        raise TLSConfigError(f"{what}: {exc.filename} does not exist") from None
    except PermissionError as exc:
        raise TLSConfigError(
            f"{what}: {exc.filename} cannot be read (permissions)"
        ) from None
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(
            f"{what}: {cert_file} / {key_file} are not a PEM certificate and its "
            f"matching key ({getattr(exc, 'reason', None) or exc})"
        ) from None


def _load_cas(context: ssl.SSLContext, ca_file: str, what: str) -> None:
    try:
        context.load_verify_locations(cafile=ca_file)
    except FileNotFoundError:
        raise TLSConfigError(f"{what}: {ca_file} does not exist") from None
    except PermissionError:
        raise TLSConfigError(f"{what}: {ca_file} cannot be read (permissions)") from None
    except (ssl.SSLError, OSError) as exc:
        raise TLSConfigError(
            f"{what}: {ca_file} holds no PEM CA certificate "
            f"({getattr(exc, 'reason', None) or exc})"
        ) from None
