// SPDX-License-Identifier: GPL-2.0
/*
 * pkram-manifest - describe a directory tree in a form that can be compared
 * across a daemon restart or a kexec, and build test trees fast.
 *
 * Built statically by tools/vm-test (the guest has only busybox, and forking
 * one busybox per file is far too slow under TCG).
 *
 *   pkram-manifest manifest [--ctime] DIR   one line per path, sorted by path
 *   pkram-manifest sha256 FILE...           like sha256sum (self-check)
 *   pkram-manifest populate DIR N [SEED]    N small files in DIR/dNNN/fNNNNN
 *   pkram-manifest setxattr PATH NAME VALUE lsetxattr (VALUE "0x.." is hex)
 *   pkram-manifest rmxattr PATH NAME        lremovexattr
 *
 * Manifest line (fields separated by one space, paths relative to DIR, the
 * root itself is "."; bytes outside 0x21..0x7e and '\' are written \xNN):
 *
 *   PATH TYPE+MODE UID GID SIZE NLINK MTIME [CTIME] CONTENT LINK XATTRS
 *
 * TYPE is one of d f l p c b s, MODE four octal digits (permission, suid,
 * sgid, sticky), times are SEC.NSEC, CONTENT is the SHA-256 of a regular
 * file ("sparse:HASH" for a file with holes: see sha256_file), "->TARGET"
 * for a symlink, "MAJ:MIN" for a device, else "-".  LINK is
 * "=PATH" of the first path (in sorted order) of the same inode when the
 * non-directory has more than one link, else "-".  XATTRS is
 * "NAME=HEX,NAME=HEX" sorted by name, or "-".  The format does not depend on
 * inode numbers, so a tree restored with other numbers compares equal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

static void die(const char *what, const char *arg)
{
	fprintf(stderr, "pkram-manifest: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("malloc", NULL);
	return p;
}

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------ */

struct sha256 {
	uint32_t h[8];
	uint64_t len;		/* bytes hashed so far */
	uint8_t buf[64];
	size_t fill;
};

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_init(struct sha256 *s)
{
	static const uint32_t h0[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(s->h, h0, sizeof(h0));
	s->len = 0;
	s->fill = 0;
}

static void sha256_block(struct sha256 *s, const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);

		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
	e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
	for (i = 0; i < 64; i++) {
		t1 = h + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		h = g; g = f; f = e; e = d + t1;
		d = c; c = b; b = a; a = t1 + t2;
	}
	s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
	s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

static void sha256_update(struct sha256 *s, const void *data, size_t n)
{
	const uint8_t *p = data;

	s->len += n;
	if (s->fill) {
		size_t take = 64 - s->fill < n ? 64 - s->fill : n;

		memcpy(s->buf + s->fill, p, take);
		s->fill += take;
		p += take;
		n -= take;
		if (s->fill < 64)
			return;
		sha256_block(s, s->buf);
		s->fill = 0;
	}
	for (; n >= 64; p += 64, n -= 64)
		sha256_block(s, p);
	memcpy(s->buf, p, n);
	s->fill = n;
}

static void sha256_hex(struct sha256 *s, char out[65])
{
	uint64_t bits = s->len * 8;
	uint8_t pad[72] = { 0x80 };
	size_t padlen = (s->fill < 56 ? 56 : 120) - s->fill;
	int i;

	for (i = 0; i < 8; i++)
		pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_update(s, pad, padlen + 8);
	for (i = 0; i < 8; i++)
		sprintf(out + 8 * i, "%08" PRIx32, s->h[i]);
}

static char iobuf[1 << 20];

/* hash [from, to) of fd, or to EOF if to < 0; 0 or -errno */
static int sha256_range(struct sha256 *s, int fd, off_t from, off_t to)
{
	ssize_t n;
	size_t want;

	while (to < 0 || from < to) {
		want = to < 0 || (off_t)sizeof(iobuf) < to - from ? sizeof(iobuf) : (size_t)(to - from);
		n = pread(fd, iobuf, want, from);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return to < 0 ? 0 : -EIO;	/* shorter than SEEK_HOLE said */
		sha256_update(s, iobuf, (size_t)n);
		from += n;
	}
	return 0;
}

static void put_le64(struct sha256 *s, uint64_t v)
{
	uint8_t b[8];
	int i;

	for (i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	sha256_update(s, b, 8);
}

/*
 * SHA-256 of a file's contents; 0 or -errno.  With sparse != 0, a file whose
 * first hole (SEEK_HOLE) lies before its end is hashed as its data segments
 * instead (for each: offset, length as 64-bit LE, bytes; then the size) and
 * *sparse is set, so that a 1 GiB file with a few MiB of data does not cost a
 * GiB of hashing under TCG.  Equal content and equal holes give equal hashes.
 */
static int sha256_file(const char *path, char out[65], int *sparse)
{
	struct sha256 s;
	struct stat st;
	off_t data, hole, pos = 0;
	int ret = 0, fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	sha256_init(&s);
	if (sparse && fstat(fd, &st) == 0 && (hole = lseek(fd, 0, SEEK_HOLE)) >= 0 &&
	    hole < st.st_size) {
		*sparse = 1;
		for (;;) {
			data = lseek(fd, pos, SEEK_DATA);
			if (data < 0 && errno == ENXIO)
				break;
			if (data < 0 || (hole = lseek(fd, data, SEEK_HOLE)) < 0) {
				ret = -errno;
				break;
			}
			put_le64(&s, (uint64_t)data);
			put_le64(&s, (uint64_t)(hole - data));
			ret = sha256_range(&s, fd, data, hole);
			if (ret)
				break;
			pos = hole;
		}
		put_le64(&s, (uint64_t)st.st_size);
	} else {
		if (sparse)
			*sparse = 0;
		ret = sha256_range(&s, fd, 0, -1);
	}
	close(fd);
	if (!ret)
		sha256_hex(&s, out);
	return ret;
}

/* ---- manifest ---------------------------------------------------------------- */

struct entry {
	char *path;		/* relative, escaped */
	char *rest;		/* everything after the LINK field's position */
	char *head;		/* TYPE+MODE ... CONTENT */
	dev_t dev;
	ino_t ino;
	int multi;		/* non-directory with nlink > 1 */
};

static struct entry *entries;
static size_t nr_entries, cap_entries;
static size_t root_len;
static int with_ctime;
static int errors;

/* append escaped bytes to a growing string */
struct str {
	char *s;
	size_t len, cap;
};

static void str_put(struct str *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->s = realloc(b->s, b->cap);
		if (!b->s)
			die("realloc", NULL);
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = 0;
}

static void str_printf(struct str *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_printf(struct str *b, const char *fmt, ...)
{
	char tmp[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	str_put(b, tmp, (size_t)n);
}

static void str_escape(struct str *b, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c <= 0x20 || c >= 0x7f || c == '\\')
			str_printf(b, "\\x%02x", c);
		else
			str_put(b, (const char *)&c, 1);
	}
}

static void str_hex(struct str *b, const char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		char h[2] = { digits[(unsigned char)p[i] >> 4], digits[p[i] & 15] };

		str_put(b, h, 2);
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* " NAME=HEX,NAME=HEX" or " -" */
static void put_xattrs(struct str *b, const char *path)
{
	ssize_t len = llistxattr(path, NULL, 0), vlen;
	char *names, *p, **sorted, *val;
	size_t n = 0, i;

	if (len < 0) {
		if (errno == ENOTSUP || errno == ENOSYS) {
			str_put(b, " -", 2);
			return;
		}
		fprintf(stderr, "pkram-manifest: llistxattr %s: %s\n", path, strerror(errno));
		errors++;
		str_put(b, " ?", 2);
		return;
	}
	if (len == 0) {
		str_put(b, " -", 2);
		return;
	}
	names = xmalloc((size_t)len + 1);
	len = llistxattr(path, names, (size_t)len);
	if (len < 0)
		die("llistxattr", path);
	for (p = names; p < names + len; p += strlen(p) + 1)
		n++;
	sorted = xmalloc(n * sizeof(*sorted));
	n = 0;
	for (p = names; p < names + len; p += strlen(p) + 1)
		sorted[n++] = p;
	qsort(sorted, n, sizeof(*sorted), cmp_str);
	str_put(b, " ", 1);
	for (i = 0; i < n; i++) {
		if (i)
			str_put(b, ",", 1);
		str_escape(b, sorted[i], strlen(sorted[i]));
		str_put(b, "=", 1);
		vlen = lgetxattr(path, sorted[i], NULL, 0);
		if (vlen < 0) {
			fprintf(stderr, "pkram-manifest: lgetxattr %s %s: %s\n", path, sorted[i],
				strerror(errno));
			errors++;
			str_put(b, "?", 1);
			continue;
		}
		val = xmalloc((size_t)vlen);
		vlen = lgetxattr(path, sorted[i], val, (size_t)vlen);
		if (vlen < 0)
			die("lgetxattr", path);
		str_hex(b, val, (size_t)vlen);
		free(val);
	}
	free(sorted);
	free(names);
}

static char type_char(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFDIR: return 'd';
	case S_IFREG: return 'f';
	case S_IFLNK: return 'l';
	case S_IFIFO: return 'p';
	case S_IFCHR: return 'c';
	case S_IFBLK: return 'b';
	case S_IFSOCK: return 's';
	}
	return '?';
}

static int visit(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	struct str p = { 0 }, h = { 0 }, r = { 0 };
	struct entry *e;
	const char *rel = path + root_len;

	(void)ftw;
	if (flag == FTW_NS || flag == FTW_DNR) {
		fprintf(stderr, "pkram-manifest: cannot %s %s\n",
			flag == FTW_NS ? "stat" : "read", path);
		errors++;
		if (flag == FTW_NS)
			return 0;
	}
	while (*rel == '/')
		rel++;
	if (!*rel)
		str_put(&p, ".", 1);
	else
		str_escape(&p, rel, strlen(rel));

	str_printf(&h, "%c%04o %u %u %lld %lu %lld.%09ld", type_char(st->st_mode),
		   (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid, (unsigned)st->st_gid,
		   (long long)st->st_size, (unsigned long)st->st_nlink,
		   (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
	if (with_ctime)
		str_printf(&h, " %lld.%09ld", (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
	if (S_ISREG(st->st_mode)) {
		char hex[65];
		int sparse = 0, ret = sha256_file(path, hex, &sparse);

		if (ret) {
			fprintf(stderr, "pkram-manifest: read %s: %s\n", path, strerror(-ret));
			errors++;
			str_put(&h, " ?", 2);
		} else {
			str_printf(&h, " %s%s", sparse ? "sparse:" : "", hex);
		}
	} else if (S_ISLNK(st->st_mode)) {
		char target[4097];
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		if (n < 0) {
			fprintf(stderr, "pkram-manifest: readlink %s: %s\n", path, strerror(errno));
			errors++;
			n = 0;
		}
		str_put(&h, " ->", 3);
		str_escape(&h, target, (size_t)n);
	} else if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		str_printf(&h, " %u:%u", major(st->st_rdev), minor(st->st_rdev));
	} else {
		str_put(&h, " -", 2);
	}
	put_xattrs(&r, path);

	if (nr_entries == cap_entries) {
		cap_entries = cap_entries ? cap_entries * 2 : 1024;
		entries = realloc(entries, cap_entries * sizeof(*entries));
		if (!entries)
			die("realloc", NULL);
	}
	e = &entries[nr_entries++];
	e->path = p.s;
	e->head = h.s;
	e->rest = r.s;
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->multi = !S_ISDIR(st->st_mode) && st->st_nlink > 1;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

static int cmd_manifest(int argc, char **argv)
{
	const char *root;
	size_t i, j;

	if (argc > 0 && !strcmp(argv[0], "--ctime")) {
		with_ctime = 1;
		argc--;
		argv++;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: pkram-manifest manifest [--ctime] DIR\n");
		return 2;
	}
	root = argv[0];
	root_len = strlen(root);
	if (nftw(root, visit, 64, FTW_PHYS) != 0)
		die("nftw", root);
	qsort(entries, nr_entries, sizeof(*entries), cmp_entry);
	for (i = 0; i < nr_entries; i++) {
		const char *link = "-";

		if (entries[i].multi) {
			/* the first path in sorted order of the same inode */
			for (j = 0; j < i; j++)
				if (entries[j].multi && entries[j].ino == entries[i].ino &&
				    entries[j].dev == entries[i].dev)
					break;
			if (j < i)
				link = entries[j].path;
		}
		if (link[0] == '-')
			printf("%s %s -%s\n", entries[i].path, entries[i].head, entries[i].rest);
		else
			printf("%s %s =%s%s\n", entries[i].path, entries[i].head, link,
			       entries[i].rest);
	}
	if (fflush(stdout) != 0)
		die("write", "stdout");
	return errors ? 1 : 0;
}

/* ---- helpers for building trees ------------------------------------------- */

static int cmd_sha256(int argc, char **argv)
{
	char hex[65];
	int i, ret, rc = 0;

	for (i = 0; i < argc; i++) {
		ret = sha256_file(argv[i], hex, NULL);
		if (ret) {
			fprintf(stderr, "pkram-manifest: %s: %s\n", argv[i], strerror(-ret));
			rc = 1;
			continue;
		}
		printf("%s  %s\n", hex, argv[i]);
	}
	return rc;
}

static uint64_t rng_next(uint64_t *s)	/* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * N files DIR/dNNN/fNNNNN (100 per directory), sizes 0..4199 bytes,
 * contents from SEED; every 10th file mode 0600, every 7th 0755.
 */
static int cmd_populate(int argc, char **argv)
{
	char path[4096], data[4200];
	unsigned long n, i, seed;
	uint64_t s;
	size_t size, k;
	int fd;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: pkram-manifest populate DIR N [SEED]\n");
		return 2;
	}
	n = strtoul(argv[1], NULL, 0);
	seed = argc > 2 ? strtoul(argv[2], NULL, 0) : 1;
	for (i = 0; i < n; i++) {
		if (i % 100 == 0) {
			snprintf(path, sizeof(path), "%s/d%03lu", argv[0], i / 100);
			if (mkdir(path, 0755) && errno != EEXIST)
				die("mkdir", path);
		}
		snprintf(path, sizeof(path), "%s/d%03lu/f%05lu", argv[0], i / 100, i);
		s = seed * 1000003 + i;
		size = rng_next(&s) % sizeof(data);
		for (k = 0; k < size; k += 8) {
			uint64_t v = rng_next(&s);

			memcpy(data + k, &v, size - k < 8 ? size - k : 8);
		}
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			  i % 10 == 0 ? 0600 : i % 7 == 0 ? 0755 : 0644);
		if (fd < 0)
			die("create", path);
		if (size && write(fd, data, size) != (ssize_t)size)
			die("write", path);
		if (close(fd))
			die("close", path);
	}
	return 0;
}

static int unhex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int cmd_setxattr(int argc, char **argv)
{
	const char *v;
	char *val;
	size_t len, i;

	if (argc != 3) {
		fprintf(stderr, "usage: pkram-manifest setxattr PATH NAME VALUE\n");
		return 2;
	}
	v = argv[2];
	if (!strncmp(v, "0x", 2)) {
		v += 2;
		len = strlen(v) / 2;
		val = xmalloc(len);
		for (i = 0; i < len; i++) {
			int hi = unhex(v[2 * i]), lo = unhex(v[2 * i + 1]);

			if (hi < 0 || lo < 0 || strlen(v) % 2) {
				fprintf(stderr, "pkram-manifest: bad hex value %s\n", argv[2]);
				return 2;
			}
			val[i] = (char)(hi << 4 | lo);
		}
	} else {
		len = strlen(v);
		val = xmalloc(len);
		memcpy(val, v, len);
	}
	if (lsetxattr(argv[0], argv[1], val, len, 0))
		die("lsetxattr", argv[0]);
	free(val);
	return 0;
}

static int cmd_rmxattr(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: pkram-manifest rmxattr PATH NAME\n");
		return 2;
	}
	if (lremovexattr(argv[0], argv[1]))
		die("lremovexattr", argv[0]);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "manifest", cmd_manifest },
		{ "sha256", cmd_sha256 },
		{ "populate", cmd_populate },
		{ "setxattr", cmd_setxattr },
		{ "rmxattr", cmd_rmxattr },
	};
	size_t i;

	if (argc >= 2)
		for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			if (!strcmp(argv[1], cmds[i].name))
				return cmds[i].fn(argc - 2, argv + 2);
	fprintf(stderr, "usage: pkram-manifest manifest|sha256|populate|setxattr|rmxattr ...\n"
			"(see the comment at the top of tools/vm/pkram-manifest.c)\n");
	return 2;
}
