"""The CIL reader: quoted tokens are names like bare ones, comments end where the compiler ends
them, and every text it cannot read is a CilSyntaxError with its line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hooks.api.cilreader import (
    Atom,
    CilSyntaxError,
    Form,
    Unclosed,
    UnmatchedClose,
    read,
    unquoted,
)


def shapes(text: str) -> list[object]:
    return [unquoted(form) for form in read(text)]


def test_a_statement_is_a_form_of_atoms_and_forms_with_lines() -> None:
    (form,) = read("(allow process\n  var_log_t (file (read open)))")
    assert form.head == "allow" and form.line == 1
    assert form.items[2] == Atom("var_log_t", 2)
    classperms = form.items[3]
    assert isinstance(classperms, Form) and classperms.line == 2
    assert unquoted(form) == ("allow", "process", "var_log_t", ("file", ("read", "open")))


@pytest.mark.parametrize(
    ("bare", "quoted"),
    [
        ("(typepermissive process)", '("typepermissive" process)'),
        ("(typepermissive process)", '("typepermissive" "process")'),
        (
            "(in container (allow process shadow_t (file (read))))",
            '("in" "container" (allow process "shadow_t" (file (read))))',
        ),
        (
            "(allow process .shadow_t (file (read)))",
            '(allow process ".shadow_t" ("file" ("read")))',
        ),
        ("(sid x)", '("sid" x)'),
    ],
)
def test_a_quoted_token_reads_as_the_bare_one(bare: str, quoted: str) -> None:
    assert shapes(quoted) == shapes(bare)


def test_the_atom_says_whether_it_was_quoted_and_keeps_what_is_inside() -> None:
    (form,) = read('(typetransition process tmp_t file "a (b) ; c" "")')
    assert form.items[0] == Atom("typetransition", 1, quoted=False)
    assert form.items[4] == Atom("a (b) ; c", 1, quoted=True)
    assert form.items[5] == Atom("", 1, quoted=True)


def test_a_form_without_a_keyword_has_no_head() -> None:
    (form,) = read("((allow) x)")
    assert form.head is None
    assert read("()")[0].head is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("; (sid kernel)\n(a)", [("a",)]),
        ("(a) ; ) ( unbalanced in a comment\n(b)", [("a",), ("b",)]),
        ('(a) ; "quoted ) in a comment"\n(b)', [("a",), ("b",)]),
        ("(a) ; don't \" stop\n(b)", [("a",), ("b",)]),
        ("(a) ; a comment at the end", [("a",)]),
        ("(a) ; a carriage return ends it\r(b)", [("a",), ("b",)]),
        ("(a) ;;* mid-line is a comment\n", [("a",)]),
        ("(a)\r\n\t (b)", [("a",), ("b",)]),
        ("; \u2028 and é are fine in a comment\n(a)", [("a",)]),
    ],
)
def test_comments_end_at_a_line_feed_or_a_carriage_return(
    text: str, expected: list[object]
) -> None:
    assert shapes(text) == expected


def test_lines_are_counted_at_line_feeds() -> None:
    forms = read("(a)\n\n(b) ; c\r(c)\n(d\n e)")
    assert [form.line for form in forms] == [1, 3, 3, 4]
    assert forms[3].items[1] == Atom("e", 5)


@pytest.mark.parametrize(
    ("text", "error", "line", "says"),
    [
        ("(a))", UnmatchedClose, 1, "unmatched ')'"),
        ("(a)\n)(b", UnmatchedClose, 2, "unmatched ')'"),
        ("(a (b)", Unclosed, None, "1 '(' not closed"),
        ("((", Unclosed, None, "2 '(' not closed"),
        ("a (b)", CilSyntaxError, 1, "'a' outside of a statement"),
        ('"a" (b)', CilSyntaxError, 1, "'a' outside of a statement"),
        ("(a)\n(b \u2028)", CilSyntaxError, 2, "character '\\u2028'"),
        ("(a \x0b)", CilSyntaxError, 1, "character '\\x0b'"),
        ("(a é)", CilSyntaxError, 1, "character 'é'"),
        ('(a "b\nc")', CilSyntaxError, 1, "unterminated string"),
        ('(a "b', CilSyntaxError, 1, "unterminated string"),
        ('(a "b\rc")', CilSyntaxError, 1, "must not hold a carriage return"),
        ('(a) ; "x\r" (b) "\n', CilSyntaxError, 1, "CIL versions differ"),
        ("(a)\n;;* lms 1 x.cil\n", CilSyntaxError, 2, "line marks"),
        (";;* lms 1 x.cil\n", CilSyntaxError, 1, "line marks"),
        ("(a)\n(b \x00)", CilSyntaxError, 2, "NUL"),
        ("; \x00\n(a)", CilSyntaxError, 1, "NUL"),
    ],
)
def test_text_the_compiler_would_not_read_is_an_error_with_its_line(
    text: str, error: type[CilSyntaxError], line: int | None, says: str
) -> None:
    with pytest.raises(error) as caught:
        read(text)
    assert caught.value.line == line
    assert says in caught.value.message


def test_nesting_is_limited_without_recursion() -> None:
    deep = "(a " * 10_000 + ")" * 10_000
    with pytest.raises(CilSyntaxError, match="nested more than 64 deep"):
        read(deep)
    assert len(read(deep, max_depth=10_000)) == 1  # read iteratively: no RecursionError
    assert len(read("(a " * 8 + ")" * 8, max_depth=8)) == 1


_SYMBOL = st.from_regex(r"[A-Za-z0-9_.\-]{1,8}", fullmatch=True)
_TREE = st.recursive(_SYMBOL, lambda inner: st.lists(inner, max_size=4), max_leaves=20)


def _render(tree: object, quote: bool) -> str:
    if isinstance(tree, str):
        return f'"{tree}"' if quote else tree
    assert isinstance(tree, list)
    return "(" + " ".join(_render(item, quote) for item in tree) + ")"


def _shape(tree: object) -> object:
    if isinstance(tree, str):
        return tree
    assert isinstance(tree, list)
    return tuple(_shape(item) for item in tree)


@given(st.lists(st.lists(_TREE, max_size=4), min_size=1, max_size=3))
@settings(max_examples=200, deadline=None)
def test_quoting_every_symbol_changes_nothing(statements: list[list[object]]) -> None:
    bare = "\n".join(_render(statement, quote=False) for statement in statements)
    quoted = "\n".join(_render(statement, quote=True) for statement in statements)
    assert shapes(bare) == shapes(quoted) == [_shape(statement) for statement in statements]


@given(st.text(alphabet='()"; \n\r\tab_.\x00é', max_size=60))
@settings(max_examples=400, deadline=None)
def test_any_text_is_read_or_refused_with_a_syntax_error(text: str) -> None:
    try:
        forms = read(text)
    except CilSyntaxError:
        return
    assert all(isinstance(form, Form) for form in forms)
