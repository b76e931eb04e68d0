"""benchmark jobs (runs.parent_id) and benchmark_results

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_runs_parent_id_runs'), 'runs', ['parent_id'], ['id'], ondelete='CASCADE')
        batch.create_index('ix_runs_parent_id', ['parent_id'], unique=False)
    op.create_table('benchmark_results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('suite', sa.String(length=100), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('samples', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['runs.id'], name=op.f('fk_benchmark_results_job_id_runs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_benchmark_results_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_benchmark_results')),
    sa.UniqueConstraint('job_id', 'suite', name='uq_benchmark_results_job_id_suite')
    )
    op.create_index('ix_benchmark_results_run_id', 'benchmark_results', ['run_id', 'suite'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_benchmark_results_run_id', table_name='benchmark_results')
    op.drop_table('benchmark_results')
    with op.batch_alter_table('runs') as batch:
        batch.drop_index('ix_runs_parent_id')
        batch.drop_constraint(op.f('fk_runs_parent_id_runs'), type_='foreignkey')
        batch.drop_column('parent_id')
