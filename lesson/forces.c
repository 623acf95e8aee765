/*
 * forces.c - liblesson_forces.so, an LD_PRELOAD shim that counts disk forces in every
 * process of a lesson scenario (coordinator, tpc-kv services, aggregators), also
 * across kill -9, for the "disk forces per event" column.
 *
 * Counted: fsync, fdatasync, msync(MS_SYNC), and pwrite to a descriptor opened with
 * O_DSYNC or O_SYNC (LMDB forces its meta page that way: one synced LMDB commit is an
 * fdatasync plus one such write). Counters live in the file named by
 * LESSON_FORCES_FILE: 8 roles x 4 kinds of little-endian u64, the role taken from
 * LESSON_FORCES_ROLE (0-7). Each force maps the file, adds one atomically and unmaps
 * it: a few microseconds next to a force's hundreds, and no state in the process at
 * all, which is what lets a process killed at any instant leave exact counts behind.
 *
 * The real calls are made with syscall(2), so the shim needs no dlsym and no globals.
 * Not for AddressSanitizer builds (ASan must come first in the library list).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

enum { KIND_FSYNC, KIND_FDATASYNC, KIND_MSYNC, KIND_DSYNC_WRITE, KINDS };
#define ROLES 8
#define COUNTERS_SIZE (ROLES * KINDS * sizeof(uint64_t))

static void count_force(int kind)
{
	const char *path = getenv("LESSON_FORCES_FILE"), *role_s = getenv("LESSON_FORCES_ROLE");
	int saved = errno, role = role_s ? atoi(role_s) : 0;

	if (!path || role < 0 || role >= ROLES)
		return;
	int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		goto out;
	uint64_t *c = mmap(NULL, COUNTERS_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (c != MAP_FAILED) {
		__atomic_fetch_add(&c[role * KINDS + kind], 1, __ATOMIC_RELAXED);
		munmap(c, COUNTERS_SIZE);
	}
	syscall(SYS_close, fd);
out:
	errno = saved;
}

int fsync(int fd)
{
	count_force(KIND_FSYNC);
	return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd)
{
	count_force(KIND_FDATASYNC);
	return (int)syscall(SYS_fdatasync, fd);
}

int msync(void *addr, size_t len, int flags)
{
	if (flags & MS_SYNC)
		count_force(KIND_MSYNC);
	return (int)syscall(SYS_msync, addr, len, flags);
}

static ssize_t counted_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t w = syscall(SYS_pwrite64, fd, buf, n, off);

	if (w >= 0) {
		int saved = errno, fl = (int)syscall(SYS_fcntl, fd, F_GETFL);
		if (fl >= 0 && (fl & (O_DSYNC | O_SYNC)))
			count_force(KIND_DSYNC_WRITE);
		errno = saved;
	}
	return w;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return counted_pwrite(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return counted_pwrite(fd, buf, n, off);
}
