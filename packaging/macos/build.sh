#!/usr/bin/env bash
# Build the macOS app and disk image: photosift.app (PyInstaller BUNDLE) in
# photosift-<version>-macos-<arch>.dmg with an Applications link to drag it onto.
#
#   bash packaging/macos/build.sh [--train]
#
# Needs: macOS 12+, Python 3.11+ from python.org or actions/setup-python (a framework or
# shared build), Xcode command line tools (hnswlib builds from source), hdiutil (built in).
# The .app runs on the architecture it was built on (arm64 on Apple silicon runners).
#
# Signing: PyInstaller signs ad hoc, which runs locally and on CI. For other people's Macs,
# set PHOTOSIFT_CODESIGN_IDENTITY="Developer ID Application: ..." (used by the spec) and, for
# notarization, NOTARY_PROFILE (a `xcrun notarytool store-credentials` profile name).
# Output (git-ignored): packaging/dist/macos-<variant>/photosift.app and packaging/dist/*.dmg
set -euo pipefail
cd "$(dirname "$0")/../.."

VARIANT=lean
for arg in "$@"; do
  case "$arg" in
    --train) VARIANT=train ;;
    --lean) VARIANT=lean ;;
    *) echo "usage: bash packaging/macos/build.sh [--lean|--train]" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
SUFFIX=$([ "$VARIANT" = train ] && echo "-train" || true)
VENV=packaging/.build-venv$SUFFIX
DIST=packaging/dist/macos-$VARIANT
VERSION=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' app/__init__.py)
ARCH=$(uname -m)
say() { echo "build.sh: $*" >&2; }

# -- 1. the build venv (same recipe as Linux; on macOS PyPI's torch is the CPU/MPS build)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
if [ "$VARIANT" = lean ]; then
  "$VENV/bin/python" -m pip install -q -c constraints.txt ".[gui]" -r packaging/requirements-build.txt
else
  cons="$VENV/constraints-train.txt"
  grep -v -E '^(torch|torchvision|triton|nvidia-|cuda-)' constraints.txt > "$cons"
  # torch and torchvision together, so that pip picks a matched pair (open_clip imports both)
  "$VENV/bin/python" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}" torchvision
  "$VENV/bin/python" -c "import torch, torchvision; print(f'torch=={torch.__version__}'); print(f'torchvision=={torchvision.__version__}')" \
    | sed 's/+[a-z0-9.]*$//' >> "$cons"
  "$VENV/bin/python" -m pip install -q -c "$cons" ".[gui,train]" -r packaging/requirements-build.txt
  "$VENV/bin/python" -c "import open_clip"  # the training variant exists to run it
fi

# -- 2. freeze into photosift.app
PHOTOSIFT_VARIANT=$VARIANT "$VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$DIST" --workpath "packaging/build/macos-$VARIANT" packaging/photosift.spec
APP=$DIST/photosift.app
[ -x "$APP/Contents/MacOS/photosift" ] || { say "no $APP"; exit 1; }
if [ "$VARIANT" = lean ] && [ -e "$APP/Contents/Frameworks/torch" ]; then say "torch in the lean bundle"; exit 1; fi
codesign --verify --deep --strict "$APP" && say "signature ok ($(codesign -dv "$APP" 2>&1 | sed -n 's/^Signature=//p'))"
say "app $APP: $(du -sh "$APP" | cut -f1)"

# -- 3. the disk image
DMG=packaging/dist/photosift-$VERSION-macos-$ARCH$SUFFIX.dmg
bash packaging/macos/make_dmg.sh "$APP" "$DMG" "photosift $VERSION"
if [ -n "${NOTARY_PROFILE:-}" ]; then
  xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
  xcrun stapler staple "$DMG"
fi
say "dmg $DMG: $(du -sh "$DMG" | cut -f1)"
echo "$DMG"
