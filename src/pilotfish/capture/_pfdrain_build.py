"""cffi builder for `pilotfish.capture._pfdrain`, the receive loop of the PF_RING source.

Calling `pfring_recv` once per packet through ctypes costs microseconds of interpreter work
per packet; this helper makes Python's cost one call per *batch*:

  pf_ring_drain   call the library's `pfring_recv` (passed as a function pointer, so nothing
                  here links against libpfring, which most machines lack) without waiting,
                  until `max_frames` frames were taken, the ring is empty, or fewer than
                  `snaplen` bytes of the caller's buffer are left; copy each frame's bytes
                  back to back into that buffer and write its captured length, wire length
                  and timestamp (seconds).
  pf_ring_records the same loop for capture to a file: each frame goes into the buffer as a
                  classic pcap record (16-byte little-endian header, µs or ns from the
                  header's struct timeval), the end offset into `*used`.

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
int pf_ring_records(void *recv, void *ring, uint32_t max_frames, uint32_t snaplen,
                    int nanosecond, uint8_t *buf, size_t cap, size_t *used, uint64_t *counts);
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

static void le32(uint8_t *w, uint32_t v)
{
    w[0] = v & 0xFF;
    w[1] = (v >> 8) & 0xFF;
    w[2] = (v >> 16) & 0xFF;
    w[3] = (v >> 24) & 0xFF;
}

/* The loop of both calls: `record` < 0 gives frames with lengths and stamps in the arrays;
   0 or 1 gives classic pcap records (µs or ns) back to back in buf, their end in *used. */
static int drain(pf_recv_fn fn, void *ring, uint32_t max_frames, uint32_t snaplen,
                 int record, uint8_t *buf, size_t cap, size_t *used, uint32_t *caplens,
                 uint32_t *wirelens, double *stamps, uint64_t *counts)
{
    union {
        struct pf_pkthdr_head head;
        unsigned char raw[512];
    } hdr;
    size_t at = 0;
    size_t header = record < 0 ? 0 : 16;
    uint32_t n = 0;

    while (n < max_frames && cap - at >= header + snaplen) {
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
        if (record < 0) {
            caplens[n] = caplen;
            wirelens[n] = wirelen;
            stamps[n] = (double)hdr.head.ts.tv_sec + (double)hdr.head.ts.tv_usec * 1e-6;
        } else {
            uint32_t usec = (uint32_t)hdr.head.ts.tv_usec;
            le32(buf + at, (uint32_t)hdr.head.ts.tv_sec);
            le32(buf + at + 4, record ? usec * 1000u : usec);
            le32(buf + at + 8, caplen);
            le32(buf + at + 12, wirelen);
        }
        memcpy(buf + at + header, data, caplen);
        at += header + caplen;
        n++;
    }
    if (used != NULL)
        *used = at;
    return (int)n;
}

int pf_ring_drain(void *recv, void *ring, uint32_t max_frames, uint32_t snaplen,
                  uint8_t *buf, size_t cap, uint32_t *caplens, uint32_t *wirelens,
                  double *stamps, uint64_t *counts)
{
    return drain((pf_recv_fn)recv, ring, max_frames, snaplen, -1, buf, cap, NULL, caplens,
                 wirelens, stamps, counts);
}

int pf_ring_records(void *recv, void *ring, uint32_t max_frames, uint32_t snaplen,
                    int nanosecond, uint8_t *buf, size_t cap, size_t *used, uint64_t *counts)
{
    return drain((pf_recv_fn)recv, ring, max_frames, snaplen, nanosecond ? 1 : 0, buf, cap,
                 used, NULL, NULL, NULL, counts);
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source("pilotfish.capture._pfdrain", SOURCE, extra_compile_args=["-O2"])

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
