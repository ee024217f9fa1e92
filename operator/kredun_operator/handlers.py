"""kopf handlers: a daemon per Execution runs it; an event handler keeps the phase metric.

The daemon is async and cheap: the run itself happens in the runner's thread, and the
daemon only waits for either the run to end or kopf to stop it. How kopf stops it decides
what happens to running Pods: deleting the Execution deletes them; an exiting or pausing
operator leaves them running for its successor to adopt.
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from kredun.resource import GROUP, PLURAL, TERMINAL_PHASES, VERSION

from .context import StopMode
from .runner import ExecutionRunner

# How long a pausing operator waits for a run to let go (it stops within a scheduler tick).
PAUSE_GRACE = 10.0


def kopf_settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = f"{GROUP}/cleanup"
    # Events are posted by the operator itself (job failures, retries, outcomes).
    settings.posting.enabled = False
    # A deleted Execution's run stops and deletes its Pods within seconds: wait for that in
    # place rather than re-checking later (which kopf does by patching the object).
    settings.background.instant_exit_timeout = 30.0
    return settings


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in TERMINAL_PHASES


# Finished Executions match no daemon: kopf neither runs them again (after a restart) nor
# keeps a finalizer on them.
@kopf.daemon(GROUP, VERSION, PLURAL, id="run", when=_unfinished)
async def run_execution(
    body: kopf.Body, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any
) -> None:
    loop = asyncio.get_running_loop()
    ended = asyncio.Event()
    runner = ExecutionRunner(memo.runtime, body, lambda: loop.call_soon_threadsafe(ended.set))
    runner.start()
    ending = asyncio.ensure_future(ended.wait())
    stopping = asyncio.ensure_future(_stop_requested(stopped))
    await asyncio.wait((ending, stopping), return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if ended.is_set():
        return
    reason = stopped.reason or kopf.DaemonStoppingReason(0)
    if kopf.DaemonStoppingReason.RESOURCE_DELETED in reason:
        runner.stop(StopMode.DELETE)
        await ending
    elif kopf.DaemonStoppingReason.OPERATOR_EXITING in reason:
        # The run's thread ends with the process; its Pods run on for the next operator.
        runner.stop(StopMode.EXIT)
    else:
        # Another replica takes over, or the Execution was marked finished by someone else.
        runner.stop(StopMode.PAUSE)
        await asyncio.wait((ending,), timeout=PAUSE_GRACE)
    ending.cancel()


async def _stop_requested(stopped: kopf.DaemonStopped) -> None:
    await stopped.wait()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def observe_phase(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    phase = (body.get("status") or {}).get("phase") or "Pending"
    gone = event["type"] == "DELETED"
    memo.runtime.metrics.execution_phase(body["metadata"]["uid"], None if gone else phase)
