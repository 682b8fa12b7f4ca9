#!/usr/bin/env bash
# Build the Linux bundle from a checkout: a one-folder PyInstaller app in a tarball with a
# .desktop entry, an icon, and install/uninstall scripts.
#
#   bash packaging/linux/build.sh            lean: ONNX Runtime only (what users get)
#   bash packaging/linux/build.sh --train    also the training extra (torch CPU + open_clip)
#
# Output (git-ignored):
#   packaging/dist/linux-<variant>/photosift/               the bundle (run ./photosift)
#   packaging/dist/photosift-<version>-linux-<arch>[-train].tar.gz
# The build venv lives in packaging/.build-venv[-train] and is reused; delete it to start over.
#
# Environment:
#   PYTHON           interpreter for the build venv (default python3; needs a shared libpython,
#                    which python.org, Debian, pyenv (default) and actions/setup-python builds have)
#   TORCH_SPEC       the torch to put in the training variant (default torch==2.13.0)
#   TORCH_INDEX_URL  where torch and torchvision come from, as a matched pair (default
#                    https://download.pytorch.org/whl/cpu: the CPU build; PyPI's Linux torch is
#                    the CUDA build, several GB). Set it empty to use pip's own configuration.
set -euo pipefail
cd "$(dirname "$0")/../.."

VARIANT=lean
for arg in "$@"; do
  case "$arg" in
    --train) VARIANT=train ;;
    --lean) VARIANT=lean ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "usage: bash packaging/linux/build.sh [--lean|--train]" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
SUFFIX=$([ "$VARIANT" = train ] && echo "-train" || true)
VENV=packaging/.build-venv$SUFFIX
DIST=packaging/dist/linux-$VARIANT
WORK=packaging/build/linux-$VARIANT
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' app/__init__.py)
ARCH=$(uname -m)
NAME=photosift-$VERSION-linux-$ARCH$SUFFIX
say() { echo "build.sh: $*" >&2; }

# -- 1. the build venv: the project's own dependencies (pyproject extras, constraints.txt pins)
stamp="$VENV/.installed-$(cat pyproject.toml constraints.txt packaging/requirements-build.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  if [ "$VARIANT" = lean ]; then
    say "installing .[gui] + PyInstaller into $VENV (no torch) ..."
    "$VENV/bin/python" -m pip install -q -c constraints.txt ".[gui]" -r packaging/requirements-build.txt
  else
    # constraints.txt pins the dev venv's CUDA torch stack; the bundle wants the CPU build, so
    # torch and torchvision come first, together from one index (open_clip imports torchvision,
    # and a torchvision built for another torch fails at import), and are then pinned.
    cons="$VENV/constraints-train.txt"
    grep -v -E '^(torch|torchvision|triton|nvidia-|cuda-)' constraints.txt > "$cons"
    torch_spec=${TORCH_SPEC:-torch==2.13.0}
    index=${TORCH_INDEX_URL-https://download.pytorch.org/whl/cpu}
    idx=()
    [ -n "$index" ] && idx=(--index-url "$index")
    say "installing $torch_spec + torchvision ${index:+from $index} into $VENV ..."
    "$VENV/bin/python" -m pip install -q "${idx[@]}" "$torch_spec" torchvision
    "$VENV/bin/python" -c "import torch, torchvision; print(f'torch=={torch.__version__}'); print(f'torchvision=={torchvision.__version__}')" \
      | sed 's/+[a-z0-9.]*$//' >> "$cons"
    say "installing .[gui,train] + PyInstaller (pinned: $(grep -E '^torch' "$cons" | tr '\n' ' '))..."
    "$VENV/bin/python" -m pip install -q -c "$cons" ".[gui,train]" -r packaging/requirements-build.txt
    if "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)"; then
      say "warning: the training variant got a CUDA torch (several GB); set TORCH_INDEX_URL to a CPU index"
    fi
  fi
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
# The training variant exists to run open_clip; a bundle where it cannot import is broken.
if [ "$VARIANT" = train ] && ! err=$("$VENV/bin/python" -c "import open_clip" 2>&1); then
  say "error: open_clip does not import in $VENV (torch and torchvision do not match?):"
  echo "$err" | tail -3 >&2
  exit 1
fi

# -- 2. freeze ----------------------------------------------------------------------------
[ -f resources/icons/photosift.png ] || "$VENV/bin/python" packaging/make_icons.py
say "freezing ($VARIANT) ..."
t0=$(date +%s)
PHOTOSIFT_VARIANT=$VARIANT "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "$WORK" packaging/photosift.spec
say "froze in $(( $(date +%s) - t0 )) s"
if [ "$VARIANT" = lean ] && [ -d "$DIST/photosift/_internal/torch" ]; then
  say "error: torch ended up in the lean bundle"; exit 1
fi

# -- 3. the tarball: the bundle + desktop entry + icon + install/uninstall -------------------
STAGE=packaging/dist/$NAME
rm -rf "$STAGE" "$STAGE.tar.gz"
cp -a "$DIST/photosift" "$STAGE"
cp packaging/linux/photosift.desktop packaging/linux/install.sh packaging/linux/uninstall.sh "$STAGE/"
cp resources/icons/photosift.png "$STAGE/photosift.png"
sed "s/@VERSION@/$VERSION/g" packaging/linux/README.txt > "$STAGE/README.txt"
chmod +x "$STAGE/install.sh" "$STAGE/uninstall.sh" "$STAGE/photosift"
tar -C packaging/dist --owner=0 --group=0 -czf "$STAGE.tar.gz" "$NAME"
rm -rf "$STAGE"

size_mb() { du -sb "$1" | awk '{printf "%.1f", $1 / 1048576}'; }
say "bundle  $DIST/photosift  $(size_mb "$DIST/photosift") MB"
say "tarball $STAGE.tar.gz  $(size_mb "$STAGE.tar.gz") MB"
echo "$STAGE.tar.gz"
