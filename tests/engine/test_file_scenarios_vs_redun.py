"""The file scenarios of tests/support/file_scenarios.py driven through `redun run` (redun
0.44.1) as well: redun must re-run what each step records, which is what kredun re-runs
too, except in the steps that record why kredun deliberately differs (`redun_ran`).

redun is not a dependency of kredun: point KREDUN_TEST_REDUN at a `redun` executable
(e.g. bench/.venv-redun/bin/redun) or put one on PATH; otherwise the test is skipped.
test_file_scenarios.py checks kredun against the same expectations everywhere.
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.support.file_scenarios import SCENARIOS, check_step, play

REDUN = os.environ.get("KREDUN_TEST_REDUN") or shutil.which("redun")

pytestmark = pytest.mark.skipif(
    not REDUN,
    reason="redun 0.44.1 is not installed: set KREDUN_TEST_REDUN to its `redun` executable",
)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
def test_redun_reruns_what_the_scenario_records(scenario, tmp_path):
    directory = tmp_path / "redun"
    for index, outcome in enumerate(play(scenario, directory, [REDUN], "redun")):
        step = scenario.steps[index]
        ran = step.ran if step.redun_ran is None else step.redun_ran
        fails = step.fails if step.redun_fails is None else step.redun_fails
        check_step(scenario, index, outcome, directory, ran, fails)
