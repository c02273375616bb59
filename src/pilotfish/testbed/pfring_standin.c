/*
 * A stand-in for libpfring, built by pilotfish.testbed.pfring_standin for the PF_RING
 * binding's tests and benchmark (this machine has no PF_RING kernel module).
 *
 * It exports the libpfring functions pilotfish binds, with their signatures and the
 * struct layouts of pfring.h (packed struct pfring_pkthdr starting with struct timeval,
 * caplen, len; pfring_stat as three u_int64), implemented on a plain AF_PACKET socket:
 * pfring_open creates the socket with protocol 0 (silent), pfring_enable_ring binds it to
 * ETH_P_ALL on the device, pfring_set_bpf_filter compiles with libpcap and attaches the
 * program, pfring_recv uses recvfrom and hands back a pointer into its own buffer when
 * buffer_len is 0 (the zero-copy convention).
 *
 * Build with -DSHIM_FAIL_ERRNO=<errno> to get a pfring_open that always fails with that
 * errno (to exercise the caller's diagnosis); -DSHIM_QUEUE_BYTES=<n> sizes the socket queue
 * (default 32 MiB), so a test can fill it.
 */
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
#define SHIM_BUFFER 262144
#ifndef SHIM_QUEUE_BYTES
#define SHIM_QUEUE_BYTES (32 << 20)
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
	unsigned char buffer[SHIM_BUFFER];
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
	/* a ring-sized queue, as PF_RING's own slots would be */
	int queue = SHIM_QUEUE_BYTES;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &queue, sizeof(queue)) != 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &queue, sizeof(queue));
	ring->ifindex = (int)ifindex;
	ring->caplen = caplen < SHIM_BUFFER ? caplen : SHIM_BUFFER;
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
	ssize_t n = recv(ring->fd, ring->buffer, sizeof(ring->buffer),
			 MSG_TRUNC | (wait_for_incoming_packet ? 0 : MSG_DONTWAIT));
	if (n < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
	uint32_t caplen = (uint32_t)n;
	if (caplen > ring->caplen)
		caplen = ring->caplen;
	if (buffer_len == 0) {
		*buffer = ring->buffer;
	} else {
		if (caplen > buffer_len)
			caplen = buffer_len;
		memcpy(*buffer, ring->buffer, caplen);
	}
	struct timeval now;
	gettimeofday(&now, NULL);
	memset(hdr, 0, sizeof(*hdr));
	hdr->ts = now;
	hdr->caplen = caplen;
	hdr->len = (uint32_t)n;
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
