"""Whether a download can happen: the one answer every loader and picker asks for.

HF_HUB_OFFLINE set: never. Otherwise one short TCP connection to the hub (HF_ENDPOINT, default
https://huggingface.co) per process, its answer kept: a machine without a network then says so at once,
in the pickers and at submit, instead of each loader trying (and retrying) its downloads for minutes.
A failed probe is retried after RECHECK_S, so a network that comes back is noticed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 2.0  # the whole probe, name lookup included: a dead network must not stall a page
RECHECK_S = 300.0
_lock = threading.Lock()
_answer: dict[str, tuple[bool, float]] = {}  # endpoint → (reachable, when probed)


def offline_flag() -> bool:
    """HF_HUB_OFFLINE, read per call (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or "https://huggingface.co"


def can_download() -> bool:
    """False when HF_HUB_OFFLINE is set or the hub did not answer the probe (kept per endpoint)."""
    if offline_flag():
        return False
    endpoint = hub_endpoint()
    with _lock:
        known = _answer.get(endpoint)
        if known is None or (not known[0] and time.monotonic() - known[1] > RECHECK_S):
            known = _answer[endpoint] = (_probe(endpoint), time.monotonic())
    return known[0]


def why_not(download: bool = True) -> str:
    """Why nothing will be downloaded, as a clause: 'HF_HUB_OFFLINE is set', '<host> cannot be reached', …"""
    if not download:
        return "downloads are turned off"
    if offline_flag():
        return "HF_HUB_OFFLINE is set"
    return f"{urlsplit(hub_endpoint()).hostname} cannot be reached (no network?)"


def forget() -> None:
    """Drop the kept answers (tests; a user who has just plugged in a cable waits RECHECK_S instead)."""
    with _lock:
        _answer.clear()


def _probe(endpoint: str) -> bool:
    """A TCP connection to the endpoint's host and port within PROBE_TIMEOUT_S, in a thread, because a name
    lookup ignores socket timeouts and can hang for many seconds on a machine without a resolver."""
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)
    result: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=connect, daemon=True, name="hub-probe")
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    return bool(result and result[0])
