"""llm-monitor: watch the LLM APIs you depend on, and say with statistics what changed and when."""

__version__ = "0.1.0"
