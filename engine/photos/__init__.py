"""Photos as files: which files are photos, decoding any of them (camera RAW through LibRaw)
to an upright RGB image, and the metadata they carry (dates, camera, GPS, keywords)."""
