"""Tokenizer for the pilotfish query language (a CEL subset).

`tokenize(text)` returns the whole token list or raises `QueryError` at the first bad
character.  Literals are decoded here: ints (decimal and hex, int64 range), doubles,
double/single-quoted and triple-quoted strings with CEL escapes, raw strings (`r"..."`).
Limits: the text may be at most `MAX_QUERY_LENGTH` characters; unsigned (`1u`) and bytes
(`b"..."`) literals are refused with a clear error rather than half-supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from pilotfish.query.errors import QueryError

MAX_QUERY_LENGTH: Final = 4096
INT64_MAX: Final = 2**63 - 1

# Token kinds: "int", "float", "string", "ident", "op", "eof".
_OPERATORS: Final = (
    "&&",
    "||",
    "==",
    "!=",
    "<=",
    ">=",
    "<",
    ">",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    ",",
    "?",
    ":",
)
_NUMBER: Final = re.compile(
    r"0[xX][0-9a-fA-F]+[uU]?|(?:[0-9]+\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+|"
    r"\.[0-9]+(?:[eE][+-]?[0-9]+)?)|[0-9]+[uU]?"
)
_IDENT: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE: Final = re.compile(r"(?:[ \t\r\n\f]+|//[^\n]*)+")
_SIMPLE_ESCAPES: Final = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "?": "?",
    '"': '"',
    "'": "'",
    "`": "`",
}
_HEX_ESCAPES: Final = {"x": 2, "X": 2, "u": 4, "U": 8}


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, source text, decoded value (literals) and 0-based column."""

    kind: str
    text: str
    value: int | float | str | None
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split `text` into tokens, ending with an "eof" token at `len(text)`."""
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"query longer than {MAX_QUERY_LENGTH} characters", MAX_QUERY_LENGTH)
    tokens: list[Token] = []
    i, n = 0, len(text)
    while True:
        space = _SPACE.match(text, i)
        if space is not None:
            i = space.end()
        if i >= n:
            tokens.append(Token("eof", "", None, n))
            return tokens
        token = _next_token(text, i)
        tokens.append(token)
        i += len(token.text)


def _next_token(text: str, i: int) -> Token:
    ch = text[i]
    if ch in "\"'":
        return _string(text, i, i, raw=False)
    if ch in "rRbB" and i + 1 < len(text) and text[i + 1] in "\"'":
        if ch in "bB":
            raise QueryError("bytes literals are not supported", i)
        return _string(text, i, i + 1, raw=True)
    if ch.isdigit() or (ch == "." and i + 1 < len(text) and text[i + 1].isdigit()):
        return _number(text, i)
    ident = _IDENT.match(text, i)
    if ident is not None:
        return Token("ident", ident.group(), None, i)
    for op in _OPERATORS:
        if text.startswith(op, i):
            return Token("op", op, None, i)
    if ch == "&" or ch == "|":
        raise QueryError(f"unexpected '{ch}' (did you mean '{ch}{ch}'?)", i)
    if ch == "=":
        raise QueryError("unexpected '=' (did you mean '=='?)", i)
    raise QueryError(f"unexpected character {ch!r}", i)


def _number(text: str, i: int) -> Token:
    match = _NUMBER.match(text, i)
    if match is None:  # pragma: no cover - guarded by the caller's digit check
        raise QueryError("malformed number", i)
    lexeme = match.group()
    end = match.end()
    if end < len(text) and (text[end].isalnum() or text[end] == "_"):
        raise QueryError(f"malformed number {text[i : end + 1]!r}", i)
    if lexeme[-1] in "uU":
        raise QueryError("unsigned integers are not supported", i)
    if lexeme[:2] in ("0x", "0X"):
        value: int | float = int(lexeme, 16)
    elif any(c in lexeme for c in ".eE"):
        value = float(lexeme)
        return Token("float", lexeme, value, i)
    else:
        value = int(lexeme)
    # INT64_MAX + 1 is allowed here so that `-9223372036854775808` parses; the parser
    # rejects it anywhere else.
    if value > INT64_MAX + 1:
        raise QueryError("integer literal out of int64 range", i)
    return Token("int", lexeme, value, i)


def _string(text: str, start: int, quote_at: int, raw: bool) -> Token:
    quote = text[quote_at]
    triple = text.startswith(quote * 3, quote_at)
    delim = quote * 3 if triple else quote
    i = quote_at + len(delim)
    out: list[str] = []
    n = len(text)
    while True:
        if i >= n:
            raise QueryError("unterminated string", start)
        if text.startswith(delim, i):
            end = i + len(delim)
            return Token("string", text[start:end], "".join(out), start)
        ch = text[i]
        if ch == "\n" and not triple:
            raise QueryError("newline inside a string", i)
        if ch == "\\" and not raw:
            decoded, i = _escape(text, i)
            out.append(decoded)
            continue
        out.append(ch)
        i += 1


def _escape(text: str, i: int) -> tuple[str, int]:
    """Decode the escape sequence starting at the backslash `text[i]`."""
    if i + 1 >= len(text):
        raise QueryError("unterminated escape sequence", i)
    kind = text[i + 1]
    if kind in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[kind], i + 2
    if kind in _HEX_ESCAPES:
        width = _HEX_ESCAPES[kind]
        digits = text[i + 2 : i + 2 + width]
        if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise QueryError(f"expected {width} hex digits after '\\{kind}'", i)
        code = int(digits, 16)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise QueryError("escape is not a valid Unicode code point", i)
        return chr(code), i + 2 + width
    if kind in "0123":
        digits = text[i + 1 : i + 4]
        if len(digits) != 3 or any(c not in "01234567" for c in digits):
            raise QueryError("expected 3 octal digits after '\\'", i)
        return chr(int(digits, 8)), i + 4
    raise QueryError(f"unknown escape sequence '\\{kind}'", i)
