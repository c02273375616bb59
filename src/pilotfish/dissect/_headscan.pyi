# (end, method or b"", target or reason, status or 0, version, headers, head length, body)
Message = tuple[int, bytes, bytes, int, str, dict[str, str], int, bytes]

def scan_request(
    data: bytes, start: int, max_head: int, known: dict[bytes, str], methods: frozenset[bytes]
) -> Message | None: ...
def scan_response(
    data: bytes, start: int, max_head: int, known: dict[bytes, str]
) -> Message | None: ...
