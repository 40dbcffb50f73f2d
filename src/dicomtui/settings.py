"""Typed settings: one table of specs, validation, and CLI > env > stored > default.

Every front end and the engine read settings through `resolve()`, so a value means the
same thing whether it came from a flag, `DICOMTUI_<NAME>`, the data dir or the default.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dicomtui.dicom.aetitle import ae_title_problem
from dicomtui.dicom.uid_names import (
    list_problem,
    services_problem,
    storage_class_uid,
    transfer_syntax_uid,
)

ENV_PREFIX = "DICOMTUI_"
BASE_LAYOUTS = ("flat", "patient", "study", "series", "date")
# Any preset may be put under a folder per facility: "facility/series" = {facility}/...
LAYOUTS = BASE_LAYOUTS + tuple(f"facility/{name}" for name in BASE_LAYOUTS)
NAMINGS = ("sop-uid", "instance-number", "timestamp", "sequential")
DUPLICATE_POLICIES = ("replace", "keep", "reject")
TRUE_WORDS = {"true", "1", "yes", "on"}
FALSE_WORDS = {"false", "0", "no", "off"}


class SettingError(ValueError):
    """A setting value broke its rule; the message names the setting and the rule."""

    def __init__(self, name: str, rule: str, raw: Any) -> None:
        super().__init__(f"{name}: {rule} (got {raw!r})")
        self.name = name
        self.rule = rule


@dataclass(frozen=True)
class Spec:
    """How one setting is parsed, checked, documented and applied."""

    name: str
    kind: type
    default: Any
    help: str
    rule: str = ""
    check: Callable[[Any], bool] | None = None
    restart: bool = True
    secret: bool = False
    problem: Callable[[Any], str | None] | None = None  # a rule that names the bad part


def _int_range(lo: int, hi: int) -> Callable[[Any], bool]:
    return lambda v: lo <= v <= hi


def _choice(options: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: v in options


SPECS: tuple[Spec, ...] = (
    Spec(
        "ae_title",
        str,
        "DICOMTUI",
        "AE title this receiver answers to",
        "must be 1-16 characters of printable ASCII without backslash",
        lambda v: ae_title_problem(v) is None,
    ),
    Spec(
        "host",
        str,
        "0.0.0.0",
        "address to listen on (0.0.0.0 = every interface)",
        "must not be empty",
        lambda v: bool(v.strip()),
    ),
    Spec(
        "port",
        int,
        11112,
        "TCP port of the main (plain DICOM) listener; 0 = none (TLS only)",
        "must be an integer from 1 to 65535, or 0 for no plain listener",
        _int_range(0, 65535),
    ),
    Spec(
        "tls_port",
        int,
        0,
        "TCP port of the DICOM TLS listener (2762 is registered for it); 0 = no TLS",
        "must be an integer from 1 to 65535, or 0 for no TLS listener",
        _int_range(0, 65535),
    ),
    Spec("tls_cert_file", str, "", "PEM certificate (chain) the TLS listener presents"),
    Spec(
        "tls_key_file",
        str,
        "",
        "PEM private key of tls_cert_file (keep it mode 0600: readable by others warns)",
    ),
    Spec(
        "tls_ca_file",
        str,
        "",
        "PEM CA certificates; when set, TLS peers must present a certificate they "
        "signed (empty = no client certificate asked for)",
    ),
    Spec(
        "max_pdu",
        int,
        65536,
        "largest PDU we accept, in bytes (0 = unlimited)",
        "must be 0 or an integer from 4096 to 16777216",
        lambda v: v == 0 or 4096 <= v <= 16777216,
    ),
    Spec(
        "acse_timeout",
        float,
        30.0,
        "seconds to wait for association messages",
        "must be a number of seconds from 1 to 3600",
        _int_range(1, 3600),
    ),
    Spec(
        "dimse_timeout",
        float,
        30.0,
        "seconds to wait for DIMSE messages",
        "must be a number of seconds from 1 to 3600",
        _int_range(1, 3600),
    ),
    Spec(
        "network_timeout",
        float,
        60.0,
        "seconds a silent connection is kept",
        "must be a number of seconds from 1 to 3600",
        _int_range(1, 3600),
    ),
    Spec(
        "max_associations",
        int,
        10,
        "associations served at once",
        "must be an integer from 1 to 1000",
        _int_range(1, 1000),
    ),
    Spec(
        "handshake_timeout",
        float,
        5.0,
        "seconds a new connection has to finish its TLS handshake and send its "
        "A-ASSOCIATE-RQ; a silent or slow one is closed (it never holds an association)",
        "must be a number of seconds from 1 to 300",
        _int_range(1, 300),
        restart=False,
    ),
    Spec(
        "max_peer_connections",
        int,
        8,
        "open connections at once from one address; at the limit its oldest one that "
        "has not asked for an association is closed to make room",
        "must be an integer from 1 to 1000",
        _int_range(1, 1000),
        restart=False,
    ),
    Spec(
        "metrics_port",
        int,
        0,
        "port of the Prometheus metrics endpoint, http://HOST:PORT/metrics (0 = off)",
        "must be an integer from 0 to 65535",
        _int_range(0, 65535),
    ),
    Spec(
        "metrics_host",
        str,
        "127.0.0.1",
        "address of the metrics endpoint (127.0.0.1: this machine only)",
        "must not be empty",
        lambda v: bool(v.strip()),
    ),
    Spec("storage_dir", str, "", "where DICOM files go (empty = <data-dir>/storage)"),
    Spec(
        "layout",
        str,
        "series",
        "folder layout: "
        + "|".join(BASE_LAYOUTS)
        + ", each optionally under facility/ (facility/series)",
        "must be one of " + ", ".join(LAYOUTS),
        _choice(LAYOUTS),
    ),
    Spec(
        "naming",
        str,
        "sop-uid",
        "file name rule: " + "|".join(NAMINGS),
        "must be one of " + ", ".join(NAMINGS),
        _choice(NAMINGS),
    ),
    Spec("fsync", bool, True, "fsync each file before acknowledging it", restart=False),
    Spec(
        "duplicate_policy",
        str,
        "replace",
        "a re-sent SOP Instance UID: replace the file, keep the first, or reject",
        "must be one of " + ", ".join(DUPLICATE_POLICIES),
        _choice(DUPLICATE_POLICIES),
        restart=False,
    ),
    Spec(
        "max_storage_gb",
        float,
        0.0,
        "storage quota in GB (0 = none)",
        "must be a number >= 0",
        lambda v: v >= 0,
        restart=False,
    ),
    Spec(
        "log_instances",
        bool,
        True,
        "one transaction record per stored instance",
        restart=False,
    ),
    Spec(
        "require_calling_ae",
        bool,
        False,
        "refuse calling AE titles that are not "
        "active allowed callers (`dicomtui ae allow`)",
        restart=False,
    ),
    Spec(
        "allowed_ips",
        str,
        "",
        "addresses or CIDR networks that may connect, comma separated (empty = any)",
        "must be IP addresses or CIDR networks separated by "
        "commas, e.g. 10.0.0.0/8, 192.168.1.20",
        lambda v: ip_list_problem(v) is None,
        restart=False,
    ),
    Spec(
        "check_called_ae",
        bool,
        False,
        "refuse associations whose called AE title is neither ours nor a facility's",
        restart=False,
    ),
    Spec(
        "auto_create_facilities",
        bool,
        False,
        "an unknown calling AE becomes a new facility (with its own AE title and port)",
        restart=False,
    ),
    Spec(
        "anonymize",
        bool,
        False,
        "anonymize every instance before it is written "
        "(PS3.15 Basic Profile; a facility can say on/off instead)",
        restart=False,
    ),
    Spec(
        "anonymize_uids",
        bool,
        False,
        "when anonymizing, replace Study/Series/SOP "
        "Instance UIDs and references too (the originals go to the map)",
        restart=False,
    ),
    Spec(
        "anonymization_key_file",
        str,
        "",
        "file holding the Fernet key that encrypts "
        "the anonymization map (empty = not encrypted; mode 0600 either way)",
        restart=False,
    ),
    Spec(
        "deidentify_logs",
        bool,
        True,
        "mask patient names and IDs in application logs",
        restart=False,
    ),
    Spec(
        "group_read",
        bool,
        False,
        "let the data dir's group read stored images and zips (files 0640, folders "
        "0750), e.g. for a PACS import running as another user; settings, map, log and "
        "journal stay 0600",
        restart=False,
    ),
    Spec(
        "study_timeout",
        float,
        60.0,
        "seconds without a new instance after which a study is complete",
        "must be a number of seconds from 1 to 86400",
        _int_range(1, 86400),
        restart=False,
    ),
    Spec(
        "study_max_age",
        float,
        5400.0,
        "seconds after its first instance at which a "
        "study is complete at the latest (5400 = 90 minutes)",
        "must be a number of seconds from 1 to 604800",
        _int_range(1, 604800),
        restart=False,
    ),
    Spec(
        "zip_studies", bool, False, "zip each completed study into zip_dir", restart=False
    ),
    Spec(
        "zip_dir", str, "", "where study zips go (empty = <data-dir>/zips)", restart=False
    ),
    Spec(
        "auto_upload",
        bool,
        False,
        "queue each study zip for upload to api_url (needs zip_studies)",
        restart=False,
    ),
    Spec(
        "api_url",
        str,
        "http://localhost:8000/api",
        "base URL of the upload API",
        "must start with http:// or https://",
        lambda v: v.startswith(("http://", "https://")),
        restart=False,
    ),
    Spec(
        "api_username", str, "", "user name for POST {api_url}/users/login/", restart=False
    ),
    Spec(
        "api_password",
        str,
        "",
        "password for the login (DICOMTUI_API_PASSWORD)",
        restart=False,
        secret=True,
    ),
    Spec(
        "api_token",
        str,
        "",
        "a bearer token to use instead of logging in",
        restart=False,
        secret=True,
    ),
    Spec(
        "max_retries",
        int,
        3,
        "retries of a failed upload before it is marked failed",
        "must be an integer from 0 to 100",
        _int_range(0, 100),
        restart=False,
    ),
    Spec(
        "retry_delay",
        float,
        5.0,
        "seconds before the first retry (doubling, with jitter)",
        "must be a number of seconds from 0 to 3600",
        _int_range(0, 3600),
        restart=False,
    ),
    Spec(
        "upload_timeout",
        float,
        60.0,
        "seconds an upload may wait for the server",
        "must be a number of seconds from 1 to 3600",
        _int_range(1, 3600),
        restart=False,
    ),
    Spec(
        "cleanup_after_upload",
        bool,
        False,
        "after a successful upload (2xx), remove the zip and the study's files",
        restart=False,
    ),
    Spec(
        "auto_cleanup",
        bool,
        False,
        "when the quota (max_storage_gb) is reached, "
        "remove the oldest studies older than retention_days (never one being "
        "received or waiting for upload)",
        restart=False,
    ),
    Spec(
        "retention_days",
        int,
        30,
        "studies received longer ago than this may be removed by cleanup and auto_cleanup",
        "must be a whole number of days from 0 to 36500",
        _int_range(0, 36500),
        restart=False,
    ),
    Spec(
        "history_days",
        int,
        30,
        "finished uploads and completed studies stay listed this long; then they "
        "leave the queue's history, and zips of failed or cancelled uploads are deleted",
        "must be a whole number of days from 1 to 36500",
        _int_range(1, 36500),
        restart=False,
    ),
    Spec(
        "log_retention_days",
        int,
        365,
        "transaction log files whose newest record is older than this are deleted "
        "(0: kept for ever)",
        "must be a whole number of days from 0 to 36500",
        _int_range(0, 36500),
        restart=False,
    ),
    Spec(
        "services",
        str,
        "all",
        "DIMSE services that run, comma separated: echo, store, find, move, get "
        "(all = every one, none = none); a disabled one's contexts are refused",
        restart=False,
        problem=services_problem,
    ),
    Spec(
        "sop_classes",
        str,
        "all",
        "storage SOP classes accepted, comma separated UIDs, keywords or names "
        "(CTImageStorage, MR Image Storage, 1.2.840.10008.5.1.4.1.1.7); all = every one",
        restart=False,
        problem=lambda v: list_problem(v, storage_class_uid),
    ),
    Spec(
        "transfer_syntaxes",
        str,
        "all",
        "transfer syntaxes accepted for storage, comma separated UIDs, keywords or "
        "names (ExplicitVRLittleEndian, JPEG2000Lossless); all = every one",
        restart=False,
        problem=lambda v: list_problem(v, transfer_syntax_uid),
    ),
    Spec(
        "autostart",
        bool,
        True,
        "the console starts the receiver when it opens (off: start it with s)",
        restart=False,
    ),
)
SPEC_BY_NAME: dict[str, Spec] = {s.name: s for s in SPECS}


def parse_networks(text: str) -> list:
    """The networks of an allowed_ips value ("" = none); ValueError names a bad entry."""
    networks = []
    for item in (part.strip() for part in text.replace(" ", ",").split(",")):
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return networks


def ip_list_problem(text: str) -> str | None:
    try:
        parse_networks(text)
    except ValueError as exc:
        return str(exc)
    return None


def parse_value(spec: Spec, raw: Any) -> Any:
    """Turn a raw value (str from env/CLI, JSON value from the DB) into a checked value."""
    value = _coerce(spec, raw)
    if spec.check is not None and not spec.check(value):
        raise SettingError(spec.name, spec.rule, raw)
    why = spec.problem(value) if spec.problem is not None else None
    if why:
        raise SettingError(spec.name, why, raw)
    return value


def _coerce(spec: Spec, raw: Any) -> Any:
    if spec.kind is bool:
        return _to_bool(spec, raw)
    if spec.kind is int:
        return _to_number(spec, raw, int, "must be an integer")
    if spec.kind is float:
        return _to_number(spec, raw, float, "must be a number")
    if not isinstance(raw, str):
        raise SettingError(spec.name, "must be text", raw)
    return raw.strip()


def _to_bool(spec: Spec, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingError(spec.name, "must be true/false, 1/0 or yes/no", raw)


def _to_number(spec: Spec, raw: Any, kind: type, what: str) -> Any:
    if isinstance(raw, bool):
        raise SettingError(spec.name, spec.rule or what, raw)
    try:
        value = kind(str(raw).strip()) if isinstance(raw, str) else kind(raw)
    except (TypeError, ValueError):
        raise SettingError(spec.name, spec.rule or what, raw) from None
    if kind is int and not isinstance(raw, int) and str(raw).strip() != str(value):
        raise SettingError(spec.name, spec.rule or what, raw)
    return value


@dataclass
class Resolved:
    """The effective settings, with where each value came from."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def env_values(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings given as DICOMTUI_<NAME> environment variables."""
    environ = os.environ if environ is None else environ
    found = {}
    for spec in SPECS:
        raw = environ.get(ENV_PREFIX + spec.name.upper())
        if raw is not None and raw != "":
            found[spec.name] = raw
    return found


def resolve(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    stored: Mapping[str, Any] | None = None,
) -> Resolved:
    """Apply command line > environment > stored > default; raise SettingError if bad."""
    layers = (
        ("command line", cli or {}),
        ("environment", env_values(env)),
        ("stored", stored or {}),
    )
    result = Resolved()
    for spec in SPECS:
        result.values[spec.name], result.sources[spec.name] = spec.default, "default"
        for source, layer in layers:
            if layer.get(spec.name) is not None:
                result.values[spec.name] = parse_value(spec, layer[spec.name])
                result.sources[spec.name] = source
                break
    return result


def display_value(spec: Spec, value: Any) -> Any:
    """A value safe to print: secrets are masked."""
    if spec.secret and value:
        return "****" + str(value)[-2:] if len(str(value)) > 8 else "****"
    return value
