"""The statements every start and verify runs, written once as SQL.

Compiling a QuerySet or saving a new model instance costs Django 100 to 400 µs a time on
this project's benchmark machine, several times what the database then spends on one of
these single-row statements; on the two requests a user waits for, the ORM was three quarters
of the app's own time (``bench/README.md``). Table and column names come from the models'
``_meta`` and every value passes through its field's ``get_db_prep_value`` (or
``get_db_prep_save``), so the SQL follows the models (and a swapped user model) on the
backends Django ships. Rows read here are model instances, their values converted as the ORM
converts them; inserts send ``pre_save``/``post_save`` as ``Model.save()`` does. Everything
off the hot path stays in the ORM.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Manager, Model, QuerySet, signals
from django.db.models.lookups import Exact
from django.db.models.manager import BaseManager

from .models import Enrollment, EnrollmentStatus, FailureCounter

# Quoted names and statement text per (database alias, model, name): the same every time.
_text_cache: dict[tuple[str, str, str], str] = {}
# The attribute of a connection that holds its value converters per (model, field). Kept on
# the connection (each thread has its own), not in a module-level map: the converters are
# bound to the connection, so a map keyed by it would keep every thread's connection alive.
_CONVERTERS_ATTRIBUTE = "_cognito_mfa_converters"


class _Table:
    """Quoted names and parameter adaptation of one model on the connection it is written to."""

    def __init__(self, model: type[Model], instance: Model | None = None) -> None:
        self.model = model
        # Reads too go to the database written to: they must see what was just written.
        self.alias = router.db_for_write(model, instance=instance)
        self.connection: BaseDatabaseWrapper = connections[self.alias]
        self.name = self.connection.ops.quote_name(model._meta.db_table)

    def field(self, field_name: str) -> Field[Any, Any]:
        return cast("Field[Any, Any]", self.model._meta.get_field(field_name))

    def column(self, field_name: str) -> str:
        key = (self.alias, self.model._meta.label, field_name)
        if key not in _text_cache:
            column = str(self.field(field_name).column)
            _text_cache[key] = self.connection.ops.quote_name(column)
        return _text_cache[key]

    def columns(self) -> str:
        """All concrete columns, in the order :meth:`instances` reads them."""
        key = (self.alias, self.model._meta.label, "*")
        if key not in _text_cache:
            fields = self.model._meta.concrete_fields
            _text_cache[key] = ", ".join(self.column(field.name) for field in fields)
        return _text_cache[key]

    def param(self, field_name: str, value: Any) -> Any:
        return self.field(field_name).get_db_prep_value(value, self.connection)

    def from_db(self, field_name: str, value: Any) -> Any:
        """Convert a value read by a raw cursor the way the ORM would (SQLite's datetimes
        arrive as text, for one)."""
        for convert, column in self._converters(field_name):
            value = convert(value, column, self.connection)
        return value

    def _converters(self, field_name: str) -> list[tuple[Any, Any]]:
        # Asked of the backend once per connection: ``QuerySet.raw`` asks it on every query,
        # which cost more than the query itself.
        per_connection = self.connection.__dict__.setdefault(_CONVERTERS_ATTRIBUTE, {})
        key = (self.model._meta.label, field_name)
        if key not in per_connection:
            column = self.field(field_name).get_col(self.model._meta.db_table)
            converters = self.connection.ops.get_db_converters(column)
            converters += column.get_db_converters(self.connection)
            per_connection[key] = [(convert, column) for convert in converters]
        return per_connection[key]

    def instances(self, sql: str, params: list[Any]) -> list[Any]:
        """Run a statement that returns :meth:`columns`; return the rows as model instances."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        fields = self.model._meta.concrete_fields
        names = [field.attname for field in fields]
        return [
            self.model.from_db(
                self.alias,
                names,
                [self.from_db(field.name, value) for field, value in zip(fields, row, strict=True)],
            )
            for row in rows
        ]

    @property
    def for_update(self) -> str:
        # SQLite has no row locks (a writer holds the whole database): the clause is dropped,
        # exactly as the ORM's select_for_update() drops it there.
        return " FOR UPDATE" if self.connection.features.has_select_for_update else ""

    def execute(self, sql: str, params: list[Any]) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return int(cursor.rowcount)


def insert(instance: Model) -> None:
    """INSERT a new row for ``instance``, as ``instance.save()`` would for a new object.

    ``pre_save`` and ``post_save`` (``created=True``) are sent as Django sends them, so a
    host's receivers on these models see every row; an auto primary key is read back.
    """
    model = type(instance)
    table = _Table(model, instance)
    meta = model._meta
    # The check save() runs (Django's own method): a related object that was never saved is
    # an error, not a NULL.
    cast(Any, instance)._prepare_related_fields_for_save(operation_name="save")
    signals.pre_save.send(
        sender=model, instance=instance, raw=False, using=table.alias, update_fields=None
    )
    auto_pk = meta.pk if getattr(meta.pk, "db_returning", False) and instance.pk is None else None
    fields = [field for field in meta.concrete_fields if field is not auto_pk]
    key = (table.alias, meta.label, "INSERT" if auto_pk is None else "INSERT without pk")
    if key not in _text_cache:
        columns = ", ".join(table.column(field.name) for field in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        _text_cache[key] = f"INSERT INTO {table.name} ({columns}) VALUES ({placeholders})"
    sql = _text_cache[key]
    params = [
        field.get_db_prep_save(field.pre_save(instance, True), table.connection) for field in fields
    ]
    # Any: django-stubs lack the RETURNING helpers every backend's operations define.
    operations: Any = table.connection.ops
    features = table.connection.features
    # The new auto primary key comes back the way the ORM reads it on this backend.
    returning: tuple[Any, ...] = ()
    if auto_pk is not None and features.can_return_columns_from_insert:
        returning_sql, returning = operations.return_insert_columns([auto_pk])
        sql, params = f"{sql} {returning_sql}", [*params, *returning]
    with table.connection.cursor() as cursor:
        cursor.execute(sql, params)
        if auto_pk is not None:
            if features.can_return_columns_from_insert:
                new_pk = operations.fetch_returned_insert_columns(cursor, returning)[0]
            else:
                new_pk = operations.last_insert_id(cursor, meta.db_table, str(auto_pk.column))
            setattr(instance, str(auto_pk.attname), table.from_db(auto_pk.name, new_pk))
    instance._state.adding = False
    instance._state.db = table.alias
    signals.post_save.send(
        sender=model,
        instance=instance,
        created=True,
        update_fields=None,
        raw=False,
        using=table.alias,
    )


def _default_manager_is_stock(model: type[Model]) -> bool:
    """Tell whether the model's default manager returns every row of one table, unchanged.

    A host's manager may hide users (soft deletion, a tenant of the current request), look
    them up its own way or on a database of its own, and a user model with parents (multi-
    table inheritance, a proxy) is read through them: SQL of ours could then find a user the
    site does not. Those go through the ORM.
    """
    manager: Any = model._meta.default_manager
    return (
        manager is not None
        and not model._meta.parents
        and type(manager).get_queryset is BaseManager.get_queryset
        and manager._queryset_class is QuerySet
        and type(manager).get_or_create is Manager.get_or_create
        # Bound to a database of its own (db_manager()): the ORM would read there.
        and manager._db is None
        and not manager._hints
    )


def user_by_username(user_model: type[Model], username: str) -> Any | None:
    """Return the user whose ``USERNAME_FIELD`` equals ``username``, as the default manager's
    ``get_or_create()`` would find it (on the database it writes to).

    None when there is no such row, more than one, the model's default manager is not the
    stock one, or the field's ``exact`` lookup is the site's own: the caller then asks the
    ORM, which finds or creates the user, or raises, as it would have anyway.
    """
    if not _default_manager_is_stock(user_model):
        return None
    field_name = str(cast(Any, user_model).USERNAME_FIELD)
    if user_model._meta.get_field(field_name).get_lookup("exact") is not Exact:
        return None  # the site made "equals" mean something else (case-insensitive, say)
    table = _Table(user_model)
    key = (table.alias, user_model._meta.label, "by username")
    if key not in _text_cache:
        limit = table.connection.ops.limit_offset_sql(0, 2)  # enough to tell one from many
        _text_cache[key] = (
            f"SELECT {table.columns()} FROM {table.name} "
            f"WHERE {table.column(field_name)} = %s {limit}"
        )
    rows = table.instances(_text_cache[key], [table.param(field_name, username)])
    return rows[0] if len(rows) == 1 else None


def owned_enrollment(enrollment_id: Any, user: Any) -> Enrollment | None:
    """Return the enrollment ``enrollment_id`` if it belongs to ``user``, else None."""
    table = _Table(Enrollment)
    sql = (
        f"SELECT {table.columns()} FROM {table.name} "
        f"WHERE {table.column('id')} = %s AND {table.column('user')} = %s"
    )
    params = [table.param("id", enrollment_id), table.param("user", user.pk)]
    return next(iter(table.instances(sql, params)), None)


def pending_enrollments_to_replace(user: Any, cognito_username: str) -> list[Enrollment]:
    """Lock and return the pending enrollments of a user (by site account or Cognito name).

    Runs inside the caller's transaction; usually finds nothing.
    """
    table = _Table(Enrollment)
    sql = (
        f"SELECT {table.columns()} FROM {table.name} WHERE {table.column('status')} = %s "
        f"AND ({table.column('cognito_username')} = %s OR {table.column('user')} = %s)"
        f"{table.for_update}"
    )
    params = [EnrollmentStatus.PENDING.value, cognito_username, table.param("user", user.pk)]
    return table.instances(sql, params)


def lock_user_row(user: Any) -> None:
    """Lock the user's row until the caller's transaction ends (serialises their starts)."""
    table = _Table(user._meta.model)
    if not table.for_update:
        return
    pk = table.connection.ops.quote_name(user._meta.pk.column)
    table.execute(
        f"SELECT 1 FROM {table.name} WHERE {pk} = %s{table.for_update}",
        [user._meta.pk.get_db_prep_value(user.pk, table.connection)],
    )


def failure_record(cognito_username: str) -> tuple[int, datetime | None] | None:
    """Return a user's consecutive wrong codes and back-off end, or None without a record."""
    table = _Table(FailureCounter)
    with table.connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {table.column('consecutive_failures')}, {table.column('blocked_until')} "
            f"FROM {table.name} WHERE {table.column('cognito_username')} = %s",
            [cognito_username],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return int(row[0]), table.from_db("blocked_until", row[1])


def _lease_claim(
    table: _Table, *, match: dict[str, Any], lease: datetime, timestamp: datetime, max_attempts: int
) -> tuple[str, list[Any]]:
    """The UPDATE that sets the verify lease of the rows matching ``match`` (field name ->
    parameter) that are pending, unexpired and unlocked, and whose lease is free or run out."""
    lease_column = table.column("verify_lease_until")
    matched = "".join(f"{table.column(name)} = %s AND " for name in match)
    sql = (
        f"UPDATE {table.name} SET {lease_column} = %s "
        f"WHERE {matched}{table.column('status')} = %s "
        f"AND {table.column('expires_at')} > %s AND {table.column('attempts')} < %s "
        f"AND ({lease_column} IS NULL OR {lease_column} < %s)"
    )
    now_param = table.param("expires_at", timestamp)
    params = [
        table.param("verify_lease_until", lease),
        *match.values(),
        EnrollmentStatus.PENDING.value,
        now_param,
        max_attempts,
        now_param,
    ]
    return sql, params


def claim_verify_lease(
    enrollment_id: Any, *, lease: datetime, timestamp: datetime, max_attempts: int
) -> bool:
    """Compare-and-set the verify lease of a pending, unexpired, unlocked enrollment whose
    lease is free or run out. Return whether this caller got it."""
    table = _Table(Enrollment)
    sql, params = _lease_claim(
        table,
        match={"id": table.param("id", enrollment_id)},
        lease=lease,
        timestamp=timestamp,
        max_attempts=max_attempts,
    )
    return table.execute(sql, params) == 1


def returns_rows_from_update(connection: BaseDatabaseWrapper) -> bool:
    """Tell whether ``connection`` runs ``UPDATE ... RETURNING``: PostgreSQL, and SQLite from
    3.35 (which brought RETURNING to INSERT and UPDATE at once). MariaDB returns rows from an
    INSERT only; Oracle's RETURNING is another syntax."""
    return connection.vendor in ("postgresql", "sqlite") and bool(
        connection.features.can_return_columns_from_insert
    )


def claim_own_verify_lease(
    enrollment_id: Any,
    user: Any,
    *,
    flow: str,
    lease: datetime,
    timestamp: datetime,
    max_attempts: int,
) -> Enrollment | None:
    """Take the verify lease of the user's own enrollment of ``flow`` in one statement and
    return the row (``UPDATE ... RETURNING``): the owned lookup and :func:`claim_verify_lease`
    at once, the usual verify's single round trip before it calls Cognito.

    None changes nothing and says only "not this way": the row is unknown, someone else's,
    of another flow, not verifiable now or leased, or the backend cannot return rows from an
    UPDATE (PostgreSQL and SQLite from 3.35 can). The caller then looks the row up to learn
    which, and claims it the usual way.
    """
    table = _Table(Enrollment)
    if not returns_rows_from_update(table.connection):
        return None
    sql, params = _lease_claim(
        table,
        match={
            "id": table.param("id", enrollment_id),
            "user": table.param("user", user.pk),
            "flow": str(flow),
        },
        lease=lease,
        timestamp=timestamp,
        max_attempts=max_attempts,
    )
    return next(iter(table.instances(f"{sql} RETURNING {table.columns()}", params)), None)


def mark_verified(
    enrollment_id: Any,
    *,
    lease: datetime,
    timestamp: datetime,
    verified_by: Any,
    device_name: str,
    preference_pending: bool,
    user: Any = None,
) -> bool:
    """Compare-and-set a pending enrollment whose lease is ``lease`` to verified (dropping its
    credential), and to ``user`` when one is given. Return False, changing nothing, if the row
    ended or the lease is not ours."""
    table = _Table(Enrollment)
    stamp = table.param("verified_at", timestamp)
    assignments: dict[str, Any] = {
        "status": EnrollmentStatus.VERIFIED.value,
        "verified_at": stamp,
        "verified_by": table.param("verified_by", getattr(verified_by, "pk", None)),
        "finished_at": stamp,
        "friendly_device_name": device_name,
        "encrypted_credential": None,
        "verify_lease_until": None,
        "preference_pending": table.param("preference_pending", preference_pending),
    }
    if user is not None:
        assignments["user"] = table.param("user", user.pk)
    setters = ", ".join(f"{table.column(name)} = %s" for name in assignments)
    sql = (
        f"UPDATE {table.name} SET {setters} WHERE {table.column('id')} = %s "
        f"AND {table.column('status')} = %s AND {table.column('verify_lease_until')} = %s"
    )
    params = [
        *assignments.values(),
        table.param("id", enrollment_id),
        EnrollmentStatus.PENDING.value,
        table.param("verify_lease_until", lease),
    ]
    return table.execute(sql, params) == 1
