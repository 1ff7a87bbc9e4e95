"""verifiers.parse_lock: ast.parse one thread at a time, with the same trees as ast.parse."""

from __future__ import annotations

import ast
import threading

from verifiers import parse_lock


def test_parse_gives_the_trees_of_ast_parse_from_many_threads_at_once():
    sources = [f"x = {'(' * depth}{depth}{')' * depth} + [i for i in range({depth})]" for depth in range(1, 60)]
    want = [ast.dump(ast.parse(s)) for s in sources]
    got: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            got[k] = [ast.dump(parse_lock.parse(s)) for s in sources]
        except BaseException as exc:  # noqa: BLE001 - any error fails the test below, with its type
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and all(got[k] == want for k in range(8))
    assert ast.dump(parse_lock.parse("1 + 2", mode="eval")) == ast.dump(ast.parse("1 + 2", mode="eval"))


def test_a_parse_waits_while_another_thread_holds_the_lock():
    done = threading.Event()
    with parse_lock._LOCK:
        worker = threading.Thread(target=lambda: (parse_lock.parse("y = 1"), done.set()))
        worker.start()
        worker.join(0.2)
        assert not done.is_set()   # blocked on the lock, not parsing beside the holder
    worker.join()
    assert done.is_set()
