"""The REST client's collector pause: nested and concurrent pauses, and the collector's state
restored after them."""

import gc
import threading

from everywear_tf.serving import client


def test_pauses_nest_and_restore_the_collector():
    assert gc.isenabled()
    with client._collector_paused():
        assert not gc.isenabled()
        with client._collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with client._collector_paused():
            pass
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()


def test_concurrent_pauses_resume_after_the_last():
    inside, release = threading.Event(), threading.Event()

    def hold():
        with client._collector_paused():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    inside.wait(10)
    with client._collector_paused():
        pass
    assert not gc.isenabled()  # the other pause is still on
    release.set()
    thread.join(10)
    assert gc.isenabled()
