"""Stage 1, data collection: sources, validation on arrival and the versioned catalog."""

from loopml.data.catalog import Catalog, DatasetVersionInfo, DatasetWriter, PartInfo, parse_ref

__all__ = ["Catalog", "DatasetVersionInfo", "DatasetWriter", "PartInfo", "parse_ref"]
