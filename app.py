"""ArtGAN Studio: `python app.py [--port 7860] [--host 127.0.0.1] [--workspace DIR] [--share] [--multi-user] [--dev]`."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys


def main() -> None:
    parser = argparse.ArgumentParser(description="ArtGAN Studio: make art with GANs from small datasets.")
    # A Hugging Face Space (or any host) sets GRADIO_SERVER_NAME / GRADIO_SERVER_PORT: follow them unless told otherwise.
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="0.0.0.0 to serve on your network")
    parser.add_argument("--workspace", help="folder for datasets/, runs/, exports/ (default: $STUDIO_WORKSPACE or ./workspace)")
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument("--multi-user", action=argparse.BooleanOptionalAction, default=None,
                        help="every browser (or logged-in user) gets a workspace of its own, one job queue for all "
                             "(default: on on a Hugging Face Space, else off; STUDIO_MULTI_USER=1/0 overrides)")
    parser.add_argument("--dev", action="store_true", help="developer mode: offer the tiny random models used by the tests")
    args = parser.parse_args()

    from studio import zerogpu  # first: on ZeroGPU its @spaces.GPU functions must exist before CUDA or the app starts
    from studio import devices
    from studio.data import limits
    from studio.data.dataset import list_datasets  # torch and gradio import slowly: keep --help instant
    from studio.errors import UserError
    from studio.jobs import JobManager
    from studio.ui.app import build_app, first_visit, launch
    from studio.workspace import Workspace

    env = zerogpu.detect()
    multi_user = args.multi_user if args.multi_user is not None else _setting("STUDIO_MULTI_USER", env.on_space)

    ws = Workspace.resolve(args.workspace)
    if not env.zero_gpu:  # the file that tells job processes this one is busy (studio.devices.app_work)
        os.environ.setdefault(devices.BUSY_FILE, str(ws.root / ".app-busy"))
    else:
        print("ZeroGPU: jobs train in this process, one GPU call per chunk with a checkpoint between chunks.", flush=True)
    try:  # a workspace another app serves is refused in one sentence (two apps would run its queue twice)
        if multi_user:  # one GPU and one disk, shared fairly: one job per person at a time, a quota for datasets
            limits.MAX_WORKSPACE_BYTES = int(_number("STUDIO_USER_QUOTA_GB", 5) * 1024**3)
            limits.MAX_USERS_BYTES = int(_number("STUDIO_USERS_QUOTA_GB", 50) * 1024**3)  # strangers bounded, all together
            limits.MAX_NEW_SESSIONS_PER_MINUTE = int(_number("STUDIO_NEW_SESSIONS_PER_MINUTE", 10)) or None
            limits.FORGET_AFTER_S = _number("STUDIO_FORGET_AFTER_DAYS", 14) * 86400 or None
            jobs = JobManager(ws, workspaces=ws.users, max_live=1, in_process=env.zero_gpu)
            print(f"Multi-user: each browser works in its own folder under {ws.root / 'users'}.", flush=True)
        else:
            jobs = JobManager(ws, in_process=env.zero_gpu)
            if not list_datasets(ws):
                first_visit(ws)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    with contextlib.suppress(KeyError, OSError):
        os.unlink(os.environ[devices.BUSY_FILE])  # left by an app of this workspace killed mid-request
    # jobs train in processes of their own with most of the cores (all while this one is idle: studio.devices); this
    # process keeps the rest for Generate & co.
    devices.prepare_process(devices.app_threads(devices.available_cores(), jobs_in_process=env.zero_gpu))
    signal.signal(signal.SIGTERM, _terminate_like_ctrl_c)
    try:
        demo = build_app(ws, jobs, dev=args.dev, multi_user=multi_user, on_new_workspace=first_visit,
                         trust_forwarded=env.on_space)
        launch(demo, ws, host=args.host, port=args.port, share=args.share, multi_user=multi_user)
    finally:
        stopped = jobs.stop_all()
        jobs.close()
        if stopped:
            print(f"Stopping {', '.join(stopped)}: each saves a checkpoint; Continue resumes it next time.", flush=True)


def _number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    try:
        number = float(value) if value else default
    except ValueError:
        number = -1
    if not 0 <= number < float("inf"):
        raise SystemExit(f"{name}={value!r} is not a number of 0 or more (default {default:g}).")
    return number


def _setting(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() not in ("0", "false", "no", "off", "")


def _terminate_like_ctrl_c(signum, frame) -> None:
    """SIGTERM (a service manager, a test) ends the app as Ctrl-C does: running jobs stop with a checkpoint."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut that cleanup short
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
