"""The store: table models, engines, migrations and the repository. SQL lives only here."""

from monitor.store.repository import ObservationKey, Run, Store
from monitor.store.streaks import FailingStreak

__all__ = ["FailingStreak", "ObservationKey", "Run", "Store"]
