"""A toy data source, to show what a new one takes (a Hub dataset, say): this module and one line in
studio.data.sources.SOURCES. `open_source(spec)` gets what follows "toy:" in `dataset import NAME toy:SPEC`.

It holds N generated paintings in memory: PIL images and encoded bytes, each with its own label and provenance.
"""

from __future__ import annotations

import io
from typing import Iterator

from PIL import Image

from studio.data.sources import Payload


class ToySource:
    def __init__(self, n: int):
        self.n, self.name = n, f"toy:{n}"

    def payloads(self) -> Iterator[Payload]:
        for i in range(self.n):
            image = Image.radial_gradient("L").resize((96, 96)).convert("RGB").rotate(37 * i)
            image.paste((40 * i % 256, 90, 200 - 30 * i), (8 * i, 8 * i, 8 * i + 30, 8 * i + 30))
            provenance = {"dataset": "toy", "row": i}
            if i % 2:  # half as encoded bytes, as a dataset that stores files gives them
                buf = io.BytesIO()
                image.save(buf, format="JPEG", quality=95)
                image = buf.getvalue()
            yield Payload.of(f"toy/{i:03d}", image, label=("even", "odd style")[i % 2], provenance=provenance)


def open_source(spec: str) -> ToySource:
    return ToySource(int(spec))
