"""A table's columns as Dagster column metadata (``dagster/column_schema``), from its pyarrow schema."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

COLUMN_SCHEMA_KEY = "dagster/column_schema"


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    """One column per field, in order, typed as pyarrow names the type (``string``, ``int64``, ``double``, …)."""
    return dg.TableSchema(columns=[dg.TableColumn(name=field.name, type=str(field.type)) for field in schema])


def column_schema_metadata(schema: pa.Schema) -> dict[str, dg.MetadataValue]:
    """The materialization metadata entry the Dagster UI shows as the asset's columns."""
    return {COLUMN_SCHEMA_KEY: dg.MetadataValue.table_schema(column_schema(schema))}
