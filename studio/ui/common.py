"""What every tab shares: a user's mistake shown as a one-sentence toast; handlers that use the GPU."""

from __future__ import annotations

import functools
import html
from typing import Callable

import gradio as gr

from studio import zerogpu
from studio.errors import UserError

GPU_EVENT = {"concurrency_limit": 1, "concurrency_id": "gpu"}  # one model on the GPU at a time, across tabs


def as_text(message: str) -> str:
    """`message` for a toast or a Markdown box, which render HTML: '<folder>' in advice must show, not vanish as a tag."""
    return html.escape(message, quote=False)


def user_errors(fn: Callable) -> Callable:
    """Show a UserError as a toast (gr.Error) instead of an error trace."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise gr.Error(as_text(str(exc)), print_exception=False) from None

    return wrapper


def on_gpu(fn: Callable, seconds: float = 60) -> Callable:
    """`fn` as the handler of a GPU event: on ZeroGPU inside one `@spaces.GPU` call of at most `seconds`."""
    return zerogpu.gpu(duration=seconds)(fn)
