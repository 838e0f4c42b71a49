"""A seeded run of the config fuzzer (`tests/support/cfgfuzz`), whose invariants must hold: whatever monitor.yaml,
a probe file or the web config file holds, loading gives a Config or a ConfigError whose every issue names a file
of the folder, a field and a reason in the user's words, bounded in length and showing no secret; `check-config`
exits 0 or 2, never with a traceback. The problems it found are pinned field by field in test_config_values.py,
test_config_yaml_input.py and test_alerts_config.py."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from tests.support.cfgfuzz import base_files, make_case, run_cases


@pytest.mark.parametrize(("seed", "cases", "cli"), [(1, 80, True), (2, 100, False)])
def test_fuzzed_configs_keep_the_invariants(tmp_path: Path, seed: int, cases: int, cli: bool) -> None:
    """Mutated config folders of a fixed seed, loaded (and with `cli`, checked by check-config in this process)."""
    rng = random.Random(seed)
    base = base_files()
    outcomes = run_cases([make_case(rng, i, base) for i in range(cases)], tmp_path, cli=cli)
    bad = [f"{o.case.id} {o.case.target} {o.case.mutations}: {o.problems}"[:600] for o in outcomes if o.problems]
    assert not bad, "\n".join(bad[:10])
    # the cases are worth running: most fail to load, some still load after their mutation
    errors = sum(isinstance(o.loaded, ConfigError) for o in outcomes)
    assert cases * 0.5 < errors < cases, errors
