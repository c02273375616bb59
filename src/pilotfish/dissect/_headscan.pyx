# cython: language_level=3, boundscheck=False, wraparound=False
"""Scanner for whole HTTP/1 message heads (see http1whole.py for what it accepts).

One pass over the bytes of the head, in C: the start line and every header line are checked
against the strict subset http1whole documents, and the header dict is built as the
dissector keeps it.  Anything outside that subset returns None and the caller hands the
bytes to the incremental parser.
"""

from libc.string cimport memcmp

cdef enum:
    MAX_LENGTH_DIGITS = 18

# Token characters (RFC 9110 tchar) as a lookup table.
cdef unsigned char TCHAR[256]
cdef int _i
for _i in range(256):
    TCHAR[_i] = 0
_TOKEN_BYTES = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
for _i in range(len(_TOKEN_BYTES)):
    TCHAR[<int>_TOKEN_BYTES[_i]] = 1


cdef Py_ssize_t _length(dict headers, bint required):
    """The Content-Length as a number; 0 when absent and not required; -1 when it is absent
    but required, or not plain decimal digits."""
    cdef object value = headers.get("content-length")
    cdef str text
    cdef Py_ssize_t size = 0
    if value is None:
        return -1 if required else 0
    text = <str>value
    if not 0 < len(text) <= MAX_LENGTH_DIGITS:
        return -1
    for ch in text:
        if not "0" <= ch <= "9":
            return -1
        size = size * 10 + (ord(ch) - 48)
    return size


cdef inline bint _value_byte(unsigned char c):
    """Allowed in a header value or a reason phrase: tab, visible ASCII, space, obs-text."""
    return c == 9 or (c >= 32 and c != 127)


cdef object _headers(const unsigned char* p, Py_ssize_t at, Py_ssize_t limit, dict known, Py_ssize_t* end):
    """Header lines from `at` to the blank line (inclusive) -> dict, or None."""
    cdef dict headers = {}
    cdef Py_ssize_t name_at, name_end, value_at, value_end
    cdef object key, value, old
    cdef bytes name
    while True:
        if at + 1 >= limit:
            return None
        if p[at] == 13:
            if p[at + 1] != 10:
                return None
            end[0] = at + 2
            break
        name_at = at
        while at < limit and TCHAR[p[at]]:
            at += 1
        if at == name_at or at >= limit or p[at] != 58:  # ':'
            return None
        name_end = at
        at += 1
        while at < limit and (p[at] == 32 or p[at] == 9):
            at += 1
        value_at = at
        while at < limit and _value_byte(p[at]):
            at += 1
        if at + 1 >= limit or p[at] != 13 or p[at + 1] != 10:
            return None
        value_end = at
        at += 2
        name = (<const char*>p)[name_at:name_end]
        key = known.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
        value = (<const char*>p)[value_at:value_end].decode("latin-1")
        old = headers.get(key)
        if old is None:
            headers[key] = value
        elif key == "content-length":
            return None
        elif key == "set-cookie":
            headers[key] = old + "\n" + value
        else:
            headers[key] = old + ", " + value
    if "transfer-encoding" in headers or "upgrade" in headers:
        return None
    return headers


def scan_request(bytes data, Py_ssize_t start, Py_ssize_t max_head, dict known, frozenset methods):
    """The whole request at `start` as (end, method, target, 0, version, headers, head length,
    body), or None.  `known` maps usual header-name spellings to their dict keys; `methods`
    holds the methods accepted."""
    cdef const unsigned char* p = data
    cdef Py_ssize_t n = len(data)
    cdef Py_ssize_t limit = min(n, start + max_head)
    cdef Py_ssize_t at = start, method_end, target_at, target_end, end = 0, size
    while at < limit and TCHAR[p[at]]:
        at += 1
    if at == start or at >= limit or p[at] != 32:
        return None
    method_end = at
    at += 1
    target_at = at
    while at < limit and 33 <= p[at] <= 126:
        at += 1
    if at == target_at or at + 11 > limit or p[at] != 32:
        return None
    target_end = at
    at += 1
    if memcmp(p + at, b"HTTP/1.", 7) != 0 or not (p[at + 7] == 48 or p[at + 7] == 49):
        return None
    if p[at + 8] != 13 or p[at + 9] != 10:
        return None
    version = "1.1" if p[at + 7] == 49 else "1.0"
    method = data[start:method_end]
    if method not in methods:
        return None
    headers = _headers(p, at + 10, limit, known, &end)
    if headers is None:
        return None
    size = _length(headers, False)
    if size < 0 or end + size > n:
        return None
    return (
        end + size,
        method,
        data[target_at:target_end],
        0,
        version,
        headers,
        end - start,
        data[end:end + size],
    )


def scan_response(bytes data, Py_ssize_t start, Py_ssize_t max_head, dict known):
    """The whole final response (status 200-599) at `start` as (end, b"", reason, status,
    version, headers, head length, body), or None."""
    cdef const unsigned char* p = data
    cdef Py_ssize_t n = len(data)
    cdef Py_ssize_t limit = min(n, start + max_head)
    cdef Py_ssize_t at = start, reason_at, end = 0, size
    cdef int status
    if start + 13 > limit or memcmp(p + start, b"HTTP/1.", 7) != 0:
        return None
    if not (p[start + 7] == 48 or p[start + 7] == 49) or p[start + 8] != 32:
        return None
    if not (50 <= p[start + 9] <= 53 and 48 <= p[start + 10] <= 57 and 48 <= p[start + 11] <= 57):
        return None
    if p[start + 12] != 32:
        return None
    status = (p[start + 9] - 48) * 100 + (p[start + 10] - 48) * 10 + (p[start + 11] - 48)
    version = "1.1" if p[start + 7] == 49 else "1.0"
    at = reason_at = start + 13
    while at < limit and _value_byte(p[at]):
        at += 1
    if at + 1 >= limit or p[at] != 13 or p[at + 1] != 10:
        return None
    headers = _headers(p, at + 2, limit, known, &end)
    if headers is None:
        return None
    size = 0 if status == 204 or status == 304 else _length(headers, True)
    if size < 0 or end + size > n:
        return None
    return (end + size, b"", data[reason_at:at], status, version, headers, end - start,
            data[end:end + size])
