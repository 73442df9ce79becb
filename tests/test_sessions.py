"""A shared studio: every browser (or logged-in user) works in its own workspace, with one job queue for all.

Two people's pages are two gradio sessions; what one makes, the other can neither see, stop nor delete.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import gradio as gr
import pytest
from conftest import ROOT

from studio.data import limits
from studio.data.dataset import create_demo_dataset, list_datasets
from studio.errors import UserError
from studio.jobs import JobManager, JobRequest, JobView
from studio.ui.app import blocked_paths, served_paths
from studio.ui.session import Sessions, private_dir
from studio.workspace import USERS, Workspace

SMALL = {"g_ch": 8, "d_ch": 8, "batch": 8, "resolution": 32}


def _page(session_hash: str, username: str | None = None) -> gr.Request:
    return gr.Request(username=username, session_hash=session_hash)


@pytest.fixture
def shared(workspace):
    made = []

    def first_visit(ws):
        made.append(ws)
        create_demo_dataset(ws, "demo", per_class=4, size=64)

    jobs = JobManager(workspace, workspaces=workspace.users, max_live=1, background=False)
    return Sessions(workspace, jobs, multi_user=True, on_new_workspace=first_visit), made


def test_one_workspace_for_everyone_on_your_own_machine(workspace):
    sessions = Sessions(workspace, JobManager(workspace, background=False))
    assert sessions.ready(_page("a")) and sessions.workspace(_page("a")) == sessions.workspace(_page("b")) == workspace
    assert sessions._bind("", _page("a")) == ""


def test_each_browser_gets_its_own_workspace_and_keeps_it(shared, workspace):
    sessions, made = shared
    assert not sessions.ready(_page("page-a"))
    with pytest.raises(UserError, match="reload the page"):
        sessions.workspace(_page("page-a"))

    key_a = sessions._bind("", _page("page-a"))  # a new browser: a new secret key in its localStorage
    key_b = sessions._bind(None, _page("page-b"))
    ws_a, ws_b = sessions.workspace(_page("page-a")), sessions.workspace(_page("page-b"))
    assert len(key_a) >= 32 and key_a != key_b and ws_a != ws_b
    assert ws_a.root.parent == ws_b.root.parent == workspace.root / USERS
    assert key_a not in str(ws_a.root) and made == [ws_a, ws_b]  # the folder name does not give the key away
    assert [d["dataset"] for d in list_datasets(ws_a)] == ["demo"]  # something to train on at once

    # A reload or a second tab sends the same key: the same workspace, not set up again.
    assert sessions._bind(key_a, _page("page-a2")) == key_a
    assert sessions.workspace(_page("page-a2")) == ws_a and len(made) == 2
    # A guessed, short key is not taken: the page gets a fresh one.
    assert sessions._bind("x", _page("page-c")) not in ("x", key_a)

    sessions._unbind(_page("page-a"))  # the page closed
    assert not sessions.ready(_page("page-a")) and sessions.workspace(_page("page-a2")) == ws_a


def test_a_logged_in_user_has_one_workspace_on_every_browser(shared):
    sessions, _ = shared
    sessions._bind("", _page("laptop", "alice"))
    sessions._bind("", _page("phone", "alice"))
    alice = sessions.workspace(_page("laptop", "alice"))
    assert sessions.workspace(_page("phone", "alice")) == alice == sessions.workspace(_page("unbound", "alice"))
    assert sessions.workspace(_page("x", "bob")) != alice


def test_no_one_sees_stops_or_deletes_anothers_runs_and_the_queue_is_shared(shared):
    sessions, _ = shared
    sessions._bind("", _page("a"))
    sessions._bind("", _page("b"))
    alice, bob = sessions.jobs(_page("a")), sessions.jobs(_page("b"))
    job = JobRequest("cgan", "mine", dataset="demo", config=SMALL, device="cpu",
                     loop={"iters": 100000, "sample_every": 1000, "checkpoint_every": 100000})
    alice.submit(job)
    bob.submit(job)  # the same run name is no clash: another workspace
    try:
        assert [v.run for v in alice.runs()] == [v.run for v in bob.runs()] == ["mine"]
        assert alice.view("mine").state in ("starting", "running") and bob.view("mine").position == 1  # one slot for all
        assert "next in line" in bob.view("mine").sentence()
        with pytest.raises(UserError, match="shared"):  # one job per person at a time
            alice.submit(JobRequest("cgan", "second", dataset="demo", config=SMALL, device="cpu"))
        bob.stop("mine")  # Bob cancels his queued run; Alice's keeps going
        assert "mine" not in bob.names() and alice.view("mine").live
        with pytest.raises(UserError, match="no run named 'mine'"):
            bob.delete("mine")
        assert alice.view("mine").live
        assert sessions.jobs(_page("b")).ws != alice.ws
    finally:
        alice.stop("mine")
        deadline = time.time() + 60
        while alice.view("mine").live and time.time() < deadline:
            alice.tick()
            time.sleep(0.2)
    assert alice.view("mine").state == "stopped", alice.view("mine").error + alice.log_tail("mine")


def test_one_visitors_setup_does_not_hold_up_anothers_page(workspace):
    setting_up = threading.Event()

    def slow_first_visit(ws):
        setting_up.set()
        time.sleep(2)  # as making the demo dataset takes seconds

    sessions = Sessions(workspace, JobManager(workspace, background=False), multi_user=True,
                        on_new_workspace=slow_first_visit)
    key_b = sessions._bind("", _page("b"))
    newcomer = threading.Thread(target=sessions._bind, args=("", _page("a")))
    newcomer.start()
    assert setting_up.wait(5)
    started = time.perf_counter()
    sessions._bind(key_b, _page("b-reload"))  # Bob reloads while Alice's workspace is being made
    assert time.perf_counter() - started < 1.0
    newcomer.join()
    assert sessions.workspace(_page("a")) != sessions.workspace(_page("b-reload"))


# -- bounds on strangers (a shared studio) ------------------------------------------------------------------------------

def _from(session_hash: str, host: str, forwarded: str | None = None) -> gr.Request:
    return gr.Request(session_hash=session_hash, client={"host": host},
                      headers={"x-forwarded-for": forwarded} if forwarded else {})


def test_the_server_secret_is_kept_privately_and_an_old_one_is_moved_there(workspace):
    old = workspace.root / USERS / ".secret"  # where an older studio kept it: beside the users' folders, served with them
    old.parent.mkdir(parents=True)
    old.write_text("ab" * 32)
    sessions = Sessions(workspace, JobManager(workspace, background=False), multi_user=True)
    key = sessions._bind("", _page("a"))
    assert not old.exists() and (private_dir(workspace) / "secret").read_text().strip() == "ab" * 32
    folder = hmac.new(bytes.fromhex("ab" * 32), f"browser:{key}".encode(), hashlib.sha256).hexdigest()[:32]
    assert sessions.workspace(_page("a")).root.name == folder  # every visitor keeps their folder
    assert set(blocked_paths(workspace)) >= {str(private_dir(workspace)), str(workspace.root / USERS)}
    assert served_paths(workspace, multi_user=True) == [] and served_paths(workspace, multi_user=False) == [str(workspace.root)]


def test_new_workspaces_per_minute_are_bounded_per_address(workspace, monkeypatch):
    monkeypatch.setattr(limits, "MAX_NEW_SESSIONS_PER_MINUTE", 2)
    sessions = Sessions(workspace, JobManager(workspace, background=False), multi_user=True)
    key = sessions._bind("", _from("a1", "10.0.0.1"))
    sessions._bind("", _from("a2", "10.0.0.1"))
    with pytest.raises(UserError, match="Too many new workspaces .* from your address .* wait a minute"):
        sessions._bind("", _from("a3", "10.0.0.1"))
    with pytest.raises(UserError, match="Too many"):  # a made-up key is a new workspace too
        sessions._bind("x" * 40, _from("a4", "10.0.0.1"))
    assert not sessions.ready(_from("a3", "10.0.0.1")) and len(workspace.users()) == 2
    assert sessions._bind(key, _from("a1-reload", "10.0.0.1")) == key  # coming back is not a new workspace
    sessions._bind("", _from("b1", "10.0.0.2"))  # another address is not held back
    # Behind a Space's proxy the visitor is the first X-Forwarded-For hop; elsewhere that header is not believed.
    behind = Sessions(workspace, JobManager(workspace, background=False), multi_user=True, trust_forwarded=True)
    behind._bind("", _from("c1", "10.0.0.1", "1.2.3.4, 10.0.0.1"))
    behind._bind("", _from("c2", "10.0.0.1", "5.6.7.8"))
    behind._bind("", _from("c3", "10.0.0.1", "5.6.7.8"))
    with pytest.raises(UserError, match="Too many"):
        behind._bind("", _from("c4", "10.0.0.9", "5.6.7.8"))
    with pytest.raises(UserError, match="Too many"):
        sessions._bind("", _from("a5", "10.0.0.1", "9.9.9.9"))
    later = time.monotonic() + 61  # a minute on, the address may open new ones again
    monkeypatch.setattr(time, "monotonic", lambda: later)
    sessions._bind("", _from("a6", "10.0.0.1"))


def test_all_visitors_disk_is_bounded_for_newcomers(shared, workspace, monkeypatch):
    sessions, made = shared
    monkeypatch.setattr(limits, "MAX_USERS_BYTES", 100_000)  # less than two small demos
    key = sessions._bind("", _page("a"))
    assert limits.folder_bytes(workspace.root / USERS) > 100_000
    with pytest.raises(UserError, match="This shared studio is full: .* Try again later"):
        sessions._bind("", _page("b"))
    assert len(made) == 1 and sessions._bind(key, _page("a-reload")) == key  # those already here carry on
    # A full studio measured within the minute still counts the newcomers it just let in.
    sessions = Sessions(workspace, sessions._jobs, multi_user=True)
    monkeypatch.setattr(limits, "MAX_USERS_BYTES", limits.folder_bytes(workspace.root / USERS) + 1)
    sessions._bind("", _page("c"))
    with pytest.raises(UserError, match="full"):
        sessions._bind("", _page("d"))


def test_the_demo_button_and_the_first_visit_count_against_the_visitors_quota(workspace, monkeypatch, capsys):
    from studio.ui.app import build_app, first_visit

    monkeypatch.setattr(limits, "MAX_WORKSPACE_BYTES", 1024**2)  # 1 MB: less than a demo dataset (~19 MB)
    first_visit(workspace)
    assert list_datasets(workspace) == [] and "no demo dataset. There is no room for the demo dataset" in capsys.readouterr().out
    demo = build_app(workspace, JobManager(workspace, workspaces=workspace.users, max_live=1, background=False), multi_user=True)
    fns = {f.name: f.fn for f in demo.fns.values()}
    fns["_bind"]("", _page("a"))
    status = fns["on_demo"]("", _page("a"))[0]  # said in the status line, the dataset view left as it was
    assert re.search("no room for another demo dataset: it needs about .* of the 1 MB", status), status
    assert list((workspace.root / USERS).glob("*/datasets/*/dataset.json")) == []


def test_workspaces_no_one_came_back_to_are_cleaned_up(workspace, monkeypatch):
    monkeypatch.setattr(limits, "FORGET_AFTER_S", 7 * 86400)
    sessions = Sessions(workspace, JobManager(workspace, background=False), multi_user=True)
    keys = {page: sessions._bind("", _page(page)) for page in ("open", "gone", "busy", "recent")}
    sessions._bind("", _page("alice-laptop", "alice"))
    folders = {page: sessions.workspace(_page(page)).root for page in keys}
    alice = sessions.workspace(_page("alice-laptop", "alice")).root
    for page in ("gone", "busy", "recent", "alice-laptop"):
        sessions._unbind(_page(page, "alice" if page == "alice-laptop" else None))
    week_ago = time.time() - 8 * 86400
    for page in ("open", "gone", "busy"):
        os.utime(private_dir(workspace) / "seen" / folders[page].name, (week_ago, week_ago))
    os.utime(alice, (week_ago, week_ago))
    busy = Workspace(folders["busy"])
    monkeypatch.setattr(JobManager, "runs", lambda self: [JobView("r", "running")] if self.ws == busy else [])

    assert sessions.clean_up() == [folders["gone"].name]  # still open in a page, a live job, seen lately, logged in: kept
    assert not folders["gone"].exists() and all(p.exists() for p in (folders["open"], folders["busy"], folders["recent"], alice))
    monkeypatch.setattr(limits, "FORGET_AFTER_S", None)  # no cleanup at all
    sessions._unbind(_page("open"))
    os.utime(private_dir(workspace) / "seen" / folders["open"].name, (week_ago, week_ago))
    assert sessions.clean_up() == []
    # The app cleans up at start and every hour; a browser that comes back after all gets a new workspace.
    monkeypatch.setattr(limits, "FORGET_AFTER_S", 7 * 86400)
    sessions.keep_clean()
    deadline = time.time() + 10
    while folders["open"].exists() and time.time() < deadline:
        time.sleep(0.05)
    assert not folders["open"].exists()
    assert sessions._bind(keys["gone"], _page("gone-again")) == keys["gone"]
    assert sessions.workspace(_page("gone-again")).root == folders["gone"] and folders["gone"].is_dir()


def test_the_empty_workspace_a_shared_page_is_built_from_goes_when_the_studio_stops(workspace, tmp_path):
    """One was left in the temp folder per start of a shared studio; now it is removed when the process exits."""
    temp = tmp_path / "temp"
    temp.mkdir()
    script = ("import sys; from studio.jobs import JobManager; from studio.ui.session import Sessions; "
              "from studio.workspace import Workspace\n"
              "ws = Workspace.resolve(sys.argv[1])\n"
              "sessions = Sessions(ws, JobManager(ws, background=False), multi_user=True)\n"
              "print(sessions.at_build().ws.root)")
    out = subprocess.run([sys.executable, "-c", script, str(workspace.root)], capture_output=True, text=True,
                         env={**os.environ, "TMPDIR": str(temp), "OMP_NUM_THREADS": "1"}, cwd=ROOT, check=True)
    built_from = Path(out.stdout.strip().splitlines()[-1])
    assert built_from.parent == temp and built_from.name.startswith("studio-empty-")
    assert not built_from.exists() and not list(temp.iterdir())
