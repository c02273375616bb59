from pilotfish.model import Frame

def split_frames(
    buf: bytes | bytearray | memoryview,
    lens: memoryview,
    n: int,
    ts: float,
    linktype: int,
    snaplen: int,
    out: list[Frame],
) -> int: ...
def write_records(
    buf: bytes | bytearray | memoryview,
    lens: memoryview,
    n: int,
    sec: int,
    frac: int,
    snaplen: int,
    out: bytearray | memoryview,
    at: int,
) -> tuple[int, int, int]: ...
