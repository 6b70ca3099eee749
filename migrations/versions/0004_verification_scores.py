"""verification_scores: each verified date's scores per forecast source (model, CMAQ, persistence)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import service.storage.tables

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "verification_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", service.storage.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("rmse", sa.Float(), nullable=False),
        sa.Column("bias", sa.Float(), nullable=False),
        sa.Column("mae", sa.Float(), nullable=False),
        sa.Column("r", sa.Float(), nullable=True),
        sa.Column("station_rmse", sa.Float(), nullable=True),
        sa.Column("peak_rmse", sa.Float(), nullable=True),
        sa.Column("peak_n", sa.Integer(), nullable=False),
        sa.Column("grade_accuracy", sa.Float(), nullable=True),
        sa.Column("skill_vs_cmaq", sa.Float(), nullable=True),
        sa.Column("skill_vs_persistence", sa.Float(), nullable=True),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("provenance", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("target_date", "source", name="uq_verification_source"),
    )
    with op.batch_alter_table("verification_scores", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_verification_scores_target_date"), ["target_date"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_verification_scores_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("verification_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verification_scores_run_id"))
        batch_op.drop_index(batch_op.f("ix_verification_scores_target_date"))
    op.drop_table("verification_scores")
