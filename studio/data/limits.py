"""Upload bounds: how much one file, one import and one dataset may hold. A deployer changes them here, in one place.

The import code reads these names at call time (`limits.MAX_…`), so a deployment (or a test) can also set them
before importing: `studio.data.limits.MAX_IMPORT_FILES = 100`. A file past a bound is rejected by name with
the reason; everything within the bounds is still imported.
"""

from __future__ import annotations

import os
from pathlib import Path

from studio.errors import UserError
from studio.workspace import Workspace

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

# -- a shared studio (all visitors together) -----------------------------------------------------
# None on your own machine; `python app.py --multi-user` (a Space) sets them from the environment variable named.
# New workspaces one client (IP address) may open in a minute: each is a folder and a 120-image demo dataset
# (~19 MB, 8-16 s of CPU). STUDIO_NEW_SESSIONS_PER_MINUTE, default 10 (a classroom behind one address still fits);
# 0: no bound.
MAX_NEW_SESSIONS_PER_MINUTE: int | None = None
# Bytes all visitors' workspaces (datasets, runs, exports) may hold before new visitors are turned away, until the
# cleanup below makes room. STUDIO_USERS_QUOTA_GB, default 50.
MAX_USERS_BYTES: int | None = None
# A browser's workspace that no page has opened for this long, with no live job, is deleted (a logged-in user's
# never is). STUDIO_FORGET_AFTER_DAYS, default 14; 0 keeps them all.
FORGET_AFTER_S: float | None = None


def folder_bytes(folder: Path) -> int:
    """Bytes the files under `folder` hold (0 if it does not exist; a file deleted meanwhile counts 0)."""
    total = 0
    for parent, _, files in os.walk(folder):  # a folder that vanishes meanwhile is skipped
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def demo_bytes(images: int, size: int) -> int:
    """What a demo dataset of `images` paintings at `size` px takes on disk, rounded up (measured: 19 MB for 120 at 256)."""
    return images * (3 * size * size + 8192)


def check_room(ws: Workspace, adding: int, what: str) -> None:
    """Refuse, with a sentence, `adding` bytes of datasets that would take `ws` past MAX_WORKSPACE_BYTES."""
    quota = MAX_WORKSPACE_BYTES
    if quota is None:
        return
    held = folder_bytes(ws.datasets)
    if held + adding > quota:
        raise UserError(f"There is no room for {what}: it needs about {_mb(adding)}, and your datasets already hold "
                        f"{_mb(held)} of the {_mb(quota)} this shared studio keeps for each visitor; "
                        "delete a dataset to make room.")


def _mb(n: int) -> str:
    return f"{n / 1024**2:,.0f} MB" if n < 10 * 1024**3 else f"{n / 1024**3:,.1f} GB"
