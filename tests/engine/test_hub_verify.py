"""Downloads are checked against the hashes their publishers recorded, through the same
fetch_model users hit, against a stand-in hub on 127.0.0.1: a correct file passes, a
damaged one (same size, so huggingface_hub's own size check passes it) is refused and
removed from the cache, and a download resumed (within one attempt, or after a cancelled
or killed one) is checked whole."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from engine.errors import Cancelled, ChecksumMismatch
from engine.models.folder import MODEL_FOLDER_FILES, record_hashes
from engine.models.hub import fetch_model
from engine.models.registry import Registry, Source, load_spec
from engine.models.runtime import OnnxModel
from engine.settings import Settings
from tests.app.fakehub import COMMIT, DEMO, FakeHub, hub_model_files, point_hf_at
from tests.engine.modelkit import MODEL_KEY

KEY, REPO = "demo-from-hub", "photosift/demo-onnx"


@pytest.fixture
def online(monkeypatch, tmp_path):
    """A stand-in hub for REPO, with huggingface_hub pointed at it and a cache of the test's own."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))

    def serve(files: dict[str, bytes]) -> FakeHub:
        hub = FakeHub(REPO, files)
        point_hf_at(hub, monkeypatch)
        return hub

    return serve


def spec_for(**files) -> object:
    """The demo model's registry entry under another key, downloaded from REPO (no pins unless given)."""
    spec = Registry.load().get(MODEL_KEY)
    return replace(spec, key=KEY, source=Source(onnx_repo=REPO, files=files))


def cached_blobs(tmp_path: Path) -> list[bytes]:
    return [p.read_bytes() for p in (tmp_path / "hf" / "hub").rglob("blobs/*") if p.is_file()]


def test_a_correct_download_passes_and_is_checked_against_the_hub(online, tmp_path):
    files = hub_model_files(KEY, REPO)
    with online(files) as hub:
        folder = fetch_model(spec_for(), Settings(data_dir=tmp_path / "data"), offline=False)
    assert {f: (folder / f).read_bytes() for f in MODEL_FOLDER_FILES} == files
    assert OnnxModel(folder).encode_texts(["a red circle"]).shape == (1, 128)
    heads = [name for method, name, _ in hub.requests if method == "HEAD"]
    for f in MODEL_FOLDER_FILES:  # one HEAD by huggingface_hub, one for the published hash
        assert heads.count(f) >= 2, (f, heads)


@pytest.mark.parametrize(
    "name, algorithm", [("image.onnx", "sha256"), ("tokenizer.json", "git-sha1")]
)
def test_a_damaged_download_is_refused_and_removed(online, tmp_path, name, algorithm):
    files = hub_model_files(KEY, REPO)
    settings = Settings(data_dir=tmp_path / "data")
    with online(files) as hub:
        bad = hub.corrupt(name)
        with pytest.raises(ChecksumMismatch) as e:
            fetch_model(spec_for(), settings, offline=False)
        err = e.value
        assert (err.file, err.algorithm, err.source) == (name, algorithm, "hub")
        if algorithm == "sha256":
            assert err.expected == hashlib.sha256(files[name]).hexdigest()
            assert err.actual == hashlib.sha256(bad).hexdigest()
        msg = str(err)
        assert name in msg and err.expected in msg and err.actual in msg and REPO in msg
        assert "download the model again" in msg and "photosift models import" in msg
        assert bad not in cached_blobs(tmp_path), "the damaged copy was left in the cache"

        del hub.served[name]  # the connection behaves again: the next try downloads it anew
        folder = fetch_model(spec_for(), settings, offline=False)
    assert (folder / name).read_bytes() == files[name]
    assert sum(1 for m, f, _ in hub.requests if (m, f) == ("GET", name)) == 2


def test_a_registry_pin_wins_over_the_hub(online, tmp_path):
    """The registry's sha256 is checked even when the hub publishes the file's own hash
    (a repo whose files changed since the entry was written)."""
    files = hub_model_files(KEY, REPO)
    other = "0" * 64
    with online(files), pytest.raises(ChecksumMismatch) as e:
        fetch_model(spec_for(**{"text.onnx": {"sha256": other}}),
                    Settings(data_dir=tmp_path / "data"), offline=False)  # fmt: skip
    assert (e.value.file, e.value.source, e.value.expected) == ("text.onnx", "registry", other)
    assert "registry records" in str(e.value)
    assert files["text.onnx"] not in cached_blobs(tmp_path)


def test_a_broken_off_download_resumes_and_is_checked_whole(online, tmp_path):
    """The connection breaks part-way through image.onnx: huggingface_hub resumes it with a
    Range request, and the whole file is checked. Damage in the resumed part is refused."""
    files = hub_model_files(KEY, REPO)
    settings = Settings(data_dir=tmp_path / "data")
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

    # huggingface_hub writes whole 10 MB chunks: it resumes after the last one it wrote
    kept, cut = DOWNLOAD_CHUNK_SIZE, DOWNLOAD_CHUNK_SIZE + 500_000
    assert cut < len(files["image.onnx"])
    with online(files) as hub:
        hub.drop("image.onnx", after=cut)
        hub.corrupt("image.onnx", at=cut + 1)  # damage only in the part fetched on resuming
        with pytest.raises(ChecksumMismatch, match="image.onnx"):
            fetch_model(spec_for(), settings, offline=False)
        assert ("GET", "image.onnx", f"bytes={kept}-") in hub.requests, "it did not resume"
        assert hub.served["image.onnx"] not in cached_blobs(tmp_path)

        del hub.served["image.onnx"]
        hub.drop("image.onnx", after=cut)
        folder = fetch_model(spec_for(), settings, offline=False)
    assert (folder / "image.onnx").read_bytes() == files["image.onnx"]
    ranged = [r for m, f, r in hub.requests if (m, f) == ("GET", "image.onnx") and r]
    assert ranged == [f"bytes={kept}-"] * 2


BIG = bytes(range(256)) * 100_000  # 25.6 MB: three of huggingface_hub's 10 MB chunks


def partial_of(tmp_path: Path, data: bytes) -> Path:
    from engine.models.hubresume import partial_path

    return partial_path(tmp_path / "hf" / "hub", REPO, hashlib.sha256(data).hexdigest())


def image_gets(hub: FakeHub) -> list[str | None]:
    """The Range header of each GET of image.onnx (None: the whole file)."""
    return [r for m, f, r in hub.requests if (m, f) == ("GET", "image.onnx")]


def cancel_in_image(hub: FakeHub, settings: Settings) -> None:
    """Start the download and cancel it once image.onnx is under way."""
    cancel = threading.Event()

    def stop_in_image(p):
        if p.file == "image.onnx" and 0 < p.done < len(BIG):
            cancel.set()  # noticed once the chunk in hand is on disk

    with pytest.raises(Cancelled):
        fetch_model(spec_for(), settings, offline=False, progress=stop_in_image, cancel=cancel)


def test_a_cancelled_download_resumes_next_time(online, tmp_path):
    """What a cancelled download received is kept beside the cache; the next attempt asks
    only for the rest (a Range request), reports progress from there, and checks the whole."""
    from huggingface_hub.constants import DOWNLOAD_CHUNK_SIZE

    files = {**hub_model_files(KEY, REPO), "image.onnx": BIG}
    settings = Settings(data_dir=tmp_path / "data")
    partial = partial_of(tmp_path, BIG)
    with online(files) as hub:
        cancel_in_image(hub, settings)
        assert partial.read_bytes() == BIG[:DOWNLOAD_CHUNK_SIZE]
        assert BIG not in cached_blobs(tmp_path)
        # huggingface_hub's cache tools see it as an incomplete download (`hf cache prune`)
        from huggingface_hub import scan_cache_dir

        unfinished = scan_cache_dir(tmp_path / "hf" / "hub").incomplete_files
        assert [f.file_path for f in unfinished] == [partial]

        seen = []
        folder = fetch_model(spec_for(), settings, offline=False, progress=seen.append)
        assert image_gets(hub) == [None, f"bytes={DOWNLOAD_CHUNK_SIZE}-"]
        ticks = [(p.done, p.total) for p in seen if p.file == "image.onnx"]
        assert ticks[0] == (DOWNLOAD_CHUNK_SIZE, len(BIG)) and ticks[-1] == (len(BIG), len(BIG))
        # checked against the hash the hub publishes, and only then put in the cache
        heads = [f for m, f, _ in hub.requests if m == "HEAD"]
        assert heads.count("image.onnx") >= 2
    assert (folder / "image.onnx").read_bytes() == BIG
    assert not partial.exists()
    assert cached_blobs(tmp_path).count(BIG) == 1


def test_a_killed_download_resumes_and_the_cache_is_huggingface_hubs_own(online, tmp_path,
                                                                          monkeypatch):  # fmt: skip
    """A process killed mid-download leaves its partial at any byte; the next attempt resumes
    there, and the file lands in the cache as huggingface_hub lays it out: an offline
    hf_hub_download (as transformers or open_clip would call it) finds it."""
    from huggingface_hub import hf_hub_download

    files = {**hub_model_files(KEY, REPO), "image.onnx": BIG}
    settings = Settings(data_dir=tmp_path / "data")
    partial = partial_of(tmp_path, BIG)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(BIG[:1_000_003])
    with online(files) as hub:
        fetch_model(spec_for(), settings, offline=False)
    assert image_gets(hub) == ["bytes=1000003-"]
    assert not partial.exists()

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing answers there
    cache = tmp_path / "hf" / "hub"
    for name, data in files.items():
        found = Path(hf_hub_download(REPO, name, cache_dir=cache, local_files_only=True))
        assert found.read_bytes() == data and found.is_symlink()
    assert (cache / "models--photosift--demo-onnx" / "refs" / "main").read_text() == COMMIT


def test_a_damaged_partial_is_refused_and_removed(online, tmp_path):
    """Damage in the part an earlier attempt left (disk, a killed write) is caught by the
    check of the whole file: refused, deleted, and the next attempt starts afresh."""
    files = {**hub_model_files(KEY, REPO), "image.onnx": BIG}
    settings = Settings(data_dir=tmp_path / "data")
    partial = partial_of(tmp_path, BIG)
    with online(files) as hub:
        cancel_in_image(hub, settings)
        damaged = bytearray(partial.read_bytes())
        damaged[12345] ^= 0xFF
        partial.write_bytes(bytes(damaged))

        with pytest.raises(ChecksumMismatch) as e:
            fetch_model(spec_for(), settings, offline=False)
        assert (e.value.file, e.value.source) == ("image.onnx", "hub")
        assert e.value.expected == hashlib.sha256(BIG).hexdigest()
        assert f"resumed from {len(damaged)} bytes" in str(e.value)
        assert not partial.exists() and BIG not in cached_blobs(tmp_path)

        folder = fetch_model(spec_for(), settings, offline=False)
    assert image_gets(hub) == [None, f"bytes={len(damaged)}-", None]
    assert (folder / "image.onnx").read_bytes() == BIG


def test_a_partial_longer_than_the_file_is_refused_and_removed(online, tmp_path):
    from engine.errors import ModelError

    files = hub_model_files(KEY, REPO)
    settings = Settings(data_dir=tmp_path / "data")
    partial = partial_of(tmp_path, files["image.onnx"])
    partial.parent.mkdir(parents=True)
    partial.write_bytes(files["image.onnx"] + b"x")
    with online(files) as hub:
        with pytest.raises(ModelError, match="larger than the file") as e:
            fetch_model(spec_for(), settings, offline=False)
        assert "image.onnx" in str(e.value) and "deleted" in str(e.value)
        assert not partial.exists()
        folder = fetch_model(spec_for(), settings, offline=False)
    assert image_gets(hub) == [None]
    assert (folder / "image.onnx").read_bytes() == files["image.onnx"]


def test_a_download_waits_for_another_of_the_same_file_and_can_be_cancelled(online, tmp_path):
    """Two processes never append to one partial file: the second waits on huggingface_hub's
    lock for that blob (and a cancel still stops it while it waits)."""
    from filelock import FileLock

    from tests.app.fakehub import published_etag

    files = hub_model_files(KEY, REPO)
    etag = published_etag("model.json", files["model.json"])
    lock = tmp_path / "hf" / "hub" / ".locks" / "models--photosift--demo-onnx" / f"{etag}.lock"
    lock.parent.mkdir(parents=True)
    cancel = threading.Event()
    with online(files) as hub, FileLock(str(lock)):  # another process is fetching model.json
        threading.Timer(1.0, cancel.set).start()
        with pytest.raises(Cancelled, match="another download"):
            fetch_model(spec_for(), Settings(data_dir=tmp_path / "data"), offline=False,
                        cancel=cancel)  # fmt: skip
    assert ("HEAD", "model.json", None) in hub.requests
    assert not [r for r in hub.requests if r[0] == "GET"], "it downloaded beside the other"


def test_without_symlinks_the_snapshot_holds_the_file_and_no_blob_is_left(online, tmp_path,
                                                                          monkeypatch):  # fmt: skip
    """Where symlinks are not allowed (Windows without developer mode) huggingface_hub keeps
    the file in the snapshot folder only; a resumed download leaves the same, not two copies."""
    import huggingface_hub.file_download as fd

    monkeypatch.setattr(fd, "are_symlinks_supported", lambda *a, **k: False)
    files = hub_model_files(KEY, REPO)
    with online(files):
        folder = fetch_model(spec_for(), Settings(data_dir=tmp_path / "data"), offline=False)
    image = folder / "image.onnx"
    assert not image.is_symlink() and image.read_bytes() == files["image.onnx"]
    assert files["image.onnx"] not in cached_blobs(tmp_path)


def test_offline_only_registry_pins_can_be_checked(online, tmp_path, monkeypatch):
    """Offline nothing can be asked: a pinned file is still checked, an unpinned one is taken
    from the cache (it was checked when it arrived)."""
    files = hub_model_files(KEY, REPO)
    settings = Settings(data_dir=tmp_path / "data")
    with online(files):
        fetch_model(spec_for(), settings, offline=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing answers there
    assert fetch_model(spec_for(), settings, offline=True).is_dir()
    with pytest.raises(ChecksumMismatch, match="registry records"):
        fetch_model(spec_for(**{"image.onnx": {"sha256": "f" * 64}}), settings, offline=True)


def test_record_hashes_pins_the_folder_and_keeps_where_it_came_from(tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(DEMO, folder)
    spec = load_spec(folder / "model.json")
    stale = {"tokenizer.json": {"sha256": "1" * 64}, "weights.safetensors": {"sha256": "2" * 64}}
    (folder / "model.json").write_text(json.dumps({**spec.to_json(), "source": {"files": stale}}))
    download = {
        "repo": "org/x",
        "revision": "a" * 40,
        "files": {"tokenizer.json": {"sha256": "3" * 64}},
    }
    out = record_hashes(folder, download)
    for f in MODEL_FOLDER_FILES[1:]:  # the folder's own files, hashed now (not the repo's)
        want = hashlib.sha256((folder / f).read_bytes()).hexdigest()
        assert out.source.files[f] == {"sha256": want, "size": (folder / f).stat().st_size}
    assert out.source.files["weights.safetensors"] == stale["weights.safetensors"]
    assert load_spec(folder / "model.json").extra["download"] == download


def test_an_unreachable_or_unhashed_hub_is_a_clear_error(online, tmp_path, monkeypatch):
    from engine.errors import ModelError, ModelNotAvailable
    from engine.models.hubverify import published_hash

    with pytest.raises(ModelNotAvailable, match="published checksum could not be fetched"):
        published_hash(REPO, "image.onnx", "main", endpoint="http://127.0.0.1:9")
    with online(hub_model_files(KEY, REPO)) as hub:
        assert published_hash(REPO, "model.json", "main", hub.url).algorithm == "git-sha1"
        monkeypatch.setattr("tests.app.fakehub.published_etag", lambda name, data: "v1-not-a-hash")
        with pytest.raises(ModelError, match="publishes no checksum"):
            published_hash(REPO, "image.onnx", "main", hub.url)
