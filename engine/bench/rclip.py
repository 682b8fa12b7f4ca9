"""`photosift bench rclip`: photosift side by side with rclip 4.0.8, the tool our users would
otherwise use, on the same photos, the same model graphs and the same machine, in one run.

What is measured (every figure is a whole process, exec to exit):

1. cold index of the corpus into a fresh library (a fresh rclip data dir / photosift data dir;
   the model files kept), default settings, 4 runs each alternating rclip, photosift, rclip, ...:
   median wall seconds, photos/s, and photos per CPU-second (user + sys of the process, which
   a shared machine distorts far less than wall time);
2. ``search "a dog on the grass"`` once the index exists (rclip with ``--no-indexing``; without
   it every rclip search re-scans first), median of 5 alternating;
3. re-index with nothing changed, median of 5 alternating;
4. peak RSS of one query process (and of an index process): ``ru_maxrss`` of that process from
   ``os.wait4``, the kernel's high-water mark of its resident set, as ``/usr/bin/time -v``
   reports it; median over the runs. A small launcher starts each command, since a forked
   process inherits its parent's high-water mark and the bench's own is large;
5. equal quality: both tools' top 10 for a few queries over the same photos (mean overlap, and
   which files are in one top 10 only) and the cosine between the two libraries' vectors of the
   same file. Where photosift's default image tower is int8 (CPUs with VNNI), this is done for
   the default and again for a ``--fp32`` library, whose graphs are rclip's: what differs there
   is decoding and preprocessing alone.

Ratios are photosift / rclip of the figure in the row (photos/s above 1: photosift faster;
seconds and MiB below 1: photosift faster / smaller), and hold only within one run: the CPU
flags and load average are printed beside them. Before timing, the model and photo files are
read once (no side pays for the first read from disk) and each tool indexes one photo and
searches once, untimed: the first start after an install is slower, and photosift does its
once-per-model work there (the int8 tower's check against fp32, the derived text graph, the
model file check), as a user's first library would.

How each side runs:

* rclip 4.0.8 lives in a venv of its own (``<bench cache>/rclip/venv``, made once by
  ``ensure_rclip``: Python 3.12 or 3.13, ``pip install rclip==4.0.8``; it is torch-free and runs
  ONNX Runtime). rclip indexes its working directory and has no index-only command (every
  ``rclip QUERY`` indexes, then searches), so the index runs call ``rclip.main.init_rclip`` with
  the CLI's own parsed defaults: exactly what ``rclip QUERY`` does before its query
  (rclip/main.py ``main``). Searches run the ``rclip`` console script itself.
* The model is a full-size random-weight ViT-B-32-256 (it times exactly like the trained one)
  exported in rclip's repo layout (training.testmodels.hub_layouts: rclip's scripts/convert_model.py).
  rclip finds it under ``RCLIP_DATADIR`` as its downloader leaves it (rclip/model_download.py:
  the towers under ``ViT-B-32-256-datacomp_s34b_b86k/``, ``tokenizer/``, four licence files at
  the root; all of them present means no download), with ``HF_HUB_OFFLINE=1``; each fresh data
  dir hard-links those files. photosift imports the very same folder (``models import REPO --as
  vit-b-32-256-datacomp``, ``models use``) into a template data dir, remade whenever the engine's
  code changes; each fresh library shares its models folder.
* photosift runs as ``python -m engine.cli`` from this source tree with this interpreter.

Needs the training extra once (to export the model) and pip's access to PyPI once (to install
rclip); the corpus (engine.bench.corpus) is built once; all three are cached.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..models.cpu import describe as cpu_flags
from .common import bench_log, cache_dir

RCLIP_VERSION = "4.0.8"
MODEL_KEY = "vit-b-32-256-datacomp"
QUERY = "a dog on the grass"
QUALITY_QUERIES = (
    QUERY,
    "a red car",
    "people on a beach",
    "a plate of food",
    "a city street at night",
)
COLD_RUNS, SEARCH_RUNS, REINDEX_RUNS = 4, 5, 5
CHILD_TIMEOUT_S = 3600
DEFAULT_PHOTOS, QUICK_PHOTOS = 1160, 40

# rclip's index step as its CLI runs it before a query: main() minus the search and printing.
RCLIP_INDEX = """
import os
from rclip.main import init_rclip
from rclip.utils import helpers
a = helpers.init_arg_parser().parse_args(["query"])  # the CLI's defaults, whatever they are
r, m, db = init_rclip(working_directory=os.getcwd(), indexing_batch_size=a.indexing_batch_size,
                      exclude_dir=a.exclude_dir, no_indexing=False, enable_raw_support=a.experimental_raw_support,
                      max_image_pixels=a.max_image_megapixels, include_hidden=a.include_hidden)
r.close(); m.close(); db.close()
"""


class SetupError(SystemExit):
    """rclip could not be set up; the message is the one line the user sees (exit status 1)."""


# -- rclip's venv ---------------------------------------------------------------------------


def _python_version(exe: str) -> tuple[int, int] | None:
    try:
        r = subprocess.run([exe, "-c", "import sys; print(*sys.version_info[:2])"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        major, minor = r.stdout.split() if r.returncode == 0 else ("", "")
        return int(major), int(minor)
    except ValueError:  # not a Python, or a pyenv shim with no such version behind it
        return None


def find_python(explicit: str | None = None) -> str:
    """A Python rclip 4.0.8 runs on (>= 3.12, < 3.14): ``explicit`` (``--rclip-python`` or
    $PHOTOSIFT_RCLIP_PYTHON), else ``python3.12``/``python3.13`` on PATH, else pyenv's."""
    explicit = explicit or os.environ.get("PHOTOSIFT_RCLIP_PYTHON")
    if explicit:
        v = _python_version(explicit)
        if v is None or not (3, 12) <= v < (3, 14):
            raise SetupError(f"rclip bench: {explicit} is not a working Python 3.12 or 3.13 "
                             f"(rclip {RCLIP_VERSION} needs one); point --rclip-python at one")  # fmt: skip
        return explicit
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    cands = [shutil.which(n) for n in ("python3.12", "python3.13")]
    for minor in ("3.12", "3.13"):
        cands += sorted(
            glob.glob(str(pyenv / f"{minor}.*" / "bin" / f"python{minor}")), reverse=True
        )
    for c in cands:
        if c and (v := _python_version(c)) and (3, 12) <= v < (3, 14):
            return c
    raise SetupError(f"rclip bench: rclip {RCLIP_VERSION} needs Python 3.12 or 3.13 and none was found "
                     "(not python3.12/python3.13 on PATH, not in pyenv); install one (`pyenv install 3.12`, "
                     "or your system's python3.12 package) or pass --rclip-python /path/to/python3.12")  # fmt: skip


def ensure_rclip(root: Path, python: str | None = None, log=print) -> Path:
    """rclip ``RCLIP_VERSION`` in a venv of its own under ``root`` (made once); returns the venv.

    Steps: find a Python 3.12/3.13, ``python -m venv root/venv``, ``pip install rclip==X`` (pip
    resolves rclip's own requirements: onnxruntime, numpy, pillow, huggingface-hub, textual,
    rawpy, ...; no torch), check ``rclip --version``, and keep ``pip freeze`` beside it. A venv
    that is half made or holds another version is made again."""
    venv = root / "venv"
    stamp = venv / "photosift-bench.json"
    want = f"rclip=={RCLIP_VERSION}"
    if (
        stamp.is_file()
        and json.loads(stamp.read_text()).get("requirement") == want
        and _rclip_ok(venv)
    ):
        return venv
    py = find_python(python)
    log(f"  setting up {want} in {venv} with {py} (once; pip needs PyPI)")
    shutil.rmtree(venv, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    pip_log = root / "pip-install.log"
    steps = {f"{py} -m venv {venv}": [py, "-m", "venv", str(venv)],
             f"pip install {want}": [str(venv / "bin" / "python"), "-m", "pip", "install",
                                     "--disable-pip-version-check", want]}  # fmt: skip
    with open(pip_log, "w") as lf:
        for what, cmd in steps.items():
            lf.write(f"$ {' '.join(cmd)}\n")
            lf.flush()
            r = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if r.returncode != 0:
                last = [x for x in pip_log.read_text().splitlines() if x.strip()][-1:]
                raise SetupError(f"rclip bench: `{what}` failed (exit {r.returncode}); "
                                 f"see {pip_log}: {last[0] if last else ''}")  # fmt: skip
    if not _rclip_ok(venv):
        raise SetupError(f"rclip bench: rclip {RCLIP_VERSION} was installed in {venv} but "
                         f"`rclip --version` does not say so; see {pip_log}")  # fmt: skip
    freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True,
                            text=True).stdout.split()  # fmt: skip
    stamp.write_text(json.dumps(dict(requirement=want, python=py, freeze=freeze), indent=1))
    return venv


def _rclip_ok(venv: Path) -> bool:
    exe = venv / "bin" / "rclip"
    if not exe.is_file():
        return False
    r = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, env=_rclip_env(venv, None)
    )
    return r.returncode == 0 and r.stdout.split() == ["rclip", RCLIP_VERSION]


# -- the model, for both --------------------------------------------------------------------


def rclip_repo(root: Path, log) -> Path:
    """rclip-models' layout holding a full-size random-weight ViT-B-32-256 (exported once, the
    way rclip's scripts/convert_model.py does it: training.testmodels.hub_layouts.export_rclip)."""
    repo, stamp = root / "repo", root / "repo.json"
    if stamp.is_file() and repo.is_dir():
        return repo
    log(
        "  exporting a random-weight ViT-B-32-256 in rclip's layout (once; needs the training extra)"
    )
    work = root / "repo.part"
    shutil.rmtree(work, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    try:  # torch and open_clip: the training extra, kept out of engine's own imports
        from training.testmodels.hub_layouts import export_full_size

        made = export_full_size("rclip", "ViT-B-32-256", work, seed=0)
    except ImportError as e:
        raise SystemExit(f"rclip bench: building its model needs the training extra: {e}") from e
    shutil.rmtree(repo, ignore_errors=True)
    made.replace(repo)
    shutil.rmtree(work, ignore_errors=True)
    stamp.write_text(json.dumps(dict(made_by="training.testmodels.hub_layouts.export_full_size", layout="rclip",
                                     architecture="ViT-B-32-256", seed=0, made_at=time.time())))  # fmt: skip
    return repo


def _engine_fingerprint() -> str:
    """The engine's source (benches aside): a template made by other engine code is made again."""
    import hashlib

    import engine

    h = hashlib.sha256()
    top = Path(engine.__file__).resolve().parent
    for f in sorted(top.rglob("*.py")):
        if "bench" not in f.relative_to(top).parts:
            h.update(f.relative_to(top).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def photosift_template(root: Path, repo: Path, log) -> Path:
    """A photosift data dir with the repo imported and in use, as a user would do it
    (``models import REPO --as KEY``, ``models use KEY``); made again when the repo or the
    engine's code changes, since what the import leaves is part of what is measured."""
    tpl, stamp = root / "photosift-template", root / "photosift-template.json"
    want = dict(repo=json.loads((root / "repo.json").read_text()), engine=_engine_fingerprint())
    if stamp.is_file() and tpl.is_dir() and json.loads(stamp.read_text()) == want:
        return tpl
    log(f"  importing it into a photosift data dir: models import --as {MODEL_KEY}, models use")
    tmp = root / "photosift-template.part"
    shutil.rmtree(tmp, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    for cmd in (["models", "import", str(repo), "--as", MODEL_KEY], ["models", "use", MODEL_KEY]):
        r = subprocess.run(
            _photosift_cmd(tmp, *cmd), env=_photosift_env(), capture_output=True, text=True
        )
        if r.returncode != 0:
            raise SystemExit(
                f"rclip bench: photosift {' '.join(cmd)} failed: {(r.stderr or r.stdout).strip()}"
            )
    shutil.rmtree(tpl, ignore_errors=True)
    tmp.replace(tpl)
    stamp.write_text(json.dumps(want))
    return tpl


def photosift_tower(template: Path) -> dict:
    """Which image tower photosift's defaults run here (engine.models.quantize.use_int8), and its
    check against fp32 once it has been made."""
    from ..models.quantize import CHECK_FILE, use_int8
    from ..settings import Settings

    folder = template / "models" / MODEL_KEY
    precision = Settings.load(template).precision
    got = dict(precision_setting=precision, tower="int8" if use_int8(precision, folder) else "fp32")
    if (folder / CHECK_FILE).is_file():
        got["int8_check"] = json.loads((folder / CHECK_FILE).read_text())
    return got


# -- running the two tools ------------------------------------------------------------------


@dataclass
class Run:
    wall_s: float
    cpu_s: float  # user + sys of the process (and any children it waited for)
    maxrss_mib: float  # ru_maxrss: the kernel's peak resident set of the process
    stdout: str
    stderr: str


# Each measured command is started by this small launcher, not by the bench itself: on Linux a
# process's ru_maxrss starts from the RSS of the process it was forked from (the high-water mark
# survives fork and exec), and the bench holds hundreds of MiB (torch, once it has exported the
# model). The launcher's few MiB are the floor instead; it times exec to exit and writes its
# child's rusage from os.wait4 to the file it is given.
LAUNCHER = """
import json, os, subprocess, sys, time
t = time.perf_counter()
p = subprocess.Popen(sys.argv[2:])
_, status, ru = os.wait4(p.pid, 0)
wall = time.perf_counter() - t
p.returncode = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as f:
    json.dump(dict(rc=p.returncode, wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime, maxrss=ru.ru_maxrss), f)
"""


def run_child(
    cmd: list[str], *, env: dict, cwd: Path | None = None, timeout: float = CHILD_TIMEOUT_S
) -> Run:
    """Run ``cmd`` to its end through LAUNCHER: wall time from exec to exit, and the process's
    own CPU time and peak RSS (``ru_maxrss`` from ``os.wait4``)."""
    with tempfile.TemporaryDirectory() as d:
        so, se, rep = (Path(d) / x for x in ("stdout", "stderr", "rusage.json"))
        with open(so, "wb") as o, open(se, "wb") as e:
            p = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(rep), *cmd], cwd=cwd, env=env,
                                 stdin=subprocess.DEVNULL, stdout=o, stderr=e, start_new_session=True)  # fmt: skip
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)  # the launcher and the command it started
                p.wait()
                raise SystemExit(
                    f"rclip bench: `{' '.join(cmd[:6])} ...` ran over {timeout:.0f} s"
                ) from None
        out, err = so.read_text(errors="replace"), se.read_text(errors="replace")
        r = json.loads(rep.read_text()) if rep.is_file() else {"rc": p.returncode}
    if p.returncode != 0 or r["rc"] != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise SystemExit(f"rclip bench: `{' '.join(cmd[:6])} ...` exited {r['rc']}:\n{tail}")
    maxrss = r["maxrss"] / 1024 if sys.platform.startswith("linux") else r["maxrss"] / 2**20
    return Run(r["wall_s"], r["cpu_s"], maxrss, out, err)


def _base_env() -> dict:
    # PYTHONDONTWRITEBYTECODE too: an installed tool runs from compiled modules (pip compiles
    # rclip's at install), so photosift's tree gets its own on the untimed first run instead of
    # compiling 38 modules in every timed search (35 ms of 0.36 s, measured)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PHOTOSIFT_HOME", "PYTHONDONTWRITEBYTECODE")
    }
    env["HF_HUB_OFFLINE"] = "1"  # neither side may reach the network
    return env


def _rclip_env(venv: Path, datadir: Path | None) -> dict:
    env = _base_env()
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if datadir is not None:
        env["RCLIP_DATADIR"] = str(datadir)
    return env


def _photosift_env() -> dict:
    import engine

    env = _base_env()
    # this tree's engine first; the bench's own PYTHONPATH after it (rclip's side gets none)
    rest = os.environ.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(
        x for x in (str(Path(engine.__file__).resolve().parents[1]), rest) if x
    )
    return env


def _photosift_cmd(data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", "--data-dir", str(data), *args]


def _fresh_rclip(repo: Path, dest: Path) -> Path:
    """An rclip data dir as its downloader leaves it, with no index yet: hard links to the
    repo's files (the model files are kept, not copied)."""
    shutil.rmtree(dest, ignore_errors=True)

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(repo, dest, copy_function=link)
    return dest


def _fresh_photosift(template: Path, dest: Path) -> Path:
    """A photosift data dir with no library yet, sharing the template's models folder: what a
    model leaves in its folder once (the int8 check, the derived text graph, the file check)
    is kept like the model files, as it is for a user whose next library uses the same model."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    (dest / "models").symlink_to(template / "models", target_is_directory=True)
    shutil.copy2(template / "settings.json", dest / "settings.json")
    return dest


class Rclip:
    name = f"rclip {RCLIP_VERSION}"

    def __init__(self, venv: Path, repo: Path, photos: Path, work: Path):
        self.venv, self.repo, self.photos, self.work = venv, repo, photos, work
        self.data: Path | None = None

    def fresh(self, n: int | str) -> None:
        self.data = _fresh_rclip(self.repo, self.work / f"rclip-data-{n}")

    def index(self) -> tuple[Run, int]:
        r = run_child([str(self.venv / "bin" / "python"), "-c", RCLIP_INDEX], env=_rclip_env(self.venv, self.data),
                      cwd=self.photos)  # fmt: skip
        return r, self.indexed()

    def indexed(self) -> int:
        with sqlite3.connect(f"file:{self.data / 'db.sqlite3'}?mode=ro", uri=True) as con:
            return con.execute("SELECT COUNT(*) FROM images WHERE deleted IS NULL").fetchone()[0]

    def search(self, query: str, k: int = 10) -> tuple[Run, list[str]]:
        r = run_child([str(self.venv / "bin" / "rclip"), "--no-indexing", "--top", str(k), "--filepath-only", query],
                      env=_rclip_env(self.venv, self.data), cwd=self.photos)  # fmt: skip
        return r, [os.path.realpath(x) for x in r.stdout.splitlines() if x.strip()]

    def vectors(self) -> dict[str, np.ndarray]:
        with sqlite3.connect(f"file:{self.data / 'db.sqlite3'}?mode=ro", uri=True) as con:
            rows = con.execute(
                "SELECT filepath, vector FROM images WHERE deleted IS NULL"
            ).fetchall()
        return {os.path.realpath(p): np.frombuffer(v, np.float32) for p, v in rows}


class Photosift:
    name = "photosift"

    def __init__(self, template: Path, photos: Path, work: Path, *options: str):
        self.template, self.photos, self.work, self.options = template, photos, work, options
        self.data: Path | None = None

    def fresh(self, n: int | str) -> None:
        self.data = _fresh_photosift(self.template, self.work / f"photosift-data-{n}")

    def index(self) -> tuple[Run, int]:
        r = run_child(_photosift_cmd(self.data, "index", str(self.photos), "--json", *self.options),
                      env=_photosift_env())  # fmt: skip
        rep = json.loads(r.stdout)
        return r, rep["embedded"] + rep["reused"] + rep["unchanged"]

    def search(self, query: str, k: int = 10) -> tuple[Run, list[str]]:
        r = run_child(
            _photosift_cmd(self.data, "search", query, "-k", str(k), "--json"), env=_photosift_env()
        )
        return r, [os.path.realpath(h["path"]) for h in json.loads(r.stdout)]

    def vectors(self) -> dict[str, np.ndarray]:
        with sqlite3.connect(f"file:{self.data / 'library.db'}?mode=ro", uri=True) as con:
            rows = con.execute(
                "SELECT f.path, v.vec FROM files f JOIN vectors v ON v.image_id = f.image_id"
            ).fetchall()
        return {os.path.realpath(p): np.frombuffer(v, np.float32) for p, v in rows}


def _warm(*folders: Path) -> None:
    """Read every file once so that neither side pays for the first read from disk."""
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                with open(p, "rb") as f:
                    while f.read(1 << 24):
                        pass


def _versions(venv: Path) -> dict[str, str]:
    code = "import onnxruntime, PIL, numpy; print(onnxruntime.__version__, PIL.__version__, numpy.__version__)"
    theirs = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                            env=_rclip_env(venv, None)).stdout.split()  # fmt: skip
    ours = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_photosift_env()).stdout.split()  # fmt: skip
    keys = ("onnxruntime", "pillow", "numpy")
    return {f"rclip_{k}": v for k, v in zip(keys, theirs, strict=False)} | {
        f"photosift_{k}": v for k, v in zip(keys, ours, strict=False)}  # fmt: skip


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _med(xs: list[float]) -> float:
    return float(statistics.median(xs))


# -- the bench ------------------------------------------------------------------------------


def run(args, out=None) -> dict:
    from ..models.registry import resources_dir
    from .corpus import build_corpus, corpus_stats, source_jpegs

    log = bench_log(out)
    flags = cpu_flags()
    root = cache_dir() / "rclip"
    load0 = _load()
    log(
        f"rclip bench: {RCLIP_VERSION} vs photosift (CPU: {flags}; {os.cpu_count()} cores; load {load0})"
    )

    venv = ensure_rclip(root, getattr(args, "rclip_python", None), log)
    repo = rclip_repo(root, log)
    template = photosift_template(root, repo, log)
    n = getattr(args, "corpus_size", None) or (QUICK_PHOTOS if args.quick else DEFAULT_PHOTOS)
    src_root = (
        Path(args.photos) if args.photos else resources_dir().parent.parent / "shared" / "data"
    )
    sources = source_jpegs(src_root)
    if not sources:
        raise SystemExit(f"rclip bench: no JPEGs under {src_root}; pass --photos DIR")
    corpus_dir = root / f"corpus-{n}"
    manifest = build_corpus(sources, n, corpus_dir, log)
    photos = (corpus_dir / "photos").resolve()
    versions = _versions(venv)
    log(f"  corpus: {corpus_stats(manifest)} ({photos})")
    log("  versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

    work = root / "runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rc, ps = Rclip(venv, repo, photos, work), Photosift(template, photos, work)
    tools = (rc, ps)
    _warm(repo, template / "models", photos)
    # One untimed run of each on one photo: the first start of an interpreter, its libraries and
    # ONNX Runtime after an install is slower, and photosift does its once-per-model work (the
    # int8 tower's check against fp32, the derived text graph, the model file check) there, as
    # a user's first library did; neither side should pay for that in every run.
    one = work / "warm-up" / "photos"
    one.mkdir(parents=True)
    first = photos / manifest["files"][0]["path"]
    shutil.copy2(first, one / first.name)
    for t in (Rclip(venv, repo, one, one.parent), Photosift(template, one, one.parent)):
        t.fresh(0)
        t.index()
        t.search(QUERY)
    shutil.rmtree(one.parent)
    tower = photosift_tower(template)
    log(f"  photosift's image tower by default here: {tower['tower']} ({tower})")

    res: dict = {"cpu": flags, "cores": os.cpu_count(), "load_start": load0, "photos": n,
                 "corpus": {k: manifest[k] for k in ("mp_min", "mp_p25", "mp_median", "mp_p75", "mp_max", "total_mb")},
                 "versions": versions, "rclip_venv": str(venv), "photosift_tower": tower}  # fmt: skip
    side: dict[str, dict] = {t.name: {} for t in tools}

    def record(t, what: str, run_: Run, count: int | None = None) -> None:
        s = side[t.name].setdefault(what, {"wall_s": [], "cpu_s": [], "maxrss_mib": []})
        s["wall_s"].append(round(run_.wall_s, 3)), s["cpu_s"].append(round(run_.cpu_s, 3))
        s["maxrss_mib"].append(round(run_.maxrss_mib, 1))
        if count is not None:
            s.setdefault("indexed", []).append(count)
        log(f"    {t.name:12s} {len(s['wall_s'])}: {run_.wall_s:7.2f} s wall, {run_.cpu_s:7.2f} s CPU, "
            f"peak RSS {run_.maxrss_mib:4.0f} MiB" + (f", {count} photos" if count is not None else "")
            + f" (load {_load()})")  # fmt: skip

    # 1. cold index, fresh library each run, alternating
    log(f"  cold index, {COLD_RUNS} runs each, alternating")
    for r in range(COLD_RUNS):
        for t in tools:
            t.fresh(r)
            run_, count = t.index()
            record(t, "cold", run_, count)
            if count != n:  # a photo one side cannot read: photos/s counts what was indexed
                log(f"    note: {t.name} indexed {count} of the {n} photos")
            if r < COLD_RUNS - 1:
                shutil.rmtree(t.data)  # the last run's library serves the rest
    # 2. + 4. search as a whole process, and its peak RSS
    log(f"  search {QUERY!r}, whole process, {SEARCH_RUNS} runs each, alternating")
    for _ in range(SEARCH_RUNS):
        for t in tools:
            record(t, "search", t.search(QUERY)[0])
    # 3. re-index, nothing changed
    log(f"  re-index with nothing changed, {REINDEX_RUNS} runs each, alternating")
    for _ in range(REINDEX_RUNS):
        for t in tools:
            record(t, "reindex", *t.index())
    # 5. quality: photosift's defaults against rclip, and (when its default tower is int8) its
    # fp32 tower too: the very graphs rclip runs, so what differs is decoding and preprocessing
    ops = {f["path"]: f["op"] for f in manifest["files"]}
    log("  agreement with rclip: top 10 of each query, and each file's vector")
    quality = {"default": agreement(rc, ps, photos, ops)}
    if tower["tower"] != "fp32":
        ps32 = Photosift(template, photos, work, "--fp32")
        ps32.fresh("fp32")
        run_, count = ps32.index()
        log(
            f"    photosift --fp32 library for it: {count} photos in {run_.wall_s:.1f} s (one run, not compared)"
        )
        quality["fp32"] = agreement(rc, ps32, photos, ops)
        quality["fp32"]["index_s"] = round(run_.wall_s, 2)
    load1 = _load()

    for t in tools:
        s = side[t.name]
        c = s["cold"]
        for what in ("cold", "search", "reindex"):
            s[what]["median_s"] = _med(s[what]["wall_s"])
            s[what]["maxrss_median_mib"] = _med(s[what]["maxrss_mib"])
        c["photos_per_s"] = round(_med(c["indexed"]) / c["median_s"], 2)
        c["photos_per_cpu_s"] = round(_med(c["indexed"]) / _med(c["cpu_s"]), 3)
    R, P = side[rc.name], side[ps.name]

    def ratio(x: float, y: float) -> float:
        return round(y / x, 3) if x else float("nan")

    rows = [  # (key in the results, label in the table, rclip's figure, photosift's)
        ("cold_index_s", f"cold index, median of {COLD_RUNS} (s)", R["cold"]["median_s"], P["cold"]["median_s"]),
        ("cold_photos_per_s", "cold index, photos/s", R["cold"]["photos_per_s"], P["cold"]["photos_per_s"]),
        ("cold_photos_per_cpu_s", "cold index, photos per CPU-second", R["cold"]["photos_per_cpu_s"],
         P["cold"]["photos_per_cpu_s"]),
        ("search_s", f"search {QUERY!r}, whole process, median of {SEARCH_RUNS} (s)", R["search"]["median_s"],
         P["search"]["median_s"]),
        ("reindex_s", f"re-index, nothing changed, median of {REINDEX_RUNS} (s)", R["reindex"]["median_s"],
         P["reindex"]["median_s"]),
        ("query_maxrss_mib", "peak RSS of a query process (MiB, ru_maxrss)", R["search"]["maxrss_median_mib"],
         P["search"]["maxrss_median_mib"]),
        ("index_maxrss_mib", "peak RSS of a cold index process (MiB, ru_maxrss)", R["cold"]["maxrss_median_mib"],
         P["cold"]["maxrss_median_mib"]),
    ]  # fmt: skip
    res.update(rclip=R, photosift=P, load_end=load1, ratios={key: ratio(x, y) for key, _, x, y in rows},
               quality=quality)  # fmt: skip
    if out:
        print(
            f"\nCPU: {flags}; {os.cpu_count()} cores; load average {load0} at start, {load1} at end",
            file=out,
        )
        print(f"corpus: {corpus_stats(manifest)}", file=out)
        print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), file=out)
        print("ratio = photosift / rclip (photos/s: above 1 is photosift faster; seconds, MiB: below 1 is "
              "photosift faster / smaller)\n", file=out)  # fmt: skip
        print(f"| | rclip {RCLIP_VERSION} | photosift | ratio |", file=out)
        print("|---|---:|---:|---:|", file=out)
        print(f"| image tower (default settings) | fp32 | {tower['tower']} | |", file=out)
        for _, label, x, y in rows:
            print(f"| {label} | {x:.2f} | {y:.2f} | {ratio(x, y):.3f} |", file=out)
        print(f"| photos indexed (cold, last run) | {R['cold']['indexed'][-1]} | {P['cold']['indexed'][-1]} | |",
              file=out)  # fmt: skip
        for k, q in quality.items():
            how = (
                f"photosift {tower['tower']} (default)"
                if k == "default"
                else "photosift --fp32, rclip's graphs"
            )
            print(f"| top-10 overlap with rclip, mean of {len(q['top10_overlap'])} queries ({how}) | | "
                  f"{q['top10_overlap_mean']:.2f} | |", file=out)  # fmt: skip
            print(f"| same file's vector, cosine to rclip's, mean / min of {q['vectors_compared']} ({how}) | | "
                  f"{q['vector_cosine_mean']} / {q['vector_cosine_min']} | |", file=out)  # fmt: skip
        for k, q in quality.items():
            print(f"\n{'photosift default' if k == 'default' else 'photosift --fp32'} against rclip: top-10 overlap "
                  + ", ".join(f"{x!r} {v:.1f}" for x, v in q["top10_overlap"].items()), file=out)  # fmt: skip
            one = {p: m for d in q["top10_only_one"].values() for p, m in d.items()}
            if one:
                print(
                    "  in one top 10 only: "
                    + ", ".join(f"{p} ({m})" for p, m in sorted(one.items())),
                    file=out,
                )
            print("  lowest vector cosines (what the corpus did to the file):", file=out)
            for w in q["lowest_cosine"]:
                print(f"    {w['cosine']:.4f}  {w['path']}  ({w['made_by']})", file=out)
    return res


def agreement(rc: Rclip, ps: Photosift, photos: Path, ops: dict[str, str]) -> dict:
    """How far two libraries of the same photos agree: the top 10 of each of QUALITY_QUERIES
    (the share of rclip's that photosift returns too) and each file's vector (cosine)."""
    overlap, differ = {}, {}
    for q in QUALITY_QUERIES:
        a, b = rc.search(q)[1], ps.search(q)[1]
        overlap[q] = len(set(a) & set(b)) / max(1, min(len(a), len(b), 10))
        rel = [Path(p).relative_to(photos).as_posix() for p in set(a) ^ set(b)]
        differ[q] = {p: ops.get(p, "?") for p in sorted(rel)}  # in one top 10 only
    va, vb = rc.vectors(), ps.vectors()
    common = sorted(set(va) & set(vb))
    cos = np.array(
        [float(va[p] @ vb[p] / (np.linalg.norm(va[p]) * np.linalg.norm(vb[p]))) for p in common]
    )
    worst = []
    for i in np.argsort(cos)[:5]:
        rel = Path(common[i]).relative_to(photos).as_posix()
        worst.append(dict(path=rel, cosine=round(float(cos[i]), 4), made_by=ops.get(rel, "?")))
    return dict(top10_overlap=overlap, top10_only_one=differ, top10_overlap_mean=round(float(np.mean(list(overlap.values()))), 3),
                vector_cosine_mean=round(float(cos.mean()), 5) if len(cos) else None,
                vector_cosine_min=round(float(cos.min()), 5) if len(cos) else None,
                vectors_compared=len(common), lowest_cosine=worst)  # fmt: skip
