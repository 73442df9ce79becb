"""What every tab shares: a user's mistake shown as a one-sentence toast."""

from __future__ import annotations

import functools
from typing import Callable

import gradio as gr

from studio.errors import UserError


def user_errors(fn: Callable) -> Callable:
    """Show a UserError as a toast (gr.Error) instead of an error trace."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapper
