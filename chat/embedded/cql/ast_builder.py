"""Turns lark's reductions into the typed AST of :mod:`chat.embedded.cql.ast`.

The builder runs as lark's parse-time callbacks (no intermediate parse tree), so each method
receives the already-built children of one grammar rule. LALR reduces rules left to right, so
bind markers are met in the order they appear in the text and can be numbered with a counter.

Grammar-level shortcuts are resolved here: bare words in value positions (``true``, ``null``,
``NaN``...), function-shaped selectors (``count(*)``, ``writetime(c)``) and ``token(...)``
relations. Mistakes that only the statement as a whole reveals (no PRIMARY KEY, a CLUSTERING
ORDER on a non-clustering column) raise ``InvalidRequest`` with Scylla's wording.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lark import Transformer, v_args

from chat.embedded.cql import ast
from chat.embedded.cql.errors import ConfigurationError, CqlSyntaxError, InvalidRequest

_NATIVE_TYPES = frozenset(
    {
        "ascii",
        "bigint",
        "blob",
        "boolean",
        "counter",
        "date",
        "decimal",
        "double",
        "duration",
        "float",
        "inet",
        "int",
        "smallint",
        "text",
        "time",
        "timestamp",
        "timeuuid",
        "tinyint",
        "uuid",
        "varchar",
        "varint",
    }
)
_COLLECTION_ARITY = {"list": 1, "set": 1, "map": 2, "frozen": 1}
_WORD_CONSTANTS = {
    "true": ast.Constant("boolean", "true"),
    "false": ast.Constant("boolean", "false"),
    "null": ast.Constant("null", "null"),
    "nan": ast.Constant("float", "NaN"),
    "infinity": ast.Constant("float", "Infinity"),
}
_KEYSPACE_PROPERTIES = frozenset({"replication", "durable_writes"})


class Tok(str):
    """A token: its text, its terminal name and where it starts (``column`` counts from 0, as
    in Cassandra's messages). Lighter than lark's Token, which costs four times as much to
    build, and one is built for every word of every statement."""

    __slots__ = ("column", "line", "type")

    type: str
    line: int
    column: int


def make_token(kind: str, value: str, line: int, column: int) -> Tok:
    token = Tok(value)
    token.type = kind
    token.line = line
    token.column = column
    return token


def syntax_error(token: Tok, message: str) -> CqlSyntaxError:
    return CqlSyntaxError(f"line {token.line}:{token.column} {message}")


@dataclass(frozen=True, slots=True)
class _Using:
    ttl: ast.Term | None = None
    timestamp: ast.Term | None = None


@dataclass(frozen=True, slots=True)
class _ColumnElement:
    column: ast.ColumnDef
    primary_key: bool


@dataclass(frozen=True, slots=True)
class _PrimaryKey:
    partition: tuple[str, ...]
    clustering: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _ClusteringOrder:
    order: tuple[tuple[str, str], ...]


_IF_EXISTS = object()


def _check_nesting(cql_type: ast.CqlType, frozen: bool = False) -> None:
    """Collections inside a non-frozen collection must be frozen; tuples freeze their items.

    Checked per column rather than per type because ``frozen<list<list<int>>>`` is fine: only
    the whole column type tells whether an inner collection sits under a ``frozen``.
    """
    if cql_type.name in ("frozen", "tuple"):
        for param in cql_type.params:
            _check_nesting(param, frozen=True)
        return
    for param in cql_type.params:
        if not frozen and param.name in ("list", "set", "map"):
            raise InvalidRequest(
                f"Non-frozen collections are not allowed inside collections: {cql_type}"
            )
        if param.name == "counter":
            raise InvalidRequest("Counters are not allowed inside collections")
        _check_nesting(param, frozen)


def _present(items: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the single None lark puts for an empty optional list such as ``[]`` or ``f()``."""
    return () if items == (None,) else items


def _option_text(term: ast.Term, what: str) -> str:
    if isinstance(term, ast.Constant) and term.kind != "null":
        return term.text
    raise CqlSyntaxError(f"invalid value in {what}: expected a constant, got {term}")


def _option_value(term: ast.Term, what: str) -> object:
    if isinstance(term, ast.MapLiteral):
        return {_option_text(key, what): _option_text(value, what) for key, value in term.entries}
    text = _option_text(term, what)
    if isinstance(term, ast.Constant):
        if term.kind == "integer":
            return int(text)
        if term.kind == "float":
            return float(text)
        if term.kind == "boolean":
            return text == "true"
    return text


@v_args(inline=True)
class AstBuilder(Transformer[Tok, ast.Statement]):
    """Parse-time callbacks; one instance per parser, reset before each parse."""

    def __init__(self) -> None:
        super().__init__(visit_tokens=False)
        self.markers = 0

    def reset(self) -> None:
        self.markers = 0

    # ------------------------------------------------------------------ names and terms

    def name(self, token: Tok) -> Tok:
        quoted = token.type == "QUOTED_IDENT"
        value = token[1:-1].replace('""', '"') if quoted else token.lower()
        return make_token(token.type, value, token.line, token.column)

    def table_name(self, first: Tok, second: Tok | None = None) -> tuple[str | None, str]:
        if second is None:
            return None, str(first)
        return str(first), str(second)

    def marker_name(self, token: Tok) -> Tok:
        return token

    def marker_table_name(self, *parts: Tok) -> tuple[str | None, str]:
        raise syntax_error(parts[-1], "Bind variables cannot be used for table names")

    def marker_use(self, token: Tok) -> ast.Use:
        raise syntax_error(token, "Bind variables cannot be used for keyspace names")

    def if_exists(self) -> bool:
        return True

    def if_not_exists(self) -> bool:
        return True

    def string_constant(self, token: Tok) -> ast.Constant:
        return ast.Constant("string", token[1:-1].replace("''", "'"))

    def pstring_constant(self, token: Tok) -> ast.Constant:
        return ast.Constant("string", token[2:-2])

    def integer_constant(self, token: Tok) -> ast.Constant:
        return ast.Constant("integer", str(token))

    def float_constant(self, token: Tok) -> ast.Constant:
        return ast.Constant("float", str(token))

    def uuid_constant(self, token: Tok) -> ast.Constant:
        return ast.Constant("uuid", token.lower())

    def hex_constant(self, token: Tok) -> ast.Constant:
        return ast.Constant("hex", str(token))

    def duration_constant(self, token: Tok) -> ast.Constant:
        return ast.Constant("duration", str(token))

    def word(self, token: Tok) -> ast.Constant:
        constant = _WORD_CONSTANTS.get(token.lower())
        if constant is None:
            raise syntax_error(
                token, f"no viable alternative at input '{token}' (a value was expected)"
            )
        return constant

    def negative_word(self, minus: Tok, token: Tok) -> ast.Constant:
        if token.lower() != "infinity":
            raise syntax_error(minus, f"no viable alternative at input '-{token}'")
        return ast.Constant("float", "-Infinity")

    def positional_marker(self, _token: Tok) -> ast.BindMarker:
        marker = ast.BindMarker(self.markers)
        self.markers += 1
        return marker

    def named_marker(self, name: Tok) -> ast.BindMarker:
        marker = ast.BindMarker(self.markers, str(name))
        self.markers += 1
        return marker

    def list_literal(self, *items: ast.Term) -> ast.ListLiteral:
        return ast.ListLiteral(_present(items))

    def set_literal(self, *items: ast.Term) -> ast.SetLiteral:
        return ast.SetLiteral(items)

    def map_entry(self, key: ast.Term, value: ast.Term) -> tuple[ast.Term, ast.Term]:
        return key, value

    def map_literal(self, *entries: tuple[ast.Term, ast.Term]) -> ast.MapLiteral:
        return ast.MapLiteral(_present(entries))

    def tuple_literal(self, *items: ast.Term) -> ast.TupleLiteral:
        return ast.TupleLiteral(items)

    def function_call(self, name: Tok, *args: ast.Term) -> ast.FunctionCall:
        return ast.FunctionCall(str(name), _present(args))

    # ------------------------------------------------------------------ types

    def cql_type(self, name: Tok, *params: ast.CqlType) -> ast.CqlType:
        type_name = str(name)
        parameters = _present(params)
        if type_name in _NATIVE_TYPES:
            if parameters:
                raise syntax_error(name, f"type {type_name} takes no parameters")
            return ast.CqlType(type_name)
        if type_name == "tuple":
            if not parameters:
                raise syntax_error(name, "tuple<...> needs at least one element type")
            return ast.CqlType(type_name, parameters)
        arity = _COLLECTION_ARITY.get(type_name)
        if arity is None:
            raise InvalidRequest(f"Unknown type {type_name}")
        if len(parameters) != arity:
            raise syntax_error(name, f"{type_name}<...> takes {arity} type parameter(s)")
        if type_name == "frozen" and parameters[0].name not in ("list", "set", "map", "tuple"):
            raise InvalidRequest(
                "frozen<> is only allowed on collections, tuples, and user-defined types"
            )
        return ast.CqlType(type_name, parameters)

    # ------------------------------------------------------------------ SELECT

    def distinct(self) -> bool:
        return True

    def select_all(self) -> tuple[ast.Selector, ...]:
        return ()

    def select_list(self, *selectors: ast.Selector) -> tuple[ast.Selector, ...]:
        return selectors

    def selector(self, inner: ast.Selector, alias: Tok | None) -> ast.Selector:
        if alias is None:
            return inner
        return replace(inner, alias=str(alias))

    def column_selector(self, name: Tok) -> ast.Selector:
        return ast.Selector("column", str(name))

    def star_call_selector(self, name: Tok) -> ast.Selector:
        if name != "count":
            raise syntax_error(name, f"only COUNT accepts '*' as an argument, not {name}")
        return ast.Selector("count", None)

    def int_call_selector(self, name: Tok, value: Tok) -> ast.Selector:
        if name != "count" or value != "1":
            raise syntax_error(value, f"unsupported construct: literal {value} in a selector")
        return ast.Selector("count", None)

    def call_selector(self, name: Tok, *args: ast.Selector) -> ast.Selector:
        arguments = _present(args)
        # count(column) counts non-null values, not rows: it stays a function call so the
        # engine refuses it rather than answer as for COUNT(*).
        if name in ("writetime", "ttl"):
            if len(arguments) != 1 or arguments[0].kind != "column":
                raise syntax_error(name, f"{name}() takes exactly one column name")
            return ast.Selector(str(name), arguments[0].column)
        return ast.Selector("function", str(name), None, arguments)

    def ordering(self, name: Tok, direction: str | None) -> tuple[str, str]:
        return str(name), direction or "ASC"

    def direction(self, token: Tok) -> str:
        return token.upper()

    def order_by(self, *orderings: tuple[str, str]) -> tuple[tuple[str, str], ...]:
        return orderings

    def integer_value(self, token: Tok) -> ast.Constant:
        return ast.Constant("integer", str(token))

    def limit(self, value: ast.Term) -> ast.Term:
        return value

    def per_partition_limit(self, value: ast.Term) -> ast.Term:
        return value

    def allow_filtering(self) -> bool:
        return True

    def bypass_cache(self) -> bool:
        return True

    def using_timeout(self, _duration: Tok) -> tuple[str, None]:
        # Scylla's per-query timeout; this server never times out, so it has no effect.
        return "timeout", None

    def select_stmt(
        self,
        _select: Tok,
        distinct: bool | None,
        selectors: tuple[ast.Selector, ...],
        table: tuple[str | None, str],
        where: ast.WhereClause | None,
        order_by: tuple[tuple[str, str], ...] | None,
        per_partition_limit: ast.Term | None,
        limit: ast.Term | None,
        allow_filtering: bool | None,
        _bypass_cache: bool | None,
        _timeout: object,
    ) -> ast.Select:
        return ast.Select(
            keyspace=table[0],
            table=table[1],
            selectors=selectors,
            where=where or (),
            order_by=order_by or (),
            limit=limit,
            per_partition_limit=per_partition_limit,
            allow_filtering=bool(allow_filtering),
            distinct=bool(distinct),
            bind_count=self.markers,
        )

    # ------------------------------------------------------------------ WHERE

    def where_clause(self, *relations: ast.Relation | ast.TokenRelation) -> ast.WhereClause:
        return relations

    def rel_op(self, token: Tok) -> str:
        return str(token)

    def simple_relation(self, name: Tok, op: str, value: ast.Term) -> ast.Relation:
        return ast.Relation((str(name),), op, value)

    def in_relation(self, name: Tok, values: ast.Term | tuple[ast.Term, ...]) -> ast.Relation:
        return ast.Relation((str(name),), "IN", values)

    def contains_relation(self, name: Tok, value: ast.Term) -> ast.Relation:
        return ast.Relation((str(name),), "CONTAINS", value)

    def contains_key_relation(self, name: Tok, value: ast.Term) -> ast.Relation:
        return ast.Relation((str(name),), "CONTAINS KEY", value)

    def token_relation(self, function: Tok, *rest: Any) -> ast.TokenRelation:
        if function != "token":
            raise syntax_error(
                function, f"unsupported construct: function {function}() in a relation"
            )
        *columns, op, value = rest
        return ast.TokenRelation(tuple(str(c) for c in columns), op, value)

    def column_tuple(self, *names: Tok) -> tuple[str, ...]:
        return tuple(str(n) for n in names)

    def tuple_relation(self, columns: tuple[str, ...], op: str, value: ast.Term) -> ast.Relation:
        if len(columns) == 1 and isinstance(value, ast.TupleLiteral) and len(value.items) == 1:
            return ast.Relation(columns, op, value.items[0])  # (c) = (1) is c = 1
        return ast.Relation(columns, op, value)

    def tuple_in_relation(
        self, columns: tuple[str, ...], values: ast.Term | tuple[ast.Term, ...]
    ) -> ast.Relation:
        if (
            len(columns) == 1
            and isinstance(values, tuple)
            and all(isinstance(v, ast.TupleLiteral) and len(v.items) == 1 for v in values)
        ):  # (c) IN ((1), (2)) is c IN (1, 2)
            return ast.Relation(columns, "IN", tuple(v.items[0] for v in values))  # type: ignore[union-attr]
        return ast.Relation(columns, "IN", values)

    def in_list(self, *values: ast.Term) -> tuple[ast.Term, ...]:
        return _present(values)

    def in_marker(self, marker: ast.BindMarker) -> ast.BindMarker:
        return marker

    # ------------------------------------------------------------------ INSERT / UPDATE / DELETE

    def using_ttl(self, value: ast.Term) -> tuple[str, ast.Term]:
        return "ttl", value

    def using_timestamp(self, value: ast.Term) -> tuple[str, ast.Term]:
        return "timestamp", value

    def using(self, *items: tuple[str, ast.Term | None]) -> _Using:
        found: dict[str, ast.Term | None] = {}
        for key, value in items:
            if key in found:
                raise InvalidRequest(f"USING {key.upper()} given more than once")
            found[key] = value
        return _Using(ttl=found.get("ttl"), timestamp=found.get("timestamp"))

    def insert_stmt(self, table: tuple[str | None, str], *rest: Any) -> ast.Insert:
        *items, if_not_exists, using = rest
        columns = tuple(str(item) for item in items if isinstance(item, str))
        values = tuple(item for item in items if not isinstance(item, str))
        if len(columns) != len(values):
            raise InvalidRequest("Unmatched column names/values")
        if len(set(columns)) != len(columns):
            raise InvalidRequest("Multiple definitions found for a column in INSERT")
        using = using or _Using()
        return ast.Insert(
            keyspace=table[0],
            table=table[1],
            columns=columns,
            values=values,
            if_not_exists=bool(if_not_exists),
            ttl=using.ttl,
            timestamp=using.timestamp,
            bind_count=self.markers,
        )

    def insert_json(self, _table: object, json: Tok, _value: object) -> ast.Insert:
        raise syntax_error(json, "unsupported construct: INSERT JSON")

    def assign_set(self, name: Tok, value: ast.Term) -> ast.Assignment:
        return ast.Assignment(str(name), "set", value)

    def _check_same_column(self, target: Tok, operand: Tok) -> None:
        if target != operand:
            raise syntax_error(
                operand,
                f"only expressions of the form {target} = {target} + <value> are supported",
            )

    def assign_add(self, name: Tok, operand: Tok, _plus: Tok, value: ast.Term) -> Any:
        self._check_same_column(name, operand)
        return ast.Assignment(str(name), "add", value)

    def assign_sub(self, name: Tok, operand: Tok, _minus: Tok, value: ast.Term) -> Any:
        self._check_same_column(name, operand)
        return ast.Assignment(str(name), "sub", value)

    def assign_add_signed(self, name: Tok, operand: Tok, value: Tok) -> ast.Assignment:
        # `c = c -1` lexes as `c`, `-1`; Cassandra reads it as adding -1, and so do we.
        self._check_same_column(name, operand)
        if not value.startswith("-"):
            raise syntax_error(value, f"no viable alternative at input '{value}'")
        return ast.Assignment(str(name), "add", ast.Constant("integer", str(value)))

    def assign_prepend(
        self, name: Tok, value: ast.Term, _plus: Tok, operand: Tok
    ) -> ast.Assignment:
        self._check_same_column(name, operand)
        return ast.Assignment(str(name), "prepend", value)

    def assign_element(self, name: Tok, key: ast.Term, value: ast.Term) -> ast.Assignment:
        return ast.Assignment(str(name), "set", value, key)

    def if_exists_condition(self) -> object:
        return _IF_EXISTS

    def column_conditions(self, *conditions: ast.Condition) -> tuple[ast.Condition, ...]:
        return conditions

    def simple_condition(self, name: Tok, op: str, value: ast.Term) -> ast.Condition:
        return ast.Condition(str(name), op, value)

    def in_condition(self, name: Tok, values: ast.Term | tuple[ast.Term, ...]) -> ast.Condition:
        return ast.Condition(str(name), "IN", values)

    def update_stmt(self, table: tuple[str | None, str], using: _Using | None, *rest: Any) -> Any:
        *assignments, where, conditions = rest
        using = using or _Using()
        return ast.Update(
            keyspace=table[0],
            table=table[1],
            assignments=tuple(assignments),
            where=where,
            conditions=conditions if isinstance(conditions, tuple) else (),
            if_exists=conditions is _IF_EXISTS,
            ttl=using.ttl,
            timestamp=using.timestamp,
            bind_count=self.markers,
        )

    def delete_target(self, name: Tok, key: ast.Term | None) -> ast.DeleteTarget:
        return ast.DeleteTarget(str(name), key)

    def delete_targets(self, *targets: ast.DeleteTarget) -> tuple[ast.DeleteTarget, ...]:
        return targets

    def delete_using(self, timestamp: ast.Term) -> ast.Term:
        return timestamp

    def delete_stmt(
        self,
        targets: tuple[ast.DeleteTarget, ...] | None,
        table: tuple[str | None, str],
        timestamp: ast.Term | None,
        where: ast.WhereClause,
        conditions: object,
    ) -> ast.Delete:
        return ast.Delete(
            keyspace=table[0],
            table=table[1],
            columns=targets or (),
            where=where,
            conditions=conditions if isinstance(conditions, tuple) else (),
            if_exists=conditions is _IF_EXISTS,
            timestamp=timestamp,
            bind_count=self.markers,
        )

    # ------------------------------------------------------------------ BATCH

    def batch_kind(self, token: Tok) -> str:
        return token.upper()

    def batch_using(self, timestamp: ast.Term) -> ast.Term:
        return timestamp

    def batch_stmt(
        self,
        begin: Tok,
        kind: str | None,
        timestamp: ast.Term | None,
        *statements: ast.Modification,
    ) -> ast.Batch:
        inner: list[ast.Modification] = []
        previous = 1 if isinstance(timestamp, ast.BindMarker) else 0
        for statement in statements:
            # Each inner statement was built with the running marker total; keep its own count.
            inner.append(replace(statement, bind_count=statement.bind_count - previous))
            previous = statement.bind_count
        return ast.Batch(
            kind=kind or "LOGGED",
            statements=tuple(inner),
            timestamp=timestamp,
            bind_count=self.markers,
        )

    # ------------------------------------------------------------------ DDL

    def property(self, name: Tok, value: ast.Term) -> tuple[str, ast.Term]:
        return str(name), value

    def create_keyspace(
        self, if_not_exists: bool | None, name: Tok, *properties: tuple[str, ast.Term]
    ) -> ast.CreateKeyspace:
        found: dict[str, ast.Term] = {}
        for key, value in properties:
            if key not in _KEYSPACE_PROPERTIES:
                raise CqlSyntaxError(f"Unknown property '{key}'")
            if key in found:
                raise CqlSyntaxError(f"Multiple definition for property '{key}'")
            found[key] = value
        replication_term = found.get("replication", ast.MapLiteral(()))
        if not isinstance(replication_term, ast.MapLiteral):
            raise ConfigurationError("Invalid value for property 'replication': expected a map")
        replication = {
            _option_text(k, "replication"): _option_text(v, "replication")
            for k, v in replication_term.entries
        }
        durable_writes: bool | None = None
        durable_term = found.get("durable_writes")
        if durable_term is not None:
            text = _option_text(durable_term, "durable_writes").lower()
            if text not in ("true", "false"):
                raise CqlSyntaxError(f"Invalid boolean value for durable_writes: {text}")
            durable_writes = text == "true"
        return ast.CreateKeyspace(
            name=str(name),
            if_not_exists=bool(if_not_exists),
            replication=replication,
            durable_writes=durable_writes,
        )

    def drop_keyspace(self, if_exists: bool | None, name: Tok) -> ast.DropKeyspace:
        return ast.DropKeyspace(str(name), bool(if_exists))

    def static(self) -> bool:
        return True

    def inline_primary_key(self) -> bool:
        return True

    def column_definition(
        self, name: Tok, cql_type: ast.CqlType, static: bool | None, primary: bool | None
    ) -> _ColumnElement:
        _check_nesting(cql_type)
        return _ColumnElement(ast.ColumnDef(str(name), cql_type, bool(static)), bool(primary))

    def partition_key(self, *names: Tok) -> tuple[str, ...]:
        return tuple(str(n) for n in names)

    def primary_key(self, partition: tuple[str, ...], *clustering: Tok) -> _PrimaryKey:
        return _PrimaryKey(partition, tuple(str(c) for c in clustering))

    def clustering_order(self, *orderings: tuple[str, str]) -> _ClusteringOrder:
        return _ClusteringOrder(orderings)

    def compact_storage(self, compact: Tok) -> _ClusteringOrder:
        raise syntax_error(compact, "unsupported construct: COMPACT STORAGE")

    def table_options(self, *options: Any) -> tuple[Any, ...]:
        return options

    def create_table(
        self, if_not_exists: bool | None, table: tuple[str | None, str], *rest: Any
    ) -> ast.CreateTable:
        *elements, table_options = rest
        columns: list[ast.ColumnDef] = []
        keys: list[_PrimaryKey] = []
        for element in elements:
            if isinstance(element, _PrimaryKey):
                keys.append(element)
                continue
            columns.append(element.column)
            if element.primary_key:
                keys.append(_PrimaryKey((element.column.name,), ()))
        if not keys:
            raise InvalidRequest("No PRIMARY KEY specifed (exactly one required)")
        if len(keys) > 1:
            raise InvalidRequest("Multiple PRIMARY KEYs specifed (exactly one required)")
        key = keys[0]
        names = [c.name for c in columns]
        for column_name in names:
            if names.count(column_name) > 1:
                raise InvalidRequest(f"Multiple definition of identifier {column_name}")
        key_columns = key.partition + key.clustering
        for column_name in key_columns:
            if column_name not in names:
                raise InvalidRequest(f"Unknown definition {column_name} referenced in PRIMARY KEY")
            if key_columns.count(column_name) > 1:
                raise InvalidRequest(
                    f"Multiple definition of identifier {column_name} in PRIMARY KEY"
                )
        for column in columns:
            if column.static and (not key.clustering or column.name in key_columns):
                raise InvalidRequest(
                    f"Static column {column.name} is only allowed in a table with clustering "
                    "columns, and not as part of the PRIMARY KEY"
                )
        options: dict[str, object] = {}
        order: tuple[tuple[str, str], ...] = ()
        for option in table_options or ():
            if isinstance(option, _ClusteringOrder):
                order = option.order
                continue
            option_name, value = option
            if option_name in options:
                raise CqlSyntaxError(f"Multiple definition for property '{option_name}'")
            options[option_name] = _option_value(value, option_name)
        ordered_names = [column_name for column_name, _ in order]
        if any(column_name not in key.clustering for column_name in ordered_names):
            raise InvalidRequest(
                "Only clustering key columns can be defined in CLUSTERING ORDER directive"
            )
        if ordered_names != list(key.clustering[: len(ordered_names)]):
            raise InvalidRequest(
                "The order of columns in the CLUSTERING ORDER directive must be the one of "
                "the clustering key"
            )
        clustering_order = order + tuple((c, "ASC") for c in key.clustering[len(order) :])
        return ast.CreateTable(
            keyspace=table[0],
            name=table[1],
            if_not_exists=bool(if_not_exists),
            columns=tuple(columns),
            partition_key=key.partition,
            clustering=key.clustering,
            clustering_order=clustering_order,
            options=options,
        )

    def drop_table(self, if_exists: bool | None, table: tuple[str | None, str]) -> ast.DropTable:
        return ast.DropTable(table[0], table[1], bool(if_exists))

    def added_column(self, name: Tok, cql_type: ast.CqlType, static: bool | None) -> ast.ColumnDef:
        _check_nesting(cql_type)
        return ast.ColumnDef(str(name), cql_type, bool(static))

    def added_columns(self, *columns: ast.ColumnDef) -> tuple[ast.ColumnDef, ...]:
        return columns

    def alter_table_add(
        self, table: tuple[str | None, str], columns: tuple[ast.ColumnDef, ...]
    ) -> ast.AlterTableAdd:
        return ast.AlterTableAdd(table[0], table[1], columns)

    def truncate_stmt(self, table: tuple[str | None, str]) -> ast.Truncate:
        return ast.Truncate(table[0], table[1])

    def use_stmt(self, name: Tok) -> ast.Use:
        return ast.Use(str(name))

    def start(self, statement: ast.Statement) -> ast.Statement:
        return statement
