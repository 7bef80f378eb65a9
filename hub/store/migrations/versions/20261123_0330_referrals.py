"""referrals tables: referral rows (compare-and-set anchor), offers, count holds, notification deliveries,
webhook secrets

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('referral_capacity',
    sa.Column('service_id', sa.String(length=64), nullable=False),
    sa.Column('report', sa.String(length=100), nullable=False),
    sa.Column('free', sa.Integer(), nullable=False),
    sa.Column('held', sa.Integer(), nullable=False),
    sa.Column('updated', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('service_id', name=op.f('pk_referral_capacity'))
    )
    op.create_table('referral_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.String(length=64), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('task_version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt', sa.DateTime(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('delivered', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_deliveries')),
    sa.UniqueConstraint('subscription_id', 'task_id', 'task_version', name='uq_referral_deliveries_event')
    )
    with op.batch_alter_table('referral_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_referral_deliveries_status', ['status', 'next_attempt'], unique=False)

    op.create_table('referral_offers',
    sa.Column('offer_id', sa.String(length=64), nullable=False),
    sa.Column('sr_id', sa.String(length=64), nullable=False),
    sa.Column('provider', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('bed_id', sa.String(length=64), nullable=True),
    sa.Column('service_id', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('deadline', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('offer_id', name=op.f('pk_referral_offers'))
    )
    with op.batch_alter_table('referral_offers', schema=None) as batch_op:
        batch_op.create_index('ix_referral_offers_provider_created', ['provider', 'created'], unique=False)
        batch_op.create_index('ix_referral_offers_sr_id', ['sr_id'], unique=False)
        batch_op.create_index('ix_referral_offers_state_deadline', ['state', 'deadline'], unique=False)

    op.create_table('referral_webhook_secrets',
    sa.Column('subscription_id', sa.String(length=64), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('updated', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('subscription_id', name=op.f('pk_referral_webhook_secrets'))
    )
    op.create_table('referrals',
    sa.Column('sr_id', sa.String(length=64), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('offer_id', sa.String(length=64), nullable=True),
    sa.Column('deadline', sa.DateTime(), nullable=True),
    sa.Column('offers', sa.Integer(), nullable=False),
    sa.Column('tried', sa.LargeBinary(), nullable=False),
    sa.Column('requester_org', sa.String(length=200), nullable=True),
    sa.Column('created', sa.DateTime(), nullable=False),
    sa.Column('updated', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('sr_id', name=op.f('pk_referrals'))
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index('ix_referrals_state_deadline', ['state', 'deadline'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index('ix_referrals_state_deadline')

    op.drop_table('referrals')
    op.drop_table('referral_webhook_secrets')
    with op.batch_alter_table('referral_offers', schema=None) as batch_op:
        batch_op.drop_index('ix_referral_offers_state_deadline')
        batch_op.drop_index('ix_referral_offers_sr_id')
        batch_op.drop_index('ix_referral_offers_provider_created')

    op.drop_table('referral_offers')
    with op.batch_alter_table('referral_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_referral_deliveries_status')

    op.drop_table('referral_deliveries')
    op.drop_table('referral_capacity')
