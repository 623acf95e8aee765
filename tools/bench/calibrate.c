/*
 * calibrate.c - tpc-bench --calibrate: what this machine's floor is, measured in the
 * same run and the same folder as the benchmark's data, so the benchmark can state its
 * result as ratios that hold on a shared, noisy machine.
 *
 *  - write+fdatasync: 4 KiB pwrite()s cycling over a preallocated 1 MiB file in the run
 *    folder, each followed by fdatasync(), for the requested time (the pattern of a log
 *    that overwrites pages in place, as LMDB does; no file growth, so no metadata sync);
 *  - loopback round trip: 64-byte ping-pong over one 127.0.0.1 TCP connection
 *    (TCP_NODELAY) to an echo thread, after 1000 unmeasured round trips.
 *
 * Both go into log-linear histograms; the file is removed afterwards.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "util.h"

#define FSYNC_BLOCK 4096
#define FSYNC_SPAN (1024 * 1024)
#define RTT_MSG 64
#define RTT_WARMUP 1000
#define RTT_MAX 200000
#define RTT_TIME_NS 500000000ull

static int preallocate(int fd)
{
	char zero[FSYNC_BLOCK] = { 0 };

	for (off_t off = 0; off < FSYNC_SPAN; off += FSYNC_BLOCK)
		if (pwrite(fd, zero, sizeof(zero), off) != (ssize_t)sizeof(zero))
			return errno ? -errno : -EIO;
	return fsync(fd) ? -errno : 0;
}

static int measure_fsync(int fd, uint64_t ms, struct hist *h, double *secs)
{
	char block[FSYNC_BLOCK];
	uint64_t start = tpc_now_ns(), end = start + ms * 1000000ull, now = start;

	memset(block, 'f', sizeof(block));
	for (uint64_t i = 0; now < end; i++) {
		memcpy(block, &i, sizeof(i));
		off_t off = (off_t)((i * FSYNC_BLOCK) % FSYNC_SPAN);
		uint64_t t = tpc_now_ns();
		if (pwrite(fd, block, sizeof(block), off) != (ssize_t)sizeof(block))
			return errno ? -errno : -EIO;
		if (fdatasync(fd))
			return -errno;
		now = tpc_now_ns();
		hist_record(h, now - t);
	}
	*secs = (double)(now - start) / 1e9;
	return 0;
}

static int calibrate_fsync(struct calibration *cal, const char *dir, uint64_t ms,
			   struct hist *h)
{
	int rc;

	snprintf(cal->path, sizeof(cal->path), "%s/calibrate-fsync.dat", dir);
	int fd = open(cal->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		fprintf(stderr, "tpc-bench: cannot create %s: %s\n", cal->path, strerror(errno));
		return rc;
	}
	rc = preallocate(fd);
	if (!rc)
		rc = measure_fsync(fd, ms, h, &cal->fsync_secs);
	close(fd);
	unlink(cal->path);
	if (rc) {
		fprintf(stderr, "tpc-bench: write+fdatasync in %s: %s\n", dir, strerror(-rc));
		return rc;
	}
	cal->fsync_block = FSYNC_BLOCK;
	cal->fsync_n = h->count;
	cal->fsync_ops_per_s = (double)h->count / cal->fsync_secs;
	cal->fsync_mean_us = hist_mean(h) / 1e3;
	cal->fsync_p50_us = (double)hist_percentile(h, 50) / 1e3;
	cal->fsync_p99_us = (double)hist_percentile(h, 99) / 1e3;
	return 0;
}

static int io_full(int fd, char *buf, size_t len, int writing)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = writing ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static void *echo_main(void *arg)
{
	int lfd = *(int *)arg, one = 1;
	char buf[RTT_MSG];
	int fd = accept(lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (io_full(fd, buf, sizeof(buf), 0) == 0 && io_full(fd, buf, sizeof(buf), 1) == 0)
		;
	close(fd);
	return NULL;
}

static int listen_loopback(struct sockaddr_in *sa)
{
	socklen_t len = sizeof(*sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	*sa = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)sa, sizeof(*sa)) || listen(fd, 1) ||
	    getsockname(fd, (struct sockaddr *)sa, &len)) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static int ping_pong(int fd, struct hist *h)
{
	char buf[RTT_MSG];
	uint64_t start = 0;

	memset(buf, 'p', sizeof(buf));
	for (uint64_t i = 0; i < RTT_WARMUP + RTT_MAX; i++) {
		if (i == RTT_WARMUP)
			start = tpc_now_ns();
		uint64_t t = tpc_now_ns();
		if (io_full(fd, buf, sizeof(buf), 1) || io_full(fd, buf, sizeof(buf), 0))
			return -EIO;
		uint64_t now = tpc_now_ns();
		if (i >= RTT_WARMUP)
			hist_record(h, now - t);
		if (start && now - start > RTT_TIME_NS)
			break;
	}
	return 0;
}

static int calibrate_rtt(struct calibration *cal, struct hist *h)
{
	struct sockaddr_in sa;
	pthread_t echo;
	int one = 1, rc;
	int lfd = listen_loopback(&sa);

	if (lfd < 0)
		return lfd;
	if ((rc = pthread_create(&echo, NULL, echo_main, &lfd))) {
		close(lfd);
		return -rc;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	rc = fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
	if (!rc) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		rc = ping_pong(fd, h);
	}
	if (fd >= 0)
		close(fd); /* the echo thread reads EOF */
	if (rc)
		shutdown(lfd, SHUT_RDWR); /* unblock its accept() if we never connected */
	pthread_join(echo, NULL);
	close(lfd);
	if (rc)
		return rc;
	cal->rtt_n = h->count;
	cal->rtt_mean_us = hist_mean(h) / 1e3;
	cal->rtt_p50_us = (double)hist_percentile(h, 50) / 1e3;
	cal->rtt_p99_us = (double)hist_percentile(h, 99) / 1e3;
	return 0;
}

int calibrate_run(struct calibration *cal, const char *dir, uint64_t fsync_ms)
{
	struct hist *h = malloc(sizeof(*h));
	int rc = -ENOMEM;

	if (!h)
		return rc;
	hist_init(h);
	rc = calibrate_fsync(cal, dir, fsync_ms, h);
	if (rc)
		goto out_free;
	hist_init(h);
	rc = calibrate_rtt(cal, h);
	if (rc) {
		fprintf(stderr, "tpc-bench: loopback round trip: %s\n", strerror(-rc));
		goto out_free;
	}
	cal->done = 1;
out_free:
	free(h);
	return rc;
}
