"""Stage 4, the feature store: feature groups, offline history, online records, training sets.

- **Feature groups** name a record identifier, an event time and typed
  features (integral, fractional, string, timestamp).
- **Offline store**: every ingest appends a Parquet part to the artifact store;
  DuckDB queries it, and builds point-in-time correct training sets with an
  ``ASOF LEFT JOIN`` (every entity row kept, no later values leaking in).
- **Online store**: the latest record per id (an older event never overwrites
  a newer one), in SQLite by default or Redis (``online_store_url``), with TTL.
- **Materialization** loads the offline store into the online store, fully or
  incrementally since the last run.

Use :class:`FeatureStore` (it keeps the online connection open) or the
module-level functions, which open one per call.
"""

from loopml.features.group import FeatureDefinition, FeatureGroup, FeatureType
from loopml.features.offline import OfflinePart
from loopml.features.online import (
    OnlineStore,
    RedisOnlineStore,
    SQLiteOnlineStore,
    open_online_store,
)
from loopml.features.store import (
    FeatureStore,
    IngestResult,
    MaterializeResult,
    batch_get,
    create_feature_group,
    delete_feature_group,
    delete_record,
    describe_feature_group,
    get_record,
    get_training_set,
    ingest,
    list_feature_groups,
    materialize,
)

__all__ = [
    "FeatureDefinition",
    "FeatureGroup",
    "FeatureStore",
    "FeatureType",
    "IngestResult",
    "MaterializeResult",
    "OfflinePart",
    "OnlineStore",
    "RedisOnlineStore",
    "SQLiteOnlineStore",
    "batch_get",
    "create_feature_group",
    "delete_feature_group",
    "delete_record",
    "describe_feature_group",
    "get_record",
    "get_training_set",
    "ingest",
    "list_feature_groups",
    "materialize",
    "open_online_store",
]
