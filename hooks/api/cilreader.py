"""CIL text read as the CIL compiler reads it: atoms and parenthesised forms, with their lines.

The lexical rules are libsepol's (``cil_lexer.l`` and ``cil_parser.c``):

- blanks are space and tab; a line ends at a line feed or a carriage return;
- a symbol is a run of letters, digits and ``[].@=/*-_$%+!|&^:~`#{}'<>?,``;
- a quoted string runs from ``"`` to the next ``"`` on the same line (no line
  feed in between) and becomes an atom of its content, exactly like a symbol:
  ``("typepermissive" "process")`` is ``(typepermissive process)``, so a
  keyword is a keyword quoted or not;
- a comment runs from ``;`` to the next line end. The compiler keeps lexing
  inside a comment, so a quoted string there can hold a carriage return that
  does not end the comment; versions differ on that, and it is refused here;
- ``;;*`` at the start of a line is a high-level-language line mark (refused
  here: nothing a profile needs);
- any other character outside comments and quoted strings is an error, and so
  is an atom outside parentheses.

Lines are counted at line feeds, as an editor shows them. Reading is iterative
(no recursion) and nesting is limited by ``max_depth`` (``unquoted`` recurses,
at most that deep).
"""

from __future__ import annotations

import re
from typing import NamedTuple

DEFAULT_MAX_DEPTH = 64

# One pass over the text (``findall``): blanks before a token are dropped, and every other
# character belongs to exactly one token; "" is the end of the text.
_TOKEN = re.compile(
    r"""[ \t\r]*
    ( \n[ \t\r\n]*                    # line feeds (and the blanks after them)
    | [()]
    | [A-Za-z0-9\[\].@=/*\-_$%+!|&^:~`\#{}'<>?,]+   # a symbol
    | "[^"\n]*"                         # a quoted string
    | ;(?:"[^"\n]*"|"|[^"\n\r])*        # a comment, up to a line feed or carriage return
    | [\s\S]                            # anything else: an error (a lone '"' is unterminated)
    | \Z
    )""",
    re.VERBOSE,
)
_LINE_MARK = re.compile(r"(?:\A|[\n\r]);;\*")
_SYMBOL_START = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789[].@=/*-_$%+!|&^:~`#{}'<>?,"
)


class Atom(NamedTuple):
    """A symbol or a quoted string (``quoted`` says which; CIL reads both the same)."""

    text: str
    line: int
    quoted: bool = False


class Form(NamedTuple):
    """A parenthesised list, on the line of its ``(``."""

    items: tuple[Atom | Form, ...]
    line: int

    @property
    def head(self) -> str | None:
        """The keyword: the text of the first item when it is an atom."""
        first = self.items[0] if self.items else None
        return first.text if isinstance(first, Atom) else None


Node = Atom | Form


class CilSyntaxError(ValueError):
    """Text the CIL compiler would not read (or that this reader refuses), at ``line`` if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.message = message
        self.line = line


class UnmatchedClose(CilSyntaxError):
    """A ``)`` without its ``(``: in a wrapped text, it would close the wrapper."""


class Unclosed(CilSyntaxError):
    """``(`` left open at the end of the text."""

    def __init__(self, count: int) -> None:
        super().__init__(f"unbalanced parentheses, {count} '(' not closed")
        self.count = count


def read(text: str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> tuple[Form, ...]:
    """The top-level forms of ``text``, or CilSyntaxError saying where it cannot be read.

    A carriage return is a blank and ends a comment; it is not counted as a line.
    """
    _check_text(text)
    top: list[Form] = []
    stack: list[tuple[list[Atom | Form], int]] = []  # items so far and line of each open form
    items: list[Atom | Form] | None = None  # the innermost open form's
    line = 1
    new_atom = tuple.__new__
    for token in _TOKEN.findall(text):
        first = token[:1]
        if first in _SYMBOL_START:
            if items is None:
                raise CilSyntaxError(f"{token!r} outside of a statement", line)
            items.append(new_atom(Atom, (token, line, False)))
        elif first == "(":
            if len(stack) >= max_depth:
                raise CilSyntaxError(f"forms nested more than {max_depth} deep", line)
            items = []
            stack.append((items, line))
        elif first == ")":
            if not stack:
                raise UnmatchedClose("unmatched ')'", line)
            done, opened = stack.pop()
            form = Form(tuple(done), opened)
            if stack:
                items = stack[-1][0]
                items.append(form)
            else:
                items = None
                top.append(form)
        elif first == "\n":
            line += token.count("\n")
        elif first == '"':
            _check_quoted(token, line)
            if items is None:
                raise CilSyntaxError(f"{token[1:-1]!r} outside of a statement", line)
            items.append(new_atom(Atom, (token[1:-1], line, True)))
        elif first == ";":
            _check_comment(token, line)
        elif first:
            raise CilSyntaxError(
                f"character {token!r} is not allowed outside comments and strings", line
            )
    if stack:
        raise Unclosed(len(stack))
    return tuple(top)


def tokens(text: str) -> list[str]:
    """The ``(``, ``)`` and atoms of ``text`` as written (quoted ones with their quotes), without
    blanks and comments. Unlike ``read``, it does not check the tokens, only the text."""
    _check_text(text)
    return [token for token in _TOKEN.findall(text) if token[:1] not in _NOT_TOKENS]


_NOT_TOKENS = frozenset({"", "\n", ";"})


def _check_text(text: str) -> None:
    nul = text.find("\x00")
    if nul >= 0:
        raise CilSyntaxError("NUL characters are not allowed", text.count("\n", 0, nul) + 1)
    mark = _LINE_MARK.search(text)
    if mark is not None:  # a ';;*' at a line start is never in a string or a comment
        raise CilSyntaxError(
            "';;*' line marks are not allowed", text.count("\n", 0, mark.end()) + 1
        )


def _check_quoted(token: str, line: int) -> None:
    if len(token) == 1:
        raise CilSyntaxError("unterminated string", line)
    if "\r" in token:
        raise CilSyntaxError("a quoted string must not hold a carriage return", line)


def _check_comment(token: str, line: int) -> None:
    if "\r" in token:  # only a quoted string in it can hold one
        raise CilSyntaxError(
            "a quoted string in a comment holds a carriage return: "
            "CIL versions differ on where that comment ends",
            line,
        )


def unquoted(node: Node) -> str | tuple[object, ...]:
    """The shape of ``node`` as the compiler sees it: atoms as text, forms as tuples, no lines."""
    if isinstance(node, Atom):
        return node.text
    return tuple(unquoted(item) for item in node.items)
