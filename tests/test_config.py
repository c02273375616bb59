"""Settings: file < environment < overrides, with clear errors."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from pilotfish.config import Settings, load
from tests.imports import loaded, modules_after


def test_defaults() -> None:
    s = load(env={})
    assert s == Settings()
    assert s.dissect.body_limit == 64 * 1024
    assert s.storage_limit == 500 * 1024 * 1024


def test_precedence_file_env_overrides(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("node: from-file\ndissect:\n  body_limit: 10\nflows:\n  max_flows: 7\n")
    env = {"PILOTFISH_DISSECT__BODY_LIMIT": "20", "PILOTFISH_NODE": "from-env", "HOME": "/x"}
    s = load(f, env=env, overrides={"node": "from-flag"})
    assert s.node == "from-flag"
    assert s.dissect.body_limit == 20
    assert s.flows.max_flows == 7


def test_unknown_key_is_named(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("dissect:\n  body_limt: 10\n")
    with pytest.raises(msgspec.ValidationError, match="body_limt"):
        load(f, env={})


def test_wrong_type_is_named() -> None:
    with pytest.raises(msgspec.ValidationError, match="max_flows"):
        load(env={"PILOTFISH_FLOWS__MAX_FLOWS": "lots"})


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(msgspec.ValidationError, match="mapping"):
        load(f, env={})


def test_other_pilotfish_variables_are_not_settings() -> None:
    s = load(env={"PILOTFISH_PFRING_LIBRARY": "/x/libpfring.so", "PILOTFISH_NODE": "n"})
    assert s.node == "n"


def test_yaml_is_loaded_only_when_a_file_or_variable_needs_it(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("node: n\n")
    plain = "from pilotfish.config import load\nload(env={'HOME': '/x'})"
    assert loaded(modules_after(plain), "yaml") == []
    with_file = (
        f"from pathlib import Path\nfrom pilotfish.config import load\nload(Path({str(f)!r}))"
    )
    assert "yaml" in modules_after(with_file)
    with_env = "from pilotfish.config import load\nload(env={'PILOTFISH_NODE': 'n'})"
    assert "yaml" in modules_after(with_env)
