"""The pickle guard covers every loader: in a process set up like the operator, every
reference to a pickle loader that introspection finds is disabled, so a loader alias that
some library adds is caught rather than missed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import io, os, pickle, sys, types
    import _pickle, copyreg, shelve
    import cloudpickle, cloudpickle.cloudpickle
    import multiprocessing.reduction, multiprocessing.connection
    import concurrent.futures.process
    import kopf, kubernetes, sqlalchemy
    import kredun_operator.handlers, kredun_operator.main, kredun_operator.runner
    from kredun import trust

    marker = sys.argv[1]

    class Payload:
        def __reduce__(self):
            return (open, (marker, "w"))

    data = pickle.dumps(Payload())
    # A library that took its own aliases before the guard went up.
    aliases = types.ModuleType("aliases")
    aliases.fresh_loads = pickle.loads
    aliases.Loader = type("Loader", (), {"load_it": staticmethod(_pickle.load)})
    aliases.Mine = type("Mine", (pickle.Unpickler,), {})
    aliases.Pure = type("Pure", (pickle._Unpickler,), {})
    sys.modules["aliases"] = aliases

    originals = trust.original_loaders()
    found = {(getattr(owner, "__name__", owner), name)
             for owner, name, _ in trust.loader_references(originals)}
    classes = trust.unpickler_classes()
    # In a container: forbid_unpickling replaces loaders held by module attributes, this
    # module's (__main__) included.
    kept = {"builtin": _pickle.Unpickler}
    expected = {
        ("pickle", "loads"), ("pickle", "load"), ("pickle", "Unpickler"),
        ("pickle", "_loads"), ("pickle", "_load"), ("pickle", "_Unpickler"),
        ("_pickle", "loads"), ("_pickle", "load"), ("_pickle", "Unpickler"),
        ("cloudpickle", "loads"), ("cloudpickle", "load"),
        ("cloudpickle.cloudpickle", "loads"), ("cloudpickle.cloudpickle", "load"),
        ("ForkingPickler", "loads"), ("aliases", "fresh_loads"), ("Loader", "load_it"),
    }
    assert expected <= found, expected - found
    assert {"Mine", "Pure"} <= {cls.__name__ for cls in classes}
    references = list(trust.loader_references(originals))

    trust.forbid_unpickling()

    def blocked(load):
        try:
            load()
        except trust.UnpicklingForbiddenError:
            return True
        return False

    left = [(getattr(o, "__name__", o), n) for o, n, _ in trust.loader_references(originals)]
    assert left == [], f"loaders still reachable: {left}"
    for owner, name, loader in references:
        current = getattr(owner, name)
        if isinstance(loader, type):
            assert blocked(lambda: current(io.BytesIO(data)).load()), (owner, name)
        else:
            assert blocked(lambda: current(data)) or blocked(
                lambda: current(io.BytesIO(data))), (owner, name)
    # The built-in _pickle.Unpickler cannot be changed; no name leads to it any more
    # (`left` above), and every subclass of it is disabled.
    for cls in classes:
        if cls is not kept["builtin"]:
            assert blocked(lambda: cls(io.BytesIO(data)).load()), cls
    later = type("Later", (pickle.Unpickler,), {})
    assert blocked(lambda: later(io.BytesIO(data)).load())
    conn_a, conn_b = multiprocessing.connection.Pipe()
    conn_a.send_bytes(data)
    assert blocked(conn_b.recv)
    assert not os.path.exists(marker), "a payload was unpickled"
    print("ok", len(references), len(classes))
    """
)


def test_every_loader_found_by_introspection_is_blocked(tmp_path) -> None:
    marker = str(tmp_path / "unpickled")
    done = subprocess.run([sys.executable, "-c", CHILD, marker], capture_output=True, text=True)
    assert done.stdout.startswith("ok"), done.stdout + done.stderr
    assert not (tmp_path / "unpickled").exists()
