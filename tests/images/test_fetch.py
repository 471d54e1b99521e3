"""The model fetcher against real local servers playing CivitAI, a file host and HF."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sdfleet_webui.fetch import Fetcher, FetchSettings
from sdfleet_webui.httpclient import RetryPolicy
from sdfleet_webui.modellist import parse_model_list
from sdfleet_webui.sources import Endpoints

from tests.images.conftest import child_env
from tests.images.fake_model_hosts import FakeModelHosts, HostedFile

FAST = RetryPolicy(attempts=4, backoff_seconds=0.01, max_backoff_seconds=5.0,
                   connect_timeout=2.0, read_timeout=5.0)


def blob(n: int, seed: int = 1) -> bytes:
    return hashlib.shake_256(str(seed).encode()).digest(n)


@pytest.fixture
def hosts():
    servers = FakeModelHosts()
    yield servers
    servers.close()


def fetcher(hosts, root: Path, civitai_token=None, hf_token=None, **kw) -> Fetcher:
    settings = FetchSettings(root=root, policy=kw.pop("policy", FAST), progress_seconds=0.0,
                             endpoints=Endpoints(hosts.civitai_api_base, hosts.hf_endpoint,
                                                 civitai_token, hf_token), **kw)
    return Fetcher(settings)


def models(*entries, default=None):
    return parse_model_list({"defaultCheckpoint": default, "models": list(entries)})


def test_civitai_versions_land_in_their_type_folder_verified_and_token_stays_on_civitai(hosts, tmp_path):
    ckpt = hosts.add(HostedFile("dreamshaper_8.safetensors", blob(300_000), "Checkpoint", 128713))
    lora = hosts.add(HostedFile("detail.safetensors", blob(50_000, 2), "LORA", 555,
                                needs_token="civitai-secret"))
    report = fetcher(hosts, tmp_path, civitai_token="civitai-secret").run(models(
        {"name": "dreamshaper", "source": "civitai", "civitaiVersionId": 128713},
        {"name": "detail-lora", "source": "civitai", "civitaiVersionId": 555}))
    assert report.ok, report.problems
    assert (tmp_path / "Stable-diffusion" / ckpt.name).read_bytes() == ckpt.data
    assert (tmp_path / "Lora" / lora.name).read_bytes() == lora.data
    manifest = json.loads((tmp_path / ".sdfleet-manifest.json").read_text())
    assert manifest["models"]["detail-lora"]["sha256"] == lora.sha256
    assert manifest["defaultCheckpoint"] == {"name": "dreamshaper",
                                             "path": f"Stable-diffusion/{ckpt.name}"}
    api_calls = hosts.seen("api", "/api/download/models/555")
    assert api_calls and api_calls[0]["headers"].get("Authorization") == "Bearer civitai-secret"
    file_calls = hosts.seen("files")
    assert file_calls and all("Authorization" not in r["headers"] for r in file_calls)
    assert not list(tmp_path.rglob("*.sdfleet-part*"))


def test_interrupted_transfer_resumes_with_range_even_across_runs(hosts, tmp_path):
    big = hosts.add(HostedFile("big.safetensors", blob(1_000_000), "Checkpoint", 7, cut_after=300_000))
    spec = {"name": "big", "source": "civitai", "civitaiVersionId": 7}
    one_try = RetryPolicy(attempts=1, backoff_seconds=0.01, connect_timeout=2, read_timeout=5)
    first = fetcher(hosts, tmp_path, policy=one_try).run(models(spec))
    assert not first.ok and "interrupted" in first.problems[0] and "'big'" in first.problems[0]
    part = tmp_path / "Stable-diffusion" / ".big.sdfleet-part"
    have = part.stat().st_size
    assert 200_000 <= have <= 300_000  # what arrived, less at most one network read
    assert not (tmp_path / "Stable-diffusion" / big.name).exists()

    second = fetcher(hosts, tmp_path).run(models(spec))
    assert second.ok, second.problems
    assert (tmp_path / "Stable-diffusion" / big.name).read_bytes() == big.data
    gets = hosts.seen("files")
    assert [r["headers"].get("Range") for r in gets] == [None, f"bytes={have}-"]
    assert gets[1]["headers"].get("If-Range") == big.etag


def test_interruption_within_one_run_is_retried_from_where_it_stopped(hosts, tmp_path):
    big = hosts.add(HostedFile("big2.safetensors", blob(700_000, 3), "Checkpoint", 8, cut_after=200_000))
    report = fetcher(hosts, tmp_path).run(models({"name": "big2", "source": "civitai", "civitaiVersionId": 8}))
    assert report.ok, report.problems
    assert (tmp_path / "Stable-diffusion" / big.name).read_bytes() == big.data
    ranges = [r["headers"].get("Range") for r in hosts.seen("files")]
    assert len(ranges) == 2 and ranges[0] is None
    assert 100_000 <= int(ranges[1].removeprefix("bytes=").rstrip("-")) <= 200_000


def test_wrong_hash_is_rejected_named_and_not_left_in_place(hosts, tmp_path):
    hosts.add(HostedFile("evil.safetensors", blob(80_000), "Checkpoint", 9, published_sha256="ab" * 32))
    report = fetcher(hosts, tmp_path).run(models({"name": "evil", "source": "civitai", "civitaiVersionId": 9}))
    assert not report.ok
    assert "'evil'" in report.problems[0] and "SHA-256 mismatch" in report.problems[0]
    assert not (tmp_path / "Stable-diffusion" / "evil.safetensors").exists()
    assert not list(tmp_path.rglob("*.sdfleet-part*"))
    manifest = json.loads((tmp_path / ".sdfleet-manifest.json").read_text())
    assert "evil" not in manifest["models"]


def test_refused_and_missing_models_name_the_model_and_cause(hosts, tmp_path):
    hosts.add(HostedFile("gated.safetensors", blob(1000), "LORA", 11, needs_token="right"))
    report = fetcher(hosts, tmp_path).run(models(
        {"name": "gated", "source": "civitai", "civitaiVersionId": 11},
        {"name": "ghost", "kind": "vae", "source": "civitai", "civitaiVersionId": 404404}))
    by_name = {o.name: o for o in report.outcomes}
    assert "HTTP 401" in by_name["gated"].error and "CIVITAI_TOKEN" in by_name["gated"].error
    assert "'ghost'" in by_name["ghost"].error and "not found (HTTP 404)" in by_name["ghost"].error
    assert len(report.problems) == 2


def test_429_retry_after_is_honoured(hosts, tmp_path):
    hosted = hosts.add(HostedFile("busy.safetensors", blob(10_000), "VAE", 12,
                                  statuses_first=[(429, {"Retry-After": "1"})]))
    report = fetcher(hosts, tmp_path).run(models({"name": "busy", "source": "civitai", "civitaiVersionId": 12}))
    assert report.ok, report.problems
    gets = hosts.seen("files")
    assert len(gets) == 2 and gets[1]["at"] - gets[0]["at"] >= 0.95
    assert (tmp_path / "VAE" / hosted.name).read_bytes() == hosted.data


def test_huggingface_file_is_verified_by_its_linked_etag(hosts, tmp_path):
    good = hosts.add(HostedFile("sd_xl_base_1.0.safetensors", blob(120_000, 5), needs_token="hf-secret"))
    bad = hosts.add(HostedFile("refiner.safetensors", blob(9_000, 6), published_sha256="cd" * 32))
    report = fetcher(hosts, tmp_path, hf_token="hf-secret").run(models(
        {"name": "sdxl-base", "kind": "checkpoint", "source": "huggingface",
         "repo": "stabilityai/stable-diffusion-xl-base-1.0", "file": good.name},
        {"name": "refiner", "kind": "checkpoint", "source": "huggingface", "repo": "org/refiner",
         "file": bad.name, "required": False}, default="sdxl-base"))
    assert report.ok and report.default_checkpoint == "sdxl-base"
    manifest = json.loads((tmp_path / ".sdfleet-manifest.json").read_text())
    assert manifest["models"]["sdxl-base"]["sha256"] == good.sha256
    refiner = next(o for o in report.outcomes if o.name == "refiner")
    assert not refiner.ok and "SHA-256 mismatch" in refiner.error
    assert not (tmp_path / "Stable-diffusion" / bad.name).exists()
    assert all(r["headers"].get("Authorization") == "Bearer hf-secret" for r in hosts.seen("hf"))
    assert all("Authorization" not in r["headers"] for r in hosts.seen("files"))


def test_config_hash_must_agree_with_the_source(hosts, tmp_path):
    hosts.add(HostedFile("x.safetensors", blob(1000), "Checkpoint", 21))
    report = fetcher(hosts, tmp_path).run(models(
        {"name": "x", "source": "civitai", "civitaiVersionId": 21, "sha256": "ef" * 32}))
    assert "differs from the one the source publishes" in report.problems[0]
    assert not hosts.seen("files")


def test_plain_url_takes_its_name_from_content_disposition_and_size_is_checked(hosts, tmp_path):
    hosted = hosts.add(HostedFile("dl", blob(5000), content_disposition='attachment; filename="../../nice vae.safetensors"'))
    report = fetcher(hosts, tmp_path).run(models(
        {"name": "nice-vae", "kind": "vae", "source": "url", "url": hosts.url("files", "/files/dl?download=true")}))
    assert report.ok, report.problems
    assert (tmp_path / "VAE" / "nice vae.safetensors").read_bytes() == hosted.data
    assert not (tmp_path.parent / "nice vae.safetensors").exists()


def test_an_unverified_file_at_the_final_name_is_replaced_and_a_good_one_adopted(hosts, tmp_path):
    a = hosts.add(HostedFile("a.safetensors", blob(40_000, 7), "Checkpoint", 31))
    b = hosts.add(HostedFile("b.safetensors", blob(40_000, 8), "Checkpoint", 32))
    (tmp_path / "Stable-diffusion").mkdir()
    (tmp_path / "Stable-diffusion" / a.name).write_bytes(a.data[:1000])  # half-written, no manifest
    (tmp_path / "Stable-diffusion" / b.name).write_bytes(b.data)  # complete, no manifest
    report = fetcher(hosts, tmp_path).run(models(
        {"name": "a", "source": "civitai", "civitaiVersionId": 31},
        {"name": "b", "source": "civitai", "civitaiVersionId": 32}, default="b"))
    statuses = {o.name: o.status for o in report.outcomes}
    assert statuses == {"a": "downloaded", "b": "adopted"}
    assert (tmp_path / "Stable-diffusion" / a.name).read_bytes() == a.data
    assert [r["path"].split("?")[0] for r in hosts.seen("files")] == ["/files/a.safetensors"]


def test_parallelism_is_bounded(hosts, tmp_path):
    entries = []
    for i in range(4):
        hosts.add(HostedFile(f"m{i}.safetensors", blob(300_000, i), "LORA", 40 + i, chunk_delay=0.05))
        entries.append({"name": f"m{i}", "source": "civitai", "civitaiVersionId": 40 + i})
    report = fetcher(hosts, tmp_path, parallel=2).run(models(*entries))
    assert report.ok, report.problems
    assert hosts.max_active == 2


def test_default_checkpoint_is_the_named_one_not_the_last(hosts, tmp_path):
    for i, name in enumerate(["first", "named", "last"]):
        hosts.add(HostedFile(f"{name}.safetensors", blob(2000, i), "Checkpoint", 60 + i))
    report = fetcher(hosts, tmp_path).run(models(
        *[{"name": n, "source": "civitai", "civitaiVersionId": 60 + i}
          for i, n in enumerate(["first", "named", "last"])], default="named"))
    assert report.default_checkpoint == "named"
    unnamed = fetcher(hosts, tmp_path).run(models(
        *[{"name": n, "source": "civitai", "civitaiVersionId": 60 + i}
          for i, n in enumerate(["first", "named", "last"])]))
    assert unnamed.ok and unnamed.default_checkpoint is None


def run_cli(args: list[str], **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sdfleet_webui.fetch", *args], env=child_env(**env),
                          capture_output=True, text=True, timeout=120)


def test_cli_second_run_needs_no_network_and_exit_status_tracks_required_models(hosts, tmp_path):
    ckpt = hosts.add(HostedFile("base.safetensors", blob(200_000, 9), "Checkpoint", 70,
                                needs_token="tok-123-secret"))
    hosts.add(HostedFile("lora.safetensors", blob(2000, 10), "LORA", 71))
    models_file = tmp_path / "models.json"
    models_file.write_text(json.dumps({"defaultCheckpoint": "base", "models": [
        {"name": "base", "kind": "checkpoint", "source": "civitai", "civitaiVersionId": 70},
        {"name": "style", "source": "civitai", "civitaiVersionId": 71},
        {"name": "gone", "kind": "vae", "source": "url", "url": hosts.url("files", "/files/missing"),
         "required": False}]}))
    root = tmp_path / "models"
    env = dict(CIVITAI_API_BASE=hosts.civitai_api_base, HF_ENDPOINT=hosts.hf_endpoint,
               CIVITAI_TOKEN="tok-123-secret", SDFLEET_FETCH_BACKOFF_SECONDS="0.01",
               SDFLEET_FETCH_PROGRESS_SECONDS="0")
    first = run_cli(["--models-file", str(models_file), "--root", str(root)], **env)
    assert first.returncode == 0, first.stderr
    assert "download-progress" in first.stderr and "'gone'" in first.stderr
    assert "tok-123-secret" not in first.stderr + first.stdout
    assert "secret-signature" not in first.stderr
    target = root / "Stable-diffusion" / ckpt.name
    mtime = target.stat().st_mtime_ns

    hosts.close()  # no network at all from here on
    second = run_cli(["--models-file", str(models_file), "--root", str(root)],
                     **dict(env, SDFLEET_FETCH_ATTEMPTS="1", SDFLEET_FETCH_CONNECT_TIMEOUT="0.5"))
    assert second.returncode == 0, second.stderr
    assert target.stat().st_mtime_ns == mtime
    assert '"network": false' in second.stderr
    offline = run_cli(["--models-file", str(models_file), "--root", str(root), "--offline"])
    assert offline.returncode == 0, offline.stderr

    os.truncate(target, 1000)  # damaged behind the manifest's back: no longer verified
    damaged = run_cli(["--models-file", str(models_file), "--root", str(root), "--offline"])
    assert damaged.returncode == 1
    assert "'base'" in damaged.stderr and "1000 bytes" in damaged.stderr


def test_cli_rejects_a_bad_model_list_naming_field_and_value(tmp_path):
    bad = tmp_path / "models.json"
    bad.write_text(json.dumps({"models": [{"name": "x", "kind": "lorra", "source": "url",
                                           "url": "https://example.com/x"}]}))
    result = run_cli(["--models-file", str(bad), "--root", str(tmp_path / "m")])
    assert result.returncode == 2
    assert "models.0.kind" in result.stderr and "'lorra'" in result.stderr and "'lora'" in result.stderr
    assert "model 'x'" in result.stderr


# --- Hugging Face through huggingface_hub --------------------------------
# huggingface_hub reads the body in 10 MiB chunks (constants.DOWNLOAD_CHUNK_SIZE): what a cut
# leaves on disk is whole chunks, so these files are larger than one chunk.
MIB = 1024 * 1024

def _hf_spec(hosted, name="hf-model", **extra):
    return {"name": name, "kind": "checkpoint", "source": "huggingface", "repo": "org/repo",
            "file": hosted.name, **extra}


def test_huggingface_download_resumes_across_runs_with_range(hosts, tmp_path):
    """A run that gives up mid-file leaves its partial; the next run asks the CDN for the rest
    only (huggingface_hub's http_get with resume_size), and the result is verified."""
    big = hosts.add(HostedFile("hf-big.safetensors", blob(24 * MIB, 11), cut_after=21 * MIB,
                               statuses_after_cut=[(503, {})] * 8))
    one_try = RetryPolicy(attempts=1, backoff_seconds=0.01, connect_timeout=2, read_timeout=5)
    first = fetcher(hosts, tmp_path, policy=one_try).run(models(_hf_spec(big)))
    assert not first.ok and "'hf-model'" in first.problems[0]
    part = tmp_path / "Stable-diffusion" / ".hf-model.sdfleet-part"
    have = part.stat().st_size
    assert 10 * MIB <= have <= 21 * MIB
    big.statuses_first.clear()

    second = fetcher(hosts, tmp_path).run(models(_hf_spec(big)))
    assert second.ok, second.problems
    assert (tmp_path / "Stable-diffusion" / big.name).read_bytes() == big.data
    assert hosts.seen("files")[-1]["headers"].get("Range") == f"bytes={have}-"
    assert not part.exists()
    # The metadata request is huggingface_hub's (its user agent), against HF_ENDPOINT's host.
    assert all("hf_hub/" in r["headers"].get("User-Agent", "") for r in hosts.seen("hf"))


def test_huggingface_interruption_within_a_run_resumes_from_where_it_stopped(hosts, tmp_path):
    big = hosts.add(HostedFile("hf-big2.safetensors", blob(24 * MIB, 12), cut_after=15 * MIB))
    report = fetcher(hosts, tmp_path).run(models(_hf_spec(big)))
    assert report.ok, report.problems
    ranges = [r["headers"].get("Range") for r in hosts.seen("files")]
    assert ranges[0] is None and len(ranges) == 2
    assert 10 * MIB <= int(ranges[1].removeprefix("bytes=").rstrip("-")) <= 15 * MIB


def test_huggingface_partial_of_another_etag_is_discarded_not_spliced(hosts, tmp_path):
    """The file changed on the Hub (new etag) after a partial download: start over."""
    hosted = hosts.add(HostedFile("hf-changing.safetensors", blob(16 * MIB, 13), cut_after=12 * MIB,
                                  statuses_after_cut=[(503, {})] * 8))
    one_try = RetryPolicy(attempts=1, backoff_seconds=0.01, connect_timeout=2, read_timeout=5)
    assert not fetcher(hosts, tmp_path, policy=one_try).run(models(_hf_spec(hosted))).ok
    assert (tmp_path / "Stable-diffusion" / ".hf-model.sdfleet-part").stat().st_size > 0
    hosted.statuses_first.clear()
    hosted.data = blob(16 * MIB, 14)   # a new revision: new SHA-256, so a new X-Linked-Etag

    report = fetcher(hosts, tmp_path).run(models(_hf_spec(hosted)))
    assert report.ok, report.problems
    assert (tmp_path / "Stable-diffusion" / hosted.name).read_bytes() == hosted.data
    assert hosts.seen("files")[-1]["headers"].get("Range") is None
    manifest = json.loads((tmp_path / ".sdfleet-manifest.json").read_text())
    assert manifest["models"]["hf-model"]["sha256"] == hosted.sha256


def test_huggingface_gated_file_names_the_model_and_the_token(hosts, tmp_path):
    gated = hosts.add(HostedFile("gated.safetensors", blob(1_000, 15), needs_token="hf-right"))
    report = fetcher(hosts, tmp_path).run(models(_hf_spec(gated, name="gated")))
    assert not report.ok
    assert "'gated'" in report.problems[0] and "401" in report.problems[0]
    assert "HF_TOKEN" in report.problems[0]
    assert not hosts.seen("files")    # refused at the metadata request: no download tried


def test_huggingface_verified_file_is_not_downloaded_again(hosts, tmp_path):
    hosted = hosts.add(HostedFile("hf-once.safetensors", blob(50_000, 16)))
    assert fetcher(hosts, tmp_path).run(models(_hf_spec(hosted))).ok
    before = len(hosts.seen())
    assert fetcher(hosts, tmp_path).run(models(_hf_spec(hosted))).ok
    assert len(hosts.seen()) == before   # the manifest says verified: no request at all


def test_every_kinds_folder_exists_after_a_sync_even_without_a_model_of_that_kind(hosts, tmp_path):
    """Pods see the store read-only; A1111's Lora extension makes --lora-dir at start and
    fails on a missing one. The sync makes every kind's folder, as the frameworks are told."""
    from sdfleet_webui import frameworks
    from sdfleet_webui.modellist import KIND_FOLDERS
    hosts.add(HostedFile("only.safetensors", blob(1000, 3), "Checkpoint", 90))
    report = fetcher(hosts, tmp_path).run(models(
        {"name": "only", "source": "civitai", "civitaiVersionId": 90}))
    assert report.ok, report.problems
    for folder in KIND_FOLDERS.values():
        assert (tmp_path / folder).is_dir(), folder
    # every models folder a framework is pointed at is one of them
    s = frameworks.LaunchSettings(frameworks_root=tmp_path / "fw", scratch=tmp_path / "scratch",
                                  models_root=tmp_path)
    argv, _ = frameworks.launch_command("automatic1111", s)
    pointed = [Path(a) for a in argv if a.startswith(str(tmp_path)) and "scratch" not in a]
    assert pointed and all(p.is_dir() for p in pointed), pointed
