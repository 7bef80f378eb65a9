"""ingest tables: sender configuration, HL7 source mapping, per-object event clock, HL7-fed beds, conflicts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ingest_senders',
    sa.Column('sender', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('config', sa.LargeBinary(), nullable=False),
    sa.Column('updated', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sender', name=op.f('pk_ingest_senders'))
    )
    op.create_table('ingest_hl7_sources',
    sa.Column('application', sa.String(length=100), nullable=False),
    sa.Column('facility', sa.String(length=100), nullable=False),
    sa.Column('sender', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('application', 'facility', name=op.f('pk_ingest_hl7_sources'))
    )
    with op.batch_alter_table('ingest_hl7_sources', schema=None) as batch_op:
        batch_op.create_index('ix_ingest_hl7_sources_sender', ['sender'], unique=False)

    op.create_table('ingest_clock',
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('object_key', sa.Text(), nullable=False),
    sa.Column('event_time', sa.DateTime(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('updated', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key_hash', name=op.f('pk_ingest_clock'))
    )
    op.create_table('ingest_hl7_beds',
    sa.Column('bed', sa.String(length=200), nullable=False),
    sa.Column('owner', sa.String(length=40), nullable=False),
    sa.Column('care_product', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=4), nullable=False),
    sa.Column('event_time', sa.DateTime(), nullable=False),
    sa.Column('received', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('bed', name=op.f('pk_ingest_hl7_beds'))
    )
    with op.batch_alter_table('ingest_hl7_beds', schema=None) as batch_op:
        batch_op.create_index('ix_ingest_hl7_beds_owner', ['owner', 'care_product'], unique=False)

    op.create_table('ingest_conflicts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('received', sa.DateTime(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('sender', sa.String(length=200), nullable=True),
    sa.Column('object_key', sa.Text(), nullable=False),
    sa.Column('owner', sa.String(length=40), nullable=False),
    sa.Column('care_product', sa.String(length=40), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('beds', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_conflicts'))
    )
    with op.batch_alter_table('ingest_conflicts', schema=None) as batch_op:
        batch_op.create_index('ix_ingest_conflicts_received', ['received'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ingest_conflicts', schema=None) as batch_op:
        batch_op.drop_index('ix_ingest_conflicts_received')

    op.drop_table('ingest_conflicts')
    with op.batch_alter_table('ingest_hl7_beds', schema=None) as batch_op:
        batch_op.drop_index('ix_ingest_hl7_beds_owner')

    op.drop_table('ingest_hl7_beds')
    op.drop_table('ingest_clock')
    with op.batch_alter_table('ingest_hl7_sources', schema=None) as batch_op:
        batch_op.drop_index('ix_ingest_hl7_sources_sender')

    op.drop_table('ingest_hl7_sources')
    op.drop_table('ingest_senders')
