# Python 2.7: run by tests/cinder_patch/test_train_migrations.py with the
# Cinder Train venv (``python -m unittest test_models_sync``), not by the
# workstation's pytest (tests/cinder_patch/conftest.py ignores this folder).
"""oslo.db's ModelsMigrationsSync for Cinder Train, against a baseline.

Train's suite has no models <-> migrations comparison, and pristine Train
already differs from its own migrations in many places.  So the comparison
runs twice with the same code:

* ``MODELS_SYNC_RECORD=<file>``: write every difference found, one line
  each (see :func:`describe`), and pass: this records the baseline of a
  pristine Train (or the variant's full list);
* ``MODELS_SYNC_BASELINE=<file>``: fail on every difference that is not in
  the baseline, i.e. those the variant's models and migration 133 add.

The models are Train's ``models.BASE.metadata`` plus the variant's tables
when ``cinder.db.cluster_manage_models`` exists (the overlay).
``MODELS_SYNC_EXTRA_COLUMN=1`` adds a column to the variant's model that no
migration creates, to show that the spec fails then.
"""

import importlib
import io
import os

from oslo_db.sqlalchemy import enginefacade
from oslo_db.sqlalchemy import test_fixtures
from oslo_db.sqlalchemy import test_migrations
from oslotest import base as test_base
import sqlalchemy as sa

from cinder.db import migration
from cinder.db.sqlalchemy import models


def _variant_models():
    try:
        return importlib.import_module(
            'cinder.db.cluster_manage_models')
    except ImportError:
        return None


def _name(value):
    table = getattr(value, 'table', None)
    name = getattr(value, 'name', None)
    if isinstance(value, sa.Table):
        return 'table:%s' % value.name
    if isinstance(value, sa.Index):
        return 'index:%s(%s) on %s' % (
            value.name, ','.join(c.name for c in value.columns), table.name)
    if isinstance(value, sa.Column):
        return 'column:%s.%s' % (table.name if table is not None else '?',
                                 name)
    if isinstance(value, sa.schema.Constraint):
        return '%s:%s(%s) on %s' % (
            type(value).__name__, name,
            ','.join(c.name for c in value.columns), table.name)
    if isinstance(value, sa.schema.DefaultClause):
        return 'default:%s' % getattr(value.arg, 'text', value.arg)
    if isinstance(value, dict):
        return None   # the existing_* details of a modify_*
    if isinstance(value, sa.types.TypeEngine):
        return repr(value)
    return repr(value)


def describe(entry):
    """One line for one difference alembic reports (stable across runs)."""
    if isinstance(entry, list):
        return ' | '.join(describe(item) for item in entry)
    parts = [_name(item) for item in entry[1:]]
    return ' '.join([entry[0]] + [p for p in parts if p is not None])


class TestModelsSyncSQLite(test_fixtures.OpportunisticDBTestMixin,
                           test_migrations.ModelsMigrationsSync,
                           test_base.BaseTestCase):
    """Train's models against Train's migrations (+ the variant's)."""

    def setUp(self):
        super(TestModelsSyncSQLite, self).setUp()
        self.engine = enginefacade.writer.get_engine()
        variant = _variant_models()
        if variant is not None and os.environ.get('MODELS_SYNC_EXTRA_COLUMN'):
            table = variant.ManagedCluster.__table__
            column = sa.Column('not_migrated', sa.String(8))
            table.append_column(column)
            self.addCleanup(table._columns.remove, column)

    def db_sync(self, engine):
        migration.db_sync(engine=engine)

    def get_engine(self):
        return self.engine

    def get_metadata(self):
        return models.BASE.metadata

    def filter_metadata_diff(self, diff):
        lines = sorted(describe(entry) for entry in diff)
        record = os.environ.get('MODELS_SYNC_RECORD')
        if record:
            with io.open(record, 'w', encoding='utf-8') as out:
                out.write(u''.join(u'%s\n' % line for line in lines))
            return []
        with io.open(os.environ['MODELS_SYNC_BASELINE'],
                     encoding='utf-8') as baseline:
            known = set(line.rstrip(u'\n') for line in baseline)
        return [entry for entry in diff if describe(entry) not in known]


class TestModelsSyncMySQL(TestModelsSyncSQLite):
    FIXTURE = test_fixtures.MySQLOpportunisticFixture
