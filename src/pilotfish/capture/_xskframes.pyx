# cython: language_level=3, boundscheck=False, wraparound=False
"""Frames of one AF_XDP batch, in C: the loop of `afxdp.AfXdpSource`.

`split_frames` cuts `buf` (the batch's frames back to back, as the helper copied them out of
the UMEM) at the `n` lengths of `lens` and appends one frame tuple (ts, link type, captured
bytes, wire length) per frame to `out`, the bytes cut to `snaplen`.  Returns the captured
bytes.  `write_records` writes the same frames as classic pcap records (little-endian, one
timestamp `sec`.`frac` for the batch, cut to `snaplen`) into `out` from offset `at`, and
returns (end offset, frames, captured bytes).  Bounds: a length reaching past the end of
`buf` ends the batch there, and so does a record that would not fit `out`.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t
from libc.string cimport memcpy

from pilotfish.capture._pcaprecord cimport RECORD_HEADER, write_record_header


def split_frames(const uint8_t[::1] buf, const uint32_t[::1] lens, Py_ssize_t n,
                 double ts, object linktype, Py_ssize_t snaplen, list out):
    cdef Py_ssize_t i, off = 0, size, length, total = buf.shape[0]
    cdef long long nbytes = 0
    cdef bytes data
    if n > lens.shape[0]:
        n = lens.shape[0]
    for i in range(n):
        length = lens[i]
        if off + length > total:
            break
        size = length if length <= snaplen else snaplen
        data = PyBytes_FromStringAndSize(<const char*>&buf[off] if size else NULL, size)
        out.append((ts, linktype, data, length))
        nbytes += size
        off += length
    return nbytes


def write_records(const uint8_t[::1] buf, const uint32_t[::1] lens, Py_ssize_t n,
                  uint32_t sec, uint32_t frac, Py_ssize_t snaplen, uint8_t[::1] out,
                  Py_ssize_t at):
    cdef Py_ssize_t i, off = 0, size, length, total = buf.shape[0]
    cdef long long nbytes = 0
    cdef long frames = 0
    cdef uint8_t* w
    if n > lens.shape[0]:
        n = lens.shape[0]
    if at < 0 or at > out.shape[0] or snaplen < 0:
        return at, 0, 0
    for i in range(n):
        length = lens[i]
        if off + length > total:
            break
        size = length if length <= snaplen else snaplen
        if out.shape[0] - at < RECORD_HEADER + size:
            break
        w = &out[0] + at
        write_record_header(w, sec, frac, <uint32_t>size, <uint32_t>length)
        if size:
            memcpy(w + RECORD_HEADER, &buf[off], size)
        at += RECORD_HEADER + size
        nbytes += size
        frames += 1
        off += length
    return at, frames, nbytes
