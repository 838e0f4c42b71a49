"""The CLI's commands, one module each; monitor.cli only parses arguments and dispatches here."""
