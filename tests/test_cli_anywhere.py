"""Options anywhere on the line, as dcmtk's tools take them: every verb still parses
and helps as before, and options after positionals are accepted."""

from __future__ import annotations

import argparse
import json

import pytest

from conftest import cli_env, run_cli
from dicomtui.cli.parser import build_parser, main
from helpers import fresh_ct, stored_files


def _command_lines(parser: argparse.ArgumentParser, prefix: tuple = ()) -> list[tuple]:
    """Every command and sub-action the tree knows, e.g. ("dest", "add")."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append((*prefix, name))
                found.extend(_command_lines(child, (*prefix, name)))
    return found


COMMANDS = _command_lines(build_parser())


def test_the_tree_has_the_verbs_and_their_actions():
    assert ("send",) in COMMANDS and ("dest", "add") in COMMANDS
    assert ("facility", "add") in COMMANDS and ("config",) in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_still_has_its_help(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: dicomtui {' '.join(command)}")
    if not any(isinstance(a, argparse._SubParsersAction)
               for a in _parser_of(command)._actions):
        assert "--data-dir" in out  # every verb takes it, wherever it stands


def _parser_of(command: tuple) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def test_top_level_help_lists_every_verb(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for (verb,) in (c for c in COMMANDS if len(c) == 1):
        assert verb in out


def test_send_takes_options_between_its_positionals(engine, tmp_path):
    path = tmp_path / "ct.dcm"
    fresh_ct().save_as(path, enforce_file_format=True)
    done = run_cli("send", "127.0.0.1", str(engine.port), "--aec", "DICOMTUI",
                   str(path), "--aet", "ANYWHERE", "--data-dir", str(tmp_path / "d"),
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "sent 1" in done.stdout
    assert len(stored_files(engine.storage.root)) == 1


def test_echo_with_options_last(engine, tmp_path):
    done = run_cli("echo", "127.0.0.1", str(engine.port), "--aec", "DICOMTUI",
                   env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr


def test_data_dir_after_the_positionals_of_nested_actions(tmp_path):
    env, data = cli_env(tmp_path), str(tmp_path / "d")
    added = run_cli("dest", "add", "PACS", "127.0.0.1", "104", "--data-dir", data,
                    "--description", "the PACS", env=env)
    assert added.returncode == 0, added.stderr
    listed = run_cli("dest", "list", "--data-dir", data, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    (dest,) = json.loads(listed.stdout)
    assert dest["ae_title"] == "PACS" and dest["port"] == 104
    assert dest["description"] == "the PACS"
    before = run_cli("--data-dir", data, "config", "set", "sop_classes", "CTImageStorage",
                     env=env)
    after = run_cli("config", "set", "transfer_syntaxes", "--data-dir", data,
                    "ExplicitVRLittleEndian", env=env)
    assert before.returncode == 0 and after.returncode == 0, after.stderr
    shown = json.loads(run_cli("config", "--json", "--data-dir", data, env=env).stdout)
    values = {v["name"]: v["value"] for v in shown}
    assert values["sop_classes"] == "CTImageStorage"
    assert values["transfer_syntaxes"] == "ExplicitVRLittleEndian"


def test_usage_errors_are_still_usage_errors(tmp_path):
    done = run_cli("dest", "add", "PACS", "--data-dir", str(tmp_path / "d"),
                   env=cli_env(tmp_path))
    assert done.returncode == 2 and "required" in done.stderr
    done = run_cli("send", "127.0.0.1", "104", "--bogus", env=cli_env(tmp_path))
    assert done.returncode == 2 and "--bogus" in done.stderr
