// SPDX-License-Identifier: GPL-2.0
/*
 * pkram-test - exercise /dev/pkram from inside the test VM.
 *
 * Small commands for the scenario scripts (create, fill, verify, ...) and
 * a "selftest" that runs the ioctl error cases and prints PASS/FAIL lines.
 * Built statically by tools/vm-test; never run it on a machine whose
 * /dev/pkram holds data you care about.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pkramfs/pkram_uapi.h>
#include "pkram_format.h"

#define FRAME ((size_t)PKRAM_FRAME_SIZE)

static const char *prefix = "e";
static int failures;

static void result(int ok, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		printf("PASS %s.%s\n", prefix, name);
	} else {
		printf("FAIL %s.%s: ", prefix, name);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
		failures++;
	}
	fflush(stdout);
}

static void die(const char *what)
{
	fprintf(stderr, "pkram-test: %s: %s\n", what, strerror(errno));
	exit(2);
}

static int open_dev(void)
{
	int fd = open(PKRAM_DEVICE_PATH, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die("open " PKRAM_DEVICE_PATH);
	return fd;
}

/* Returns 0 or -errno. */
static int xioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

static int attach(int fd, const char *name, uint32_t flags, struct pkram_attach *out)
{
	struct pkram_attach a;
	int ret;

	memset(&a, 0, sizeof(a));
	strncpy(a.name, name, sizeof(a.name) - 1);
	a.flags = flags;
	ret = xioctl(fd, PKRAM_IOC_ATTACH, &a);
	if (out)
		*out = a;
	return ret;
}

static int resize(int fd, uint32_t nr)
{
	struct pkram_resize r = { .nr_frames = nr };

	return xioctl(fd, PKRAM_IOC_RESIZE, &r);
}

static int destroy(int fd, const char *name)
{
	struct pkram_name n;

	memset(&n, 0, sizeof(n));
	strncpy(n.name, name, sizeof(n.name) - 1);
	return xioctl(fd, PKRAM_IOC_DESTROY, &n);
}

static int stat_node(int fd, const char *name, struct pkram_node_info *info)
{
	memset(info, 0, sizeof(*info));
	strncpy(info->name, name, sizeof(info->name) - 1);
	return xioctl(fd, PKRAM_IOC_STAT, info);
}

static int version(int fd, struct pkram_version *v)
{
	memset(v, 0, sizeof(*v));
	return xioctl(fd, PKRAM_IOC_VERSION, v);
}

static int set_policy(int fd, uint32_t mode, uint32_t nid, uint64_t reserved)
{
	struct pkram_policy p = { .mode = mode, .nid = nid, .reserved = reserved };

	return xioctl(fd, PKRAM_IOC_SET_POLICY, &p);
}

static const char *const policy_names[] = { "default", "bind", "preferred", "interleave" };

/* PKRAM_POLICY_* of a name, or -1. */
static int policy_of(const char *name)
{
	int i;

	for (i = 0; i < (int)(sizeof(policy_names) / sizeof(policy_names[0])); i++)
		if (!strcmp(name, policy_names[i]))
			return i;
	return -1;
}

/* The NUMA nodes holding region frames (/sys/kernel/pkram/numa): count, first and last. */
static int region_nids(int *first, int *last)
{
	FILE *f = fopen("/sys/kernel/pkram/numa", "re");
	int nid, n = 0;
	unsigned int data, nfree;

	if (!f)
		return 0;
	while (fscanf(f, "%d %u %u", &nid, &data, &nfree) == 3) {
		if (!n++)
			*first = nid;
		*last = nid;
	}
	fclose(f);
	return n;
}

/* Attach an existing node by name on a fresh fd; exits on failure. */
static int open_node(const char *name, struct pkram_attach *a)
{
	int fd = open_dev(), ret = attach(fd, name, 0, a);

	if (ret) {
		errno = -ret;
		die(name);
	}
	return fd;
}

static void *map_node(int fd, size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		die("mmap");
	return p;
}

static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t pattern(uint64_t seed, size_t word)
{
	return splitmix(seed * 0x100000001b3ULL + word);
}

/* ---- commands for scenario scripts ------------------------------------ */

static int cmd_version(void)
{
	struct pkram_version v;
	int fd = open_dev();

	if (version(fd, &v))
		die("VERSION");
	printf("uapi=%u format=%u frame_size=%u max_nodes=%u nr_frames=%u data_frames=%u free_frames=%u nr_nodes=%u region=%" PRIu64 "@0x%" PRIx64 "\n",
	       v.uapi_version, v.format_version, v.frame_size, v.max_nodes,
	       v.nr_frames, v.data_frames, v.free_frames, v.nr_nodes,
	       (uint64_t)v.region_size, (uint64_t)v.region_start);
	return 0;
}

static int cmd_create(const char *name, const char *frames)
{
	int fd = open_dev(), ret = attach(fd, name, PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);

	if (!ret)
		ret = resize(fd, strtoul(frames, NULL, 0));
	if (ret)
		fprintf(stderr, "create %s: %s\n", name, strerror(-ret));
	return ret ? 1 : 0;
}

static int cmd_resize(const char *name, const char *frames)
{
	int fd = open_node(name, NULL), ret = resize(fd, strtoul(frames, NULL, 0));

	if (ret)
		fprintf(stderr, "resize %s: %s\n", name, strerror(-ret));
	return ret ? 1 : 0;
}

static int range_ioc(int fd, unsigned long cmd, uint32_t first, uint32_t count);

/* punch NAME FIRST COUNT: damage a node on purpose (frames become holes). */
static int cmd_punch(const char *name, const char *first, const char *count)
{
	int fd = open_node(name, NULL);
	int ret = range_ioc(fd, PKRAM_IOC_PUNCH, strtoul(first, NULL, 0), strtoul(count, NULL, 0));

	if (ret)
		fprintf(stderr, "punch %s: %s\n", name, strerror(-ret));
	return ret ? 1 : 0;
}

/*
 * place NAME POLICY NID FIRST COUNT: attach NAME (created if absent), set the
 * frame policy and populate [FIRST, FIRST + COUNT); prints the errno name.
 */
static int cmd_place(char **argv)
{
	int fd = open_dev(), mode = policy_of(argv[1]), ret;

	if (mode < 0) {
		fprintf(stderr, "place: unknown policy %s\n", argv[1]);
		return 2;
	}
	ret = attach(fd, argv[0], PKRAM_ATTACH_CREATE, NULL);
	if (!ret)
		ret = set_policy(fd, mode, strtoul(argv[2], NULL, 0), 0);
	if (!ret)
		ret = range_ioc(fd, PKRAM_IOC_POPULATE, strtoul(argv[3], NULL, 0),
				strtoul(argv[4], NULL, 0));
	printf("%s\n", ret ? strerrorname_np(-ret) : "0");
	close(fd);
	return ret ? 1 : 0;
}

static int cmd_state(const char *name, unsigned long cmd)
{
	int fd = open_node(name, NULL), ret = xioctl(fd, cmd, NULL);

	if (ret)
		fprintf(stderr, "%s: %s\n", name, strerror(-ret));
	return ret ? 1 : 0;
}

static int cmd_destroy(const char *name)
{
	int ret = destroy(open_dev(), name);

	if (ret)
		fprintf(stderr, "destroy %s: %s\n", name, strerror(-ret));
	return ret ? 1 : 0;
}

static int cmd_stat(const char *name)
{
	static const char *const states[] = { "free", "active", "preserved" };
	struct pkram_node_info info;
	int ret = stat_node(open_dev(), name, &info);

	if (ret) {
		fprintf(stderr, "stat %s: %s\n", name, strerror(-ret));
		return 1;
	}
	printf("%s %s %u %" PRIu64 " %u\n", info.name,
	       info.state < 3 ? states[info.state] : "?", info.nr_frames,
	       (uint64_t)info.generation, info.attached);
	return 0;
}

static int cmd_list(void)
{
	struct pkram_node_info buf[256];
	struct pkram_list l = { .entries = (uintptr_t)buf, .capacity = 256 };
	uint32_t i;
	int ret = xioctl(open_dev(), PKRAM_IOC_LIST, &l);

	if (ret) {
		fprintf(stderr, "list: %s\n", strerror(-ret));
		return 1;
	}
	for (i = 0; i < l.count; i++)
		printf("%s %u %u %" PRIu64 "\n", buf[i].name, buf[i].state,
		       buf[i].nr_frames, (uint64_t)buf[i].generation);
	return 0;
}

/* fill NAME SEED | verify NAME SEED | zero NAME | hash NAME */
static int cmd_data(const char *op, const char *name, const char *seedstr)
{
	struct pkram_attach a;
	int fd = open_node(name, &a);
	uint64_t seed = seedstr ? strtoull(seedstr, NULL, 0) : 0, h = 1469598103934665603ULL;
	size_t len = (size_t)a.nr_frames * FRAME, words = len / 8, i;
	struct timespec t0, t1;
	uint64_t *p;

	if (!len) {
		fprintf(stderr, "%s: node is empty\n", name);
		return 1;
	}
	p = map_node(fd, len);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < words; i++) {
		uint64_t want = seedstr ? pattern(seed, i) : 0;

		if (!strcmp(op, "fill")) {
			p[i] = want;
		} else if (!strcmp(op, "hash")) {
			h = (h ^ p[i]) * 1099511628211ULL;
		} else if (p[i] != want) {
			fprintf(stderr, "%s: word %zu (frame %zu) is %016" PRIx64 ", expected %016" PRIx64 "\n",
				name, i, i * 8 / FRAME, p[i], want);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (!strcmp(op, "hash"))
		printf("%016" PRIx64 "\n", h);
	fprintf(stderr, "%s %s: %zu MiB in %ld ms\n", op, name, len >> 20,
		(long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	munmap(p, len);
	return 0;
}

/* open-as-nobody: try to open /dev/pkram as uid/gid 65534, print errno. */
static int cmd_open_as_nobody(void)
{
	int fd;

	if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
		die("drop privileges");
	fd = open(PKRAM_DEVICE_PATH, O_RDWR);
	if (fd >= 0) {
		printf("opened\n");
		return 1;
	}
	printf("%s\n", strerrorname_np(errno));
	return 0;
}

/* devmem-xor PHYS [MASK]: flip the bits of MASK (default all) of the byte at physical address PHYS. */
static int cmd_devmem_xor(const char *physstr, const char *maskstr)
{
	off_t phys = strtoull(physstr, NULL, 0);
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	unsigned char b;

	if (fd < 0)
		die("open /dev/mem");
	if (pread(fd, &b, 1, phys) != 1) {
		printf("%s\n", strerrorname_np(errno));
		return 1;
	}
	b ^= maskstr ? strtoul(maskstr, NULL, 0) : 0xff;
	if (pwrite(fd, &b, 1, phys) != 1) {
		printf("%s\n", strerrorname_np(errno));
		return 1;
	}
	printf("ok\n");
	return 0;
}

/* devmem-save PHYS LEN FILE | devmem-load PHYS FILE: copy physical memory to or from a file. */
static int cmd_devmem_copy(const char *physstr, const char *lenstr, const char *file)
{
	off_t phys = strtoull(physstr, NULL, 0);
	size_t len = lenstr ? strtoull(lenstr, NULL, 0) : 0;
	int fd = open("/dev/mem", O_RDWR | O_SYNC), f;
	static char buf[1 << 20];
	ssize_t n;

	if (fd < 0)
		die("open /dev/mem");
	if (lenstr) {
		f = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (f < 0 || len > sizeof(buf) || pread(fd, buf, len, phys) != (ssize_t)len ||
		    write(f, buf, len) != (ssize_t)len)
			die("devmem-save");
	} else {
		f = open(file, O_RDONLY);
		if (f < 0 || (n = read(f, buf, sizeof(buf))) <= 0 || pwrite(fd, buf, n, phys) != n)
			die("devmem-load");
	}
	close(f);
	close(fd);
	return 0;
}

/* copy-size FRAMES: bytes of one metadata copy (where copy 1 starts) in a region of FRAMES frames. */
static int cmd_copy_size(const char *frames)
{
	printf("%llu\n", (unsigned long long)PKRAM_COPY_SIZE(strtoull(frames, NULL, 0)));
	return 0;
}

/* ---- selftest ------------------------------------------------------------- */

static const char *ename(int err)
{
	const char *s;

	if (!err)
		return "0";
	s = strerrorname_np(-err);
	return s ? s : "?";
}

static void expect(const char *name, int got, int want)
{
	result(got == want, name, "got %s, expected %s", ename(got), ename(want));
}

static void t_garbage_cmds(int fd)
{
	char buf[4096];

	memset(buf, 0, sizeof(buf));
	expect("unknown-nr", xioctl(fd, _IO(PKRAM_IOC_MAGIC, 0x7f), buf), -ENOTTY);
	expect("unknown-magic", xioctl(fd, 0x12345678, buf), -ENOTTY);
	expect("wrong-size", xioctl(fd, _IOWR(PKRAM_IOC_MAGIC, 0x01, char[16]), buf), -ENOTTY);
	expect("wrong-dir", xioctl(fd, _IO(PKRAM_IOC_MAGIC, 0x02), buf), -ENOTTY);
	expect("efault-attach", xioctl(fd, PKRAM_IOC_ATTACH, (void *)1), -EFAULT);
	expect("efault-stat", xioctl(fd, PKRAM_IOC_STAT, NULL), -EFAULT);
	expect("efault-version", xioctl(fd, PKRAM_IOC_VERSION, (void *)8), -EFAULT);
	expect("efault-list", xioctl(fd, PKRAM_IOC_LIST, (void *)-4096L), -EFAULT);
	expect("efault-destroy", xioctl(fd, PKRAM_IOC_DESTROY, (void *)1), -EFAULT);
}

static void t_names(int fd)
{
	static const char *const bad[] = { "", ".hidden", "a/b", "a b", "\xc3\xa9", "x\n", "a:b" };
	struct pkram_attach a;
	char n[160];
	size_t i;
	int ok = 1, ret;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ret = attach(fd, bad[i], PKRAM_ATTACH_CREATE, NULL);
		if (ret != -EINVAL) {
			ok = 0;
			printf("# name %zu: %s\n", i, ename(ret));
		}
	}
	result(ok, "bad-names", "a bad name was not rejected with EINVAL");

	memset(&a, 'a', sizeof(a));	/* 128 bytes, no NUL */
	a.flags = PKRAM_ATTACH_CREATE;
	expect("name-unterminated", xioctl(fd, PKRAM_IOC_ATTACH, &a), -EINVAL);
	memset(n, 'b', sizeof(n));
	n[127] = '\0';			/* 127 bytes: the longest valid name */
	{
		int fd2 = open_dev();

		expect("name-127", attach(fd2, n, PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL), 0);
		close(fd2);
		expect("name-127-destroy", destroy(fd, n), 0);
	}
	expect("destroy-bad-name", destroy(fd, ".x"), -EINVAL);
	expect("bad-flags", attach(fd, "ok", 0x8, NULL), -EINVAL);
	expect("excl-without-create", attach(fd, "ok", PKRAM_ATTACH_EXCL, NULL), -EINVAL);
}

static void t_unattached(int fd)
{
	void *p;

	expect("resize-unattached", resize(fd, 1), -EBADFD);
	expect("preserve-unattached", xioctl(fd, PKRAM_IOC_PRESERVE, NULL), -EBADFD);
	expect("unpreserve-unattached", xioctl(fd, PKRAM_IOC_UNPRESERVE, NULL), -EBADFD);
	p = mmap(NULL, FRAME, PROT_READ, MAP_SHARED, fd, 0);
	expect("mmap-unattached", p == MAP_FAILED ? -errno : 0, -EBADFD);
	if (p != MAP_FAILED)
		munmap(p, FRAME);
	expect("attach-enoent", attach(fd, "st-missing", 0, NULL), -ENOENT);
	{
		struct pkram_node_info info;

		expect("stat-enoent", stat_node(fd, "st-missing", &info), -ENOENT);
	}
	expect("destroy-enoent", destroy(fd, "st-missing"), -ENOENT);
}

static void t_attach_rules(void)
{
	struct pkram_attach a;
	struct pkram_resize r = { .nr_frames = 1, .reserved = 7 };
	int fd1 = open_dev(), fd2 = open_dev(), fd3;

	expect("create", attach(fd1, "st-a", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, &a), 0);
	result(a.created == 1 && a.nr_frames == 0 && a.state == PKRAM_STATE_ACTIVE,
	       "create-out", "created=%u nr=%u state=%u", a.created, a.nr_frames, a.state);
	expect("reattach-same-fd", attach(fd1, "st-b", PKRAM_ATTACH_CREATE, NULL), -EINVAL);
	expect("excl-exists", attach(fd2, "st-a", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL), -EEXIST);
	expect("second-attacher", attach(fd2, "st-a", 0, NULL), -EBUSY);
	expect("second-attacher-create", attach(fd2, "st-a", PKRAM_ATTACH_CREATE, NULL), -EBUSY);
	expect("destroy-attached", destroy(fd2, "st-a"), -EBUSY);
	expect("resize-reserved", xioctl(fd1, PKRAM_IOC_RESIZE, &r), -EINVAL);
	close(fd1);
	fd3 = open_dev();
	expect("attach-after-close", attach(fd3, "st-a", 0, &a), 0);
	result(a.created == 0, "attach-existing-out", "created=%u", a.created);
	close(fd3);
	expect("destroy", destroy(fd2, "st-a"), 0);
	close(fd2);
}

/*
 * A reader (PKRAM_ATTACH_READER, what a daemon lends to pkramfs-ctl export):
 * read-only down to its open file, pread() only, beside the node's attacher,
 * and the node cannot be destroyed under it.
 */
static void t_reader(void)
{
	int fd1 = open_dev(), rw = open_dev(), ro = open(PKRAM_DEVICE_PATH, O_RDONLY | O_CLOEXEC);
	struct pkram_policy pol = { .mode = PKRAM_POLICY_DEFAULT };
	unsigned char *p, buf[16];
	struct pkram_node_info info;

	if (ro < 0)
		die("open " PKRAM_DEVICE_PATH " read-only");
	expect("reader-create", attach(fd1, "st-r", PKRAM_ATTACH_CREATE, NULL), 0);
	expect("reader-populate", range_ioc(fd1, PKRAM_IOC_POPULATE, 0, 1), 0);
	p = map_node(fd1, FRAME);
	memset(p, 0x5c, 16);
	expect("reader-missing", attach(ro, "st-missing", PKRAM_ATTACH_READER, NULL), -ENOENT);
	expect("reader-with-create", attach(ro, "st-r", PKRAM_ATTACH_READER | PKRAM_ATTACH_CREATE, NULL),
	       -EINVAL);
	expect("reader-writable-fd", attach(rw, "st-r", PKRAM_ATTACH_READER, NULL), -EBADF);
	expect("reader-beside-attacher", attach(ro, "st-r", PKRAM_ATTACH_READER, NULL), 0);
	result(pread(ro, buf, sizeof(buf), 0) == sizeof(buf) && buf[0] == 0x5c && buf[15] == 0x5c,
	       "reader-pread", "did not read the node's bytes");
	{	/* read-only: the VFS alone would allow it, the module refuses */
		void *q = mmap(NULL, FRAME, PROT_READ, MAP_SHARED, ro, 0);

		expect("reader-mmap", q == MAP_FAILED ? -errno : 0, -EACCES);
		if (q != MAP_FAILED)
			munmap(q, FRAME);
	}
	expect("reader-populate-refused", range_ioc(ro, PKRAM_IOC_POPULATE, 1, 1), -EBADF);
	expect("reader-punch-refused", range_ioc(ro, PKRAM_IOC_PUNCH, 0, 1), -EBADF);
	expect("reader-resize-refused", resize(ro, 4), -EBADF);
	expect("reader-preserve-refused", xioctl(ro, PKRAM_IOC_PRESERVE, NULL), -EBADF);
	expect("reader-policy-refused", xioctl(ro, PKRAM_IOC_SET_POLICY, &pol), -EBADF);
	expect("reader-destroy-busy", destroy(rw, "st-r"), -EBUSY);
	stat_node(rw, "st-r", &info);
	result(info.nr_frames == 1 && info.populated == 1, "reader-node-unchanged",
	       "span %u populated %u", info.nr_frames, info.populated);
	munmap(p, FRAME);
	close(fd1);
	expect("reader-keeps-node", destroy(rw, "st-r"), -EBUSY);
	close(ro);
	expect("reader-closed-destroy", destroy(rw, "st-r"), 0);
	close(rw);
}

static void t_enospc(int fd0)
{
	struct pkram_version v;
	int fd = open_dev();

	version(fd0, &v);
	attach(fd, "st-big", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	expect("resize-huge", resize(fd, 0xffffffffu), -ENOSPC);
	expect("resize-region+1", resize(fd, v.data_frames + 1), -ENOSPC);
	expect("resize-all-free", resize(fd, v.free_frames), 0);
	expect("resize-free+1", resize(fd, v.free_frames + 1), -ENOSPC);
	{
		struct pkram_version w;

		version(fd0, &w);
		result(w.free_frames == 0, "free-zero", "free_frames=%u", w.free_frames);
	}
	expect("shrink-to-1", resize(fd, 1), 0);
	close(fd);
	expect("destroy-big", destroy(fd0, "st-big"), 0);
}

/* SET_POLICY: bad input refused, BIND keeps to its node's free frames, all or nothing. */
static void t_policy(int fd0)
{
	struct pkram_version v, w;
	struct pkram_node_info info;
	int first = 0, last = 0, fd = open_dev();

	if (!region_nids(&first, &last)) {
		result(0, "policy-sysfs", "no /sys/kernel/pkram/numa");
		return;
	}
	expect("policy-unattached", set_policy(fd, PKRAM_POLICY_INTERLEAVE, 0, 0), 0);
	expect("policy-bad-mode", set_policy(fd, 4, 0, 0), -EINVAL);
	expect("policy-reserved", set_policy(fd, PKRAM_POLICY_BIND, first, 1), -EINVAL);
	expect("policy-nid-without-node", set_policy(fd, PKRAM_POLICY_DEFAULT, 1, 0), -EINVAL);
	expect("policy-nid-huge", set_policy(fd, PKRAM_POLICY_BIND, 0xffffffffu, 0), -EINVAL);
	expect("policy-nid-outside", set_policy(fd, PKRAM_POLICY_PREFERRED, last + 1, 0), -ENXIO);
	expect("policy-efault", xioctl(fd, PKRAM_IOC_SET_POLICY, (void *)1), -EFAULT);
	expect("policy-bind", set_policy(fd, PKRAM_POLICY_BIND, first, 0), 0);
	attach(fd, "st-policy", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	version(fd0, &v);
	/* with one node, all free frames are on it: one more is ENOSPC and nothing moves */
	if (first == last)
		expect("policy-bind-enospc", range_ioc(fd, PKRAM_IOC_POPULATE, 0, v.free_frames + 1),
		       -ENOSPC);
	version(fd0, &w);
	result(w.free_frames == v.free_frames, "policy-all-or-nothing", "free %u->%u",
	       v.free_frames, w.free_frames);
	expect("policy-bind-populate", range_ioc(fd, PKRAM_IOC_POPULATE, 0, 2), 0);
	stat_node(fd0, "st-policy", &info);
	result(info.populated == 2, "policy-populated", "populated=%u", info.populated);
	expect("policy-interleave-resize", set_policy(fd, PKRAM_POLICY_INTERLEAVE, 0, 0) ?:
	       resize(fd, 4), 0);
	close(fd);
	expect("policy-destroy", destroy(fd0, "st-policy"), 0);
}

static int map_err(int fd, size_t len, off_t off, int flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, off);

	if (p == MAP_FAILED)
		return -errno;
	munmap(p, len);
	return 0;
}

static void t_mmap(int fd0)
{
	int fd = open_dev(), ok;
	unsigned char *p;
	pid_t pid;

	attach(fd, "st-map", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	/* any range below the largest span maps; holes fault (t_sparse) */
	expect("mmap-empty", map_err(fd, FRAME, 0, MAP_SHARED), 0);
	resize(fd, 2);
	expect("mmap-beyond-len", map_err(fd, 3 * FRAME, 0, MAP_SHARED), 0);
	expect("mmap-beyond-off", map_err(fd, 4096, 2 * FRAME, MAP_SHARED), 0);
	expect("mmap-past-max-span",
	       map_err(fd, 2 * FRAME, (off_t)(PKRAM_MAX_SPAN - 1) * FRAME, MAP_SHARED), -EINVAL);
	expect("mmap-huge-off", map_err(fd, 4096, (off_t)1 << 62, MAP_SHARED), -EINVAL);
	expect("mmap-private", map_err(fd, FRAME, 0, MAP_PRIVATE), -EINVAL);
	expect("mmap-offset", map_err(fd, FRAME, FRAME - 8192, MAP_SHARED), 0);

	p = map_node(fd, 2 * FRAME);
	ok = p[0] == 0 && p[2 * FRAME - 1] == 0;
	p[0] = 0xa5;
	p[2 * FRAME - 1] = 0x5a;
	result(ok, "new-frames-zero", "fresh node not zeroed");
	expect("shrink-while-mapped", resize(fd, 1), -EBUSY);
	expect("grow-while-mapped", resize(fd, 3), 0);
	pid = fork();
	if (pid == 0)
		_exit(p[0] == 0xa5 ? 0 : 1);
	{
		int st;

		waitpid(pid, &st, 0);
		result(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fork-shares", "child saw other data");
	}
	munmap(p + 4096, 4096);		/* split the VMA in three */
	expect("shrink-after-split", resize(fd, 1), -EBUSY);
	munmap(p, 4096);
	munmap(p + 8192, 2 * FRAME - 8192);
	expect("shrink-after-unmap", resize(fd, 1), 0);
	p = map_node(fd, FRAME);
	result(p[0] == 0xa5, "shrink-keeps-head", "first byte %#x", p[0]);
	munmap(p, FRAME);
	expect("preserve", xioctl(fd, PKRAM_IOC_PRESERVE, NULL), 0);
	expect("resize-preserved", resize(fd, 2), -EBUSY);
	{
		struct pkram_node_info info;

		stat_node(fd0, "st-map", &info);
		result(info.state == PKRAM_STATE_PRESERVED && info.attached == 1 && info.nr_frames == 1,
		       "stat-preserved", "state=%u attached=%u nr=%u", info.state, info.attached, info.nr_frames);
	}
	expect("unpreserve", xioctl(fd, PKRAM_IOC_UNPRESERVE, NULL), 0);
	expect("grow-again", resize(fd, 2), 0);
	p = map_node(fd, 2 * FRAME);
	result(p[0] == 0xa5 && p[FRAME] == 0 && p[2 * FRAME - 1] == 0, "regrow-zeroed",
	       "bytes %#x %#x %#x", p[0], p[FRAME], p[2 * FRAME - 1]);
	munmap(p, 2 * FRAME);
	close(fd);
	expect("destroy-map", destroy(fd0, "st-map"), 0);
}

static int range_ioc(int fd, unsigned long cmd, uint32_t first, uint32_t count)
{
	struct pkram_range r = { .first = first, .count = count };

	return xioctl(fd, cmd, &r);
}

static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

/*
 * The first byte of *p read by this process, or -1 on SIGBUS.  Not in a
 * child: fork() does not copy the PTEs of a shared file mapping, so a child
 * would fault afresh instead of using the PTEs this process holds.
 */
static int self_read(const volatile unsigned char *p)
{
	struct sigaction sa = { .sa_handler = on_sigbus }, old;
	int b;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1))
		b = -1;
	else
		b = p[0];
	sigaction(SIGBUS, &old, NULL);
	return b;
}

/* 1 if reading *p in a child process raises SIGBUS. */
static int read_faults(const volatile unsigned char *p)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		(void)p[0];
		_exit(0);
	}
	waitpid(pid, &st, 0);
	return WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS;
}

static int byte_at(int fd, off_t off)
{
	unsigned char b;
	ssize_t n = pread(fd, &b, 1, off);

	return n == 1 ? b : n == 0 ? -1 : -2;
}

static void expect_node(int fd0, const char *node, const char *name, const char *what, uint32_t span,
			uint32_t populated)
{
	struct pkram_node_info info;

	stat_node(fd0, node, &info);
	result(info.nr_frames == span && info.populated == populated, name,
	       "%s: span %u populated %u, expected %u %u", what, info.nr_frames,
	       info.populated, span, populated);
}

/* Sparse nodes: POPULATE, PUNCH, holes through mmap and pread. */
static void t_sparse(int fd0)
{
	struct pkram_version v0, v1;
	int fd = open_dev();
	unsigned char *p;

	version(fd0, &v0);
	attach(fd, "st-sparse", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	expect("populate-unattached", range_ioc(fd0, PKRAM_IOC_POPULATE, 0, 1), -EBADFD);
	expect("punch-unattached", range_ioc(fd0, PKRAM_IOC_PUNCH, 0, 1), -EBADFD);
	expect("populate-count-0", range_ioc(fd, PKRAM_IOC_POPULATE, 0, 0), -EINVAL);
	expect("punch-count-0", range_ioc(fd, PKRAM_IOC_PUNCH, 0, 0), -EINVAL);
	expect("populate-past-max", range_ioc(fd, PKRAM_IOC_POPULATE, PKRAM_MAX_SPAN - 1, 2), -EINVAL);
	expect("populate-wrap", range_ioc(fd, PKRAM_IOC_POPULATE, 5, 0xffffffffu), -EINVAL);
	expect("pread-empty", byte_at(fd, 0), -1);
	p = mmap(NULL, 8 * FRAME, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	result(p != MAP_FAILED, "map-before-populate", "%s", strerror(errno));
	if (p == MAP_FAILED)
		return;
	expect("populate-one", range_ioc(fd, PKRAM_IOC_POPULATE, 3, 1), 0);
	expect_node(fd0, "st-sparse", "populate-one-stat", "after populating index 3", 4, 1);
	result(read_faults(p), "hole-sigbus", "reading hole 0 did not raise SIGBUS");
	result(read_faults(p + 4 * FRAME), "past-span-sigbus", "reading past the span did not fault");
	result(p[3 * FRAME] == 0 && p[4 * FRAME - 1] == 0, "populated-zero", "new frame not zeroed");
	p[3 * FRAME] = 0x77;
	expect("pread-data", byte_at(fd, 3 * FRAME), 0x77);
	expect("pread-hole", byte_at(fd, 4096), 0);
	expect("pread-eof", byte_at(fd, 4 * FRAME), -1);
	expect("populate-enospc", range_ioc(fd, PKRAM_IOC_POPULATE, 4, v0.free_frames), -ENOSPC);
	version(fd0, &v1);
	result(v1.free_frames == v0.free_frames - 1, "enospc-all-or-nothing", "free %u, expected %u",
	       v1.free_frames, v0.free_frames - 1);
	expect_node(fd0, "st-sparse", "enospc-stat", "after a refused populate", 4, 1);
	expect("populate-fill-holes", range_ioc(fd, PKRAM_IOC_POPULATE, 0, 4), 0);
	expect_node(fd0, "st-sparse", "fill-holes-stat", "after filling holes", 4, 4);
	result(p[3 * FRAME] == 0x77 && p[0] == 0, "populate-keeps-data", "bytes %#x %#x",
	       p[3 * FRAME], p[0]);
	expect("punch-mapped", range_ioc(fd, PKRAM_IOC_PUNCH, 3, 1), 0);
	/* in this process: its PTE must be gone, not just absent from a child */
	result(self_read(p + 3 * FRAME) == -1, "punched-sigbus",
	       "a punched mapped frame is still readable");
	expect("pread-punched", byte_at(fd, 3 * FRAME), 0);
	expect_node(fd0, "st-sparse", "punch-stat", "after punching index 3", 4, 3);
	version(fd0, &v1);
	result(v1.free_frames == v0.free_frames - 3, "punch-frees", "free %u, expected %u",
	       v1.free_frames, v0.free_frames - 3);
	expect("punch-past-span", range_ioc(fd, PKRAM_IOC_PUNCH, 100, 10), 0);
	expect("repopulate", range_ioc(fd, PKRAM_IOC_POPULATE, 3, 1), 0);
	result(p[3 * FRAME] == 0, "repopulated-zero", "a punched frame came back with data");
	expect("preserve", xioctl(fd, PKRAM_IOC_PRESERVE, NULL), 0);
	expect("populate-preserved", range_ioc(fd, PKRAM_IOC_POPULATE, 5, 1), -EBUSY);
	expect("punch-preserved", range_ioc(fd, PKRAM_IOC_PUNCH, 0, 1), -EBUSY);
	expect("unpreserve", xioctl(fd, PKRAM_IOC_UNPRESERVE, NULL), 0);
	munmap(p, 8 * FRAME);
	close(fd);
	expect("destroy-sparse", destroy(fd0, "st-sparse"), 0);
}

/*
 * get_user_pages on the mapping: FUSE copies replies from (and requests
 * into) the daemon's buffers that way, so replying straight from arena
 * memory needs it.  vmsplice() into a pipe is the simplest GUP user.
 */
static void t_gup(int fd0)
{
	int fd = open_dev(), p[2], ok;
	struct iovec iov;
	unsigned char *m, buf[4096];
	ssize_t n;

	attach(fd, "st-gup", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	resize(fd, 1);
	m = map_node(fd, FRAME);
	memset(m + 8192, 0x3c, 4096);
	if (pipe(p))
		die("pipe");
	iov.iov_base = m + 8192;
	iov.iov_len = 4096;
	n = vmsplice(p[1], &iov, 1, 0);
	expect("gup-vmsplice", n == 4096 ? 0 : -errno, 0);
	ok = n == 4096 && read(p[0], buf, sizeof(buf)) == 4096 && buf[0] == 0x3c && buf[4095] == 0x3c;
	result(ok, "gup-data", "pipe did not return the mapped bytes");
	close(p[0]);
	close(p[1]);
	munmap(m, FRAME);
	close(fd);
	destroy(fd0, "st-gup");
}

/* Faults in one process while the node's frame array grows in another. */
static void t_race(int fd0)
{
	struct pkram_version v;
	int fd = open_dev(), st, i, ok = 1;
	volatile unsigned char *m;
	pid_t pid;

	attach(fd, "st-race", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	resize(fd, 1);
	m = map_node(fd, FRAME);
	pid = fork();
	if (pid == 0) {
		for (i = 0; i < 300; i++) {
			madvise((void *)m, FRAME, MADV_DONTNEED);
			m[(i * 4096) % FRAME] = (unsigned char)i;
			if (m[(i * 4096) % FRAME] != (unsigned char)i)
				_exit(1);
		}
		_exit(0);
	}
	version(fd0, &v);
	for (i = 2; i <= (int)v.free_frames + 1; i++)
		if (resize(fd, i))
			ok = 0;
	waitpid(pid, &st, 0);
	result(ok && WIFEXITED(st) && WEXITSTATUS(st) == 0, "fault-vs-grow",
	       "grow ok=%d child status %#x", ok, st);
	munmap((void *)m, FRAME);
	close(fd);
	destroy(fd0, "st-race");
}

struct ops_arg {
	int fd;
	uint32_t first;
	int rounds, errors;
};

static void *ops_thread(void *p)
{
	struct ops_arg *a = p;
	int i;

	for (i = 0; i < a->rounds; i++) {
		if (range_ioc(a->fd, PKRAM_IOC_POPULATE, a->first, 4) ||
		    range_ioc(a->fd, PKRAM_IOC_PUNCH, a->first + (i & 1), 2))
			a->errors++;
	}
	return NULL;
}

/*
 * Two threads populate and punch overlapping ranges of one fd while a child
 * faults the node: frames are zeroed without the global lock, so the steps
 * of one operation must not be mixed with the other's (per-fd op_lock).
 * Afterwards the node's populated count matches what its pages show, and
 * destroying it gives every frame back.
 */
static void t_concurrent_ops(int fd0)
{
	struct ops_arg a = { .first = 0, .rounds = 40 }, b = { .first = 2, .rounds = 40 };
	struct pkram_version v0, v1;
	struct pkram_node_info info;
	int fd = open_dev(), st, i, ok = 1;
	volatile unsigned char *m;
	pthread_t ta, tb;
	pid_t pid;

	version(fd0, &v0);
	attach(fd, "st-ops", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	m = mmap(NULL, 6 * FRAME, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	a.fd = b.fd = fd;
	pid = fork();
	if (pid == 0) {	/* faults: a page reads zero (populated) or raises SIGBUS (hole) */
		for (i = 0; i < 2000; i++)
			if (self_read(m + (size_t)(i % 6) * FRAME + 4096) > 0)
				_exit(1);
		_exit(0);
	}
	pthread_create(&ta, NULL, ops_thread, &a);
	pthread_create(&tb, NULL, ops_thread, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	waitpid(pid, &st, 0);
	stat_node(fd0, "st-ops", &info);
	for (i = 0; i < 6; i++)
		ok &= (byte_at(fd, (off_t)i * FRAME) >= 0);
	version(fd0, &v1);
	result(!a.errors && !b.errors && WIFEXITED(st) && !WEXITSTATUS(st) && ok &&
	       info.populated <= 6 && v1.free_frames == v0.free_frames - info.populated,
	       "concurrent-ops", "errors %d %d, child %#x, populated %u, free %u -> %u",
	       a.errors, b.errors, st, info.populated, v0.free_frames, v1.free_frames);
	munmap((void *)m, 6 * FRAME);
	close(fd);
	expect("concurrent-ops-destroy", destroy(fd0, "st-ops"), 0);
	version(fd0, &v1);
	result(v1.free_frames == v0.free_frames, "concurrent-ops-free", "free %u -> %u",
	       v0.free_frames, v1.free_frames);
}

static void t_list(int fd)
{
	struct pkram_node_info buf[4];
	struct pkram_list l = { .entries = (uintptr_t)buf, .capacity = 0 };
	struct pkram_version v;
	int fds[3], i;
	char name[16];

	for (i = 0; i < 3; i++) {
		fds[i] = open_dev();
		snprintf(name, sizeof(name), "st-l%d", i);
		attach(fds[i], name, PKRAM_ATTACH_CREATE, NULL);
	}
	version(fd, &v);
	expect("list-short", xioctl(fd, PKRAM_IOC_LIST, &l), -E2BIG);
	result(l.count == v.nr_nodes, "list-short-count", "count=%u nr_nodes=%u", l.count, v.nr_nodes);
	l.capacity = v.nr_nodes;
	expect("list-exact", v.nr_nodes <= 4 ? xioctl(fd, PKRAM_IOC_LIST, &l) : -E2BIG, 0);
	l.capacity = 4;
	l.entries = 1;
	expect("list-efault", xioctl(fd, PKRAM_IOC_LIST, &l), -EFAULT);
	for (i = 0; i < 3; i++) {
		close(fds[i]);
		snprintf(name, sizeof(name), "st-l%d", i);
		destroy(fd, name);
	}
}

static void t_table_full(int fd)
{
	struct pkram_version v;
	char name[32];
	int i, n = 0, ret = 0;

	version(fd, &v);
	for (i = 0; i < 1000; i++) {
		int f = open_dev();

		snprintf(name, sizeof(name), "st-full-%d", i);
		ret = attach(f, name, PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
		close(f);
		if (ret)
			break;
		n++;
	}
	expect("table-full", ret, -ENOSPC);
	result(n + v.nr_nodes == v.max_nodes, "table-size", "created %d + %u existing, max %u",
	       n, v.nr_nodes, v.max_nodes);
	for (i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "st-full-%d", i);
		destroy(fd, name);
	}
}

/* Random commands and random argument bytes: must fail cleanly, never oops. */
static void t_fuzz(int fd0)
{
	static unsigned char buf[8192];
	static const unsigned long real[] = {
		PKRAM_IOC_VERSION, PKRAM_IOC_ATTACH, PKRAM_IOC_RESIZE,
		PKRAM_IOC_DESTROY, PKRAM_IOC_LIST, PKRAM_IOC_STAT,
		PKRAM_IOC_POPULATE, PKRAM_IOC_PUNCH,
	};
	struct pkram_node_info nodes[256];
	struct pkram_list l = { .entries = (uintptr_t)nodes, .capacity = 256 };
	uint64_t s = 42;
	unsigned long cmd;
	int i, j, fd;

	for (i = 0; i < 4000; i++) {
		fd = open_dev();
		for (j = 0; j < (int)sizeof(buf); j += 8) {
			uint64_t x = splitmix(s++);

			memcpy(buf + j, &x, 8);
		}
		if (i % 2)
			cmd = real[splitmix(s++) % 8];
		else
			cmd = (unsigned long)splitmix(s++) & 0xffffffffu;
		if (i % 4 == 1)	/* valid-looking names now and then */
			memcpy(buf, "fz", 3);
		ioctl(fd, cmd, buf);
		close(fd);
	}
	/* clean up whatever the fuzzer managed to create */
	if (!xioctl(fd0, PKRAM_IOC_LIST, &l))
		for (i = 0; i < (int)l.count; i++)
			if (!strncmp(nodes[i].name, "fz", 2))
				destroy(fd0, nodes[i].name);
	result(1, "fuzz", "");
}

static int cmd_selftest(const char *pfx)
{
	struct pkram_version v;
	int fd = open_dev();

	prefix = pfx;
	expect("version", version(fd, &v), 0);
	result(v.uapi_version == PKRAM_UAPI_VERSION && v.frame_size == PKRAM_FRAME_SIZE,
	       "version-fields", "uapi=%u frame_size=%u", v.uapi_version, v.frame_size);
	t_garbage_cmds(fd);
	t_names(fd);
	t_unattached(fd);
	t_attach_rules();
	t_reader();
	t_enospc(fd);
	t_policy(fd);
	t_mmap(fd);
	t_sparse(fd);
	t_gup(fd);
	t_race(fd);
	t_concurrent_ops(fd);
	t_list(fd);
	t_table_full(fd);
	t_fuzz(fd);
	{
		struct pkram_version w;

		version(fd, &w);
		result(w.nr_nodes == v.nr_nodes && w.free_frames == v.free_frames, "no-leak",
		       "nodes %u->%u free %u->%u", v.nr_nodes, w.nr_nodes, v.free_frames, w.free_frames);
	}
	return failures ? 1 : 0;
}

/* ---- frames that leave a node (scenario n-stale) --------------------------- */

/* A sysfs number of the module, or -1 if the file is missing. */
static long sysfs_num(const char *attr)
{
	char path[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/pkram/%s", attr);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* Create NAME with every free frame of the region, filled with @byte. */
static int fill_all_free(const char *name, unsigned char byte, uint32_t *got)
{
	struct pkram_version v;
	int fd = open_dev(), ret;
	void *p;

	version(fd, &v);
	*got = v.free_frames;
	ret = attach(fd, name, PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	if (!ret && v.free_frames)
		ret = resize(fd, v.free_frames);
	if (!ret && v.free_frames) {
		p = map_node(fd, (size_t)v.free_frames * FRAME);
		memset(p, byte, (size_t)v.free_frames * FRAME);
		munmap(p, (size_t)v.free_frames * FRAME);
	}
	close(fd);
	return ret;
}

struct stale_ctx {
	int uffd, fd;
	void *arg_page;			/* the page holding the ATTACH argument */
	volatile unsigned char *map;	/* the mapping made while the ioctl was in flight */
	int seen;			/* byte read through it then */
};

/*
 * Runs while ATTACH sits in its copy_to_user() of the result (the argument
 * page is write-protected by userfaultfd): the fd is attached, so map it and
 * fault the node's frame in, then unmap the argument page and wake the
 * ioctl, whose copy_to_user() now fails: ATTACH returns EFAULT and detaches.
 */
static void *stale_handler(void *arg)
{
	struct stale_ctx *c = arg;
	struct pollfd pfd = { .fd = c->uffd, .events = POLLIN };
	struct uffd_msg msg;
	struct uffdio_range r = { .start = (uintptr_t)c->arg_page, .len = 4096 };
	void *m;

	if (poll(&pfd, 1, 10000) != 1 || read(c->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
	    msg.event != UFFD_EVENT_PAGEFAULT)
		return NULL;
	m = mmap(NULL, FRAME, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (m != MAP_FAILED) {
		c->map = m;
		c->seen = c->map[0];
	}
	munmap(c->arg_page, 4096);
	ioctl(c->uffd, UFFDIO_WAKE, &r);
	return NULL;
}

/*
 * stale-attach: a mapping made by another thread while ATTACH is failing
 * (L1).  After the failed ATTACH and a DESTROY of the node, a new node takes
 * every free frame; the old mapping must fault (or read zeros), never show
 * the new node's bytes.
 */
static int cmd_stale_attach(const char *pfx)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	struct uffdio_writeprotect wp = { .mode = UFFDIO_WRITEPROTECT_MODE_WP };
	struct stale_ctx c = { .seen = -1 };
	struct pkram_attach *a;
	struct pkram_node_info info;
	int fd0 = open_dev(), fd, ret, b;
	uint32_t got;
	pthread_t t;
	void *p;

	prefix = pfx;
	fd = open_dev();
	attach(fd, "sa-old", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	resize(fd, 1);
	p = map_node(fd, FRAME);
	memset(p, 0xa1, FRAME);
	munmap(p, FRAME);
	close(fd);

	c.uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
	if (c.uffd < 0 || ioctl(c.uffd, UFFDIO_API, &api))
		die("userfaultfd");
	c.arg_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	a = c.arg_page;
	memset(a, 0, sizeof(*a));
	strcpy(a->name, "sa-old");
	reg.range.start = wp.range.start = (uintptr_t)c.arg_page;
	reg.range.len = wp.range.len = 4096;
	if (ioctl(c.uffd, UFFDIO_REGISTER, &reg) || ioctl(c.uffd, UFFDIO_WRITEPROTECT, &wp))
		die("userfaultfd write-protect");
	c.fd = fd = open_dev();
	pthread_create(&t, NULL, stale_handler, &c);
	ret = xioctl(fd, PKRAM_IOC_ATTACH, a);
	pthread_join(t, NULL);
	expect("attach-efault", ret, -EFAULT);
	result(c.map && c.seen == 0xa1, "mapped-meanwhile", "mapping %p read %#x", (void *)c.map, c.seen);
	if (!c.map)
		return 1;
	stat_node(fd0, "sa-old", &info);
	result(info.attached == 0, "detached", "attached=%u", info.attached);
	b = self_read(c.map);
	result(b == -1, "detached-map-sigbus", "the old mapping still reads %d", b);
	expect("destroy-old", destroy(fd0, "sa-old"), 0);
	expect("new-takes-all", fill_all_free("sa-new", 0xb2, &got), 0);
	b = self_read(c.map);
	result(b == -1 || b == 0, "no-new-data", "the old mapping reads %#x (new node 0xb2)", b);
	munmap((void *)c.map, FRAME);
	close(fd);
	destroy(fd0, "sa-new");
	return failures ? 1 : 0;
}

/* Read the 4096 bytes a vmsplice left in a pipe; the byte they all have, or -1. */
static int pipe_byte(int rfd)
{
	unsigned char buf[4096];
	size_t i;

	if (read(rfd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
		return -2;
	for (i = 1; i < sizeof(buf); i++)
		if (buf[i] != buf[0])
			return -1;
	return buf[0];
}

/*
 * pin-reuse: frames that leave a node while a page of them is referenced
 * (vmsplice into a pipe takes page references through get_user_pages) must
 * not go to another node until the reference is gone (L2).  Frame 0 leaves
 * by PUNCH, frame 1 by DESTROY; a new node then asks for every free frame.
 */
static int cmd_pin_reuse(const char *pfx)
{
	int fd0 = open_dev(), fd = open_dev(), pa[2], pb[2], b0, b1;
	struct iovec iov;
	struct pkram_version v;
	unsigned char *m;
	uint32_t got;
	long q;

	prefix = pfx;
	attach(fd, "pr-old", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	resize(fd, 2);
	m = map_node(fd, 2 * FRAME);
	memset(m, 0xa3, 2 * FRAME);
	if (pipe(pa) || pipe(pb))
		die("pipe");
	iov.iov_base = m + 4096;
	iov.iov_len = 4096;
	expect("vmsplice-0", vmsplice(pa[1], &iov, 1, 0) == 4096 ? 0 : -errno, 0);
	iov.iov_base = m + FRAME + 4096;
	expect("vmsplice-1", vmsplice(pb[1], &iov, 1, 0) == 4096 ? 0 : -errno, 0);
	expect("punch-pinned", range_ioc(fd, PKRAM_IOC_PUNCH, 0, 1), 0);
	munmap(m, 2 * FRAME);
	close(fd);
	expect("destroy-pinned", destroy(fd0, "pr-old"), 0);
	q = sysfs_num("quarantined_frames");
	result(q == 2, "quarantined", "quarantined_frames %ld, expected 2", q);
	expect("new-takes-all", fill_all_free("pr-new", 0xb4, &got), 0);
	b0 = pipe_byte(pa[0]);
	b1 = pipe_byte(pb[0]);
	result(b0 != 0xb4 && b1 != 0xb4 && b0 >= 0 && b1 >= 0, "no-new-data",
	       "pipes read %#x %#x (new node 0xb4, old 0xa3)", b0, b1);
	/* the references are gone: the next POPULATE can use both frames */
	fd = open_node("pr-new", NULL);
	expect("reclaimed", range_ioc(fd, PKRAM_IOC_POPULATE, got, 2), 0);
	close(fd);
	q = sysfs_num("quarantined_frames");
	result(q == 0, "quarantine-empty", "quarantined_frames %ld", q);
	destroy(fd0, "pr-new");
	version(fd0, &v);
	result(v.free_frames == v.data_frames, "all-free", "free %u of %u", v.free_frames,
	       v.data_frames);
	close(pa[0]); close(pa[1]); close(pb[0]); close(pb[1]);
	return failures ? 1 : 0;
}

/*
 * pin-uring: io_uring fixed buffers pin pages for long (FOLL_LONGTERM).
 * Registering a node mapping is either refused (6.1 refuses file-backed
 * memory) or its frame is quarantined when punched.
 */
static int cmd_pin_uring(const char *pfx)
{
	struct io_uring_params par;
	struct iovec iov;
	int fd0 = open_dev(), fd = open_dev(), ring, ret;
	unsigned char *m;
	long q;

	prefix = pfx;
	attach(fd, "pu", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	resize(fd, 1);
	m = map_node(fd, FRAME);
	m[0] = 1;
	memset(&par, 0, sizeof(par));
	ring = syscall(__NR_io_uring_setup, 4, &par);
	if (ring < 0) {
		printf("# io_uring_setup: %s\n", strerror(errno));
		result(1, "uring-pin", "");
		goto out;
	}
	iov.iov_base = m;
	iov.iov_len = FRAME;
	ret = syscall(__NR_io_uring_register, ring, IORING_REGISTER_BUFFERS, &iov, 1) ? -errno : 0;
	printf("# IORING_REGISTER_BUFFERS on a node mapping: %s\n", ename(ret));
	if (ret) {
		result(1, "uring-pin", "");
	} else {
		expect("uring-punch", range_ioc(fd, PKRAM_IOC_PUNCH, 0, 1), 0);
		q = sysfs_num("quarantined_frames");
		result(q == 1, "uring-pin", "quarantined_frames %ld while registered", q);
		syscall(__NR_io_uring_register, ring, IORING_UNREGISTER_BUFFERS, NULL, 0);
	}
	close(ring);
out:
	munmap(m, FRAME);
	close(fd);
	destroy(fd0, "pu");
	return failures ? 1 : 0;
}

/*
 * splice-hold NAME DIR: put a page of NAME into a pipe (vmsplice), unmap and
 * close the node, create DIR/hold.ready, wait for DIR/hold.go, then read
 * the pipe (which drops the page reference) and exit.
 */
static int cmd_splice_hold(const char *name, const char *dir)
{
	int fd = open_node(name, NULL), p[2];
	struct iovec iov;
	char path[256];
	unsigned char *m;

	m = map_node(fd, FRAME);
	if (pipe(p))
		die("pipe");
	iov.iov_base = m;
	iov.iov_len = 4096;
	if (vmsplice(p[1], &iov, 1, 0) != 4096)
		die("vmsplice");
	munmap(m, FRAME);
	close(fd);
	snprintf(path, sizeof(path), "%s/hold.ready", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/hold.go", dir);
	while (access(path, F_OK))
		usleep(50000);
	{
		static char page[4096];	/* all of it: the pipe drops the page when emptied */

		return read(p[0], page, sizeof(page)) == sizeof(page) ? 0 : 1;
	}
}

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * bench N: N rounds of POPULATE of 4 frames and PUNCH of them, while another
 * process keeps faulting a page of another node; prints the mean
 * POPULATE/PUNCH time and the other process's faults (mean, 99th
 * percentile, worst).
 */
static int cmd_bench(const char *nstr)
{
	enum { MAX_SAMPLES = 1 << 20 };
	int n = atoi(nstr), fd0 = open_dev(), fd = open_dev(), fo = open_dev(), i, st, pp[2];
	double t, pop = 0, pun = 0;
	volatile unsigned char *m;
	pid_t pid;

	attach(fd, "bench", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	attach(fo, "bench-other", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	resize(fo, 1);
	m = map_node(fo, FRAME);
	if (pipe(pp))
		die("pipe");
	pid = fork();
	if (pid == 0) {
		double *lat = malloc(MAX_SAMPLES * sizeof(double)), sum = 0;
		long k = 0;
		char c;

		close(pp[1]);
		fcntl(pp[0], F_SETFL, O_NONBLOCK);
		while (read(pp[0], &c, 1) < 0 && k < MAX_SAMPLES) {
			madvise((void *)m, 4096, MADV_DONTNEED);
			t = now_us();
			(void)m[0];
			lat[k] = now_us() - t;
			sum += lat[k++];
		}
		qsort(lat, k, sizeof(double), cmp_double);
		printf("bench: faults of another node meanwhile: %ld, mean %.0f us, 99%% %.0f us, worst %.0f us\n",
		       k, k ? sum / k : 0, k ? lat[k * 99 / 100] : 0, k ? lat[k - 1] : 0);
		fflush(stdout);
		_exit(0);
	}
	close(pp[0]);
	usleep(100000);
	for (i = 0; i < n; i++) {
		t = now_us();
		if (range_ioc(fd, PKRAM_IOC_POPULATE, 0, 4))
			die("POPULATE");
		pop += now_us() - t;
		t = now_us();
		if (range_ioc(fd, PKRAM_IOC_PUNCH, 0, 4))
			die("PUNCH");
		pun += now_us() - t;
	}
	printf("bench: %d rounds: POPULATE of 4 frames %.0f us, PUNCH of 4 frames %.0f us (mean)\n",
	       n, pop / n, pun / n);
	fflush(stdout);
	close(pp[1]);
	waitpid(pid, &st, 0);
	munmap((void *)m, FRAME);
	close(fd);
	close(fo);
	destroy(fd0, "bench");
	destroy(fd0, "bench-other");
	return 0;
}

/*
 * ask SOCKET REQUEST [drop]: one request to a pkramfs-fuse control socket;
 * prints the reply line and "fds N chr M" (descriptors received with it, and
 * how many of them are character devices). With "drop", close the connection
 * right after sending, never reading the reply (nor a descriptor sent with it).
 */
/* debugfs pmd_faults of pkram.ko: the 2 MiB mappings it made */
static long pmd_faults(void)
{
	FILE *f = fopen("/sys/kernel/debug/pkram/pmd_faults", "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

/* mmap @len of @fd at a 2 MiB aligned address, as pkramfs-fuse does */
static unsigned char *map_aligned(int fd, size_t len)
{
	unsigned char *raw, *p;
	uintptr_t a;

	raw = mmap(NULL, len + FRAME, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		die("mmap reserve");
	a = ((uintptr_t)raw + FRAME - 1) & ~(uintptr_t)(FRAME - 1);
	p = mmap((void *)a, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED)
		die("mmap");
	if ((uintptr_t)p > (uintptr_t)raw)
		munmap(raw, (uintptr_t)p - (uintptr_t)raw);
	munmap(p + len, (uintptr_t)raw + len + FRAME - ((uintptr_t)p + len));
	return p;
}

/*
 * mapbench PREFIX FRAMES PMD: a node of FRAMES frames mapped 2 MiB aligned
 * (as the daemon maps its node); writing one word per 4 KiB page, timed,
 * with this process's minor faults and pkram.ko's 2 MiB mappings counted;
 * the data read back through pread; a punched frame raises SIGBUS through
 * the mapping while the other frames keep their data.  PMD is 1 if every
 * frame must be mapped by 2 MiB, 0 if none may be.
 */
static int cmd_mapbench(const char *pfx, const char *nstr, const char *pmdstr)
{
	size_t n = strtoul(nstr, NULL, 0), len = n * FRAME, i, bad = 0;
	int want_pmd = atoi(pmdstr), fd0 = open_dev(), fd = open_dev();
	long f0, p0, faults, pmds;
	unsigned char *m;
	uint64_t w;
	double t;

	prefix = pfx;
	attach(fd, "mapbench", PKRAM_ATTACH_CREATE | PKRAM_ATTACH_EXCL, NULL);
	resize(fd, n);
	if (range_ioc(fd, PKRAM_IOC_POPULATE, 0, n))
		die("POPULATE");
	m = map_aligned(fd, len);
	f0 = minor_faults();
	p0 = pmd_faults();
	t = now_us();
	for (i = 0; i < len; i += 4096)
		*(volatile uint64_t *)(m + i) = splitmix(i);
	t = now_us() - t;
	faults = minor_faults() - f0;
	pmds = pmd_faults() - p0;
	printf("mapbench: %zu MiB written through a %s mapping, one word per 4 KiB page: %.1f ms (%.0f MiB/s), %ld page faults, %ld 2 MiB mappings\n",
	       len >> 20, want_pmd ? "2 MiB" : "4 KiB", t / 1e3, (len >> 20) / (t / 1e6), faults, pmds);
	fflush(stdout);
	if (want_pmd)
		result(pmds == (long)n && faults <= (long)n + 8, "pmd-faults",
		       "%ld 2 MiB mappings and %ld faults for %zu frames", pmds, faults, n);
	else
		result(pmds == 0 && faults >= (long)(len / 4096), "pte-faults",
		       "%ld 2 MiB mappings and %ld faults for %zu pages", pmds, faults, len / 4096);
	for (i = 0; i < len; i += 4096)
		if (pread(fd, &w, sizeof(w), i) != sizeof(w) || w != splitmix(i))
			bad++;
	result(!bad, "map-data", "%zu pages read back wrong through pread", bad);
	/* a punch zaps the frame's mapping (a whole PMD), nothing else */
	if (range_ioc(fd, PKRAM_IOC_PUNCH, 0, 1))
		die("PUNCH");
	result(self_read(m) == -1, "punched-sigbus", "the punched frame is still mapped");
	result(n < 2 || *(volatile uint64_t *)(m + FRAME) == splitmix(FRAME), "unpunched-kept",
	       "frame 1 lost its data through the mapping");
	munmap(m, len);
	close(fd);
	result(destroy(fd0, "mapbench") == 0, "map-destroy", "destroy failed");
	close(fd0);
	return failures ? 1 : 0;
}

static int cmd_ask(const char *path, const char *request, int drop)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	char line[4096], reply[8192];
	size_t got = 0;
	int s, nfds = 0, nchr = 0;

	if (strlen(path) >= sizeof(addr.sun_path))
		return fprintf(stderr, "ask: socket path too long\n"), 1;
	strcpy(addr.sun_path, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return fprintf(stderr, "ask: connect %s: %s\n", path, strerror(errno)), 1;
	snprintf(line, sizeof(line), "%s\n", request);
	if (write(s, line, strlen(line)) != (ssize_t)strlen(line))
		return fprintf(stderr, "ask: send: %s\n", strerror(errno)), 1;
	if (drop) {
		close(s);
		printf("dropped\n");
		return 0;
	}
	while (got < sizeof(reply) - 1) {
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(4 * sizeof(int))];
		} control;
		struct iovec iov = { reply + got, sizeof(reply) - 1 - got };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
				      .msg_control = control.buf,
				      .msg_controllen = sizeof(control.buf) };
		struct cmsghdr *c;
		ssize_t n = recvmsg(s, &msg, MSG_CMSG_CLOEXEC);

		if (n <= 0)
			break;
		for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			size_t i, count;

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (i = 0; i < count; i++) {
				struct stat st;
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				nfds++;
				if (!fstat(fd, &st) && S_ISCHR(st.st_mode))
					nchr++;
				close(fd);
			}
		}
		got += (size_t)n;
	}
	close(s);
	reply[got] = 0;
	printf("%s%sfds %d chr %d\n", reply,
	       got && reply[got - 1] == '\n' ? "" : "\n", nfds, nchr);
	return 0;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: pkram-test version | list | create NAME FRAMES | resize NAME FRAMES\n"
		"       | fill NAME SEED | verify NAME SEED | zero NAME | hash NAME\n"
		"       | preserve NAME | unpreserve NAME | stat NAME | destroy NAME\n"
		"       | punch NAME FIRST COUNT\n"
		"       | place NAME default|bind|preferred|interleave NID FIRST COUNT\n"
		"       | selftest PREFIX | open-as-nobody | devmem-xor PHYS [MASK]\n"
		"       | devmem-save PHYS LEN FILE | devmem-load PHYS FILE | copy-size FRAMES\n"
		"       | ask SOCKET REQUEST [drop]\n"
		"       | stale-attach PREFIX | pin-reuse PREFIX | pin-uring PREFIX | bench N\n"
		"       | splice-hold NAME DIR | mapbench PREFIX FRAMES PMD\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "";

	if (argc == 2 && !strcmp(c, "version"))
		return cmd_version();
	if (argc == 2 && !strcmp(c, "list"))
		return cmd_list();
	if (argc == 2 && !strcmp(c, "open-as-nobody"))
		return cmd_open_as_nobody();
	if ((argc == 3 || argc == 4) && !strcmp(c, "devmem-xor"))
		return cmd_devmem_xor(argv[2], argc == 4 ? argv[3] : NULL);
	if (argc == 5 && !strcmp(c, "devmem-save"))
		return cmd_devmem_copy(argv[2], argv[3], argv[4]);
	if (argc == 4 && !strcmp(c, "devmem-load"))
		return cmd_devmem_copy(argv[2], NULL, argv[3]);
	if (argc == 3 && !strcmp(c, "copy-size"))
		return cmd_copy_size(argv[2]);
	if (argc == 3 && !strcmp(c, "selftest"))
		return cmd_selftest(argv[2]);
	if (argc == 3 && !strcmp(c, "stale-attach"))
		return cmd_stale_attach(argv[2]);
	if (argc == 3 && !strcmp(c, "pin-reuse"))
		return cmd_pin_reuse(argv[2]);
	if (argc == 3 && !strcmp(c, "pin-uring"))
		return cmd_pin_uring(argv[2]);
	if (argc == 4 && !strcmp(c, "splice-hold"))
		return cmd_splice_hold(argv[2], argv[3]);
	if (argc == 3 && !strcmp(c, "bench"))
		return cmd_bench(argv[2]);
	if (argc == 5 && !strcmp(c, "mapbench"))
		return cmd_mapbench(argv[2], argv[3], argv[4]);
	if (argc == 3 && !strcmp(c, "stat"))
		return cmd_stat(argv[2]);
	if (argc == 3 && !strcmp(c, "destroy"))
		return cmd_destroy(argv[2]);
	if (argc == 3 && !strcmp(c, "preserve"))
		return cmd_state(argv[2], PKRAM_IOC_PRESERVE);
	if (argc == 3 && !strcmp(c, "unpreserve"))
		return cmd_state(argv[2], PKRAM_IOC_UNPRESERVE);
	if (argc == 3 && (!strcmp(c, "zero") || !strcmp(c, "hash")))
		return cmd_data(c, argv[2], NULL);
	if (argc == 4 && (!strcmp(c, "fill") || !strcmp(c, "verify")))
		return cmd_data(c, argv[2], argv[3]);
	if (argc == 4 && !strcmp(c, "create"))
		return cmd_create(argv[2], argv[3]);
	if (argc == 5 && !strcmp(c, "punch"))
		return cmd_punch(argv[2], argv[3], argv[4]);
	if (argc == 7 && !strcmp(c, "place"))
		return cmd_place(argv + 2);
	if ((argc == 4 || (argc == 5 && !strcmp(argv[4], "drop"))) && !strcmp(c, "ask"))
		return cmd_ask(argv[2], argv[3], argc == 5);
	if (argc == 4 && !strcmp(c, "resize"))
		return cmd_resize(argv[2], argv[3]);
	return usage();
}
