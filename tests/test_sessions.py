"""A shared studio: every browser (or logged-in user) works in its own workspace, with one job queue for all.

Two people's pages are two gradio sessions; what one makes, the other can neither see, stop nor delete.
"""

from __future__ import annotations

import threading
import time

import gradio as gr
import pytest

from studio.data.dataset import create_demo_dataset, list_datasets
from studio.errors import UserError
from studio.jobs import JobManager, JobRequest
from studio.ui.session import Sessions
from studio.workspace import USERS

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
