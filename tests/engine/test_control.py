"""cond, catch, catch_all and throw: lazy control flow with redun's semantics and caching."""

from __future__ import annotations

import pytest
from kredun import Scheduler, catch, catch_all, cond, fork_thread, task, throw
from kredun.errors import PlanError

from tests.engine.test_plans import plan_of
from tests.support.modes import MODES, PROCESS, run_in
from tests.support.tasks import calls

kredun_namespace = "control_test"


def count(log: str, name: str) -> None:
    with open(log, "a") as handle:
        handle.write(name + "\n")


@task()
def ident(x):
    return x


@task()
def boom(message: str = "boom"):
    raise ValueError(message)


@task()
def faulty(log: str) -> float:
    count(log, "faulty")
    return 1 / 0


@task()
def recover(error: Exception) -> float:
    return 1.0


@task()
def describe(error: Exception) -> str:
    return f"recovered {type(error).__name__}"


@task()
def reraise(error: Exception) -> float:
    raise RuntimeError(f"could not recover from {error!r}")


@task()
def deep(log: str) -> float:
    return faulty(log)  # the error happens in a job the caught job returned


@task()
def zeroes(results: list) -> list:
    return [0 if isinstance(result, Exception) else result for result in results]


@task()
def main_with_cond(x: int):
    return cond(ident(x > 0), ident("positive"), ident(x < 0), ident("negative"), ident("zero"))


@pytest.mark.parametrize("mode", MODES)
def test_cond_evaluates_only_the_branch_taken(mode):
    assert run_in(mode, cond(ident(True), ident(1), boom())) == 1
    assert run_in(mode, cond(ident(False), boom(), ident(2))) == 2
    assert run_in(mode, [main_with_cond(5), main_with_cond(-1), main_with_cond(0)]) == [
        "positive", "negative", "zero"
    ]  # fmt: skip
    assert run_in(mode, cond(ident(0), ident(1), ident([]), ident(2))) is None  # no else
    with pytest.raises(ValueError, match="in the predicate"):
        run_in(mode, cond(boom("in the predicate"), ident(1), ident(2)))
    with pytest.raises(ValueError, match="in the branch"):
        run_in(mode, cond(ident(True), boom("in the branch"), ident(2)))


@pytest.mark.parametrize("mode", MODES)
def test_catch_recovers_matching_errors(mode, tmp_path):
    log = str(tmp_path / "log")
    assert run_in(mode, catch(faulty(log), ZeroDivisionError, recover)) == 1.0
    assert run_in(mode, catch(deep(log), (KeyError, ArithmeticError), describe)) == (
        "recovered ZeroDivisionError"
    )
    # Pairs are tried in order; the value of a successful expression passes through.
    assert run_in(mode, catch(boom(), KeyError, recover, ValueError, describe)) == (
        "recovered ValueError"
    )
    assert run_in(mode, catch(ident(7), ValueError, recover)) == 7
    # A lazy operation failing inside the caught expression is caught too.
    assert run_in(mode, catch(ident({})["missing"], KeyError, describe)) == "recovered KeyError"
    assert run_in(mode, catch(throw(KeyError("k")), KeyError, describe)) == "recovered KeyError"


@pytest.mark.parametrize("mode", MODES)
def test_catch_lets_other_errors_and_failed_recoveries_through(mode, tmp_path):
    log = str(tmp_path / "log")
    with pytest.raises(ZeroDivisionError):
        run_in(mode, catch(faulty(log), KeyError, recover))
    with pytest.raises(RuntimeError, match="could not recover from ZeroDivisionError"):
        run_in(mode, catch(faulty(log), ZeroDivisionError, reraise))
    # An outer catch takes what an inner one let through.
    inner = catch(faulty(log), ZeroDivisionError, reraise)
    assert run_in(mode, catch(inner, RuntimeError, describe)) == "recovered RuntimeError"
    with pytest.raises(ValueError, match="outside"):
        run_in(mode, [catch(boom(), ValueError, recover), boom("outside")])


def test_catch_arguments_are_checked():
    with pytest.raises(TypeError, match="pairs of error class and recovery"):
        catch(ident(1), ValueError)
    with pytest.raises(TypeError, match="exception class"):
        catch(ident(1), "ValueError", recover)
    with pytest.raises(TypeError, match="must be callable"):
        catch(ident(1), ValueError, 3)


@pytest.mark.parametrize("config", [None, PROCESS], ids=["threads", "process"])
def test_recoveries_are_recorded_and_replayed_errors_never(tmp_path, config):
    uri, log = f"sqlite:///{tmp_path / 'db'}", tmp_path / "log"

    def run(expr, **options):
        scheduler = Scheduler(db_uri=uri, config=config)
        try:
            return scheduler.run(expr, **options)
        finally:
            scheduler.close()

    for _ in range(2):  # failed tasks are never cached
        with pytest.raises(ZeroDivisionError):
            run(faulty(str(log)))
    assert calls(log) == ["faulty"] * 2
    for _ in range(2):  # a recovery that failed is not recorded either
        with pytest.raises(RuntimeError):
            run(catch(faulty(str(log)), ZeroDivisionError, reraise))
    assert calls(log) == ["faulty"] * 4
    # A successful recovery is recorded: the next run replays it without the failing job.
    assert run(catch(faulty(str(log)), ZeroDivisionError, recover)) == 1.0
    assert calls(log) == ["faulty"] * 5
    assert run(catch(faulty(str(log)), ZeroDivisionError, recover)) == 1.0
    assert calls(log) == ["faulty"] * 5
    # ...but not when caching is off for the run.
    assert run(catch(faulty(str(log)), ZeroDivisionError, recover), cache=False) == 1.0
    assert calls(log) == ["faulty"] * 6
    # Another recovery is another call: it runs.
    assert run(catch(faulty(str(log)), ZeroDivisionError, describe)) == (
        "recovered ZeroDivisionError"
    )
    assert calls(log) == ["faulty"] * 7


@pytest.mark.parametrize("mode", MODES)
def test_catch_all_waits_for_every_expression(mode):
    assert run_in(mode, catch_all([ident(1), ident(2)], ValueError, zeroes)) == [1, 2]
    assert run_in(mode, catch_all([ident(4), boom(), ident(5), boom()], ValueError, zeroes)) == [
        4, 0, 5, 0
    ]  # fmt: skip
    nested = catch_all([ident(8), [boom(), {"a": ident(9)}]], ValueError, ident)
    result = run_in(mode, nested)
    assert result[0] == 8 and result[1][1] == {"a": 9} and isinstance(result[1][0], ValueError)
    both = [throw(KeyError()), throw(ValueError()), ident(10)]
    assert run_in(mode, catch_all(both, (KeyError, ValueError), zeroes)) == [0, 0, 10]
    with pytest.raises(ValueError):
        run_in(mode, catch_all([ident(1), boom()]))  # no recovery: the first error
    with pytest.raises(ValueError):
        run_in(mode, catch_all(both, KeyError, zeroes))  # one error not of the class


def test_scheduler_tasks_plans_do_not_carry_are_refused_with_a_clear_error(tmp_path):
    with pytest.raises(PlanError, match=r"kredun.fork_thread\(\) cannot run on a cluster yet"):
        plan_of(fork_thread(ident(1)), f"file://{tmp_path}")
