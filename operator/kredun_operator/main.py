"""`kredun operator`: set the process up (trust, logging, settings, metrics), then `kopf.run`."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from kredun.hashing import hash_text
from kredun.trust import forbid_unpickling

from .text import OneLineMessages

LOG_LEVELS = ("debug", "info", "warning", "error")
PRIORITY_RANGE = 1_000_000


@dataclass(frozen=True)
class OperatorOptions:
    """The command line, parsed. `namespaces=None` serves the whole cluster."""

    namespaces: list[str] | None
    peering: str | None = None  # None: standalone
    health_port: int | None = None
    metrics_port: int | None = None
    config: str | None = None
    log_level: str = "info"


def peering_priority() -> int:
    """This replica's kopf priority. Peers of equal priority all pause, so each replica gets
    its own: derived from its Pod name (stable across its restarts), else random."""
    pod = os.environ.get("POD_NAME")
    if pod:
        return 1 + int(hash_text(pod)[:8], 16) % PRIORITY_RANGE
    return random.randint(1, PRIORITY_RANGE)


class _DropRoutine(logging.Filter):
    """Drops kopf's line for every Execution event the phase metric handler sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "'observe_phase' succeeded" not in record.getMessage()


def configure_logging(level: str) -> None:
    import kopf

    kopf.configure(debug=level == "debug", quiet=level in ("warning", "error"))
    logging.getLogger().setLevel(level.upper())
    for handler in logging.getLogger().handlers:
        handler.addFilter(OneLineMessages())
    if level != "debug":
        logging.getLogger("kopf.objects").addFilter(_DropRoutine())
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # probes, every few s
    # The engine logs every job at INFO: in an operator that is per-Pod noise (Events and
    # the status say what matters), so below debug only its warnings pass.
    engine = logging.getLogger("kredun")
    engine.handlers[:] = [logging.NullHandler()]
    engine.propagate = True
    engine.setLevel(logging.DEBUG if level == "debug" else max(logging.WARNING, engine.level))


def run_operator(options: OperatorOptions) -> int:
    # First of all: from here on, nothing in this process can unpickle (trust boundary).
    forbid_unpickling()
    from .limits import configure_process

    configure_process()  # before any thread starts: they get the deeper stacks
    configure_logging(options.log_level)

    import kopf
    from kredun.provenance.store import mask_uri

    from . import handlers
    from .context import Runtime
    from .metrics import Metrics
    from .settings import load_settings

    settings = load_settings(options.config)
    stopping = threading.Event()
    metrics = Metrics()
    if options.metrics_port is not None:
        metrics.serve(options.metrics_port)
    runtime = Runtime.create(settings, options.namespaces, metrics)
    runtime.pods.start()
    logging.getLogger(__name__).info(
        "kredun operator: unpickling is disabled; database %s, value store %s",
        mask_uri(settings.database_uri),
        mask_uri(settings.value_store_uri),
    )
    liveness = None
    if options.health_port is not None:
        liveness = f"http://0.0.0.0:{options.health_port}/healthz"
    operator = kopf.operator(
        standalone=options.peering is None,
        peering_name=options.peering,
        priority=None if options.peering is None else peering_priority(),
        clusterwide=options.namespaces is None,
        namespaces=options.namespaces or (),
        liveness_endpoint=liveness,
        settings=handlers.kopf_settings(),
        memo=kopf.Memo(runtime=runtime),
        stop_flag=stopping,
    )
    run_in_deep_thread(lambda: asyncio.run(operator), stopping)
    runtime.pods.stop()
    return 0


def run_in_deep_thread(main: Callable[[], None], stopping: threading.Event) -> None:
    """Run `main` in a thread of its own until it returns; SIGTERM and SIGINT set
    `stopping`. The main thread's stack is fixed when the process starts; threads get the
    deeper ones `limits.configure_process` asks for, which kopf needs for deep objects."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            main()
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=target, name="kopf")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    thread.start()
    while thread.is_alive():
        thread.join(0.5)
    if failure:
        raise failure[0]
