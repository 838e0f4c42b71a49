"""The simulated upstream: an OpenAI- and Anthropic-compatible server driven by a scenario file.

It is both a product feature (``llm-monitor sim`` for demos) and the test double every other module's tests
talk to over real loopback HTTP.
"""

from monitor.sim.loader import builtin_scenario, load_scenario, scenario_from_dict
from monitor.sim.scenario import Scenario
from monitor.sim.server import SimServer, build_app, serve

__all__ = ["Scenario", "SimServer", "build_app", "builtin_scenario", "load_scenario", "scenario_from_dict", "serve"]
