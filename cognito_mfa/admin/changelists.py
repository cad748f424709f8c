"""Changelists that stay fast at millions of rows and answer odd input with a message.

The enrollment and audit admins are built on :class:`ScalableChangelistAdmin`: a page reads one
page of rows through an index, whatever the table's size.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

# Longer search terms are refused: SQLite refuses a LIKE pattern over 50,000 bytes ("pattern too
# complex"), and no searched field (usernames, e-mail addresses) is longer than 254 characters.
SEARCH_TERM_MAX_LENGTH = 256


# A list counts its rows up to this many; past it, the page shows PostgreSQL's estimate.
EXACT_COUNT_LIMIT = 10_000
# A search for a site username or e-mail address lists the enrollments of at most this many
# accounts (an address is usually one account's; the limit bounds the query's parameters).
SEARCHED_ACCOUNTS_LIMIT = 100


class ChangelistInputAdmin(admin.ModelAdmin):
    """A ModelAdmin whose changelist answers odd input with a message, never a 500.

    A NUL character cannot be sent to PostgreSQL at all (psycopg raises DataError), a very
    long search term is too complex a LIKE pattern for SQLite, and an action's selected ids
    that are not primary keys make the ``pk__in`` filter raise ValidationError.
    """

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        dropped = [
            key
            for key, values in request.GET.lists()
            if "\x00" in key or any("\x00" in value for value in values)
        ]
        if dropped and self.has_view_or_change_permission(request):
            kept = request.GET.copy()
            for key in dropped:
                del kept[key]
            self.message_user(
                request,
                gettext("A search or filter value held a NUL character and was ignored."),
                messages.WARNING,
            )
            query = kept.urlencode()
            return HttpResponseRedirect(f"{request.path}?{query}" if query else request.path)
        return super().changelist_view(request, extra_context)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        if len(search_term) > SEARCH_TERM_MAX_LENGTH:
            self.message_user(
                request,
                gettext("Search terms are limited to %(max)d characters.")
                % {"max": SEARCH_TERM_MAX_LENGTH},
                messages.WARNING,
            )
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        pk = self.opts.pk
        try:
            for value in request.POST.getlist(helpers.ACTION_CHECKBOX_NAME):
                pk.to_python(value)
        except ValidationError:
            self.message_user(
                request,
                gettext("The selection was not valid. No items have been changed."),
                messages.ERROR,
            )
            return None  # the changelist then redirects to itself
        return super().response_action(request, queryset, *args, **kwargs)


class EstimatingPaginator(Paginator):
    """A paginator whose count costs a page, not a table.

    It counts at most ``EXACT_COUNT_LIMIT + 1`` rows (exact for every list up to that size).
    Past it, on PostgreSQL, it takes the planner's estimate of the list's rows (``EXPLAIN``),
    which needs no scan and follows the filters and the search; a ``COUNT(*)`` over a million
    rows takes longer than the page it numbers. A count with a statement timeout was the
    other choice: it would spend its whole timeout on every large list before giving up. Other
    databases count every row: they have no estimate to offer, and sites that large run on
    PostgreSQL.
    """

    @cached_property
    def count(self) -> int:
        listed: QuerySet[Any] = self.object_list  # type: ignore[assignment]
        rows = listed.order_by()
        counted: int = rows[: EXACT_COUNT_LIMIT + 1].count()
        if counted <= EXACT_COUNT_LIMIT:
            return counted
        if connections[rows.db].vendor != "postgresql":
            return int(rows.count())
        plan = rows.explain(format="json")
        estimate = int(json.loads(plan)[0]["Plan"]["Plan Rows"])
        return max(estimate, counted)


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter on one field whose choices are known in advance: listing them reads no row.

    It is titled with the field's verbose name and takes the parameter Django's own filter of
    that field would (``<field>__exact``), so links to a filtered list stay the same.
    """

    field: str
    fixed_choices: tuple[tuple[str, Any], ...]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.parameter_name = f"{cls.field}__exact"

    def __init__(
        self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any
    ) -> None:
        self.title = str(model._meta.get_field(self.field).verbose_name)
        super().__init__(request, params, model, model_admin)

    def lookups(self, request: HttpRequest, model_admin: Any) -> tuple[tuple[str, Any], ...]:
        return self.fixed_choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class ScalableChangelistAdmin(ChangelistInputAdmin):
    """A changelist whose page costs about the same at a hundred rows and at millions.

    Every page reads one page of rows through an index (see the models' indexes): no full
    count (:class:`EstimatingPaginator`, no total beside a filtered count), no facet counts,
    filters whose choices are fixed, a date filter instead of ``date_hierarchy`` (which lists
    every month with a ``SELECT DISTINCT`` over the table), sorting on indexed columns only,
    and a search that an index answers. Columns no list shows are not read.
    """

    paginator = EstimatingPaginator
    # Rendering a row costs more than reading it: 50 rows a page halve a page's time (a help
    # desk finds a user by searching, not by paging).
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    search_help_text = _(
        "The start of a Cognito username (capitals count), or a site username or e-mail "
        "address in full."
    )
    list_deferred: tuple[str, ...] = ()

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        # Shows the search box; get_search_results below does the searching.
        return ["cognito_username"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Find rows by the start of their Cognito username, or by their site account.

        A prefix ``LIKE 'x%'`` is answered by the username's index (PostgreSQL's
        ``varchar_pattern_ops`` index Django adds to indexed text columns); a contains-search
        ``LIKE '%x%'`` reads every row, and a trigram index would cost every write. The site
        account is looked up first, on its own table (its username is unique, so indexed; an
        e-mail address is matched only for a term that looks like one), so the list's query
        has no join to filter through.
        """
        term = search_term.strip()
        if len(search_term) > SEARCH_TERM_MAX_LENGTH or not term:
            return super().get_search_results(request, queryset, search_term)
        user_model = get_user_model()
        accounts = Q(**{user_model.USERNAME_FIELD: term})
        email_field = user_model.get_email_field_name()
        if "@" in term and any(field.name == email_field for field in user_model._meta.fields):
            accounts |= Q(**{f"{email_field}__iexact": term})
        owners = list(
            user_model._default_manager.filter(accounts).values_list("pk", flat=True)[
                :SEARCHED_ACCOUNTS_LIMIT
            ]
        )
        matches = Q(cognito_username__startswith=term)
        if owners:
            matches |= Q(user__in=owners)
        return queryset.filter(matches), False

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator:
        # Only the list's page defers them: actions get the rows whole. (The history page
        # pages its LogEntry rows with this paginator too.)
        if queryset.model is self.model:
            queryset = queryset.defer(*self.list_deferred)
        return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
