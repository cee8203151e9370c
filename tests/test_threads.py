"""Thread safety: one compiled function called from several threads at once returns the
right results, and updates of shared variables from concurrent calls are never lost
(calls that touch the same shared variables are serialized)."""
import sys
import threading

import numpy as np
import pytest

import minigraph as mg
import minigraph.tensor as T

N_THREADS = 4


@pytest.fixture(autouse=True)
def _switch_often():
    """Switch threads every microsecond so that races show up within a few calls."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _run_threads(target, n=N_THREADS):
    errors = []
    barrier = threading.Barrier(n)

    def wrapped(k):
        try:
            barrier.wait()
            target(k)
        except BaseException as e:  # surfaced in the main thread below
            errors.append(e)

    threads = [threading.Thread(target=wrapped, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    if errors:
        raise errors[0]


def test_one_function_many_threads_gives_each_its_own_result(mode):
    x, W = T.matrix("x"), T.matrix("W")
    h = T.tanh(T.dot(x, W)) * 2.0 + x.sum(axis=1, keepdims=True)
    f = mg.function([x, W], [h, h.sum()], mode=mode)
    rng = np.random.default_rng(0)
    cases = [(rng.standard_normal((5 + k, 3)).astype("float32"), rng.standard_normal((3, 3)).astype("float32"))
             for k in range(N_THREADS)]
    expected = [f(*c) for c in cases]  # serial reference (also compiles before the threads start)
    results = {}

    def work(k):
        for _ in range(30):
            out, total = f(*cases[k])
            np.testing.assert_array_equal(out, expected[k][0])
            assert total == expected[k][1]
        results[k] = out

    _run_threads(work)
    # outputs handed out are distinct arrays, not a buffer the function reuses
    assert len({id(v) for v in results.values()}) == N_THREADS
    for k, v in results.items():
        np.testing.assert_array_equal(v, expected[k][0])


def test_concurrent_updates_are_not_lost(mode):
    count = mg.shared(np.array(0.0), name="count")
    acc = mg.shared(np.zeros(3), name="acc")
    x = T.dvector("x")
    step = mg.function([x], count, updates=[(count, count + 1.0), (acc, acc + x)], mode=mode)
    step(np.zeros(3))  # compile outside the threads
    calls = 50

    def work(k):
        for _ in range(calls):
            step(np.full(3, float(k + 1)))

    _run_threads(work)
    assert count.get_value() == 1 + N_THREADS * calls
    np.testing.assert_array_equal(acc.get_value(), np.full(3, calls * sum(range(1, N_THREADS + 1))))


def test_two_functions_updating_one_shared_variable(mode):
    """Different functions that update the same variable serialize too: no update is lost."""
    w = mg.shared(np.zeros(4), name="w")
    inc = mg.function([], [], updates=[(w, w + 1.0)], mode=mode)
    dec_twice = mg.function([], [], updates=[(w, w - 2.0)], mode=mode)
    reader = mg.function([], w.sum(), mode=mode)
    inc(), dec_twice(), reader()
    w.set_value(np.zeros(4))
    calls = 60

    def work(k):
        for _ in range(calls):
            if k % 2:
                dec_twice()
            else:
                inc()
            s = float(reader())
            assert s == int(s)  # whole numbers: a read never sees a half-applied update

    _run_threads(work)
    n_inc = n_dec = (N_THREADS // 2) * calls
    np.testing.assert_array_equal(w.get_value(), np.full(4, n_inc * 1.0 - n_dec * 2.0))


def test_random_streams_in_threads_draw_distinct_numbers(mode):
    """The generator's update is serialized: concurrent calls never reuse a state."""
    srng = mg.RandomStreams(7)
    u = srng.uniform((4,))
    f = mg.function([], u, mode=mode)
    f()
    draws = []
    lock = threading.Lock()

    def work(k):
        for _ in range(25):
            v = f()
            with lock:
                draws.append(tuple(v))

    _run_threads(work)
    assert len(draws) == N_THREADS * 25
    assert len(set(draws)) == len(draws)


_PARALLEL_KERNELS_IN_THREADS = """
import sys, threading
import numpy as np
import minigraph as mg
import minigraph.tensor as T

x = T.matrix("x")
f = mg.function([x], T.tanh(x) * 2.0, mode=sys.argv[1])
g = mg.function([x], T.exp(x).sum(axis=0), mode=sys.argv[1])
a = np.full((300, 300), 0.5, "float32")  # 90000 elements: the kernels' parallel variants run
want_f, want_g = f(a), g(a)
errors = []

def run(fn, want):
    try:
        for _ in range(40):
            np.testing.assert_array_equal(fn(a), want)
    except BaseException as e:
        errors.append(e)

threads = [threading.Thread(target=run, args=p) for p in [(f, want_f), (g, want_g)] * 2]
for t in threads:
    t.start()
for t in threads:
    t.join()
if errors:
    raise errors[0]
print("ok")
"""


def test_unrelated_functions_run_parallel_kernels_from_threads_at_once(mode):
    """Two functions that share nothing are not serialized: their (parallel) kernels run at
    the same time from different threads.  In a subprocess: a threading layer that cannot take
    concurrent launches would abort the whole process."""
    import subprocess

    proc = subprocess.run([sys.executable, "-c", _PARALLEL_KERNELS_IN_THREADS, mode], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]
