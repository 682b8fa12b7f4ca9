#!/usr/bin/env bash
# Wrap an .app in a compressed disk image with an Applications link (drag to install).
#   bash packaging/macos/make_dmg.sh path/to/photosift.app out.dmg "volume name"
# Uses create-dmg (brew install create-dmg) for a laid-out window when it is there, else
# plain hdiutil, which every Mac has. Uninstalling is dragging photosift.app to the Trash:
# the library in ~/Library/Application Support/photosift and the photos stay.
set -euo pipefail
APP=$1
DMG=$2
VOL=${3:-photosift}
rm -f "$DMG"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# ditto keeps the bundle's symlinks, extended attributes and signature intact.
ditto "$APP" "$stage/$(basename "$APP")"
if command -v create-dmg >/dev/null; then
  # create-dmg takes the folder whose contents go on the image; it adds the Applications link.
  create-dmg --volname "$VOL" --window-size 540 360 --icon-size 96 \
    --icon "$(basename "$APP")" 140 170 --app-drop-link 400 170 --hide-extension "$(basename "$APP")" \
    --no-internet-enable "$DMG" "$stage"
else
  ln -s /Applications "$stage/Applications"
  hdiutil create -volname "$VOL" -srcfolder "$stage" -fs HFS+ -format UDZO -imagekey zlib-level=9 -ov "$DMG"
fi
hdiutil verify "$DMG"
