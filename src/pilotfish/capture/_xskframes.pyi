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
