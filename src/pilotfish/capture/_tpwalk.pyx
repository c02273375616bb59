# cython: language_level=3, boundscheck=False, wraparound=False
"""The frames of one retired TPACKET_V3 block, in C: the loop of `tpacket.RingWalker`.

`walk_block` reads `count` frames of the block at `base` of `ring` (starting `first` bytes
in) and appends one frame tuple (ring timestamp, link type, captured bytes, wire length) per
frame to `out`; it returns (captured bytes, ring errors, VLAN tags restored, echoes).
`pcap_block` writes the same frames as classic pcap records (little-endian, µs or ns
timestamps, cut to `snaplen`) into `out` from offset `at`, for capture to a file with no
Python object per frame; it returns (end offset, frames, captured bytes, ring errors, VLAN
tags restored, echoes).  A record that would not fit `out` ends the walk as an error: the
caller gives it a block's worth of room, and a record never outgrows its ring slot.  Raw
sockets: a VLAN tag the NIC stripped (TP_STATUS_VLAN_VALID) is put back after the two MAC
addresses.  Cooked sockets: a LINUX_SLL2 header is built from the frame's `sockaddr_ll`.
Echoes: a loopback device hands a packet socket each frame twice, once as sent
(PACKET_OUTGOING) and once as received; with `loopback` set to its ifindex (0: none) the
sent copy is skipped and counted, so every frame is seen once.

Bounds: a header, offset or length reaching outside the block ends the walk with one ring
error; nothing outside [base, base + block_size) is read; a next offset shorter than a frame
header ends the walk.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

from pilotfish.capture._pcaprecord cimport RECORD_HEADER, write_record_header

cdef enum:
    HDR_LEN = 48  # sizeof(struct tpacket3_hdr), TPACKET_ALIGNed
    HEAD_LEN = 26  # the header up to and with tp_mac
    VLAN_END = 38  # the header up to and with tp_vlan_tpid
    SLL_LEN = 20  # sizeof(struct sockaddr_ll)
    SLL2_LEN = 20
    STATUS_VLAN_VALID = 0x10
    PACKET_OUTGOING = 4
    STATUS_VLAN_TPID_VALID = 0x40


cdef inline uint32_t _u32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint16_t _u16(const uint8_t* p) noexcept nogil:
    cdef uint16_t v
    memcpy(&v, p, 2)
    return v


cdef struct Slot:
    # one frame of a block, as its tpacket3_hdr describes it
    Py_ssize_t start      # offset of the frame's bytes in the ring
    uint32_t step, sec, nsec, snaplen, wirelen, tci
    uint16_t tpid
    bint vlan             # a tag to put back (raw sockets)
    Py_ssize_t sll        # offset of the sockaddr_ll
    bint echo             # loopback's copy of a frame it sent (seen again as received)


cdef int _slot(const uint8_t* p, Py_ssize_t offset, Py_ssize_t base, Py_ssize_t limit,
               bint cooked, int32_t loopback, Slot* s) noexcept nogil:
    """Read the frame header at `offset` into `s`; 0 when it does not fit the block.
    `loopback` (an ifindex, 0 for none): its outgoing frames are marked as echoes."""
    cdef Py_ssize_t need = HDR_LEN + SLL_LEN if cooked or loopback else HEAD_LEN
    cdef uint32_t status
    cdef int32_t ifindex
    if offset < base or offset + need > limit:
        return 0
    s.step = _u32(p + offset)
    s.sec = _u32(p + offset + 4)
    s.nsec = _u32(p + offset + 8)
    s.snaplen = _u32(p + offset + 12)
    s.wirelen = _u32(p + offset + 16)
    status = _u32(p + offset + 20)
    s.start = offset + _u16(p + offset + 24)
    s.sll = offset + HDR_LEN
    if s.start + s.snaplen > limit:
        return 0
    s.echo = False
    if loopback:
        memcpy(&ifindex, p + s.sll + 4, 4)
        s.echo = ifindex == loopback and p[s.sll + 10] == PACKET_OUTGOING
    s.vlan = not cooked and (status & STATUS_VLAN_VALID) != 0 and s.snaplen >= 12
    if s.vlan:
        if offset + VLAN_END > limit:
            return 0
        s.tci = _u32(p + offset + 32)
        s.tpid = _u16(p + offset + 36)
        if not (s.tpid or status & STATUS_VLAN_TPID_VALID):
            s.tpid = 0x8100
    return 1


cdef Py_ssize_t _copy(const uint8_t* p, Slot* s, bint cooked, uint8_t* w) noexcept nogil:
    """Write the frame as captured (SLL2 header or VLAN tag put back) to `w`; its length."""
    if cooked:
        _sll2(p + s.sll, w)
        memcpy(w + SLL2_LEN, p + s.start, s.snaplen)
        return SLL2_LEN + s.snaplen
    if s.vlan:
        memcpy(w, p + s.start, 12)
        w[12] = <uint8_t>(s.tpid >> 8)
        w[13] = <uint8_t>(s.tpid & 0xFF)
        w[14] = <uint8_t>((s.tci >> 8) & 0xFF)
        w[15] = <uint8_t>(s.tci & 0xFF)
        memcpy(w + 16, p + s.start + 12, s.snaplen - 12)
        return s.snaplen + 4
    memcpy(w, p + s.start, s.snaplen)
    return s.snaplen


cdef inline Py_ssize_t _extra(Slot* s, bint cooked) noexcept nogil:
    """Bytes the copy adds to the frame: the SLL2 header or the VLAN tag."""
    return SLL2_LEN if cooked else (4 if s.vlan else 0)


cdef enum:
    STOP = 0  # the walk ends here
    KEEP = 1  # `s` is a frame to hand over
    SKIP = 2  # an echo, skipped and counted; `offset` already moved on


cdef int _next(const uint8_t* p, Py_ssize_t* offset, Py_ssize_t base, Py_ssize_t limit,
               bint cooked, int32_t loopback, Slot* s, long* errors,
               long* echoes) noexcept nogil:
    """Read the frame at `offset[0]`: KEEP it, SKIP an echo, or STOP (a damaged header
    counts as an error)."""
    if not _slot(p, offset[0], base, limit, cooked, loopback, s):
        errors[0] += 1
        return STOP
    if s.echo:
        echoes[0] += 1
        return SKIP if _advance(s, offset) else STOP
    return KEEP


cdef inline bint _advance(Slot* s, Py_ssize_t* offset) noexcept nogil:
    """Move `offset` past the frame; False when its next offset says the block ends."""
    if s.step < HDR_LEN:
        return False
    offset[0] += s.step
    return True


def walk_block(const uint8_t[::1] ring, Py_ssize_t base, Py_ssize_t count, Py_ssize_t first,
               Py_ssize_t block_size, object linktype, bint cooked, int32_t loopback,
               list out):
    cdef const uint8_t* p = &ring[0]
    cdef Py_ssize_t limit = base + block_size, offset = base + first, i, size
    cdef long long nbytes = 0
    cdef long errors = 0, restored = 0, echoes = 0
    cdef int got
    cdef Slot s
    cdef bytes data
    if limit > ring.shape[0] or base < 0:
        return 0, 1, 0, 0
    for i in range(count):
        got = _next(p, &offset, base, limit, cooked, loopback, &s, &errors, &echoes)
        if got == STOP:
            break
        if got == SKIP:
            continue
        size = s.snaplen + _extra(&s, cooked)
        data = PyBytes_FromStringAndSize(NULL, size)
        _copy(p, &s, cooked, <uint8_t*>PyBytes_AS_STRING(data))
        out.append((s.sec + s.nsec * 1e-9, linktype, data, s.wirelen + _extra(&s, cooked)))
        nbytes += size if cooked else s.snaplen
        restored += s.vlan
        if not _advance(&s, &offset):
            break
    return nbytes, errors, restored, echoes


def pcap_block(const uint8_t[::1] ring, Py_ssize_t base, Py_ssize_t count, Py_ssize_t first,
               Py_ssize_t block_size, bint cooked, int32_t loopback, Py_ssize_t snaplen,
               bint nanosecond, uint8_t[::1] out, Py_ssize_t at):
    cdef const uint8_t* p = &ring[0]
    cdef uint8_t* w
    cdef Py_ssize_t limit = base + block_size, offset = base + first, i, size, kept, room
    cdef long long nbytes = 0
    cdef long frames = 0, errors = 0, restored = 0, echoes = 0
    cdef uint32_t wire, frac
    cdef int got
    cdef Slot s
    if limit > ring.shape[0] or base < 0 or at < 0 or at > out.shape[0] or snaplen < 0:
        return at, 0, 0, 1, 0, 0
    for i in range(count):
        got = _next(p, &offset, base, limit, cooked, loopback, &s, &errors, &echoes)
        if got == STOP:
            break
        if got == SKIP:
            continue
        size = s.snaplen + _extra(&s, cooked)
        room = out.shape[0] - at
        if room < RECORD_HEADER + size:
            errors += 1  # the caller gives a block's worth of room: never expected
            break
        w = &out[0] + at
        _copy(p, &s, cooked, w + RECORD_HEADER)
        kept = size if size <= snaplen else snaplen
        wire = s.wirelen + <uint32_t>_extra(&s, cooked)
        frac = s.nsec if nanosecond else s.nsec // 1000
        write_record_header(w, s.sec, frac, <uint32_t>kept, wire)
        at += RECORD_HEADER + kept
        frames += 1
        nbytes += size if cooked else s.snaplen
        restored += s.vlan
        if not _advance(&s, &offset):
            break
    return at, frames, nbytes, errors, restored, echoes


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
