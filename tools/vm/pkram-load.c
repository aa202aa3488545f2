// SPDX-License-Identifier: GPL-2.0
/*
 * pkram-load - a file system load that checks itself, for the VM scenario
 * r-takeover (the serving process of a mount replaced under load).
 *
 *   pkram-load DIR STOPFILE PROGRESS [WORKERS]
 *
 * Forks WORKERS (default 3) processes; worker N works in DIR/wN (its working
 * directory: every path it uses is relative) until STOPFILE exists, then
 * checks everything once more and exits.  For its whole life a worker keeps
 * open an O_RDWR file ("keeper", 16 blocks of 4 KiB) and a MAP_SHARED
 * read-only mapping of a 64 KiB file ("m").  An iteration:
 *
 *   pwrite a keeper block (fsync every 4th), pread it back and verify;
 *   create "t" (O_TRUNC, 64..6063 bytes), close, rename it to f0..f7;
 *   open, read and verify another fK; every 3rd iteration unlink one;
 *   mkdir or rmdir "d"; every 4th readdir "."; fstat the keeper; compare
 *   one page of the mapping.
 *
 * Every block and file is self-describing (worker, tag, version, length and
 * a pattern derived from them), and the worker keeps a model of what each
 * name and keeper block holds after every call that succeeded: the data of
 * an acknowledged call must be there.  A call that failed leaves what it
 * touched unknown until the next observation (on Linux 6.1 a request in
 * flight when the serving process dies fails with EIO, and it may or may not
 * have been applied).
 *
 * Output (stdout, one write per line): "pkram-load: FAIL ..." per failed
 * system call (err=NAME), "pkram-load: CORRUPT ..." per difference from the
 * model, and a summary at the end.  PROGRESS is rewritten (rename) every
 * 200 ms with one line:
 *
 *   eio E other O corrupt C running R iters I0 I1 ... pids P0 P1 ...
 *
 * Exit status: 0 nothing failed, 1 only EIO failures, 2 a failure of another
 * errno, a difference from the model or a worker that ended abnormally.
 * Built statically by tools/vm-test.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 16
#define NBLK 16
#define BLK 4096
#define NNAMES 8
#define MAP_LEN (16 * 4096)
#define FILE_TAG 0x100u
#define MAGIC 0x444c4b50u	/* "PKLD" */
#define MAX_SECONDS 600

struct shared {
	uint64_t iters[MAX_WORKERS];
	uint64_t eio, other, corrupt;
};

enum state { ABSENT, PRESENT, UNKNOWN };
struct model {
	enum state st;
	uint32_t ver;
};

struct hdr {
	uint32_t magic, worker, tag, ver, len;
};

static struct shared *sh;
static int worker;
static uint64_t iter;
static const char *stopfile;

static double uptime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void out(const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(1, line, n) < 0)
		_exit(2);
}

static const char *errname(int err)
{
	const char *s = strerrorname_np(err);

	return s ? s : "?";
}

/* a system call failed: err is its errno (EIO for a short transfer) */
static void failed(const char *op, const char *name, int err)
{
	/* in flight at a crash on 6.1: EIO from the next process, or ECONNABORTED from the kernel
	 * as the dying process's cloned descriptor closes */
	__atomic_add_fetch(err == EIO || err == ECONNABORTED ? &sh->eio : &sh->other, 1,
			   __ATOMIC_RELAXED);
	out("pkram-load: FAIL w%d i%" PRIu64 " %s %s err=%s (%s) t=%.3f", worker, iter, op, name,
	    errname(err), strerror(err), uptime());
}

__attribute__((format(printf, 1, 2))) static void corrupt(const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	__atomic_add_fetch(&sh->corrupt, 1, __ATOMIC_RELAXED);
	out("pkram-load: CORRUPT w%d i%" PRIu64 " %s t=%.3f", worker, iter, what, uptime());
}

static void die(const char *what)
{
	out("pkram-load: w%d setup: %s: %s", worker, what, strerror(errno));
	_exit(3);
}

/* ---- self-describing contents ---------------------------------------- */

static uint64_t seed_of(uint32_t tag, uint32_t ver, uint32_t len)
{
	return ((uint64_t)worker << 56) ^ ((uint64_t)tag << 40) ^ ((uint64_t)len << 20) ^ ver ^
	       0x9e3779b97f4a7c15ull;
}

static void pattern(unsigned char *p, size_t len, uint64_t s)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (i % 8 == 0) {	/* xorshift64 */
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
		}
		p[i] = (unsigned char)(s >> (8 * (i % 8)));
	}
}

static void make(unsigned char *buf, uint32_t len, uint32_t tag, uint32_t ver)
{
	struct hdr h = { MAGIC, (uint32_t)worker, tag, ver, len };

	memcpy(buf, &h, sizeof(h));
	pattern(buf + sizeof(h), len - sizeof(h), seed_of(tag, ver, len));
}

/* the version in buf (n bytes) if it is a consistent block of tag, else -1 */
static int64_t version_of(const unsigned char *buf, size_t n, uint32_t tag)
{
	static unsigned char want[8192];
	struct hdr h;

	if (n < sizeof(h) || n > sizeof(want))
		return -1;
	memcpy(&h, buf, sizeof(h));
	if (h.magic != MAGIC || h.worker != (uint32_t)worker || h.tag != tag || h.len != n)
		return -1;
	make(want, (uint32_t)n, tag, h.ver);
	return memcmp(want, buf, n) ? -1 : (int64_t)h.ver;
}

/* ---- the worker -------------------------------------------------------- */

static int kfd;
static struct model blk[NBLK], names[NNAMES], dir_d;
static unsigned char *map, mexp[MAP_LEN];
static sigjmp_buf bus_jump;

static void on_bus(int sig)
{
	(void)sig;
	siglongjmp(bus_jump, 1);
}

static const char *fname(int k)
{
	static char n[NNAMES][4];

	snprintf(n[k], sizeof(n[k]), "f%d", k);
	return n[k];
}

static void check_block(int b, const unsigned char *buf)
{
	int64_t v = version_of(buf, BLK, (uint32_t)b);

	if (v < 0)
		corrupt("keeper block %d: not a consistent block", b);
	else if (blk[b].st == PRESENT && v != blk[b].ver)
		corrupt("keeper block %d: version %" PRId64 ", expected %u", b, v, blk[b].ver);
	else
		blk[b] = (struct model){ PRESENT, (uint32_t)v };
}

static void keeper_write(int b)
{
	unsigned char buf[BLK];
	ssize_t n;

	make(buf, BLK, (uint32_t)b, (uint32_t)iter);
	n = pwrite(kfd, buf, BLK, (off_t)b * BLK);
	if (n == BLK) {
		blk[b] = (struct model){ PRESENT, (uint32_t)iter };
	} else {
		failed("pwrite", "keeper", n < 0 ? errno : EIO);
		blk[b].st = UNKNOWN;
	}
	if (iter % 4 == 0 && fsync(kfd))
		failed("fsync", "keeper", errno);
}

static void keeper_read(int b)
{
	unsigned char buf[BLK];
	ssize_t n = pread(kfd, buf, BLK, (off_t)b * BLK);

	if (n != BLK)
		failed("pread", "keeper", n < 0 ? errno : EIO);
	else
		check_block(b, buf);
}

static void file_write(int k)
{
	unsigned char buf[8192];
	uint32_t len = 64 + (uint32_t)((iter * 2654435761u) % 6000);
	int fd, ok = 1;
	ssize_t n;

	make(buf, len, FILE_TAG, (uint32_t)iter);
	fd = open("t", O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		failed("open-create", "t", errno);
		return;
	}
	n = write(fd, buf, len);
	if (n != (ssize_t)len) {
		failed("write", "t", n < 0 ? errno : EIO);
		ok = 0;
	}
	if (close(fd)) {
		failed("close", "t", errno);
		ok = 0;
	}
	if (!ok)
		return;
	if (rename("t", fname(k)) == 0) {
		names[k] = (struct model){ PRESENT, (uint32_t)iter };
	} else {
		failed("rename", fname(k), errno);
		names[k].st = UNKNOWN;
	}
}

static void file_check(int k)
{
	unsigned char buf[8192];
	int64_t v;
	ssize_t n;
	int fd = open(fname(k), O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			failed("open", fname(k), errno);
		else if (names[k].st == PRESENT)
			corrupt("%s: ENOENT, expected version %u", fname(k), names[k].ver);
		else
			names[k].st = ABSENT;
		return;
	}
	n = read(fd, buf, sizeof(buf));
	if (n < 0) {
		failed("read", fname(k), errno);
	} else if ((v = version_of(buf, (size_t)n, FILE_TAG)) < 0) {
		corrupt("%s: %zd bytes, not a consistent file", fname(k), n);
	} else if (names[k].st == ABSENT) {
		corrupt("%s: version %" PRId64 " exists, expected none", fname(k), v);
	} else if (names[k].st == PRESENT && v != names[k].ver) {
		corrupt("%s: version %" PRId64 ", expected %u", fname(k), v, names[k].ver);
	} else {
		names[k] = (struct model){ PRESENT, (uint32_t)v };
	}
	if (close(fd))
		failed("close", fname(k), errno);
}

static void file_unlink(int k)
{
	if (unlink(fname(k)) == 0) {
		if (names[k].st == ABSENT)
			corrupt("%s: unlink succeeded, expected no such file", fname(k));
		names[k].st = ABSENT;
	} else if (errno == ENOENT) {
		/* a file acknowledged as there is gone; on a kernel that resends
		 * requests, an unlink applied and resent (docs/operations.md) */
		if (names[k].st == PRESENT)
			failed("unlink", fname(k), ENOENT);
		names[k].st = ABSENT;
	} else {
		failed("unlink", fname(k), errno);
		names[k].st = UNKNOWN;
	}
}

static void dir_toggle(void)
{
	if (dir_d.st != PRESENT) {
		if (mkdir("d", 0755) == 0) {
			dir_d.st = PRESENT;
		} else if (errno == EEXIST) {
			if (dir_d.st == ABSENT)	/* resent mkdir, or a resurrection */
				failed("mkdir", "d", EEXIST);
			dir_d.st = PRESENT;
		} else {
			failed("mkdir", "d", errno);
			dir_d.st = UNKNOWN;
		}
	} else {
		if (rmdir("d") == 0) {
			dir_d.st = ABSENT;
		} else if (errno == ENOENT) {
			failed("rmdir", "d", ENOENT);
			dir_d.st = ABSENT;
		} else {
			failed("rmdir", "d", errno);
			dir_d.st = UNKNOWN;
		}
	}
}

static void dir_check(void)
{
	int seen[NNAMES] = { 0 }, keeper = 0, m = 0, d = 0, k;
	struct dirent *e;
	DIR *dp = opendir(".");

	if (!dp) {
		failed("opendir", ".", errno);
		return;
	}
	for (;;) {
		errno = 0;
		e = readdir(dp);
		if (!e)
			break;
		if (!strcmp(e->d_name, "keeper"))
			keeper = 1;
		else if (!strcmp(e->d_name, "m"))
			m = 1;
		else if (!strcmp(e->d_name, "d"))
			d = 1;
		else if (e->d_name[0] == 'f' && e->d_name[1] >= '0' &&
			 e->d_name[1] < '0' + NNAMES && !e->d_name[2])
			seen[e->d_name[1] - '0'] = 1;
	}
	if (errno) {
		failed("readdir", ".", errno);
		closedir(dp);
		return;
	}
	closedir(dp);
	if (!keeper || !m)
		corrupt("readdir: keeper %d, m %d", keeper, m);
	for (k = 0; k < NNAMES; k++)
		if ((names[k].st == PRESENT && !seen[k]) || (names[k].st == ABSENT && seen[k]))
			corrupt("readdir: %s %s, expected %s", fname(k), seen[k] ? "listed" : "missing",
				names[k].st == PRESENT ? "there" : "gone");
	if ((dir_d.st == PRESENT && !d) || (dir_d.st == ABSENT && d))
		corrupt("readdir: d %s", d ? "listed" : "missing");
}

static void map_check(int page)
{
	if (sigsetjmp(bus_jump, 1)) {
		/* the fault's read of the page failed */
		failed("mmap-read(SIGBUS)", "m", EIO);
		return;
	}
	if (memcmp(map + page * 4096, mexp + page * 4096, 4096))
		corrupt("m: page %d of the mapping differs", page);
}

static void stat_check(void)
{
	struct stat st;

	if (fstat(kfd, &st))
		failed("fstat", "keeper", errno);
	else if (st.st_size != NBLK * BLK)
		corrupt("keeper: size %lld, expected %d", (long long)st.st_size, NBLK * BLK);
}

static void setup(const char *dir)
{
	char sub[32];
	unsigned char buf[BLK];
	struct sigaction sa;
	int b, fd;

	snprintf(sub, sizeof(sub), "w%d", worker);
	if (chdir(dir) || (mkdir(sub, 0755) && errno != EEXIST) || chdir(sub))
		die(dir);
	kfd = open("keeper", O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0644);
	if (kfd < 0)
		die("keeper");
	for (b = 0; b < NBLK; b++) {
		make(buf, BLK, (uint32_t)b, 0);
		if (pwrite(kfd, buf, BLK, (off_t)b * BLK) != BLK)
			die("keeper write");
		blk[b] = (struct model){ PRESENT, 0 };
	}
	pattern(mexp, MAP_LEN, seed_of(0x200, 0, MAP_LEN));
	fd = open("m", O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, mexp, MAP_LEN) != MAP_LEN)
		die("m");
	map = mmap(NULL, MAP_LEN, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		die("mmap m");
	close(fd);
	if (memcmp(map, mexp, MAP_LEN))
		die("m differs");
	for (b = 0; b < NNAMES; b++)
		names[b].st = ABSENT;
	dir_d.st = ABSENT;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_bus;
	sigaction(SIGBUS, &sa, NULL);
}

static void final_check(void)
{
	int b, k;

	for (b = 0; b < NBLK; b++)
		keeper_read(b);
	for (k = 0; k < NNAMES; k++)
		file_check(k);
	dir_check();
	for (b = 0; b < MAP_LEN / 4096; b++)
		map_check(b);
	stat_check();
	if (close(kfd))
		failed("close", "keeper", errno);
	munmap(map, MAP_LEN);
}

static void run_worker(const char *dir)
{
	double end = uptime() + MAX_SECONDS;

	setup(dir);
	for (iter = 1;; iter++) {
		if (access(stopfile, F_OK) == 0)
			break;
		if (uptime() > end) {
			out("pkram-load: w%d still running after %d s, stopping", worker, MAX_SECONDS);
			break;
		}
		keeper_write((int)(iter % NBLK));
		keeper_read((int)(iter % NBLK));
		file_write((int)(iter % NNAMES));
		file_check((int)((iter + 3) % NNAMES));
		if (iter % 3 == 0)
			file_unlink((int)((iter + 5) % NNAMES));
		dir_toggle();
		if (iter % 4 == 0)
			dir_check();
		stat_check();
		map_check((int)(iter % (MAP_LEN / 4096)));
		__atomic_store_n(&sh->iters[worker], iter, __ATOMIC_RELAXED);
	}
	final_check();
	_exit(0);
}

/* ---- the parent -------------------------------------------------------- */

static void write_progress(const char *path, int nw, const pid_t *pids, int running)
{
	char tmp[4096], line[2048];
	int n, i, fd;

	n = snprintf(line, sizeof(line), "eio %" PRIu64 " other %" PRIu64 " corrupt %" PRIu64
		     " running %d iters",
		     __atomic_load_n(&sh->eio, __ATOMIC_RELAXED),
		     __atomic_load_n(&sh->other, __ATOMIC_RELAXED),
		     __atomic_load_n(&sh->corrupt, __ATOMIC_RELAXED), running);
	for (i = 0; i < nw; i++)
		n += snprintf(line + n, sizeof(line) - n, " %" PRIu64,
			      __atomic_load_n(&sh->iters[i], __ATOMIC_RELAXED));
	n += snprintf(line + n, sizeof(line) - n, " pids");
	for (i = 0; i < nw; i++)
		n += snprintf(line + n, sizeof(line) - n, " %d", (int)pids[i]);
	n += snprintf(line + n, sizeof(line) - n, "\n");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, n) == n)
		rename(tmp, path);
	close(fd);
}

int main(int argc, char **argv)
{
	pid_t pids[MAX_WORKERS];
	int nw = argc > 4 ? atoi(argv[4]) : 3, running, i, status, abnormal = 0;
	uint64_t total = 0;

	if (argc < 4 || nw < 1 || nw > MAX_WORKERS) {
		fprintf(stderr, "usage: pkram-load DIR STOPFILE PROGRESS [WORKERS (1-%d)]\n",
			MAX_WORKERS);
		return 2;
	}
	stopfile = argv[2];
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	if (mkdir(argv[1], 0755) && errno != EEXIST) {
		perror(argv[1]);
		return 2;
	}
	for (i = 0; i < nw; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fork");
			return 2;
		}
		if (pids[i] == 0) {
			worker = i;
			run_worker(argv[1]);
		}
	}
	for (running = nw; running > 0;) {
		write_progress(argv[3], nw, pids, running);
		usleep(200000);
		for (;;) {
			pid_t p = waitpid(-1, &status, WNOHANG);

			if (p <= 0)
				break;
			running--;
			for (i = 0; i < nw; i++)
				if (pids[i] == p && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
					out("pkram-load: worker %d (pid %d) ended with %s %d", i, (int)p,
					    WIFEXITED(status) ? "exit status" : "signal",
					    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
					abnormal++;
				}
		}
	}
	write_progress(argv[3], nw, pids, 0);
	for (i = 0; i < nw; i++)
		total += sh->iters[i];
	out("pkram-load: done: %d workers, %" PRIu64 " iterations, %" PRIu64 " failed (%" PRIu64
	    " EIO, %" PRIu64 " other), %" PRIu64 " corrupt, %d abnormal ends",
	    nw, total, sh->eio + sh->other, sh->eio, sh->other, sh->corrupt, abnormal);
	if (sh->other || sh->corrupt || abnormal)
		return 2;
	return sh->eio ? 1 : 0;
}
