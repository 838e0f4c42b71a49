"""The store: table models, engines, migrations and the repository. SQL lives only here."""

from monitor.store.repository import ObservationKey, Run, Store

__all__ = ["ObservationKey", "Run", "Store"]
