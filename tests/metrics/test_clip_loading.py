"""Loading a CLIP model from several threads: one copy of a shipped backbone, and the host
program's logging left alone (session 34: the root logger's level was saved, set to ERROR and
restored, so two threads loading at once left it at ERROR for good, and every other thread's
warnings were dropped meanwhile)."""

from __future__ import annotations

import logging
import threading

import open_clip

from evalkit.metrics import backbones
from evalkit.metrics.world_clip import _quiet_open_clip, create_world_clip, register_world_clip_config

RANDOM_INIT = "initialized randomly"


def test_concurrent_loads_leave_the_root_level_alone(caplog):
    caplog.set_level(logging.INFO)
    root = logging.getLogger()
    for _ in range(3):
        start = threading.Barrier(2)
        threads = [threading.Thread(target=lambda: (start.wait(), create_world_clip())) for _ in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert root.level == logging.INFO
    assert not any(RANDOM_INIT in r.getMessage() for r in caplog.records)  # expected here: hidden


def test_only_open_clips_records_of_the_loading_thread_are_hidden(caplog):
    caplog.set_level(logging.INFO)
    name = register_world_clip_config()

    def elsewhere():
        logging.getLogger("host").warning("another thread's warning")
        open_clip.create_model(name, pretrained=None)  # not inside _quiet_open_clip: its warning stays

    with _quiet_open_clip():
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
        open_clip.create_model(name, pretrained=None)
        logging.getLogger("host").warning("this thread's own warning")
    messages = [(r.thread, r.getMessage()) for r in caplog.records]
    assert any(m == "another thread's warning" for _, m in messages)
    assert any(m == "this thread's own warning" for _, m in messages)
    assert [tid for tid, m in messages if RANDOM_INIT in m] == [t.ident]
    assert logging.getLogger().level == logging.INFO


def test_threads_first_asking_for_a_shipped_backbone_share_one_copy():
    backbones._load_world_cached_unlocked.cache_clear()
    start, got = threading.Barrier(3), []
    threads = [threading.Thread(target=lambda: (start.wait(), got.append(backbones.get_backbone("world-clip"))))
               for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(got) == 3 and got[0] is got[1] is got[2]
