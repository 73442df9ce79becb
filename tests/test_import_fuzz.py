"""Import fuzzing: random bytes, mutated images and mutated zip archives never crash an import, and every file
given is accounted for by name: imported, rejected with a reason, or a duplicate."""

from __future__ import annotations

import io
import itertools
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio.data.dataset import import_into
from studio.errors import UserError
from studio.workspace import Workspace

from conftest import noise_image


def _encoded(fmt: str) -> bytes:
    buf = io.BytesIO()
    noise_image(96, 80, seed=3).save(buf, format=fmt)
    return buf.getvalue()


PNG, JPEG, GIF = _encoded("PNG"), _encoded("JPEG"), _encoded("GIF")
ZIP = io.BytesIO()
with zipfile.ZipFile(ZIP, "w") as z:
    z.writestr("art/one.png", PNG)
    z.writestr("art/two.jpg", JPEG)
ZIP = ZIP.getvalue()


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """A real file with a few bytes flipped, a chunk cut out, or its tail lost (headers included)."""
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 6))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.integers(0, 255))
    cut = draw(st.sampled_from(["none", "truncate", "splice"]))
    if cut == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == "splice":
        a = draw(st.integers(0, len(data)))
        data = data[:a] + data[a + draw(st.integers(0, 64)):]
    return bytes(data)


content = st.one_of(st.binary(max_size=512), mutated(PNG), mutated(JPEG), mutated(GIF), mutated(ZIP))
files = st.lists(st.tuples(st.sampled_from([".png", ".jpg", ".gif", ".zip", ".webp", ""]), content), min_size=1, max_size=4)
counter = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=files)
def test_fuzzed_files_never_crash_the_import_and_each_is_named(tmp_path, files):
    n = next(counter)
    folder = tmp_path / f"in{n}"
    folder.mkdir()
    paths = []
    for i, (ext, data) in enumerate(files):
        path = folder / f"f{i}{ext}"
        path.write_bytes(data)
        paths.append(path)
    ws = Workspace.resolve(tmp_path / f"ws{n}")
    try:
        _, report = import_into(ws, "fuzz", paths)
    except UserError:
        return  # a sentence for the user is a fine answer; a traceback is not
    named = set(report.imported) | {r["file"] for r in report.rejected} | {d["file"] for d in report.duplicates}
    for path in paths:  # each file, or (for an archive) something inside it, is in the report
        assert path.name in named or any(entry.startswith(f"{path.name}:") for entry in named), (path.name, named)
    assert all(r["reason"] for r in report.rejected)
