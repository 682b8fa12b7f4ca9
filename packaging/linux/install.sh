#!/usr/bin/env bash
# Install photosift from this unpacked tarball.
#   ./install.sh                          for you: ~/.local/{lib/photosift,bin,share/applications,share/icons}
#   sudo PREFIX=/usr/local ./install.sh   for everyone
# Installing again replaces the program; your library and photos are never touched.
set -euo pipefail
SRC=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-$HOME/.local}
DEST=$PREFIX/lib/photosift
APPS=$PREFIX/share/applications
ICONS=$PREFIX/share/icons/hicolor

if [ ! -x "$SRC/photosift" ] || [ ! -d "$SRC/_internal" ]; then
  echo "install.sh: run me from the unpacked photosift folder" >&2; exit 1
fi
if [ -e "$DEST" ] && [ ! -f "$DEST/.photosift-install" ]; then
  echo "install.sh: $DEST exists and is not a photosift install; not touching it" >&2; exit 1
fi

# Copy beside the old install, then swap, so a failed copy never leaves a broken program.
mkdir -p "$PREFIX/lib" "$PREFIX/bin" "$APPS" "$ICONS/512x512/apps" "$ICONS/256x256/apps"
tmp=$(mktemp -d "$PREFIX/lib/.photosift-new.XXXXXX")
cp -a "$SRC/photosift" "$SRC/_internal" "$SRC/uninstall.sh" "$SRC/README.txt" "$tmp/"
printf 'PREFIX=%s\n' "$PREFIX" > "$tmp/.photosift-install"
chmod 755 "$tmp"
rm -rf "$DEST"
mv "$tmp" "$DEST"

ln -sfn "$DEST/photosift" "$PREFIX/bin/photosift"
sed "s|^Exec=.*|Exec=\"$DEST/photosift\"|" "$SRC/photosift.desktop" > "$APPS/photosift.desktop"
cp "$SRC/photosift.png" "$ICONS/512x512/apps/photosift.png"
if command -v python3 >/dev/null && python3 -c "import PIL" 2>/dev/null; then
  python3 -c "from PIL import Image; import sys; Image.open(sys.argv[1]).resize((256, 256)).save(sys.argv[2])" \
    "$SRC/photosift.png" "$ICONS/256x256/apps/photosift.png" || true
fi
command -v update-desktop-database >/dev/null && update-desktop-database -q "$APPS" 2>/dev/null || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true

echo "photosift installed in $DEST"
echo "  menu entry: $APPS/photosift.desktop"
case ":$PATH:" in
  *":$PREFIX/bin:"*) echo "  command:    photosift (photosift cli --help for the command line)" ;;
  *) echo "  command:    $PREFIX/bin/photosift ($PREFIX/bin is not on your PATH)" ;;
esac
echo "  uninstall:  $DEST/uninstall.sh"
