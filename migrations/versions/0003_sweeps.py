"""sweeps and runs.sweep_id

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('sweeps',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('points', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sweeps'))
    )
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('sweep_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_runs_sweep_id_sweeps'), 'sweeps', ['sweep_id'], ['id'], ondelete='SET NULL')
        batch.create_index('ix_runs_sweep_id', ['sweep_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_index('ix_runs_sweep_id')
        batch.drop_constraint(op.f('fk_runs_sweep_id_sweeps'), type_='foreignkey')
        batch.drop_column('sweep_id')
    op.drop_table('sweeps')
