#!/usr/bin/env bash
# Smoke test of the built Linux tarball, as a user would meet it. Build first:
#   bash packaging/linux/build.sh && bash packaging/linux/smoke.sh
#
# In a scratch HOME, with a bare environment (no Python on the program's path, no
# PYTHONPATH, offline: HF_HUB_OFFLINE=1), it:
#   1. unpacks the tarball and runs its install.sh (into the scratch HOME's ~/.local)
#   2. `photosift --version`, and `photosift cli models list`: the bundled demo model is here
#   3. the command line indexes 24 generated photos (4 colours) in the default library
#      folder (~/.local/share/photosift) and `search "a red object"` ranks the red ones first
#   4. the window (a real X screen under xvfb-run when there is one, else offscreen) starts
#      its engine process from the same frozen executable, indexes the folder, searches,
#      shows the results, thumbnails and preview, and exits 0; the red photos lead the grid;
#      Help > About shows the icon, the version and the library folder; the engine process
#      is the installed executable itself (its /proc/PID/exe); the model manager lists the
#      real models with their download size, a download attempt fails with a clear message
#      (no network here), and importing a model folder from disk makes a new model "here"
#      (before the window: `photosift cli models download` fails clearly, without a traceback)
#   4b. a ready ONNX export in rclip's layout (a tiny random model made by the checkout's dev
#      venv, which has torch) is downloaded by the installed, torch-free app from a stand-in hub
#      on 127.0.0.1, switched to, indexed with and searched
#   5. (when there is a folder of real photos: --real-photos DIR, default ../shared/data/photos
#      beside the checkout) the command line indexes it: JPEG, HEIC, AVIF, WebP ... decode
#      inside the bundle
#   6. uninstall.sh removes the program; the library and the photos are untouched
# Prints SMOKE PASS and exits 0, or says what failed and exits 1.
#
# Options: --tarball FILE (default: the one build.sh made for this version), --offscreen
# (no xvfb-run), --real-photos DIR | --no-real-photos, --keep (leave the scratch dir).
# Generating the photos and checking JSON needs a Python with numpy + Pillow + PySide6
# ($PYTHON, else the build venv's): that is the test's, never the bundle's.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' app/__init__.py)
TARBALL=packaging/dist/photosift-$VERSION-linux-$(uname -m).tar.gz
REAL=../shared/data/photos
USE_XVFB=auto
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tarball) TARBALL=$2; shift ;;
    --offscreen) USE_XVFB=no ;;
    --real-photos) REAL=$2; shift ;;
    --no-real-photos) REAL= ;;
    --keep) KEEP=1 ;;
    *) echo "usage: smoke.sh [--tarball FILE] [--offscreen] [--real-photos DIR|--no-real-photos] [--keep]" >&2; exit 2 ;;
  esac
  shift
done
HOSTPY=${PYTHON:-}
for cand in packaging/.build-venv/bin/python .venv/bin/python; do
  [ -n "$HOSTPY" ] && break
  [ -x "$cand" ] && HOSTPY=$ROOT/$cand
done
HOSTPY=${HOSTPY:-python3}

fail() { echo "SMOKE FAIL: $*" >&2; exit 1; }
step() { echo "== $*" >&2; }
[ -f "$TARBALL" ] || fail "no tarball at $TARBALL (run bash packaging/linux/build.sh first)"
TARBALL=$(cd "$(dirname "$TARBALL")" && pwd)/$(basename "$TARBALL")

T=$(mktemp -d -t photosift-smoke.XXXXXX)
cleanup() {
  if [ "$KEEP" = 1 ]; then echo "scratch dir kept: $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
mkdir -p "$T/home" "$T/unpack" "$T/work"

# A bare environment: what a desktop session gives a program, and nothing of this checkout.
run() {
  (cd "$T/work" && env -i HOME="$T/home" PATH="$T/home/.local/bin:/usr/bin:/bin" LANG=C.UTF-8 \
    TMPDIR="$T" HF_HUB_OFFLINE=1 ${DISPLAY:+DISPLAY=$DISPLAY} ${QPA:+QT_QPA_PLATFORM=$QPA} "$@")
}
check() {  # check PYTHON-EXPRESSION-OVER-j FILE MESSAGE: j is the file's JSON
  "$HOSTPY" -c "import json, sys; j = json.load(open(sys.argv[1])); sys.exit(0 if ($1) else 1)" "$2" \
    || fail "$3: $(head -c 1500 "$2")"
}

step "photos: 24 generated single-shape photos (red, blue, green, yellow)"
PYTHONPATH=$ROOT "$HOSTPY" -c "import sys; from app.sampledata import colour_folder; colour_folder(sys.argv[1])" \
  "$T/photos" || fail "could not generate the test photos with $HOSTPY"
(cd "$T/photos" && sha256sum ./* > "$T/photos.sha256")

step "install: unpack $(basename "$TARBALL") and run install.sh"
tar -C "$T/unpack" -xzf "$TARBALL"
NAME=$(basename "$TARBALL" .tar.gz)
QPA=offscreen run "$T/unpack/$NAME/install.sh" >&2
BIN=$T/home/.local/bin/photosift
[ -x "$BIN" ] || fail "install.sh did not put photosift on ~/.local/bin"
[ -f "$T/home/.local/share/applications/photosift.desktop" ] || fail "no menu entry"
[ -f "$T/home/.local/share/icons/hicolor/512x512/apps/photosift.png" ] || fail "no icon"
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$T/home/.local/share/applications/photosift.desktop" || fail "invalid .desktop file"
fi
rm -rf "$T/unpack"  # the installed copy must stand on its own

step "version and models (offline)"
v=$(QPA=offscreen run photosift --version)
[ "$v" = "photosift $VERSION" ] || fail "--version said '$v'"
QPA=offscreen run photosift cli models list --json > "$T/models.json"
check 'any(m["key"] == "photosift-demo" and m["here"] for m in j)' "$T/models.json" "the bundled demo model is not available"

step "command line: index and search"
QPA=offscreen run photosift cli index "$T/photos" --json > "$T/index.json"
check 'j["files"] == 24 and j["embedded"] == 24 and j["failed"] == 0' "$T/index.json" "cli index"
[ -f "$T/home/.local/share/photosift/library.db" ] || fail "the library is not in ~/.local/share/photosift"
QPA=offscreen run photosift cli search "a red object" -k 6 --json > "$T/search.json"
check 'sum(h["path"].rsplit("/", 1)[-1].startswith("red-") for h in j) >= 5' "$T/search.json" \
  "cli search: the red photos are not first"

step "command line: a model download with no way to the hub fails with a clear message"
if QPA=offscreen run photosift cli models download vit-b-32-256-datacomp > "$T/download.out" 2>&1; then
  fail "the download of a real model succeeded offline?"
fi
# (offline: not in the cache; lean bundle: no converter for open_clip weights) either way it
# names the model and the way out (import a folder), without a traceback
grep -q "vit-b-32-256-datacomp" "$T/download.out" && grep -q "models import" "$T/download.out" \
  && ! grep -q "Traceback" "$T/download.out" || fail "unclear download failure: $(tail -c 1500 "$T/download.out")"
echo "   $(tail -c 300 "$T/download.out")" >&2

step "command line: download a ready ONNX export (rclip's layout) from a stand-in hub, index, search"
DEVPY=$ROOT/.venv/bin/python
if ! { [ -x "$DEVPY" ] && "$DEVPY" -c "import torch" 2>/dev/null; }; then
  fail "making the stand-in hub's model needs the dev venv with torch (bash packaging/dev.sh test sets it up)"
fi
PYTHONPATH=$ROOT "$DEVPY" -m tests.hubrepos rclip "$T/hubrepo" > "$T/hubrepo.json" 2> "$T/hubrepo.log" \
  || fail "could not make the stand-in hub's model: $(tail -c 1500 "$T/hubrepo.log")"
hub_repo=$("$HOSTPY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["repo"])' "$T/hubrepo.json")
hub_folder=$("$HOSTPY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["folder"])' "$T/hubrepo.json")
hub_key=$("$HOSTPY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["entry"]["key"])' "$T/hubrepo.json")
mkdir -p "$T/hub-library/models/$hub_key"  # known to the app as a registry entry is, not here yet
"$HOSTPY" -c 'import json,sys; json.dump(json.load(open(sys.argv[1]))["entry"], open(sys.argv[2], "w"))' \
  "$T/hubrepo.json" "$T/hub-library/models/$hub_key/model.json"
PYTHONPATH=$ROOT "$DEVPY" -m tests.app.fakehub "$hub_repo" "$hub_folder" > "$T/hub.url" 2> "$T/hub.log" &
HUB_PID=$!
for _ in $(seq 50); do [ -s "$T/hub.url" ] && break; sleep 0.1; done
HUB_URL=$(head -n 1 "$T/hub.url")
[ -n "$HUB_URL" ] || fail "the stand-in hub did not start: $(cat "$T/hub.log")"
online() {  # run, with the way to the stand-in hub open (and a cache of its own: the tiny
  # model bears the real repo's name, which the window's offline download must not find later)
  (cd "$T/work" && env -i HOME="$T/home" PATH="$T/home/.local/bin:/usr/bin:/bin" LANG=C.UTF-8 \
    TMPDIR="$T" HF_HUB_OFFLINE=0 HF_ENDPOINT="$HUB_URL" HF_HOME="$T/standin-hf" \
    QT_QPA_PLATFORM=offscreen "$@")
}
online photosift cli --data-dir "$T/hub-library" models download "$hub_key" > "$T/hubdl.out" 2>&1 \
  || fail "downloading $hub_key from the stand-in hub: $(tail -c 1500 "$T/hubdl.out")"
kill "$HUB_PID" 2>/dev/null || true
[ -f "$T/hub-library/models/$hub_key/ViT-B-32-256-datacomp_s34b_b86k/visual.onnx" ] \
  && [ -f "$T/hub-library/models/$hub_key/tokenizer/bpe_simple_vocab_16e6.txt.gz" ] \
  || fail "the downloaded model folder does not hold rclip's files"
QPA=offscreen run photosift cli --data-dir "$T/hub-library" models use "$hub_key" >&2
QPA=offscreen run photosift cli --data-dir "$T/hub-library" index "$T/photos" --json > "$T/hubindex.json"
check 'j["files"] == 24 and j["embedded"] == 24 and j["failed"] == 0' "$T/hubindex.json" "index with the downloaded model"
QPA=offscreen run photosift cli --data-dir "$T/hub-library" search "a red object" -k 24 --json > "$T/hubsearch.json"
check 'len(j) == 24' "$T/hubsearch.json" "search with the downloaded model"
echo "   $(tail -n 1 "$T/hubdl.out")" >&2

step "command line: import an Immich repo as it comes (its batch-1 image graph freed at install), index, search"
PYTHONPATH=$ROOT "$DEVPY" -m tests.hubrepos immich-clip "$T/immichrepo" > "$T/immichrepo.json" 2> "$T/immichrepo.log" \
  || fail "could not make the Immich repo: $(tail -c 1500 "$T/immichrepo.log")"
imm_folder=$("$HOSTPY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["folder"])' "$T/immichrepo.json")
QPA=offscreen run photosift cli --data-dir "$T/immich-library" models import "$imm_folder" --as tiny-immich \
  > "$T/immichimport.out" 2>&1 || fail "importing the Immich repo: $(tail -c 1500 "$T/immichimport.out")"
"$HOSTPY" -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["graph"] == "image.batch.onnx" else 1)' \
  "$T/immich-library/models/tiny-immich/image.batch.json" \
  || fail "the installed app did not free the Immich image graph of batch 1: $(cat "$T/immich-library/models/tiny-immich/image.batch.json" 2>&1)"
QPA=offscreen run photosift cli --data-dir "$T/immich-library" models use tiny-immich >&2
QPA=offscreen run photosift cli --data-dir "$T/immich-library" index "$T/photos" --json > "$T/immichindex.json"
check 'j["files"] == 24 and j["embedded"] == 24 and j["failed"] == 0' "$T/immichindex.json" "index with the Immich model"
QPA=offscreen run photosift cli --data-dir "$T/immich-library" search "a red object" -k 24 --json > "$T/immichsearch.json"
check 'len(j) == 24' "$T/immichsearch.json" "search with the Immich model"

# A model folder to import from disk (as a user without internet would): the bundled demo's
# four files under another key and name, so that it shows up as a new model.
INSTALLED=$T/home/.local/lib/photosift
mkdir "$T/my-model"
cp "$INSTALLED/_internal/resources/demo/"{model.json,image.onnx,text.onnx,tokenizer.json} "$T/my-model/"
"$HOSTPY" -c 'import json, sys; p = sys.argv[1]; d = json.load(open(p)); d.update(key="my-imported-model", name="My imported model"); json.dump(d, open(p, "w"))' \
  "$T/my-model/model.json"

step "window: index, search, results (engine started from the same executable), About, Models"
gui=(photosift selftest --hits "$T/hits.json" --import-model "$T/my-model" --data-dir "$T/gui-library"
     --screenshot "$T/window.png" --folder "$T/photos" --query "a red object" --size 1100x720 --timeout 240)
t0=$(date +%s)
if [ "$USE_XVFB" != no ] && command -v xvfb-run >/dev/null; then
  QPA= run xvfb-run -a -s "-screen 0 1280x800x24" "${gui[@]}" 2> "$T/window.log" || \
    fail "the window run failed: $(tail -c 3000 "$T/window.log")"
  where="xvfb (xcb platform plugin)"
else
  QPA=offscreen run "${gui[@]}" 2> "$T/window.log" || fail "the window run failed: $(tail -c 3000 "$T/window.log")"
  where="offscreen"
fi
check 'j["ok"] and len(j["hits"]) == 24 and sum(n.startswith("red-") for n in j["hits"][:6]) >= 5' \
  "$T/hits.json" "window results"
check "j['about_icon'] and j['window_icon'] and 'Version $VERSION' in j['about'] and j['data_dir'] == '$T/gui-library'" \
  "$T/hits.json" "About box (icon, version, library folder)"
check "j.get('engine_exe') == '$INSTALLED/photosift' and '--engine' in j['engine_command']" \
  "$T/hits.json" "the engine is not the installed bundle's own executable"
check 'j["models"]["listed"] and j["models"]["rows"][0][:2] == ["OpenCLIP ViT-B/32 256px (DataComp-1B) — Recommended", "606 MB"]' \
  "$T/hits.json" "the model manager does not list the recommended real model first with its size"
check 'j["models"]["download_enabled"] and "failed" in j["models"]["download_message"]' \
  "$T/hits.json" "the model manager's offline download did not fail clearly"
check 'j["models"]["import_message"].startswith("Imported") and any(r[0] == "My imported model" and r[-1] == "here" for r in j["models"]["rows_after_import"])' \
  "$T/hits.json" "importing a model folder in the model manager"
[ -s "$T/window.png" ] || fail "no window screenshot"
sleep 1
if pgrep -f "^$T/home/.local/lib/photosift/photosift --engine" >/dev/null; then
  fail "the engine process outlived the window"
fi
echo "   window ran on $where in $(( $(date +%s) - t0 )) s: $("$HOSTPY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["hits"][:6])' "$T/hits.json")" >&2
"$HOSTPY" -c 'import json, sys; m = json.load(open(sys.argv[1]))["models"]; print("   models: download said %r; import said %r" % (m["download_message"][:160], m["import_message"]))' "$T/hits.json" >&2

if [ -n "$REAL" ] && [ ! -d "$REAL" ]; then
  echo "   (no real photos at $REAL: that step is skipped; pass --real-photos DIR)" >&2
fi
if [ -n "$REAL" ] && [ -d "$REAL" ]; then
  n=$(find "$REAL" -type f | wc -l)
  step "command line: index $n real photos from $REAL (decoders inside the bundle)"
  QPA=offscreen run photosift cli --data-dir "$T/real-library" index "$(cd "$REAL" && pwd)" --json > "$T/real.json"
  check 'j["embedded"] >= 0.9 * j["files"] > 0' "$T/real.json" "real photos"
  "$HOSTPY" -c 'import json, sys; j = json.load(open(sys.argv[1])); print("   %d files, %d embedded, %d could not be read %s in %.1f s" % (j["files"], j["embedded"], j["failed"], [f["path"].rsplit("/", 1)[-1] for f in j["failures"]], j["seconds"]))' "$T/real.json" >&2
  check '[f for f in j["failures"] if f["path"].lower().endswith((".heic", ".avif", ".jpg", ".jpeg"))] == []' \
    "$T/real.json" "HEIC/AVIF/JPEG photos failed to decode in the bundle"
fi

step "uninstall: the program goes; the library and the photos stay"
QPA=offscreen run "$T/home/.local/lib/photosift/uninstall.sh" >&2
[ ! -e "$T/home/.local/lib/photosift" ] && [ ! -e "$BIN" ] || fail "uninstall left the program behind"
[ ! -e "$T/home/.local/share/applications/photosift.desktop" ] || fail "uninstall left the menu entry"
[ -f "$T/home/.local/share/photosift/library.db" ] || fail "uninstall removed the library"
(cd "$T/photos" && sha256sum --quiet -c "$T/photos.sha256") || fail "the photos changed"

echo "SMOKE PASS" >&2
