"""Dynamic batching: async routes enqueue, one worker thread per model forms and runs batches.

``submit`` (event loop) puts a ``Job`` (image tensor, asyncio future) on a bounded queue and
returns the future; a full queue raises ``OverloadedError`` (503 + Retry-After). The worker thread
takes the first waiting job, then keeps taking jobs until the batch holds ``max_batch_size``
images or ``max_queue_delay`` has passed since that first job was enqueued (Triton's dynamic
batcher; with delay 0 it takes only what is already waiting). A job that would overflow the batch
starts the next one. The batch is run once (``execute``: concatenation in arrival order,
preprocessing, backend) and each job's slice of the labels resolves its future through
``loop.call_soon_threadsafe``. Preprocessing and model work never run on the event loop.

Jobs whose future was cancelled (client gone) before their batch starts are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from server.core.errors import InternalError, OverloadedError, UnavailableError
from server.metrics import ModelMetrics

log = logging.getLogger("server.batcher")

Execute = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass(slots=True, eq=False)
class Job:
    images: np.ndarray  # float32 [n, C, H, W]
    future: asyncio.Future[np.ndarray]
    loop: asyncio.AbstractEventLoop
    enqueued: float  # time.perf_counter()

    @property
    def size(self) -> int:
        return int(self.images.shape[0])


def _settle(future: asyncio.Future[np.ndarray], value: np.ndarray | None,
            error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)  # type: ignore[arg-type]


class DynamicBatcher:
    """The queue and worker thread of one model."""

    def __init__(self, name: str, execute: Execute, *, max_batch_size: int,
                 max_queue_delay_s: float, max_queue_size: int, metrics: ModelMetrics,
                 thread_init: Callable[[], None] | None = None,
                 batch_sleep_s: float = 0.0) -> None:
        self.name = name
        self._execute = execute
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=max_queue_size)
        self._metrics = metrics
        self._batch_sleep_s = batch_sleep_s
        self._thread_init = thread_init
        self._carry: Job | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"batcher-{name}", daemon=True)
        metrics.queue_depth.set_function(self._queue.qsize)

    # ---- event loop side -------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, images: np.ndarray) -> asyncio.Future[np.ndarray]:
        """Enqueue ``images``; the future resolves to their labels (int64 [n])."""
        if self._stop.is_set():
            raise UnavailableError("server is shutting down")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        try:
            self._queue.put_nowait(Job(images, future, loop, time.perf_counter()))
        except queue.Full:
            raise OverloadedError(f"model {self.name!r} is overloaded (queue full); retry later"
                                  ) from None
        return future

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker after its current batch; fail whatever is still queued (503)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        leftovers = [self._carry] if self._carry else []
        self._carry = None
        while True:
            try:
                leftovers.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for job in leftovers:
            self._post(job, None, UnavailableError("server is shutting down"))

    # ---- worker thread ---------------------------------------------------------------------

    def _take(self, timeout: float | None) -> Job | None:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        try:
            if timeout is not None and timeout <= 0:
                return self._queue.get_nowait()
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _gather(self, first: Job) -> list[Job]:
        jobs, images = [first], first.size
        deadline = first.enqueued + self.max_queue_delay_s
        while images < self.max_batch_size:
            job = self._take(deadline - time.perf_counter())
            if job is None:
                break
            if images + job.size > self.max_batch_size:
                self._carry = job
                break
            jobs.append(job)
            images += job.size
        return jobs

    def _work(self) -> None:
        if self._thread_init is not None:
            # e.g. torch's intra-op setting is per thread: a new thread would start with
            # OpenMP's default team and run several times slower on a busy machine
            self._thread_init()
        while not self._stop.is_set():
            first = self._take(0.1)
            if first is None:
                continue
            if self._batch_sleep_s:
                time.sleep(self._batch_sleep_s)  # testing hook: a slow model
            jobs = [job for job in self._gather(first) if not job.future.cancelled()]
            if jobs:
                self._run(jobs)

    def _run(self, jobs: list[Job]) -> None:
        start = time.perf_counter()
        for job in jobs:
            self._metrics.queue_seconds.observe(start - job.enqueued)
            self._metrics.stats.queued(start - job.enqueued)
        try:
            labels = self._execute([job.images for job in jobs])
        except Exception:
            log.exception("model %s: batch of %d request(s) failed", self.name, len(jobs))
            for job in jobs:
                self._post(job, None, InternalError())
            return
        total = len(labels)
        self._metrics.batches.inc()
        self._metrics.inferences.inc(total)
        self._metrics.batch_size.observe(total)
        offset = 0
        for job in jobs:
            self._post(job, labels[offset:offset + job.size], None)
            offset += job.size

    @staticmethod
    def _post(job: Job, value: np.ndarray | None, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            job.loop.call_soon_threadsafe(_settle, job.future, value, error)
