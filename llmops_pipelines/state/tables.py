"""The shared schema (PostgreSQL) as SQLAlchemy Core tables, for building queries.

migrations.py creates and changes these tables; a test checks that the migrated database
and these definitions agree, so a new column is added in both places.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False))

# The evaluation call cache: one row per content key, written once (insert-if-absent).
calls = sa.Table(
    "calls", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("created", sa.Float, nullable=False))

# The deployment registry: immutable deployments, movable aliases, append-only history.
deployments = sa.Table(
    "deployments", metadata,
    sa.Column("deployment_id", sa.Text, primary_key=True),
    sa.Column("candidate_id", sa.Text, nullable=False),
    sa.Column("prompt_name", sa.Text), sa.Column("prompt_version", sa.Text),
    sa.Column("model", sa.Text), sa.Column("params", sa.Text),
    sa.Column("index_version", sa.Text), sa.Column("data_version", sa.Text),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False))

aliases = sa.Table(
    "aliases", metadata,
    sa.Column("alias", sa.Text, primary_key=True),
    sa.Column("deployment_id", sa.Text, sa.ForeignKey("deployments.deployment_id"),
              nullable=False),
    sa.Column("updated_at", sa.Float))

history = sa.Table(
    "history", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("alias", sa.Text), sa.Column("deployment_id", sa.Text),
    sa.Column("previous_deployment_id", sa.Text), sa.Column("actor", sa.Text),
    sa.Column("reason", sa.Text), sa.Column("metrics", sa.Text))

deployment_rows = sa.Table(
    "deployment_rows", metadata,
    sa.Column("deployment_id", sa.Text, sa.ForeignKey("deployments.deployment_id"),
              primary_key=True),
    sa.Column("rows", sa.Text, nullable=False))

# The production log: one row per served exchange or feedback; `id` is the monitoring cursor.
production_log = sa.Table(
    "production_log", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text),
    sa.Column("exchange_id", sa.Text),  # the exchange's id: feedback may rate only what was served
    sa.Column("record", sa.Text, nullable=False))  # the JSON record, validated when read

# Named cursors of readers that many hosts share (the monitoring asset's place in the log).
cursors = sa.Table(
    "cursors", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False))
