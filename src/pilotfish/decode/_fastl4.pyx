# cython: language_level=3, boundscheck=False, wraparound=False
"""The decoder's fast path in C: the ordinary frames straight to an `L4Packet` tuple.

Ethernet (untagged or one 802.1Q tag) or Linux SLL2, then IPv4 without options or
fragmentation or IPv6 without extension headers, then TCP or UDP to a port that is not a
tunnel's, nothing cut.  Everything else returns None and takes `Decoder.decode_general`
(decoder.py), which the property tests hold to the same answers.
"""

cdef enum:
    ETHERTYPE_IPV4 = 0x0800
    ETHERTYPE_IPV6 = 0x86DD
    ETHERTYPE_VLAN = 0x8100
    LINKTYPE_ETHERNET = 1
    LINKTYPE_LINUX_SLL2 = 276


cdef inline unsigned int _u16(const unsigned char* p):
    return (p[0] << 8) | p[1]


cdef inline unsigned long _u32(const unsigned char* p):
    return (<unsigned long>p[0] << 24) | (<unsigned long>p[1] << 16) | (p[2] << 8) | p[3]


def fast_l4(bytes data, int linktype, frozenset tunnel_ports):
    """(proto, src, sport, dst, dport, seq, ack, flags, payload) or None (see above)."""
    cdef const unsigned char* p = data
    cdef Py_ssize_t size = len(data), l3, l4, end, start, stop
    cdef unsigned int ethertype, proto, sport, dport, word
    cdef bytes src, dst
    if linktype == LINKTYPE_ETHERNET:
        if size < 14:
            return None
        ethertype = _u16(p + 12)
        l3 = 14
        if ethertype == ETHERTYPE_VLAN:
            if size < 18:
                return None
            ethertype = _u16(p + 16)
            l3 = 18
    elif linktype == LINKTYPE_LINUX_SLL2:
        if size < 20:
            return None
        ethertype = _u16(p)
        l3 = 20
    else:
        return None
    if ethertype == ETHERTYPE_IPV4:
        if size < l3 + 40 or p[l3] != 0x45:
            return None
        if (_u16(p + l3 + 6) & 0x3FFF) != 0:  # MF or a fragment offset
            return None
        proto = p[l3 + 9]
        end = l3 + _u16(p + l3 + 2)
        l4 = l3 + 20
        src = data[l3 + 12 : l3 + 16]
        dst = data[l3 + 16 : l3 + 20]
    elif ethertype == ETHERTYPE_IPV6:
        if size < l3 + 60 or (p[l3] >> 4) != 6:
            return None
        end = _u16(p + l3 + 4)
        if end == 0:
            return None  # a jumbogram or nothing: the general path decides
        proto = p[l3 + 6]
        l4 = l3 + 40
        end += l4
        src = data[l3 + 8 : l3 + 24]
        dst = data[l3 + 24 : l3 + 40]
    else:
        return None
    if end > size:
        return None
    sport = _u16(p + l4)
    dport = _u16(p + l4 + 2)
    if proto == 6:
        word = _u16(p + l4 + 12)
        start = l4 + ((word >> 10) & 0x3C)
        if start > end or word < 0x5000:
            return None
        return (6, src, sport, dst, dport, _u32(p + l4 + 4), _u32(p + l4 + 8), word & 0xFF,
                data[start:end])
    if proto == 17:
        stop = l4 + _u16(p + l4 + 4)
        if not (l4 + 8 <= stop <= end) or dport in tunnel_ports:
            return None
        return (17, src, sport, dst, dport, 0, 0, 0, data[l4 + 8 : stop])
    return None
