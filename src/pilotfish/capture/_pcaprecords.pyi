from pilotfish.model import Frame

def parse_records(
    buf: bytes,
    off: int,
    out: list[Frame],
    room: int,
    little: bool,
    scale: float,
    linktype: int,
    snaplen: int,
    max_record: int,
) -> tuple[int, int, int, int, int]: ...
