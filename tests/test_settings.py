"""Settings: precedence, parsing and the one-line errors people see."""

import pytest

from dicomtui.settings import SPEC_BY_NAME, SettingError, parse_value, resolve


def test_defaults_when_nothing_given():
    s = resolve({}, {}, {})
    assert (s.ae_title, s.host, s.port, s.layout, s.naming) == (
        "DICOMTUI", "0.0.0.0", 11112, "series", "sop-uid")
    assert s.max_associations == 10 and s.fsync is True and s.duplicate_policy == "replace"
    assert set(s.sources.values()) == {"default"}


def test_cli_beats_env_beats_stored_beats_default():
    env = {"DICOMTUI_PORT": "2000", "DICOMTUI_AE_TITLE": "FROMENV"}
    stored = {"port": 3000, "ae_title": "STORED", "layout": "flat"}
    s = resolve({"port": "1000"}, env, stored)
    assert (s.port, s.sources["port"]) == (1000, "command line")
    assert (s.ae_title, s.sources["ae_title"]) == ("FROMENV", "environment")
    assert (s.layout, s.sources["layout"]) == ("flat", "stored")
    assert s.sources["naming"] == "default"


@pytest.mark.parametrize("raw,expected", [("yes", True), ("0", False), ("TRUE", True),
                                          ("off", False), (True, True)])
def test_booleans_accept_the_usual_words(raw, expected):
    assert parse_value(SPEC_BY_NAME["fsync"], raw) is expected


@pytest.mark.parametrize("name,raw,words", [
    ("port", "70000", "port: must be an integer from 1 to 65535"),
    ("port", "eleven", "port: must be an integer from 1 to 65535"),
    ("ae_title", "A" * 17, "ae_title: must be 1-16 characters"),
    ("ae_title", "BAD\\AE", "ae_title: must be 1-16 characters"),
    ("max_storage_gb", "-1", "max_storage_gb: must be a number >= 0"),
    ("layout", "nested", "layout: must be one of flat, patient, study, series, date"),
    ("fsync", "maybe", "fsync: must be true/false"),
    ("port", "12.5", "port: must be an integer"),
])
def test_invalid_values_name_the_setting_and_rule(name, raw, words):
    with pytest.raises(SettingError) as info:
        resolve({name: raw}, {}, {})
    assert str(info.value).startswith(words)
    assert "\n" not in str(info.value)


def test_bad_environment_value_is_refused_too():
    with pytest.raises(SettingError, match="max_associations"):
        resolve({}, {"DICOMTUI_MAX_ASSOCIATIONS": "0"}, {})


def test_empty_environment_variable_is_ignored():
    assert resolve({}, {"DICOMTUI_PORT": ""}, {}).sources["port"] == "default"


def test_tls_and_gate_settings_come_from_the_environment_too():
    from dicomtui.settings import resolve
    s = resolve(env={"DICOMTUI_TLS_PORT": "2762", "DICOMTUI_TLS_CA_FILE": "/etc/ca.pem",
                     "DICOMTUI_HANDSHAKE_TIMEOUT": "3", "DICOMTUI_MAX_PEER_CONNECTIONS": "4",
                     "DICOMTUI_PORT": "0"})
    assert (s.tls_port, s.tls_ca_file, s.handshake_timeout, s.max_peer_connections,
            s.port) == (2762, "/etc/ca.pem", 3.0, 4, 0)
    assert s.sources["tls_port"] == "environment"
