import mmap

from pilotfish.model import Frame

def walk_block(
    ring: mmap.mmap | bytes | bytearray | memoryview,
    base: int,
    count: int,
    first: int,
    block_size: int,
    linktype: int,
    cooked: bool,
    loopback: int,
    out: list[Frame],
) -> tuple[int, int, int, int]: ...
def pcap_block(
    ring: mmap.mmap | bytes | bytearray | memoryview,
    base: int,
    count: int,
    first: int,
    block_size: int,
    cooked: bool,
    loopback: int,
    snaplen: int,
    nanosecond: bool,
    out: bytearray | memoryview,
    at: int,
) -> tuple[int, int, int, int, int, int]: ...
