#!/usr/bin/env bash
# Remove photosift: the program, its menu entry, icon and command. Nothing else.
#   uninstall.sh                    your library (index, thumbnails, models, settings) stays,
#                                   so a reinstall finds everything as it was
#   uninstall.sh --remove-library   also delete the library folder
# Your photos are never touched: photosift only ever reads them.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
if [ ! -f "$HERE/.photosift-install" ]; then
  echo "uninstall.sh: $HERE is not an installed photosift (run the installed copy's uninstall.sh)" >&2
  exit 1
fi
PREFIX=$(sed -n 's/^PREFIX=//p' "$HERE/.photosift-install")
remove_library=0
for arg in "$@"; do
  case "$arg" in
    --remove-library) remove_library=1 ;;
    *) echo "usage: uninstall.sh [--remove-library]" >&2; exit 2 ;;
  esac
done

rm -f "$PREFIX/share/applications/photosift.desktop"
rm -f "$PREFIX/share/icons/hicolor/512x512/apps/photosift.png" "$PREFIX/share/icons/hicolor/256x256/apps/photosift.png"
if [ -L "$PREFIX/bin/photosift" ] && [ "$(readlink "$PREFIX/bin/photosift")" = "$HERE/photosift" ]; then
  rm -f "$PREFIX/bin/photosift"
fi
command -v update-desktop-database >/dev/null && update-desktop-database -q "$PREFIX/share/applications" 2>/dev/null || true
# The library folder: the same rule as the app (engine/settings.py: $PHOTOSIFT_HOME, else the
# XDG data folder).
library=${PHOTOSIFT_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/photosift}
if [ "$remove_library" = 1 ]; then
  rm -rf "$library"
  echo "removed your photosift library: $library (your photos were not touched)"
else
  echo "kept your photosift library: $library (delete it yourself, or run with --remove-library)"
fi
rm -rf "$HERE"
echo "photosift uninstalled from $HERE"
