"""What every tab shares: a user's mistake said in one sentence, never an error state; handlers that use the GPU."""

from __future__ import annotations

import functools
import html
from typing import Callable

import gradio as gr

from studio import devices, zerogpu
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


def refusing(n_outputs: int, note: int = 0, *, prefix: str = "") -> Callable[[Callable], Callable]:
    """For a button's handler: a refusal (UserError) becomes a sentence in output `note` (a Markdown line), said
    in a warning toast too, with every other output left as it is. gr.Error would mark every output of the event
    as failed (red Error badges on the previews, the plot and the log, as if the run were gone) for what is only
    a person's mistake or a missing file. On success the handler returns all `n_outputs` itself."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except UserError as exc:
                text = as_text(str(exc))
                gr.Warning(text)
                out = [gr.update() for _ in range(n_outputs)]
                out[note] = prefix + text
                return out[0] if n_outputs == 1 else tuple(out)

        return wrapper

    return wrap


def on_gpu(fn: Callable, seconds: float = 60) -> Callable:
    """`fn` as the handler of a GPU event: on ZeroGPU inside one `@spaces.GPU` call of at most `seconds`; elsewhere
    marked as the app's interactive work, so a training job steps down to its share of the cores meanwhile."""

    @functools.wraps(fn)
    def busy(*args, **kwargs):
        with devices.app_work():
            return fn(*args, **kwargs)

    return zerogpu.gpu(duration=seconds)(busy)
