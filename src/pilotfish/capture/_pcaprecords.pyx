# cython: language_level=3, boundscheck=False, wraparound=False
"""Classic pcap records to frames, in C: the loop of `ClassicParser.parse` (pcapfile.py).

Each complete record of `buf` from `off` becomes a frame tuple (timestamp, link type,
captured bytes, original length) appended to `out`, at most `room` of them.  Returns
(offset after the last record taken, frames, captured bytes, records over the snaplen,
offset of a record longer than `max_record` or -1).  The caller raises on that last one.
"""


cdef inline unsigned long _u32(const unsigned char* p, bint little):
    if little:
        return (<unsigned long>p[3] << 24) | (<unsigned long>p[2] << 16) | (p[1] << 8) | p[0]
    return (<unsigned long>p[0] << 24) | (<unsigned long>p[1] << 16) | (p[2] << 8) | p[3]


def parse_records(bytes buf, Py_ssize_t off, list out, Py_ssize_t room, bint little,
                  double scale, object linktype, Py_ssize_t snaplen, Py_ssize_t max_record):
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = len(buf), start, end, nframes = 0, nbytes = 0, over = 0
    cdef unsigned long sec, frac, cap, orig
    while off + 16 <= n and nframes < room:
        sec = _u32(p + off, little)
        frac = _u32(p + off + 4, little)
        cap = _u32(p + off + 8, little)
        orig = _u32(p + off + 12, little)
        if cap > <unsigned long>snaplen:
            if cap > <unsigned long>max_record:
                return off, nframes, nbytes, over, off
            over += 1
        start = off + 16
        end = start + <Py_ssize_t>cap
        if end > n:
            break
        out.append((sec + frac * scale, linktype, buf[start:end], orig))
        nbytes += cap
        nframes += 1
        off = end
    return off, nframes, nbytes, over, -1
