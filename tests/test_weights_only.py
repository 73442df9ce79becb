"""Nothing the studio loads can run code: checkpoints are safetensors, pretrained pickles use weights_only=True."""

from __future__ import annotations

import re
from pathlib import Path

STUDIO = Path(__file__).resolve().parents[1] / "studio"


def _calls(pattern: str) -> list[tuple[str, str]]:
    """(file:line, call text up to its closing parenthesis) for every match of `pattern` in studio/."""
    found = []
    for path in sorted(STUDIO.rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(pattern, text):
            depth, end = 0, match.end()
            for end in range(match.end() - 1, len(text)):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                if depth == 0:
                    break
            found.append((f"{path.name}:{text[:match.start()].count(chr(10)) + 1}", text[match.start():end + 1]))
    return found


def test_every_torch_load_is_weights_only():
    calls = _calls(r"torch\.load\(")
    assert calls, "expected the pretrained-weights loaders (BigGAN, VGG16, Inception) to use torch.load"
    assert [where for where, call in calls if "weights_only=True" not in call] == []


def test_nothing_is_unpickled_and_checkpoints_are_safetensors():
    assert _calls(r"pickle\.loads?\(") == [] and _calls(r"torch\.jit\.load\(") == []
    run = (STUDIO / "run.py").read_text()
    assert "from safetensors.torch import load_file, save_file" in run and "torch.save(" not in run
