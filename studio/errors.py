"""Errors a user can cause. Their message is one sentence meant for the user; the CLI and UI show it as is."""


class UserError(Exception):
    """A problem with the user's input or environment (bad name, missing dataset, missing weights)."""
