"""Every YAML example of probes/README.md loads as written, through the loader `check-config` and the daemon use.

The canary template is what a user copies to start a probe file; a placeholder in it (`tools: [...]`, which is a
list holding the text "...") or a field renamed in the code and not there would be refused on the first
`check-config`.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from monitor.config import load_config
from tests.conftest import write_config

PROBES_README = Path(__file__).resolve().parent.parent / "probes" / "README.md"


def test_every_yaml_example_of_the_probes_readme_loads(tmp_path: Path) -> None:
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", PROBES_README.read_text(encoding="utf-8"), re.S | re.M)
    assert blocks, "probes/README.md shows no YAML"
    assert [lang for lang, _ in blocks if lang != "yaml"] == [], "a code block of probes/README.md that is not YAML"
    for n, (_, text) in enumerate(blocks):
        folder = tmp_path / str(n)
        folder.mkdir()
        cfg = write_config(folder, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}", text)
        loaded = load_config(cfg, environ={}).canaries
        assert [c.id for c in loaded] == [c["id"] for c in yaml.safe_load(text)["canaries"]], text
