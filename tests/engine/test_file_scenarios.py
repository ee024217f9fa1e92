"""File, Dir and script() edit scenarios through `kredun run`: after each edit of an input,
an output or the workflow, exactly the tasks redun 0.44.1 re-runs in the same scenario
re-run (the expected counts were taken from redun; see tests/support/file_scenarios.py and
test_file_scenarios_vs_redun.py, which replays them against redun where it is installed).
"""

from __future__ import annotations

import pytest

from tests.support.file_scenarios import KREDUN, SCENARIOS, check_step, play


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.name)
def test_kredun_reruns_what_the_edit_invalidates(scenario, tmp_path):
    directory = tmp_path / "kredun"
    for index, outcome in enumerate(play(scenario, directory, KREDUN, "kredun")):
        step = scenario.steps[index]
        check_step(scenario, index, outcome, directory, step.ran, step.fails)
        assert step.stderr in outcome.stderr, f"{scenario.name} step {index}: {outcome.stderr}"


def test_every_difference_from_redun_says_why():
    for scenario in SCENARIOS:
        for step in scenario.steps:
            differs = step.redun_ran is not None or step.redun_fails is not None
            assert differs == bool(step.why), f"{scenario.name}: {step}"
