# cython: language_level=3, boundscheck=False, wraparound=False
"""The frames of one retired TPACKET_V3 block, in C: the loop of `tpacket.RingWalker`.

`walk_block` reads `count` frames of the block at `base` of `ring` (starting `first` bytes
in) and appends one frame tuple (ring timestamp, link type, captured bytes, wire length) per
frame to `out`.  Raw sockets: a VLAN tag the NIC stripped (TP_STATUS_VLAN_VALID) is put
back after the two MAC addresses.  Cooked sockets: a LINUX_SLL2 header is built from the
frame's `sockaddr_ll`.  Returns (captured bytes, ring errors, VLAN tags restored).

Bounds: a header, offset or length reaching outside the block ends the walk with one ring
error; nothing outside [base, base + block_size) is read; a next offset shorter than a frame
header ends the walk.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

cdef enum:
    HDR_LEN = 48  # sizeof(struct tpacket3_hdr), TPACKET_ALIGNed
    HEAD_LEN = 26  # the header up to and with tp_mac
    VLAN_END = 38  # the header up to and with tp_vlan_tpid
    SLL_LEN = 20  # sizeof(struct sockaddr_ll)
    SLL2_LEN = 20
    STATUS_VLAN_VALID = 0x10
    STATUS_VLAN_TPID_VALID = 0x40


cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint16_t _u16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


def walk_block(const uint8_t[::1] ring, Py_ssize_t base, Py_ssize_t count, Py_ssize_t first,
               Py_ssize_t block_size, object linktype, bint cooked, list out):
    cdef const uint8_t* p = &ring[0]
    cdef Py_ssize_t limit = base + block_size, offset = base + first, start, stop, i
    cdef Py_ssize_t need = HDR_LEN + SLL_LEN if cooked else HEAD_LEN
    cdef uint32_t step, sec, nsec, snaplen, wirelen, status, tci
    cdef uint16_t mac, tpid
    cdef long long nbytes = 0
    cdef long errors = 0, restored = 0
    cdef bytes data
    cdef char* w
    if limit > ring.shape[0] or base < 0:
        return 0, 1, 0
    for i in range(count):
        if offset < base or offset + need > limit:
            errors += 1
            break
        step = _u32(p + offset)
        sec = _u32(p + offset + 4)
        nsec = _u32(p + offset + 8)
        snaplen = _u32(p + offset + 12)
        wirelen = _u32(p + offset + 16)
        status = _u32(p + offset + 20)
        mac = _u16(p + offset + 24)
        start = offset + mac
        stop = start + snaplen
        if stop > limit:
            errors += 1
            break
        if cooked:
            data = PyBytes_FromStringAndSize(NULL, SLL2_LEN + snaplen)
            w = PyBytes_AS_STRING(data)
            _sll2(p + offset + HDR_LEN, <uint8_t*>w)
            memcpy(w + SLL2_LEN, p + start, snaplen)
            out.append((sec + nsec * 1e-9, linktype, data, wirelen + SLL2_LEN))
            nbytes += snaplen + SLL2_LEN
        elif status & STATUS_VLAN_VALID and snaplen >= 12:
            if offset + VLAN_END > limit:
                errors += 1
                break
            tci = _u32(p + offset + 32)
            tpid = _u16(p + offset + 36)
            if not (tpid or status & STATUS_VLAN_TPID_VALID):
                tpid = 0x8100
            data = PyBytes_FromStringAndSize(NULL, snaplen + 4)
            w = PyBytes_AS_STRING(data)
            memcpy(w, p + start, 12)
            w[12] = <char>(tpid >> 8)
            w[13] = <char>(tpid & 0xFF)
            w[14] = <char>((tci >> 8) & 0xFF)
            w[15] = <char>(tci & 0xFF)
            memcpy(w + 16, p + start + 12, snaplen - 12)
            out.append((sec + nsec * 1e-9, linktype, data, wirelen + 4))
            nbytes += snaplen
            restored += 1
        else:
            data = PyBytes_FromStringAndSize(<const char*>(p + start), snaplen)
            out.append((sec + nsec * 1e-9, linktype, data, wirelen))
            nbytes += snaplen
        if step < HDR_LEN:
            break
        offset += step
    return nbytes, errors, restored


cdef void _sll2(const uint8_t* sll, uint8_t* w) noexcept nogil:
    """LINUX_SLL2 header from a sockaddr_ll: protocol (as stored, network order), reserved,
    ifindex and hatype in network order, pkttype, halen, address."""
    cdef int32_t ifindex
    cdef uint16_t hatype
    cdef uint32_t u
    memcpy(&ifindex, sll + 4, 4)
    memcpy(&hatype, sll + 8, 2)
    u = <uint32_t>ifindex
    w[0] = sll[2]
    w[1] = sll[3]
    w[2] = 0
    w[3] = 0
    w[4] = (u >> 24) & 0xFF
    w[5] = (u >> 16) & 0xFF
    w[6] = (u >> 8) & 0xFF
    w[7] = u & 0xFF
    w[8] = hatype >> 8
    w[9] = hatype & 0xFF
    w[10] = sll[10]
    w[11] = sll[11]
    memcpy(w + 12, sll + 12, 8)
