"""Upload bounds: how much one file, one import and one dataset may hold. A deployer changes them here, in one place.

The import code reads these names at call time (`limits.MAX_…`), so a deployment (or a test) can also set them
before importing: `studio.data.limits.MAX_IMPORT_FILES = 100`. A file past a bound is rejected by name with
the reason; everything within the bounds is still imported.
"""

from __future__ import annotations

# -- one file ------------------------------------------------------------------------------------
# A painting scan worth training on is a few MB; 100 MB is a generous TIFF. Zip members are held to it by their
# declared size and, since a header can lie, by what they actually unpack to.
MAX_FILE_BYTES = 100 * 1024 * 1024
# 8000 × 8000. Decoded as RGB that is ~190 MB, and the crops, hash and EXIF transpose copy it a few times: past
# this a single image (or a tiny file whose header claims a huge canvas: a decompression bomb) can exhaust
# memory. Training images are 256-1024 px, so nothing useful is lost. Note PIL refuses outright past
# 2 × PIL.Image.MAX_IMAGE_PIXELS (~179 Mpx); raising this past that needs PIL's raised too.
MAX_IMAGE_PIXELS = 64_000_000

# -- one import ----------------------------------------------------------------------------------
# Files one import reads. The studio is for 25-300 image datasets: 500 takes the largest in one go, with room
# for rejects and duplicates; a folder or zip of thousands (a scrape, a zip of tiny files) is cut off here
# instead of being read and listed for minutes.
MAX_IMPORT_FILES = 500
# Bytes one import reads and may store as originals. 2 GB is 400 scans of 5 MB; it also caps how long a zip
# of highly compressible members can keep us inflating, and how much disk one import can fill.
MAX_IMPORT_BYTES = 2 * 1024**3
# Pixels one import decodes. Decoding, hashing and cropping run at roughly 35-55 Mpx/s on one CPU core, so 2 Gpx
# is about a minute of work (500 scans of 4 Mpx, or 160 phone photos of 12 Mpx); it stops a zip of small files
# that are each a huge flat canvas from tying up the server for an hour.
MAX_IMPORT_PIXELS = 2_000_000_000

# -- one dataset ---------------------------------------------------------------------------------
# Training images (crops, so patches count one by one) in a dataset. Training holds the whole dataset in memory
# as float32 (Dataset.load_tensors): 2000 at 256 px is 1.6 GB, at 512 px 6.3 GB. It is also ~7× the largest
# dataset the studio is meant for, so no real use meets it.
MAX_DATASET_IMAGES = 2000

# -- one workspace -------------------------------------------------------------------------------
# Bytes all of a workspace's datasets may hold on disk. None on your own machine; a shared studio (one workspace per
# visitor) sets it, from STUDIO_USER_QUOTA_GB (default 5), so that no visitor can fill the server's disk by
# importing again and again.
MAX_WORKSPACE_BYTES: int | None = None
