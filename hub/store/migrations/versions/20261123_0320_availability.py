"""availability tables: sources, aggregate rows, regional totals, providers, snapshots, subscriptions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _counts() -> list[sa.Column]:
    return [sa.Column(name, sa.Integer(), nullable=False)
            for name in ("total", "free", "occupied", "reserved", "unavailable")]


def upgrade() -> None:
    op.create_table(
        "availability_sources",
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=True),
        sa.Column("product", sa.String(length=40), nullable=True),
        sa.Column("region", sa.String(length=80), nullable=True),
        sa.Column("postcode", sa.String(length=10), nullable=True),
        sa.Column("city", sa.String(length=80), nullable=True),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("via_service", sa.String(length=64), nullable=True),
        sa.Column("address_via_org", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("report_id", sa.String(length=64), nullable=True),
        sa.Column("reported_at", sa.DateTime(), nullable=True),
        *_counts(),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_availability_sources")),
    )
    with op.batch_alter_table("availability_sources", schema=None) as batch_op:
        batch_op.create_index("ix_availability_sources_via_service", ["via_service"], unique=False)
        batch_op.create_index("ix_availability_sources_parent_id", ["parent_id"], unique=False)
        batch_op.create_index("ix_availability_sources_org_product", ["org_id", "product"], unique=False)

    op.create_table(
        "availability_rows",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=40), nullable=False),
        sa.Column("region", sa.String(length=80), nullable=False),
        sa.Column("org_name", sa.String(length=200), nullable=True),
        sa.Column("postcode", sa.String(length=10), nullable=True),
        sa.Column("city", sa.String(length=80), nullable=True),
        *_counts(),
        sa.Column("last_update", sa.DateTime(), nullable=False),
        sa.Column("seq", SEQ, nullable=False),
        sa.Column("snapshot_seq", SEQ, nullable=False),
        sa.PrimaryKeyConstraint("org_id", "product", "region", name=op.f("pk_availability_rows")),
    )
    with op.batch_alter_table("availability_rows", schema=None) as batch_op:
        batch_op.create_index("ix_availability_rows_product", ["product"], unique=False)

    op.create_table(
        "availability_totals",
        sa.Column("region", sa.String(length=80), nullable=False),
        sa.Column("product", sa.String(length=40), nullable=False),
        *_counts(),
        sa.Column("last_update", sa.DateTime(), nullable=False),
        sa.Column("seq", SEQ, nullable=False),
        sa.PrimaryKeyConstraint("region", "product", name=op.f("pk_availability_totals")),
    )

    op.create_table(
        "availability_providers",
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("postcode", sa.String(length=10), nullable=True),
        sa.Column("city", sa.String(length=80), nullable=True),
        sa.Column("region", sa.String(length=80), nullable=True),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_availability_providers")),
    )

    op.create_table(
        "availability_snapshots",
        sa.Column("id", SEQ, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=40), nullable=False),
        sa.Column("region", sa.String(length=80), nullable=False),
        sa.Column("taken_at", sa.DateTime(), nullable=False),
        sa.Column("last_update", sa.DateTime(), nullable=False),
        *_counts(),
        sa.Column("seq", SEQ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_availability_snapshots")),
    )
    with op.batch_alter_table("availability_snapshots", schema=None) as batch_op:
        batch_op.create_index("ix_availability_snapshots_product_taken", ["product", "taken_at"], unique=False)
        batch_op.create_index("ix_availability_snapshots_org_taken", ["org_id", "taken_at"], unique=False)

    op.create_table(
        "availability_subscriptions",
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("product", sa.String(length=200), nullable=True),
        sa.Column("org_id", sa.String(length=64), nullable=True),
        sa.Column("region", sa.String(length=80), nullable=True),
        sa.Column("endpoint", sa.String(length=400), nullable=False),
        sa.Column("payload", sa.String(length=60), nullable=True),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("subscription_id", name=op.f("pk_availability_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("availability_subscriptions")
    with op.batch_alter_table("availability_snapshots", schema=None) as batch_op:
        batch_op.drop_index("ix_availability_snapshots_org_taken")
        batch_op.drop_index("ix_availability_snapshots_product_taken")
    op.drop_table("availability_snapshots")
    op.drop_table("availability_providers")
    op.drop_table("availability_totals")
    with op.batch_alter_table("availability_rows", schema=None) as batch_op:
        batch_op.drop_index("ix_availability_rows_product")
    op.drop_table("availability_rows")
    with op.batch_alter_table("availability_sources", schema=None) as batch_op:
        batch_op.drop_index("ix_availability_sources_org_product")
        batch_op.drop_index("ix_availability_sources_parent_id")
        batch_op.drop_index("ix_availability_sources_via_service")
    op.drop_table("availability_sources")
