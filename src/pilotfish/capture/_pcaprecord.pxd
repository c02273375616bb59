# cython: language_level=3
# The classic pcap record header, written in C by the ring walks that turn frames into
# records (`_tpwalk.pcap_block`, `_xskframes.write_records`): seconds, fraction (µs or ns),
# captured length, wire length, each a little-endian u32 (what `pcapfile.PcapWriter` writes).

from libc.stdint cimport uint8_t, uint32_t

cdef enum:
    RECORD_HEADER = 16


cdef inline void _le32(uint8_t* w, uint32_t v) noexcept nogil:
    w[0] = v & 0xFF
    w[1] = (v >> 8) & 0xFF
    w[2] = (v >> 16) & 0xFF
    w[3] = (v >> 24) & 0xFF


cdef inline void write_record_header(uint8_t* w, uint32_t sec, uint32_t frac, uint32_t kept,
                                     uint32_t wire) noexcept nogil:
    _le32(w, sec)
    _le32(w + 4, frac)
    _le32(w + 8, kept)
    _le32(w + 12, wire)
