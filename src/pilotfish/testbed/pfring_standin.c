/*
 * A stand-in for libpfring, built by pilotfish.testbed.pfring_standin for the PF_RING
 * binding's tests and benchmark (this machine has no PF_RING kernel module).
 *
 * It exports the libpfring functions pilotfish binds, with their signatures and the
 * struct layouts of pfring.h (packed struct pfring_pkthdr starting with struct timeval,
 * caplen, len; pfring_stat as three u_int64), implemented on a plain AF_PACKET socket:
 * pfring_open creates the socket with protocol 0 (silent), pfring_enable_ring binds it to
 * ETH_P_ALL on the device, pfring_set_bpf_filter compiles with libpcap and attaches the
 * program.  pfring_recv hands out one packet per call from a batch it reads with one
 * recvmmsg (up to SHIM_SLOTS packets; all of a batch get the time the batch was read), and
 * hands back a pointer into its own buffer when buffer_len is 0 (the zero-copy convention).
 *
 * Build with -DSHIM_FAIL_ERRNO=<errno> to get a pfring_open that always fails with that
 * errno (to exercise the caller's diagnosis); -DSHIM_QUEUE_BYTES=<n> sizes the socket queue
 * (default 128 MiB), so a test can fill it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define SHIM_PROMISC (1 << 3)
#define SHIM_SLOT 65600 /* a 64 KiB super-frame and its link header */
#define SHIM_SLOTS 64
/*
 * The default queue holds about as many frames as pilotfish's default 64 MiB AF_PACKET ring
 * (some 40,000 1514-byte frames): the socket charges each frame its whole buffer (skb
 * truesize, several KiB for an MTU frame on veth), not its length, so 64 MiB of socket queue
 * held only about 15,000 and dropped at 100 kpps in bursts.  (The kernel doubles the figure
 * given here.)
 */
#ifndef SHIM_QUEUE_BYTES
#define SHIM_QUEUE_BYTES (128 << 20)
#endif

struct pfring_pkthdr {
	struct timeval ts;
	uint32_t caplen;
	uint32_t len;
	uint8_t extended_hdr[185];
} __attribute__((packed));

typedef struct {
	uint64_t recv;
	uint64_t drop;
	uint64_t shunt;
} pfring_stat;

typedef struct {
	int fd;
	int ifindex;
	uint32_t caplen;
	uint64_t received;
	uint64_t dropped;
	char app_name[64];
	unsigned int count; /* packets in the current batch */
	unsigned int next;  /* the next one to hand out */
	struct timeval stamp;
	struct mmsghdr msgs[SHIM_SLOTS];
	struct iovec iov[SHIM_SLOTS];
	unsigned char slots[SHIM_SLOTS][SHIM_SLOT];
} pfring;

pfring *pfring_open(const char *device_name, uint32_t caplen, uint32_t flags)
{
#ifdef SHIM_FAIL_ERRNO
	(void)device_name;
	(void)caplen;
	(void)flags;
	errno = SHIM_FAIL_ERRNO;
	return NULL;
#else
	unsigned int ifindex = if_nametoindex(device_name);
	if (ifindex == 0) {
		errno = ENODEV;
		return NULL;
	}
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0)
		return NULL;
	pfring *ring = calloc(1, sizeof(*ring));
	if (ring == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	ring->fd = fd;
	int queue = SHIM_QUEUE_BYTES;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &queue, sizeof(queue)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &queue, sizeof(queue));
	ring->ifindex = (int)ifindex;
	ring->caplen = caplen < SHIM_SLOT ? caplen : SHIM_SLOT;
	for (int i = 0; i < SHIM_SLOTS; i++) {
		ring->iov[i].iov_base = ring->slots[i];
		ring->iov[i].iov_len = ring->caplen;
		ring->msgs[i].msg_hdr.msg_iov = &ring->iov[i];
		ring->msgs[i].msg_hdr.msg_iovlen = 1;
	}
	if (flags & SHIM_PROMISC) {
		struct packet_mreq mreq;
		memset(&mreq, 0, sizeof(mreq));
		mreq.mr_ifindex = ring->ifindex;
		mreq.mr_type = PACKET_MR_PROMISC;
		setsockopt(fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, sizeof(mreq));
	}
	return ring;
#endif
}

int pfring_set_application_name(pfring *ring, char *name)
{
	strncpy(ring->app_name, name, sizeof(ring->app_name) - 1);
	return 0;
}

int pfring_set_bpf_filter(pfring *ring, const char *filter_buffer)
{
	pcap_t *dead = pcap_open_dead(DLT_EN10MB, (int)ring->caplen);
	struct bpf_program program;
	if (dead == NULL)
		return -1;
	if (pcap_compile(dead, &program, filter_buffer, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		pcap_close(dead);
		return -1;
	}
	struct sock_fprog fprog = {
		.len = (unsigned short)program.bf_len,
		.filter = (struct sock_filter *)program.bf_insns,
	};
	int rc = setsockopt(ring->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog));
	pcap_freecode(&program);
	pcap_close(dead);
	return rc == 0 ? 0 : -1;
}

int pfring_enable_ring(pfring *ring)
{
	struct sockaddr_ll address;
	memset(&address, 0, sizeof(address));
	address.sll_family = AF_PACKET;
	address.sll_protocol = htons(ETH_P_ALL);
	address.sll_ifindex = ring->ifindex;
	return bind(ring->fd, (struct sockaddr *)&address, sizeof(address)) == 0 ? 0 : -1;
}

int pfring_recv(pfring *ring, unsigned char **buffer, unsigned int buffer_len,
		struct pfring_pkthdr *hdr, uint8_t wait_for_incoming_packet)
{
	if (ring->next == ring->count) {
		int flags = MSG_TRUNC | (wait_for_incoming_packet ? MSG_WAITFORONE : MSG_DONTWAIT);
		int got = recvmmsg(ring->fd, ring->msgs, SHIM_SLOTS, flags, NULL);
		if (got <= 0)
			return (got == 0 || errno == EAGAIN || errno == EWOULDBLOCK ||
				errno == EINTR) ? 0 : -1;
		ring->count = (unsigned int)got;
		ring->next = 0;
		gettimeofday(&ring->stamp, NULL);
	}
	unsigned int i = ring->next++;
	uint32_t wirelen = ring->msgs[i].msg_len;
	uint32_t caplen = wirelen < ring->caplen ? wirelen : ring->caplen;
	if (buffer_len == 0) {
		*buffer = ring->slots[i];
	} else {
		if (caplen > buffer_len)
			caplen = buffer_len;
		memcpy(*buffer, ring->slots[i], caplen);
	}
	memset(hdr, 0, sizeof(*hdr));
	hdr->ts = ring->stamp;
	hdr->caplen = caplen;
	hdr->len = wirelen;
	ring->received++;
	return 1;
}

int pfring_stats(pfring *ring, pfring_stat *stats)
{
	struct tpacket_stats kernel;
	socklen_t size = sizeof(kernel);
	if (getsockopt(ring->fd, SOL_PACKET, PACKET_STATISTICS, &kernel, &size) == 0)
		ring->dropped += kernel.tp_drops;
	stats->recv = ring->received;
	stats->drop = ring->dropped;
	stats->shunt = 0;
	return 0;
}

int pfring_get_selectable_fd(pfring *ring)
{
	return ring->fd;
}

int pfring_poll(pfring *ring, unsigned int wait_duration)
{
	if (ring->next < ring->count)
		return 1; /* packets of the last batch still to hand out */
	struct pollfd pfd = {.fd = ring->fd, .events = POLLIN};
	return poll(&pfd, 1, (int)wait_duration);
}

void pfring_close(pfring *ring)
{
	if (ring == NULL)
		return;
	close(ring->fd);
	free(ring);
}
