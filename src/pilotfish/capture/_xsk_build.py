"""cffi builder for `pilotfish.capture._xsk`, the small C helper behind the AF_XDP source.

libxdp's ring accessors (`xsk_ring_cons__peek`, `xsk_ring_prod__reserve`, ...) are
`static inline` in <xdp/xsk.h>, so Python cannot reach them through ctypes.  This helper
wraps them in five exported functions so that Python makes one call per *batch*:

  pf_xsk_open   allocate a page-aligned UMEM, create the fill/completion rings, pre-fill the
                fill ring with every frame, create an RX-only XSK on (ifname, queue) with
                libxdp's default program: native (driver) mode first, SKB mode as fallback.
  pf_xsk_recv   peek up to `max_frames` RX descriptors, copy their bytes back to back into a
                caller buffer, write each length, hand the frames back to the fill ring and
                release the RX descriptors -- all in one call.
  pf_xsk_stats  XDP_STATISTICS of the socket (six counters).
  pf_xsk_info   fd, attach mode obtained (1 = SKB, 2 = native) and zero-copy flag.
  pf_xsk_close  delete the XSK (libxdp detaches its program), the UMEM, free the memory.

libbpf's and libxdp's own stderr printing is silenced (process-wide) by pf_xsk_open; errors
come back as negative errno values plus a short text instead.
Limits: RX only (no TX ring); one queue per handle; `frames` is capped at 1 << 20 and the
frame size must be a power of two from 2048 to the page size (aligned UMEM).  The module is
built with `optional=True`: on a machine without libxdp headers the build is skipped and
`pilotfish.capture.afxdp` declines with "AF_XDP helper not built".
"""

from __future__ import annotations

from cffi import FFI

CDEF = """
struct pf_xsk;
int pf_xsk_open(const char *ifname, uint32_t queue, uint32_t frames, uint32_t frame_size,
                int mode, struct pf_xsk **out, char *err, size_t errlen);
int pf_xsk_recv(struct pf_xsk *x, uint32_t max_frames, uint8_t *buf, size_t cap,
                uint32_t *lens);
int pf_xsk_stats(struct pf_xsk *x, uint64_t *out6);
int pf_xsk_info(struct pf_xsk *x, int *fd, int *mode, int *zerocopy);
void pf_xsk_close(struct pf_xsk *x);
"""

SOURCE = r"""
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include <xdp/xsk.h>

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#define PF_MODE_AUTO 0
#define PF_MODE_SKB 1
#define PF_MODE_DRV 2

struct pf_xsk {
    struct xsk_ring_prod fq;
    struct xsk_ring_cons cq;
    struct xsk_ring_cons rx;
    struct xsk_umem *umem;
    struct xsk_socket *xsk;
    void *area;
    uint64_t frame_mask;
    uint32_t frame_size;
    int mode;
};

static int pf_quiet_bpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    (void)level; (void)fmt; (void)ap;
    return 0;
}

static int pf_quiet_xdp(enum libxdp_print_level level, const char *fmt, va_list ap)
{
    (void)level; (void)fmt; (void)ap;
    return 0;
}

static uint32_t pf_pow2(uint32_t n)
{
    uint32_t p = 64;
    while (p < n)
        p <<= 1;
    return p;
}

static void pf_free(struct pf_xsk *x)
{
    if (x->xsk)
        xsk_socket__delete(x->xsk);
    if (x->umem)
        xsk_umem__delete(x->umem);
    free(x->area);
    free(x);
}

static int pf_try(struct pf_xsk *x, const char *ifname, uint32_t queue, uint32_t frames,
                  uint32_t ring, int mode, char *err, size_t errlen)
{
    struct xsk_umem_config uc;
    struct xsk_socket_config sc;
    size_t size = (size_t)frames * x->frame_size;
    uint32_t idx = 0, i;
    int rc;

    memset(&uc, 0, sizeof uc);
    uc.fill_size = ring;
    uc.comp_size = 64;
    uc.frame_size = x->frame_size;
    rc = xsk_umem__create(&x->umem, x->area, size, &x->fq, &x->cq, &uc);
    if (rc) {
        x->umem = NULL;
        snprintf(err, errlen, "xsk_umem__create: %s", strerror(rc < 0 ? -rc : rc));
        return rc < 0 ? rc : -rc;
    }
    if (xsk_ring_prod__reserve(&x->fq, frames, &idx) != frames) {
        snprintf(err, errlen, "fill ring smaller than %u frames", frames);
        return -ENOSPC;
    }
    for (i = 0; i < frames; i++)
        *xsk_ring_prod__fill_addr(&x->fq, idx + i) = (uint64_t)i * x->frame_size;
    xsk_ring_prod__submit(&x->fq, frames);

    memset(&sc, 0, sizeof sc);
    sc.rx_size = ring;
    sc.tx_size = 0;
    sc.xdp_flags = XDP_FLAGS_UPDATE_IF_NOEXIST |
                   (mode == PF_MODE_DRV ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
    sc.bind_flags = 0;
    rc = xsk_socket__create(&x->xsk, ifname, queue, x->umem, &x->rx, NULL, &sc);
    if (rc) {
        x->xsk = NULL;
        snprintf(err, errlen, "xsk_socket__create (%s mode): %s",
                 mode == PF_MODE_DRV ? "native" : "skb", strerror(rc < 0 ? -rc : rc));
        return rc < 0 ? rc : -rc;
    }
    x->mode = mode;
    return 0;
}

int pf_xsk_open(const char *ifname, uint32_t queue, uint32_t frames, uint32_t frame_size,
                int mode, struct pf_xsk **out, char *err, size_t errlen)
{
    struct pf_xsk *x;
    long page = sysconf(_SC_PAGESIZE);
    uint32_t ring;
    int rc;

    *out = NULL;
    err[0] = '\0';
    if (frames == 0 || frames > (1u << 20) || frame_size < 2048 ||
        frame_size > (uint32_t)page || (frame_size & (frame_size - 1))) {
        snprintf(err, errlen, "bad UMEM geometry %u x %u", frames, frame_size);
        return -EINVAL;
    }
    libbpf_set_print(pf_quiet_bpf);
    libxdp_set_print(pf_quiet_xdp);
    x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    x->frame_size = frame_size;
    x->frame_mask = ~((uint64_t)frame_size - 1);
    if (posix_memalign(&x->area, (size_t)page, (size_t)frames * frame_size)) {
        free(x);
        snprintf(err, errlen, "cannot allocate %u UMEM frames", frames);
        return -ENOMEM;
    }
    memset(x->area, 0, (size_t)frames * frame_size);
    ring = pf_pow2(frames);
    if (mode == PF_MODE_AUTO || mode == PF_MODE_DRV) {
        rc = pf_try(x, ifname, queue, frames, ring, PF_MODE_DRV, err, errlen);
        if (rc == 0 || mode == PF_MODE_DRV)
            goto done;
        if (x->umem)
            xsk_umem__delete(x->umem);
        x->umem = NULL;
    }
    rc = pf_try(x, ifname, queue, frames, ring, PF_MODE_SKB, err, errlen);
done:
    if (rc) {
        pf_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

int pf_xsk_recv(struct pf_xsk *x, uint32_t max_frames, uint8_t *buf, size_t cap,
                uint32_t *lens)
{
    uint32_t idx_rx = 0, idx_fq = 0, n, i, taken = 0;
    size_t off = 0;

    n = xsk_ring_cons__peek(&x->rx, max_frames, &idx_rx);
    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx_rx + i);
        if (off + d->len > cap)
            break;
        memcpy(buf + off, xsk_umem__get_data(x->area, d->addr), d->len);
        lens[i] = d->len;
        off += d->len;
        taken++;
    }
    if (taken == 0) {
        xsk_ring_cons__cancel(&x->rx, n);
        return -ENOBUFS;
    }
    /* every frame is either in the fill ring or in our hands, so this always fits */
    if (xsk_ring_prod__reserve(&x->fq, taken, &idx_fq) != taken) {
        xsk_ring_cons__cancel(&x->rx, n);
        return -ENOSPC;
    }
    for (i = 0; i < taken; i++) {
        const struct xdp_desc *d = xsk_ring_cons__rx_desc(&x->rx, idx_rx + i);
        *xsk_ring_prod__fill_addr(&x->fq, idx_fq + i) = d->addr & x->frame_mask;
    }
    xsk_ring_prod__submit(&x->fq, taken);
    if (taken < n)
        xsk_ring_cons__cancel(&x->rx, n - taken);
    xsk_ring_cons__release(&x->rx, taken);
    return (int)taken;
}

int pf_xsk_stats(struct pf_xsk *x, uint64_t *out6)
{
    struct xdp_statistics st;
    socklen_t len = sizeof st;

    memset(&st, 0, sizeof st);
    if (getsockopt(xsk_socket__fd(x->xsk), SOL_XDP, XDP_STATISTICS, &st, &len))
        return -errno;
    out6[0] = st.rx_dropped;
    out6[1] = st.rx_invalid_descs;
    out6[2] = st.tx_invalid_descs;
    out6[3] = st.rx_ring_full;
    out6[4] = st.rx_fill_ring_empty_descs;
    out6[5] = st.tx_ring_empty_descs;
    return 0;
}

int pf_xsk_info(struct pf_xsk *x, int *fd, int *mode, int *zerocopy)
{
    struct xdp_options opts;
    socklen_t len = sizeof opts;

    *fd = xsk_socket__fd(x->xsk);
    *mode = x->mode;
    *zerocopy = 0;
    if (getsockopt(*fd, SOL_XDP, XDP_OPTIONS, &opts, &len))
        return -errno;
    *zerocopy = (opts.flags & XDP_OPTIONS_ZEROCOPY) ? 1 : 0;
    return 0;
}

void pf_xsk_close(struct pf_xsk *x)
{
    if (x)
        pf_free(x);
}
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "pilotfish.capture._xsk",
    SOURCE,
    libraries=["xdp", "bpf"],
    extra_compile_args=["-O2"],
    optional=True,  # no libxdp headers: skip the build, afxdp declines at open()
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
