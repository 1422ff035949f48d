"""The load of bench/web_load.py: every simulated client GETs one path as fast as
it can (or, with BENCH_PACE, that many times a second at most), on one
kept-alive connection, with the session cookie it is given.

    BENCH_PATH=/healthz BENCH_COOKIE=rsid=... [BENCH_PACE=10] \
        locust -f bench/locustfile.py ...
"""

from __future__ import annotations

import os

from locust import FastHttpUser, constant, constant_throughput, task

PATH = os.environ.get("BENCH_PATH", "/healthz")
COOKIE = os.environ.get("BENCH_COOKIE", "")
PACE = float(os.environ.get("BENCH_PACE") or 0)


class Reader(FastHttpUser):
    wait_time = constant_throughput(PACE) if PACE else constant(0)
    network_timeout = 10.0
    connection_timeout = 10.0

    @task
    def read(self) -> None:
        headers = {"Cookie": COOKIE} if COOKIE else {}
        with self.client.get(PATH, headers=headers, catch_response=True) as answer:
            if answer.status_code != 200:
                answer.failure(f"status {answer.status_code}")
