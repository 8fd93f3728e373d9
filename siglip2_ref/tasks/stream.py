"""Work on a stream of items in worker threads, ahead of the consumer, with a bounded number in flight.

    for item, result, error in prefetched(preprocess, paths, workers=2, depth=32):
        ...   # results arrive in input order while the next ones are being computed

Decoding and resizing (Pillow's decoder and NumPy's array code release the GIL) then overlap with the model,
which runs in the consumer's thread. At most `depth` results exist at once, so memory stays flat on a stream of
any length.
"""

from collections import deque
from concurrent.futures import ThreadPoolExecutor


def capture(fn, catch):
    """fn wrapped to return (result, None), or (None, error) for the exception kinds in `catch`."""

    def call(item):
        try:
            return fn(item), None
        except catch as e:
            return None, e

    return call


def prefetched(fn, items, workers=2, depth=32, catch=()):
    """Yield (item, fn(item), None) in input order, computed by `workers` threads up to `depth` items ahead.

    An exception of a kind in `catch` comes back as (item, None, error); any other is raised in the consumer.
    """
    call = capture(fn, catch)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="preprocess") as pool:
        pending = deque()
        try:
            for item in items:
                pending.append((item, pool.submit(call, item)))
                if len(pending) >= depth:
                    item, future = pending.popleft()
                    yield (item, *future.result())
            while pending:
                item, future = pending.popleft()
                yield (item, *future.result())
        finally:
            for _, future in pending:  # the consumer stopped early: do not compute the rest
                future.cancel()
