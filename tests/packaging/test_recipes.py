"""The installer recipes, checked without building: what the spec bundles on each platform,
the icons, the Linux desktop entry and install scripts, the Inno Setup script, the workflow."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "packaging"


# What Qt's hooks and the dependency scan typically put in a Linux bundle; the spec prunes it.
FAKE_BINARIES = [
    "PySide6/Qt/plugins/platforms/libqxcb.so", "PySide6/Qt/plugins/platforms/libqwayland.so",
    "PySide6/Qt/plugins/platforms/libqoffscreen.so", "PySide6/Qt/plugins/platforms/libqvnc.so",
    "PySide6/Qt/plugins/platforms/libqeglfs.so", "PySide6/Qt/plugins/platformthemes/libqgtk3.so",
    "PySide6/Qt/plugins/platformthemes/libqxdgdesktopportal.so",
    "PySide6/Qt/plugins/egldeviceintegrations/libqeglfs-kms-integration.so",
    "PySide6/Qt/translations/qtbase_de.qm", "PySide6/Qt/lib/libQt6Gui.so.6",
    "libfontconfig.so.1", "libfreetype.so.6", "libgtk-3.so.0", "libcairo.so.2", "libharfbuzz.so.0",
    "libharfbuzz-fb49c9fc.so.0.61450.0", "libfreetype-57f805ba.so.6.20.6", "libxcb-cursor.so.0",
    "libpython3.11.so.1.0", "onnxruntime/capi/libonnxruntime.so.1",
]  # fmt: skip


class _Rec:
    """Stands in for PyInstaller's spec classes: records what the spec asked for."""

    made: list = []

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.kind = type(self).__name__
        self.made.append(self)
        if self.kind == "Analysis":
            self.datas = [(dest, src) for src, dest in kwargs["datas"]]
            self.pure, self.scripts = [], []
            self.binaries = [(d, "/src/" + d, "BINARY") for d in FAKE_BINARIES]


def run_spec(monkeypatch, platform: str, variant: str) -> list[_Rec]:
    monkeypatch.setenv("PHOTOSIFT_VARIANT", variant)
    monkeypatch.setattr(sys, "platform", platform)
    # The Windows branch builds version info with PyInstaller's classes; stub them too.
    vi = types.ModuleType("PyInstaller.utils.win32.versioninfo")
    for name in ("FixedFileInfo", "StringFileInfo", "StringStruct", "StringTable", "VarFileInfo",
                 "VarStruct", "VSVersionInfo"):  # fmt: skip
        setattr(vi, name, lambda *a, **k: (a, k))
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.win32.versioninfo", vi)
    # ... and the hook helpers it collects python-exiv2 with (recorded, so a test can check them)
    hooks = types.ModuleType("PyInstaller.utils.hooks")
    hooks.collect_submodules = lambda pkg, filter=None: [f"{pkg}._stub"]
    hooks.collect_dynamic_libs = lambda pkg: [(f"/site/{pkg}.libs/lib{pkg}.so", f"{pkg}.libs")]
    hooks.collect_data_files = _collect_data_files
    monkeypatch.setitem(sys.modules, "PyInstaller.utils.hooks", hooks)
    _Rec.made = []
    kinds = {k: type(k, (_Rec,), {}) for k in ("Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE")}
    code = compile((PKG / "photosift.spec").read_text(), str(PKG / "photosift.spec"), "exec")
    exec(code, {"SPECPATH": str(PKG), "__name__": "__main__", **kinds})
    return _Rec.made


def _collect_data_files(pkg: str, include_py_files: bool = False) -> list[tuple[str, str]]:
    """PyInstaller's collect_data_files, for a package's top folder: its real files."""
    import importlib.util

    folder = Path(importlib.util.find_spec(pkg).origin).parent
    return [(str(p), pkg.replace(".", "/")) for p in sorted(folder.iterdir())
            if p.is_file() and (include_py_files or p.suffix not in (".py", ".pyc"))]  # fmt: skip


def _one(made, kind):
    (x,) = [m for m in made if m.kind == kind]
    return x


@pytest.mark.parametrize("variant", ["lean", "train"])
def test_spec_bundles_the_resources_the_engine_reads(monkeypatch, variant):
    from engine.models.folder import MODEL_FOLDER_FILES

    a = _one(run_spec(monkeypatch, "linux", variant), "Analysis")
    dests = {(d, Path(s).name) for s, d in a.kwargs["datas"]}
    for s, _d in a.kwargs["datas"]:
        assert Path(s).exists(), s
    for f in (ROOT / "resources" / "models").glob("*.json"):
        assert ("resources/models", f.name) in dests
    for f in MODEL_FOLDER_FILES:  # what makes the bundled demo model runnable offline
        assert ("resources/demo", f) in dests
    assert ("resources/icons", "photosift.png") in dests
    ckpt = ("resources/demo", "open_clip_model.safetensors") in dests
    assert ckpt == (variant == "train"), (
        "the training checkpoint rides only with the training extra"
    )
    assert ("torch" in a.kwargs["excludes"]) == (variant == "lean")
    assert "engine.bench.pipeline" in a.kwargs["hiddenimports"]  # loaded by name at run time
    # the quantiser's onnxruntime.transformers imports its modules by bare name: sources needed
    assert ("onnxruntime/transformers", "fusion_utils.py") in dests
    assert Path(a.args[0][0]).name == "photosift_entry.py"


def test_spec_prunes_unused_qt_plugins_and_host_libraries(monkeypatch):
    coll = _one(run_spec(monkeypatch, "linux", "lean"), "COLLECT")
    binaries = {e[0] for e in coll.args[-2]}  # COLLECT(*exes, binaries, datas)
    kept = {
        "PySide6/Qt/plugins/platforms/libqxcb.so", "PySide6/Qt/plugins/platforms/libqwayland.so",
        "PySide6/Qt/plugins/platforms/libqoffscreen.so",
        "PySide6/Qt/plugins/platformthemes/libqxdgdesktopportal.so",
        "PySide6/Qt/lib/libQt6Gui.so.6", "libxcb-cursor.so.0", "libpython3.11.so.1.0",
        "onnxruntime/capi/libonnxruntime.so.1",
        # Pillow's own private copies (hashed names) are not the host's
        "libharfbuzz-fb49c9fc.so.0.61450.0", "libfreetype-57f805ba.so.6.20.6",
    }  # fmt: skip
    assert binaries == kept
    # Windows has no host libraries of that kind: only the Qt plugins and translations go
    coll = _one(run_spec(monkeypatch, "win32", "lean"), "COLLECT")
    assert "libfontconfig.so.1" in {e[0] for e in coll.args[-2]}
    assert "PySide6/Qt/plugins/platformthemes/libqgtk3.so" not in {e[0] for e in coll.args[-2]}


def test_spec_per_platform(monkeypatch):
    linux = run_spec(monkeypatch, "linux", "lean")
    assert [e.kwargs["name"] for e in linux if e.kind == "EXE"] == ["photosift"]
    assert not [m for m in linux if m.kind == "BUNDLE"]

    win = run_spec(monkeypatch, "win32", "lean")
    exes = {e.kwargs["name"]: e.kwargs for e in win if e.kind == "EXE"}
    assert set(exes) == {"photosift", "photosift-cli"}
    assert exes["photosift"]["console"] is False and exes["photosift-cli"]["console"] is True
    assert exes["photosift"]["icon"].endswith("photosift.ico")

    mac = run_spec(monkeypatch, "darwin", "lean")
    b = _one(mac, "BUNDLE")
    assert b.kwargs["name"] == "photosift.app" and b.kwargs["icon"].endswith("photosift.icns")
    from app import __version__

    assert b.kwargs["info_plist"]["CFBundleShortVersionString"] == __version__


def test_icons():
    icons = ROOT / "resources" / "icons"
    with Image.open(icons / "photosift.png") as im:
        assert im.size == (512, 512) and im.mode == "RGBA"
    with Image.open(icons / "photosift.ico") as im:
        assert (256, 256) in im.info["sizes"] and (16, 16) in im.info["sizes"]
    with Image.open(icons / "photosift.icns") as im:
        assert im.format == "ICNS"


def test_desktop_entry():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(PKG / "linux" / "photosift.desktop")
    e = cp["Desktop Entry"]
    assert e["Type"] == "Application" and e["Name"] == "photosift" and e["Icon"] == "photosift"
    assert e["Terminal"] == "false" and "Graphics;" in e["Categories"]
    # install.sh writes the installed path into Exec; the app takes no file arguments (no %F)
    assert "%" not in e["Exec"]
    assert "s|^Exec=.*|" in (PKG / "linux" / "install.sh").read_text()


def test_uninstallers_leave_the_library_and_photos_alone():
    un = (PKG / "linux" / "uninstall.sh").read_text()
    assert 'if [ "$remove_library" = 1 ]; then' in un  # the library goes only when asked
    iss = (PKG / "windows" / "photosift.iss").read_text()
    code = "\n".join(ln for ln in iss.splitlines() if not ln.lstrip().startswith(";")).lower()
    assert "[uninstalldelete]" not in code and "[code]" not in code
    assert "{localappdata}" not in code and "{userappdata}" not in code and "{userpf}" not in code
    assert '{group}\\photosift"; Filename: "{app}\\photosift.exe"' in iss  # Start-menu entry
    assert "{uninstallexe}" in iss


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize(
    "script",
    [
        "linux/build.sh",
        "linux/smoke.sh",
        "linux/install.sh",
        "linux/uninstall.sh",
        "macos/build.sh",
        "macos/make_dmg.sh",
    ],  # fmt: skip
)
def test_shell_scripts_parse(script):
    r = subprocess.run(["bash", "-n", str(PKG / script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_workflow_builds_all_three():
    yaml = pytest.importorskip("yaml")
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "installers.yml").read_text())
    jobs = wf["jobs"]
    assert {"linux", "windows", "macos"} <= set(jobs)
    text = (ROOT / ".github" / "workflows" / "installers.yml").read_text()
    for path in ("packaging/linux/build.sh", "packaging/linux/smoke.sh", "packaging/windows/build.ps1",
                 "packaging/macos/build.sh", "packaging/ci_smoke.py"):  # fmt: skip
        assert path in text and (ROOT / path).is_file(), path


TEXT_SUFFIXES = {".py", ".sh", ".ps1", ".iss", ".spec", ".yml", ".md", ".txt", ".desktop"}


def test_no_machine_paths_in_recipes():
    for top in (PKG, ROOT / ".github"):
        for d, dirs, files in os.walk(top):
            dirs[:] = [
                x for x in dirs if not x.startswith(".build-venv") and x not in ("dist", "build")
            ]
            for name in files:
                f = Path(d, name)
                if f.suffix in TEXT_SUFFIXES:
                    text = f.read_text(encoding="utf-8")
                    assert "/work/" not in text and "/root/" not in text, f


def test_spec_bundles_exiv2_for_xmp_keywords(monkeypatch):
    a = _one(run_spec(monkeypatch, "linux", "lean"), "Analysis")
    assert "exiv2._stub" in a.kwargs["hiddenimports"]
    assert ("/site/exiv2.libs/libexiv2.so", "exiv2.libs") in a.kwargs["binaries"]


def test_spec_bundles_libraw_for_raw_files(monkeypatch):
    a = _one(run_spec(monkeypatch, "linux", "lean"), "Analysis")
    assert ("/site/rawpy.libs/librawpy.so", "rawpy.libs") in a.kwargs["binaries"]
