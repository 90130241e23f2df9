"""bench.batch_throughput's own parts: exclusive stage timers and the table of a results dict
(the quick run itself, with its front-end export, is left to ``python -m bench.batch_throughput
--quick``)."""

import threading
import time

from bench import batch_throughput


def test_timers_count_a_nested_stage_once_per_thread():
    timers = batch_throughput.Timers()

    def job():
        def inner():
            time.sleep(0.05)

        time.sleep(0.02)
        timers.time('networks', inner)

    threads = [threading.Thread(target=timers.time, args=('pre/post', job)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 3 * 0.05 <= timers.seconds['networks'] < 3 * 0.05 + 0.5
    assert 3 * 0.02 <= timers.seconds['pre/post'] < 3 * 0.02 + 0.3  # the inner stage left out


def test_the_table_shows_each_stage_share():
    stages = dict.fromkeys(batch_throughput.STAGES, 1.0)
    stages['networks'] = 6.0
    results = {'machine': {'date': 'd', 'cpu': 'c', 'cores': 2, 'load_average': [1, 2, 3],
                           'load_average_end': [1, 2, 3]},
               'settings': {'photos': 4, 'category': 'men_tshirts', 'photo': 'photo.jpg'},
               'rows': [{'mode': 'in_process', 'workers': 1, 'photos': 4, 'seconds': 8.0,
                         'images_per_second': 0.5, 'stage_seconds': stages}]}
    table = batch_throughput.text(results, markdown=True)
    assert '| in_process | 1 | 4 | 8.0 | 0.50 | 1.0 (10) | 6.0 (60) |' in table
