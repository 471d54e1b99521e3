"""docs/config.md is generated from the config models (tools/config_docs.py) and every config
field carries a description."""

from __future__ import annotations

import subprocess
import sys

from components.config import PlatformConfig
from tools import config_docs
from tools.config_docs import OUTPUT, ROOT, render


def all_fields():
    """(key path, field) of every key under sdfleet:platform, sections included."""
    for path, model in config_docs._sections(PlatformConfig, "sdfleet:platform"):
        for name, field in model.model_fields.items():
            yield f"{path}.{field.alias or name}", field


def test_every_config_field_has_a_description():
    fields = list(all_fields())
    assert len(fields) > 100  # the walk reached every section
    missing = [path for path, field in fields if not (field.description or "").strip()]
    assert not missing, f"config fields without a description: {missing}"


def test_docs_config_md_is_up_to_date():
    assert OUTPUT.read_text() == render(), \
        "docs/config.md is stale: run `python -m tools.config_docs`"


def test_every_key_and_its_description_is_in_the_reference():
    text = OUTPUT.read_text()
    for path, field in all_fields():
        section, _, key = path.rpartition(".")
        assert f"## `{section}`" in text, section
        assert f"| `{key}` |" in text and field.description.split("\n")[0] in text, path


def test_a_changed_description_makes_the_reference_stale(monkeypatch):
    field = PlatformConfig.model_fields["name_prefix"]
    monkeypatch.setattr(field, "description", "something else entirely")
    assert render() != OUTPUT.read_text()
    assert "something else entirely" in render()


def test_the_check_flag_reports_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "config.md"
    stale.write_text("old\n")
    monkeypatch.setattr(config_docs, "OUTPUT", stale)
    monkeypatch.setattr(config_docs, "ROOT", tmp_path)
    assert config_docs.main(["--check"]) == 1
    assert config_docs.main([]) == 0 and config_docs.main(["--check"]) == 0


def test_the_writer_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "tools.config_docs", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
