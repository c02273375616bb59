"""cffi builder for `pilotfish.capture._pfdrain`, the receive loop of the PF_RING source.

Calling `pfring_recv` once per packet through ctypes costs microseconds of interpreter work
per packet; this helper makes Python's cost one call per *batch*:

  pf_ring_drain   call the library's `pfring_recv` (passed as a function pointer, so nothing
                  here links against libpfring, which most machines lack) without waiting,
                  until `max_frames` frames were taken, the ring is empty, or fewer than
                  `snaplen` bytes of the caller's buffer are left; copy each frame's bytes
                  back to back into that buffer and write its captured length, wire length
                  and timestamp (seconds).

Frames whose header says caplen > len, or whose data pointer is NULL, are skipped and counted
in `counts[0]`; a failed `pfring_recv` call (negative return) ends the batch and is counted in
`counts[1]`.  The return value is the number of frames written.  The header buffer is 512
bytes, larger than any `struct pfring_pkthdr` so far (209 bytes, packed: struct timeval,
caplen, len, then the extended header), so a longer future layout cannot write past it.
"""

from __future__ import annotations

from cffi import FFI

CDEF = """
int pf_ring_drain(void *recv, void *ring, uint32_t max_frames, uint32_t snaplen,
                  uint8_t *buf, size_t cap, uint32_t *caplens, uint32_t *wirelens,
                  double *stamps, uint64_t *counts);
"""

SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <sys/time.h>

struct pf_pkthdr_head {
    struct timeval ts;
    uint32_t caplen;
    uint32_t len;
} __attribute__((packed));

typedef int (*pf_recv_fn)(void *ring, unsigned char **buffer, unsigned int buffer_len,
                          void *hdr, uint8_t wait_for_incoming_packet);

int pf_ring_drain(void *recv, void *ring, uint32_t max_frames, uint32_t snaplen,
                  uint8_t *buf, size_t cap, uint32_t *caplens, uint32_t *wirelens,
                  double *stamps, uint64_t *counts)
{
    pf_recv_fn fn = (pf_recv_fn)recv;
    union {
        struct pf_pkthdr_head head;
        unsigned char raw[512];
    } hdr;
    size_t used = 0;
    uint32_t n = 0;

    while (n < max_frames && cap - used >= snaplen) {
        unsigned char *data = NULL;
        int got = fn(ring, &data, 0, &hdr, 0);
        if (got <= 0) {
            if (got < 0)
                counts[1]++;
            break;
        }
        uint32_t caplen = hdr.head.caplen;
        uint32_t wirelen = hdr.head.len;
        if (data == NULL || caplen > wirelen) {
            counts[0]++;
            continue;
        }
        if (caplen > snaplen)
            caplen = snaplen;
        memcpy(buf + used, data, caplen);
        used += caplen;
        caplens[n] = caplen;
        wirelens[n] = wirelen;
        stamps[n] = (double)hdr.head.ts.tv_sec + (double)hdr.head.ts.tv_usec * 1e-6;
        n++;
    }
    return (int)n;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("pilotfish.capture._pfdrain", SOURCE, extra_compile_args=["-O2"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
