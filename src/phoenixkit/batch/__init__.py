"""Batching: chunk plans, bounded parallel batches with bisected failures, bulk SQL writes.

```
from phoenixkit.batch import chunked, run_batches, arun_batches, copy_rows, bulk_insert
report = run_batches(items, fn, size=1000, concurrency=4)   # BatchReport(succeeded, failed, ...)
# by default a failing chunk is bisected until the failing items are found and reported
```
"""

from __future__ import annotations

from phoenixkit.batch.chunking import PG_MAX_PARAMS, ItemTooLargeError, chunked
from phoenixkit.batch.report import (
    BatchReport,
    ChunkResult,
    ItemFailure,
    ItemsFailed,
    Progress,
    RowRejected,
)
from phoenixkit.batch.runner import arun_batches, run_batches
from phoenixkit.batch.sql import (
    bulk_delete,
    bulk_insert,
    bulk_update,
    bulk_upsert,
    copy_rows,
    stream,
)

__all__ = [
    "PG_MAX_PARAMS",
    "BatchReport",
    "ChunkResult",
    "ItemFailure",
    "ItemTooLargeError",
    "ItemsFailed",
    "Progress",
    "RowRejected",
    "arun_batches",
    "bulk_delete",
    "bulk_insert",
    "bulk_update",
    "bulk_upsert",
    "chunked",
    "copy_rows",
    "run_batches",
    "stream",
]
