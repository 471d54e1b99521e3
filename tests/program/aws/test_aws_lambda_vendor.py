"""The submit Lambda's vendored dependencies: a real deploy refuses to ship without them."""

from __future__ import annotations

import textwrap

import pytest

from tools.preview import run_program


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "update"])
def test_mock_engine_never_counts_as_a_real_deploy(tmp_path, preview):
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent("""
        import pulumi
        from components.aws.api import _deploys_for_real, submit_archive
        from pathlib import Path
        submit_archive(Path(%r))
        pulumi.export("real", _deploys_for_real())
    """ % str(tmp_path)))
    (tmp_path / "handler.py").write_text("def handler(event, context):\n    return {}\n")
    (tmp_path / "sdfleet_submit").mkdir()
    result = run_program({}, preview=preview, program=program)
    assert result.outputs == {"real": False}


def test_a_real_deploy_without_vendor_is_refused(tmp_path, monkeypatch):
    import pulumi

    from components.aws import api
    (tmp_path / "handler.py").write_text("")
    (tmp_path / "sdfleet_submit").mkdir()
    monkeypatch.setattr(api, "_deploys_for_real", lambda: True)
    with pytest.raises(pulumi.RunError, match="make lambda"):
        api.submit_archive(tmp_path)
    (tmp_path / "vendor" / "pydantic").mkdir(parents=True)
    archive = api.submit_archive(tmp_path)
    assert set(archive.assets) == {"handler.py", "sdfleet_submit", "pydantic"}
