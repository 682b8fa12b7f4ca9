"""photosift's tags as keywords other photo managers read: XMP sidecars, embedded XMP and
IPTC (reading and writing them, touching only those bytes of a JPEG), and which tags go out
and which keywords come in."""
