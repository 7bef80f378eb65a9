"""acp: audit chain head and per-patient links of the audit trail (issue 7)

The ACP summary needs no table of its own (it is assembled from stored resources and their index rows). What
issue 7 adds is the tamper-evident anchor of the NEN 7513 audit trail (`audit_chain`, the sealed head that
sealers move with compare-and-set) and `audit_patients` (patients of events that concern several patients, so
the privacy officer's per-patient query finds searches too). Existing data is carried over: the head of a chain
sealed before this revision, and the patients of comma-joined `audit_log.patient_id` values.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

RID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("head_seq", RID, nullable=False),
        sa.Column("length", RID, nullable=False),
        sa.Column("sealed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    op.create_table(
        "audit_patients",
        sa.Column("seq", RID, autoincrement=False, nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", "patient_id", name=op.f("pk_audit_patients")),
    )
    with op.batch_alter_table("audit_patients", schema=None) as batch_op:
        batch_op.create_index("ix_audit_patients_patient", ["patient_id", "seq"], unique=False)
    _carry_over()


def _carry_over() -> None:
    conn = op.get_bind()
    log = sa.table("audit_log", sa.column("seq", RID), sa.column("patient_id", sa.String),
                   sa.column("hash", sa.String))
    sealed = conn.execute(sa.select(sa.func.count(), sa.func.max(log.c.seq)).where(log.c.hash.is_not(None))).first()
    if sealed is not None and sealed[0]:
        head_hash = conn.execute(sa.select(log.c.hash).where(log.c.seq == sealed[1])).scalar_one()
        conn.execute(sa.table("audit_chain", sa.column("id"), sa.column("head_hash"), sa.column("head_seq"),
                              sa.column("length"), sa.column("sealed_at")).insert().values(
            id=1, head_hash=head_hash, head_seq=sealed[1], length=sealed[0],
            sealed_at=datetime.now(UTC).replace(tzinfo=None)))
    rows = conn.execute(sa.select(log.c.seq, log.c.patient_id).where(log.c.patient_id.like("%,%"))).all()
    links = [{"seq": seq, "patient_id": pid} for seq, joined in rows for pid in joined.split(",") if pid]
    if links:
        conn.execute(sa.table("audit_patients", sa.column("seq"), sa.column("patient_id")).insert(), links)


def downgrade() -> None:
    with op.batch_alter_table("audit_patients", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_patients_patient")
    op.drop_table("audit_patients")
    op.drop_table("audit_chain")
