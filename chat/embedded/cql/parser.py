"""CQL text to AST: ``parse(text)`` for one statement, optionally ending with ``;``.

lark compiles ``grammar.lark`` into LALR(1) tables once, at import, and wraps the AST builder's
methods as its reduction callbacks. The statement is then lexed and parsed by the small loop
below rather than by ``Lark.parse``: driving the same tables and callbacks from one function,
with one regex match per token, takes less than half lark's time (about 75 us instead of
170 us for a five-column INSERT on the 2-core dev box), which matters for unprepared QUERY
statements and schema DDL.

The loop lexes as lark's contextual lexer does, a little better: a word is a keyword only
where the parser can shift that keyword, so ``key``, ``ttl`` or ``type`` stay usable as column
names. It reads lark's internal tables (``Lark.parser.parser.parser``), which lark 1.x has
kept stable; the tests would catch a change. There is no cache here: the engine caches
prepared plans.

Every failure is a ``CqlSyntaxError`` (or, for a well-formed statement that cannot be valid,
``InvalidRequest``/``ConfigurationError``) whose message starts with Cassandra's ``line L:C``
position. Constructs this server deliberately does not implement (CREATE INDEX, DESCRIBE,
JSON, ...) are named as such, so a client sees "unsupported" rather than "mismatched input".
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import lark
from lark.lexer import PatternStr
from lark.parsers.lalr_analysis import Shift

from chat.embedded.cql.ast import Statement
from chat.embedded.cql.ast_builder import AstBuilder, Tok, make_token, syntax_error
from chat.embedded.cql.errors import CqlSyntaxError

__all__ = ["parse"]

_GRAMMAR = Path(__file__).with_name("grammar.lark")

_LAYOUT = ("WS", "LINE_COMMENT", "BLOCK_COMMENT")
# Tried in this order (the first alternative that matches wins, as in lark's priorities):
# literals whose text could also start another token first, then words.
_TOKEN_ORDER = (
    "UUID",
    "HEX",
    "DURATION",
    "FLOAT",
    "INTEGER",
    "IDENT",
    "QUOTED_IDENT",
    "STRING",
    "PSTRING",
)
_END = "$END"

# Statement kinds refused outright, keyed by their leading word(s).
_UNSUPPORTED_FIRST = frozenset(
    {"GRANT", "REVOKE", "LIST", "DESCRIBE", "DESC", "LOGIN", "EXPLAIN", "PRUNE"}
)
_UNSUPPORTED_AFTER_DDL_VERB = {
    # second word -> how many leading words name the construct
    "INDEX": 2,
    "CUSTOM": 3,
    "MATERIALIZED": 3,
    "TYPE": 2,
    "FUNCTION": 2,
    "AGGREGATE": 2,
    "ROLE": 2,
    "USER": 2,
    "TRIGGER": 2,
    "SERVICE_LEVEL": 2,
    "OR": 4,
}
# A statement that fails at one of these words used a construct this server does not offer.
_UNSUPPORTED_AT = {
    "GROUP": "GROUP BY",
    "LIKE": "LIKE",
    "IS": "IS NOT NULL",
    "COMPACT": "COMPACT STORAGE",
}
_AFTER_COLUMN: tuple[list[str], ...] = ([","], ["FROM"], ["AS"], ["("], [])
_ALTER_TABLE_VERBS = frozenset({"DROP", "ALTER", "RENAME", "WITH"})
_TERMINAL_NAMES = {
    "IDENT": "identifier",
    "QUOTED_IDENT": "identifier",
    "STRING": "string",
    "PSTRING": "string",
    "INTEGER": "integer",
    "FLOAT": "float",
    "UUID": "uuid",
    "HEX": "blob",
    "DURATION": "duration",
}

# A parse-table action: (True, next state) to shift, or (False, reduction) to reduce, where a
# reduction is (number of symbols popped, rule name, callback building the rule's value).
# (Any, because a bool tag does not let mypy narrow the union.)
_Action = tuple[bool, Any]


class _Parser:
    """The LALR tables and callbacks lark built, driven by :meth:`parse`.

    The builder counts bind markers, so one parse at a time: the lock makes that safe.
    """

    def __init__(self) -> None:
        self._builder = AstBuilder()
        grammar = lark.Lark(
            _GRAMMAR.read_text(encoding="utf-8"),
            parser="lalr",
            lexer="contextual",
            transformer=self._builder,
            maybe_placeholders=True,
        )
        terminals = {t.name: t for t in grammar.terminals}
        self._keywords: dict[str, str] = {}
        self._punctuation: dict[str, str] = {}
        for terminal in terminals.values():
            pattern = terminal.pattern
            if isinstance(pattern, PatternStr):
                if pattern.value.isalpha():
                    self._keywords[pattern.value.upper()] = terminal.name
                else:
                    self._punctuation[pattern.value] = terminal.name
        alternatives = [
            f"(?P<{name}>{terminals[name].pattern.to_regexp()})" for name in _TOKEN_ORDER
        ]
        # Longest punctuation first, so that `<=` is not read as `<` followed by `=`.
        for value in sorted(self._punctuation, key=len, reverse=True):
            alternatives.append(f"(?P<{self._punctuation[value]}>{re.escape(value)})")
        # One match per token: the layout before it (spaces, comments) is skipped by the same
        # match. When no token follows the layout, ``lastgroup`` is None.
        layout = "|".join(terminals[name].pattern.to_regexp() for name in _LAYOUT)
        self._token = re.compile(f"(?:{layout})*(?:{'|'.join(alternatives)})?")
        self._descriptions = (
            {
                name: (value.upper() if value.isalpha() else f"'{value}'")
                for value, name in {**self._keywords, **self._punctuation}.items()
            }
            | _TERMINAL_NAMES
            | {_END: "<EOF>"}
        )

        lalr: Any = grammar.parser.parser.parser  # lark's _Parser: parse_table + callbacks
        table = lalr.parse_table
        callbacks = lalr.callbacks
        self._start: int = table.start_states["start"]
        self._end: int = table.end_states["start"]
        self._states: dict[int, dict[str, _Action]] = {
            state: {
                symbol: (
                    (True, arg)
                    if action is Shift
                    else (False, (len(arg.expansion), arg.origin.name, callbacks[arg]))
                )
                for symbol, (action, arg) in actions.items()
            }
            for state, actions in table.states.items()
        }
        self._lock = threading.Lock()

    def parse(self, text: str) -> Statement:
        with self._lock:
            self._builder.reset()
            statement: Statement = self._run(text)
        return statement

    def _run(self, text: str) -> Any:
        states = self._states
        keywords = self._keywords
        match = self._token.match
        state_stack = [self._start]
        value_stack: list[Any] = []
        pos = 0
        line = 1
        line_start = 0
        length = len(text)
        while True:
            found = match(text, pos)
            if found is None:  # cannot happen: the pattern also matches the empty string
                raise AssertionError(pos)
            kind = found.lastgroup
            end = found.end()
            value = "" if kind is None else found.group(kind)
            start = end - len(value)
            newlines = text.count("\n", pos, start)
            if newlines:
                line += newlines
                line_start = text.rindex("\n", pos, start) + 1
            token = make_token(kind or _END, value, line, start - line_start)
            if kind is None:
                if end < length:
                    raise self._bad_character(text, token, end)
                kind = _END
            else:
                if "\n" in value:
                    line += value.count("\n")
                    line_start = start + value.rindex("\n") + 1
                if kind == "IDENT":
                    keyword = keywords.get(value.upper())
                    if keyword is not None and self._is_keyword(state_stack, keyword):
                        kind = token.type = keyword
            pos = end
            while True:
                actions = states[state_stack[-1]]
                action = actions.get(kind)
                if action is None:
                    raise self._unexpected(text, token, actions)
                shift, arg = action
                if shift:
                    state_stack.append(arg)
                    value_stack.append(token)
                    break
                size, origin, callback = arg
                if size:
                    children = value_stack[-size:]
                    del state_stack[-size:]
                    del value_stack[-size:]
                else:
                    children = []
                state_stack.append(states[state_stack[-1]][origin][1])
                value_stack.append(callback(children))
                if kind == _END and state_stack[-1] == self._end:
                    return value_stack[-1]

    def _is_keyword(self, state_stack: list[int], keyword: str) -> bool:
        """Whether a word that spells ``keyword`` is that keyword here, or an identifier.

        It is the keyword when the parser accepts the keyword and not an identifier. When it
        accepts both, LALR's merged lookaheads may list a keyword the parser can in fact only
        shift elsewhere (``s SET<int>`` in CREATE TABLE: SET follows a name in UPDATE), so the
        reductions are replayed on a copy of the stack to see whether the keyword gets shifted.
        """
        states = self._states
        actions = states[state_stack[-1]]
        if keyword not in actions:
            return False
        if "IDENT" not in actions:
            return True
        stack = state_stack[:]
        while True:
            action = states[stack[-1]].get(keyword)
            if action is None:
                return False
            shift, arg = action
            if shift:
                return True
            size, origin, _callback = arg
            if size:
                del stack[-size:]
            stack.append(states[stack[-1]][origin][1])

    # ------------------------------------------------------------------ error messages

    def _bad_character(self, text: str, at: Tok, pos: int) -> CqlSyntaxError:
        unsupported = self._unsupported_statement(text)
        if unsupported is not None:
            return unsupported
        return syntax_error(at, f"no viable alternative at character '{text[pos]}'")

    def _unexpected(self, text: str, token: Tok, actions: dict[str, _Action]) -> CqlSyntaxError:
        unsupported = self._unsupported_statement(text)
        if unsupported is not None:
            return unsupported
        expecting = self._expecting(actions)
        if token.type == _END:
            return syntax_error(token, f"mismatched input '<EOF>'{expecting}")
        word = token.upper()
        construct = _UNSUPPORTED_AT.get(word)
        if construct is None and word in _ALTER_TABLE_VERBS:
            first = self._leading_words(text, 1)
            if first == ["ALTER"]:
                construct = f"ALTER TABLE {word}"
        if construct is not None:
            return syntax_error(token, f"unsupported construct: {construct}")
        return syntax_error(token, f"mismatched input '{token}'{expecting}")

    def _expecting(self, actions: Iterable[str]) -> str:
        described = sorted(
            {self._descriptions.get(name, name.lower()) for name in actions if name.isupper()}
        )
        if not described:
            return ""
        more = ", ..." if len(described) > 8 else ""
        return f" expecting {', '.join(described[:8])}{more}"

    def _leading_tokens(self, text: str, count: int) -> list[Tok]:
        """The first ``count`` tokens, keywords left as IDENT: only their text matters here."""
        tokens: list[Tok] = []
        pos = 0
        while len(tokens) < count:
            found = self._token.match(text, pos)
            kind = found.lastgroup if found is not None else None
            if found is None or kind is None:  # end of text, or a character no token takes
                break
            start = found.start(kind)
            line = text.count("\n", 0, start) + 1
            column = start - (text.rfind("\n", 0, start) + 1)
            tokens.append(make_token(kind, found.group(kind), line, column))
            pos = found.end()
        return tokens

    def _leading_words(self, text: str, count: int) -> list[str]:
        return [token.upper() for token in self._leading_tokens(text, count)]

    def _unsupported_statement(self, text: str) -> CqlSyntaxError | None:
        """Recognise statements refused because of their leading words (CREATE INDEX, ...)."""
        tokens = self._leading_tokens(text, 4)
        if not tokens:
            return None
        words = [token.upper() for token in tokens]
        first = words[0]
        # `SELECT json, a FROM` / `SELECT json AS j FROM` read a column named json.
        if first == "SELECT" and words[1:2] == ["JSON"] and words[2:3] not in _AFTER_COLUMN:
            return syntax_error(tokens[0], "unsupported construct: SELECT JSON")
        if first in _UNSUPPORTED_FIRST:
            return syntax_error(tokens[0], f"unsupported construct: {first}")
        if first in ("CREATE", "DROP", "ALTER") and len(words) > 1:
            size = _UNSUPPORTED_AFTER_DDL_VERB.get(words[1])
            if size is None and first == "ALTER" and words[1] in ("KEYSPACE", "SCHEMA"):
                size = 2
            if size is not None:
                construct = " ".join(words[:size])
                return syntax_error(tokens[0], f"unsupported construct: {construct}")
        return None


_PARSER = _Parser()


def parse(text: str) -> Statement:
    """Parse one CQL statement; raises CqlSyntaxError (or InvalidRequest) naming the problem."""
    return _PARSER.parse(text)
