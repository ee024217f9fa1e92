"""The operator's trust boundary, enforced: unpickling anything raises.

The operator holds cluster privileges; whoever may create an Execution must not be able to
run code in it. Pickle loading runs code, so the operator disables it for the whole
process at start-up (and tests run the end-to-end suite the same way).
"""

from __future__ import annotations

import pickle
import sys
from typing import Any, NoReturn

from .errors import KredunError


class UnpicklingForbiddenError(KredunError):
    """Something tried to unpickle data inside the operator."""


def _refuse(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise UnpicklingForbiddenError("the kredun operator never unpickles user data (trust boundary)")


class _RefusingUnpickler:
    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        _refuse()


def forbid_unpickling() -> None:
    """Make every pickle loader in this process raise. There is no way back."""
    pickle.loads = _refuse
    pickle.load = _refuse
    pickle.Unpickler = _RefusingUnpickler  # type: ignore[misc,assignment]
    cloudpickle: Any = sys.modules.get("cloudpickle")
    if cloudpickle is not None:
        cloudpickle.loads = _refuse
        cloudpickle.load = _refuse
