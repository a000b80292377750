/* SPDX-License-Identifier: Apache-2.0 */
/* table_image.c: saving a live table to a file and reading it back
 * (docs/image-format.md has the format).
 *
 * A save is a consistent cut: the image is the table as it was at one
 * instant while the save held the table's lock, the same lock every change
 * and every atomic group holds from begin to commit, so a group is in it
 * whole or not at all.  The save does not hold the lock while it copies
 * the table, though: it copies in rounds without it and fixes the copy up
 * under the lock at the end, using the stripe words to know what changed
 * (see "the copy, without a long stall" below), so the owner's stall is a
 * short fix-up, not a copy of the whole table; walking the entries,
 * encoding, checksumming and writing happen afterwards on the private copy,
 * with the owner running (docs/performance.md has the numbers).
 *
 * The copy is read through a second etsmgr_table view whose mapping is the
 * copy, so the same bounds-checked accessors (tbl_state, tbl_ent_at) judge
 * it: the table's memory is shared with other processes and may hold
 * anything.
 *
 * Crash safety is the usual file dance: write a temporary file in the same
 * directory, fsync it, rename it over the target, fsync the directory.  A
 * SIGKILL or a full disk at any step leaves the old file as it was (the
 * rename is the commit point); a killed save may leave its temporary file
 * (".NAME.tmp-PID-N"), never a damaged target.  The steps are crash points
 * "save" for the tests (tbl_crashpoint). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime.h"
#include "table_image.h"
#include "table_int.h"

static _Thread_local uint64_t img_lock_ns, img_phase[IMG_NPHASES], img_phase_cpu[IMG_NPHASES];
static _Thread_local uint64_t img_locked_bytes, img_rounds;
static _Thread_local bool img_fell_back, img_in_place;
bool img_force_locked_copy;
int img_test_dir_fsync_errno; /* test hook (table_image.h) */

bool img_last_in_place(void) { return img_in_place; }

void img_last_copy_stats(uint64_t *locked_bytes, uint64_t *rounds, bool *fell_back)
{
    if (locked_bytes) *locked_bytes = img_locked_bytes;
    if (rounds) *rounds = img_rounds;
    if (fell_back) *fell_back = img_fell_back;
}

uint64_t img_last_lock_ns(void) { return img_lock_ns; }
uint64_t img_last_phase_ns(int phase) { return phase >= 0 && phase < IMG_NPHASES ? img_phase[phase] : 0; }
uint64_t img_last_phase_cpu_ns(int phase) { return phase >= 0 && phase < IMG_NPHASES ? img_phase_cpu[phase] : 0; }

static uint64_t img_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ CRC-32C */

/* Slice-by-8 tables, built once (the polynomial is reflected 0x1EDC6F41). */
static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int s = 1; s < 8; s++) crc_tab[s][i] = (crc_tab[s - 1][i] >> 8) ^ crc_tab[0][crc_tab[s - 1][i] & 0xff];
}

#if defined(__x86_64__)
/* SSE 4.2's crc32 instruction computes exactly CRC-32C, 8 bytes per
 * instruction: about 15 times the tables' speed (a GiB image spent 1.6 s in
 * the tables alone).  Chosen at run time; the tables are the fallback. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = __builtin_ia32_crc32di(c, w);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}
static int crc_have_hw;
#endif

static void crc_init_all(void)
{
    crc_init();
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

uint32_t img_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init_all);
#if defined(__x86_64__)
    if (crc_have_hw) return crc_hw(crc, data, len);
#endif
    return img_crc32c_portable(crc, data, len);
}

uint32_t img_crc32c_portable(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init_all);
    const unsigned char *p = data;
    crc = ~crc;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc; /* little-endian: the low byte is the first */
        crc = crc_tab[7][w & 0xff] ^ crc_tab[6][(w >> 8) & 0xff] ^ crc_tab[5][(w >> 16) & 0xff] ^
              crc_tab[4][(w >> 24) & 0xff] ^ crc_tab[3][(w >> 32) & 0xff] ^ crc_tab[2][(w >> 40) & 0xff] ^
              crc_tab[1][(w >> 48) & 0xff] ^ crc_tab[0][w >> 56];
        p += 8;
        len -= 8;
    }
    while (len--) crc = (crc >> 8) ^ crc_tab[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

/* ------------------------------------------------------------ encoding */

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Header offsets (docs/image-format.md). */
enum {
    H_MAGIC = 0, H_VERSION = 8, H_HDRSIZE = 12, H_FLAGS = 16, H_ENTRIES = 24, H_RECBYTES = 32,
    H_CTIME = 40, H_SAVED = 48, H_MAXBYTES = 56, H_BYTESTOTAL = 64, H_MODE = 72, H_UID = 76,
    H_NAMELEN = 80, H_NAME = 81, H_ACCESS = 148, H_TYPE = 152, H_ORPHANED = 156, H_RESERVED2 = 164,
    H_CRC = IMG_HDR_SIZE - 4,
};
#define IMG_END_TAG "END\n"

static void img_encode_header(unsigned char *h, const img_info *in)
{
    memset(h, 0, IMG_HDR_SIZE);
    memcpy(h + H_MAGIC, IMG_MAGIC, 8);
    put32(h + H_VERSION, IMG_VERSION);
    put32(h + H_HDRSIZE, IMG_HDR_SIZE);
    put64(h + H_ENTRIES, in->entries);
    put64(h + H_RECBYTES, in->records_bytes);
    put64(h + H_CTIME, (uint64_t)in->ctime_us);
    put64(h + H_SAVED, (uint64_t)in->saved_us);
    put64(h + H_MAXBYTES, in->max_bytes);
    put64(h + H_BYTESTOTAL, in->bytes_total);
    put32(h + H_MODE, in->mode);
    put32(h + H_UID, in->uid);
    put32(h + H_ACCESS, in->access);
    put32(h + H_TYPE, in->type);
    put64(h + H_ORPHANED, (uint64_t)in->orphaned_us);
    size_t nl = strlen(in->name);
    h[H_NAMELEN] = (unsigned char)nl;
    memcpy(h + H_NAME, in->name, nl);
    put32(h + H_CRC, img_crc32c(0, h, H_CRC));
}

/* ------------------------------------------------------------ parsing */

/* The repeated-key check's hash: SipHash-1-3 under a key drawn anew for
 * each check (never stored).  The image is input: with a fixed hash, a
 * writer of the file could choose keys that all land in one slot (the
 * multiply-xorshift hash this replaces was invertible for 8-byte keys), and
 * the check would take time quadratic in the entries (80 000 entries, 13
 * s).  Not knowing the key, a writer cannot aim. */
static uint64_t img_rotl(uint64_t x, int b) { return x << b | x >> (64 - b); }
#define IMG_SIPROUND                                                                                          \
    do {                                                                                                    \
        v0 += v1, v1 = img_rotl(v1, 13), v1 ^= v0, v0 = img_rotl(v0, 32);                                 \
        v2 += v3, v3 = img_rotl(v3, 16), v3 ^= v2;                                                         \
        v0 += v3, v3 = img_rotl(v3, 21), v3 ^= v0;                                                         \
        v2 += v1, v1 = img_rotl(v1, 17), v1 ^= v2, v2 = img_rotl(v2, 32);                                 \
    } while (0)
static uint64_t img_key_hash(const uint64_t seed[2], const unsigned char *k, unsigned n)
{
    uint64_t v0 = seed[0] ^ 0x736f6d6570736575u, v1 = seed[1] ^ 0x646f72616e646f6du;
    uint64_t v2 = seed[0] ^ 0x6c7967656e657261u, v3 = seed[1] ^ 0x7465646279746573u;
    uint64_t b = (uint64_t)n << 56;
    for (; n >= 8; k += 8, n -= 8) {
        uint64_t m = get64(k);
        v3 ^= m;
        IMG_SIPROUND;
        v0 ^= m;
    }
    for (unsigned i = 0; i < n; i++) b |= (uint64_t)k[i] << (8 * i);
    v3 ^= b;
    IMG_SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    IMG_SIPROUND;
    IMG_SIPROUND;
    IMG_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}


static _Thread_local uint64_t img_probe_max;
uint64_t img_last_repeat_max_probe(void) { return img_probe_max; }

/* The request-id records of etsmgr_table_update_counter_once (table_once.c)
 * are no entries; an image carries each one still kept as a record with a
 * reserved key, TBL_RID_PREFIX + the 16-byte rid, and a 16-byte value: the
 * count it got and the milliseconds it is still to be kept (a monotonic
 * time means nothing to another boot).  A load puts them back into the
 * region (docs/image-format.md); tbl_is_rid_shape (table_int.h) knows
 * them. */

/* Does a key occur twice among the n records at rec (validated, records
 * bytes long)?  A loader that met the second copy only while filling
 * would have created its table already, and with ETSMGR_LOAD_REPLACE
 * removed the table it replaces: a repeat is damage, refused like the
 * rest before anything is made.  An open-addressing set of the records'
 * offsets (8 bytes a slot, 1.5 to 3 slots an entry, freed at once: less
 * than the table being loaded needs); a slot keeps 21 bits of the hash
 * above the offset's 43, so that most probes compare no key.  0, ETSMGR_ECORRUPT (*first, *second: the record
 * numbers) or ETSMGR_ENOMEM. */
#define IMG_OFF_BITS 43
static int img_find_repeat(const unsigned char *rec, uint64_t records_bytes, uint64_t n, uint64_t *first,
                           uint64_t *second)
{
    img_probe_max = 0;
    if (n < 2) return 0;
    uint64_t cap = 2;
    while (cap < n + n / 2) cap <<= 1;
    if (cap > SIZE_MAX / sizeof(uint64_t)) return ETSMGR_ENOMEM;
    uint64_t *set = calloc((size_t)cap, sizeof *set);
    if (!set) return ETSMGR_ENOMEM;
    const uint64_t off_mask = (UINT64_C(1) << IMG_OFF_BITS) - 1;
    uint64_t off = 0, i = 0, seed[2];
    tbl_random_key(seed, set);
    int r = 0;
    while (off < records_bytes) {
        const unsigned char *e = rec + off;
        unsigned klen = e[0];
        int e_rid = tbl_is_rid_shape(e + IMG_REC_HDR, klen, e[1], get32(e + 4));
        uint64_t h = img_key_hash(seed, e + IMG_REC_HDR, klen), tag = h >> IMG_OFF_BITS;
        /* +1: a slot of 0 is free, and offset 0 is a record */
        uint64_t want = tag << IMG_OFF_BITS | (off + 1);
        for (uint64_t s = h & (cap - 1), probe = 0;; s = (s + 1) & (cap - 1), probe++) {
            uint64_t v = set[s];
            if (!v) {
                set[s] = want;
                if (probe > img_probe_max) img_probe_max = probe;
                break;
            }
            if (v >> IMG_OFF_BITS != tag) continue;
            const unsigned char *o = rec + (v & off_mask) - 1;
            /* a request-id record and an entry of the same key bytes (the
             * application's key of another type or length) are no repeat:
             * img_fill puts them in different places */
            if (o[0] == klen && memcmp(o + IMG_REC_HDR, e + IMG_REC_HDR, klen) == 0 &&
                tbl_is_rid_shape(o + IMG_REC_HDR, klen, o[1], get32(o + 4)) == e_rid) {
                *second = i;
                uint64_t j = 0;
                for (const unsigned char *w = rec; w != o; w += IMG_REC_HDR + w[0] + get32(w + 4)) j++;
                *first = j;
                r = ETSMGR_ECORRUPT;
                goto out;
            }
        }
        off += IMG_REC_HDR + klen + get32(e + 4);
        i++;
    }
out:
    free(set);
    return r;
}

/* The header's checks, in the documented order, up to the sizes it
 * declares against the file's: p holds the file's first min(flen,
 * IMG_HDR_SIZE) bytes, flen is the file's size.  img_read runs them on the
 * header alone, before it reads (and allocates) the rest, so that a huge
 * file that is no image, or whose header does not declare its size, is
 * refused at the cost of its first 192 bytes. */
static int img_parse_header(const unsigned char *p, uint64_t flen, img_info *info, char *why, size_t whylen)
{
    size_t len = flen < IMG_HDR_SIZE ? (size_t)flen : IMG_HDR_SIZE; /* the bytes at p */
    if (len < 8) {
        if (len == 0 || memcmp(p, IMG_MAGIC, len) == 0)
            return tbl_say(why, whylen, ETSMGR_ETRUNCATED, "truncated: the file is %zu bytes, "
                           "less than an image's magic number", len);
        return tbl_say(why, whylen, ETSMGR_EBADMAGIC, "not a table image: it does not start "
                       "with an image's magic number");
    }
    if (memcmp(p, IMG_MAGIC, 8) != 0)
        return tbl_say(why, whylen, ETSMGR_EBADMAGIC, "not a table image: wrong magic number "
                       "(a table image starts with \\x89ETSIMG\\n)");
    if (len < 16)
        return tbl_say(why, whylen, ETSMGR_ETRUNCATED, "truncated: the file is %zu bytes, a header "
                       "needs %u", len, IMG_HDR_SIZE);
    uint32_t ver = get32(p + H_VERSION);
    if (ver > IMG_VERSION)
        return tbl_say(why, whylen, ETSMGR_EVERSION, "image format version %u is newer than this "
                       "etsmgr reads (%u): load it with a newer etsmgr", ver, IMG_VERSION);
    if (ver == 0)
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: format version 0 does not exist");
    if (len < IMG_HDR_SIZE)
        return tbl_say(why, whylen, ETSMGR_ETRUNCATED, "truncated: the file is %zu bytes, a header "
                       "needs %u", len, IMG_HDR_SIZE);
    if (get32(p + H_HDRSIZE) != IMG_HDR_SIZE)
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: header size %u, version %u has %u",
                       get32(p + H_HDRSIZE), ver, IMG_HDR_SIZE);
    uint32_t hcrc = img_crc32c(0, p, H_CRC);
    if (hcrc != get32(p + H_CRC))
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: wrong header checksum (%08x, the "
                       "header says %08x)", hcrc, get32(p + H_CRC));
    img_info in;
    memset(&in, 0, sizeof in);
    uint64_t flags = get64(p + H_FLAGS);
    in.entries = get64(p + H_ENTRIES);
    in.records_bytes = get64(p + H_RECBYTES);
    in.ctime_us = (int64_t)get64(p + H_CTIME);
    in.saved_us = (int64_t)get64(p + H_SAVED);
    in.max_bytes = get64(p + H_MAXBYTES);
    in.bytes_total = get64(p + H_BYTESTOTAL);
    in.mode = get32(p + H_MODE);
    in.uid = get32(p + H_UID);
    unsigned nl = p[H_NAMELEN];
    if (flags != 0)
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: unknown flags %#llx",
                       (unsigned long long)flags);
    if (nl == 0 || nl > ETSMGR_NAME_MAX || !rt_valid_name((const char *)p + H_NAME, nl))
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: the table name is not 1 to 64 of "
                       "[A-Za-z0-9_.-]");
    /* version 1 has no access mode, type or orphaned time: its tables were
     * protected sets (what a version 1 writer could not record, it lost) */
    for (unsigned i = H_NAME + nl; i < H_CRC; i++)
        if (p[i] && (ver == 1 || i < H_ACCESS || i >= H_RESERVED2))
            return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: reserved header byte %u is not 0", i);
    memcpy(in.name, p + H_NAME, nl);
    if (ver >= 2) {
        in.access = get32(p + H_ACCESS);
        in.type = get32(p + H_TYPE);
        in.orphaned_us = (int64_t)get64(p + H_ORPHANED);
        if (in.access > ETSMGR_PUBLIC)
            return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: access mode %u is none of "
                           "protected (0), private (1), public (2)", in.access);
        if (in.type > ETSMGR_ORDERED_SET)
            return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: table type %u is neither set (0) "
                           "nor ordered_set (1)", in.type);
        if (in.orphaned_us < 0)
            return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: orphaned since %lld µs, before 1970",
                           (long long)in.orphaned_us);
    }
    if (in.mode & ~0777u)
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: mode %#o is not permission bits", in.mode);
    /* no table holds more than 2^43 bytes (offsets are 40 bits of 8 bytes) */
    if (in.records_bytes > (TBL_OFF_MASK << 3) || in.entries > in.records_bytes / (IMG_REC_HDR + 1))
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: %llu entries in %llu bytes of records "
                       "is impossible", (unsigned long long)in.entries,
                       (unsigned long long)in.records_bytes);
    uint64_t want = IMG_HDR_SIZE + in.records_bytes + IMG_TRAILER_SIZE;
    if (flen < want)
        return tbl_say(why, whylen, ETSMGR_ETRUNCATED, "truncated: the file is %llu bytes, its header "
                       "says %llu", (unsigned long long)flen, (unsigned long long)want);
    if (flen > want)
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: %llu bytes follow the end of the image",
                       (unsigned long long)(flen - want));
    *info = in;
    return 0;
}

int img_parse(const void *data, size_t len, img_info *info, char *why, size_t whylen)
{
    const unsigned char *p = data;
    if (!p && len) return ETSMGR_EINVAL;
    img_info in;
    int hr = img_parse_header(p, len, &in, why, whylen);
    if (hr) return hr;
    const unsigned char *rec = p + IMG_HDR_SIZE, *end = rec + in.records_bytes;
    if (memcmp(end + 4, IMG_END_TAG, 4) != 0)
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: the end marker is missing");
    uint32_t rcrc = img_crc32c(0, rec, (size_t)in.records_bytes);
    if (rcrc != get32(end))
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: wrong checksum of the entries (%08x, "
                       "the file says %08x): the file was changed or damaged", rcrc, get32(end));
    /* a matching checksum is not trust: the file may have been made to match */
    uint64_t n = 0;
    while (rec < end) {
        if ((size_t)(end - rec) < IMG_REC_HDR)
            return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: entry %llu is cut short",
                           (unsigned long long)n);
        unsigned klen = rec[0], type = rec[1];
        uint32_t vlen = get32(rec + 4);
        if (klen == 0 || rec[2] || rec[3] ||
            !(type == ETSMGR_INT ? vlen == 8 : type == ETSMGR_BYTES && vlen <= ETSMGR_VALUE_MAX))
            return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: entry %llu has key length %u, "
                           "type %u, value length %u", (unsigned long long)n, klen, type, vlen);
        if ((uint64_t)(end - rec) < IMG_REC_HDR + (uint64_t)klen + vlen)
            return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: entry %llu runs past the end",
                           (unsigned long long)n);
        rec += IMG_REC_HDR + klen + vlen;
        n++;
    }
    if (n != in.entries)
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: %llu entries, the header says %llu",
                       (unsigned long long)n, (unsigned long long)in.entries);
    uint64_t first = 0, second = 0;
    int r = img_find_repeat(p + IMG_HDR_SIZE, in.records_bytes, n, &first, &second);
    if (r == ETSMGR_ENOMEM)
        return tbl_say(why, whylen, r, "no memory to check %llu entries for a repeated key",
                       (unsigned long long)n);
    if (r)
        return tbl_say(why, whylen, r, "corrupt: entry %llu repeats the key of entry %llu",
                       (unsigned long long)second, (unsigned long long)first);
    if (info) *info = in;
    return 0;
}

/* Read up to n bytes, fewer only at the end of the file: 0 with *got, or
 * an errno. */
static int img_read_fd(int fd, unsigned char *p, size_t n, size_t *got)
{
    *got = 0;
    while (*got < n) {
        ssize_t k = read(fd, p + *got, n - *got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return errno;
        if (k == 0) break;
        *got += (size_t)k;
    }
    return 0;
}

int img_read(const char *path, img **out, char *why, size_t whylen)
{
    if (!path || !out) return ETSMGR_EINVAL;
    *out = NULL;
    /* O_NONBLOCK: the open of a FIFO waits for a writer (forever: a load
     * hung before any check); a regular file ignores it */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        tbl_say(why, whylen, ETSMGR_ESYS, "cannot open %s: %s", path, strerror(e));
        errno = e;
        return e == ENOENT ? ETSMGR_ENOTFOUND : ETSMGR_ESYS;
    }
    struct stat st;
    int sr = fstat(fd, &st);
    if (sr < 0 || !S_ISREG(st.st_mode)) {
        int e = sr < 0 ? errno : EINVAL;
        close(fd);
        errno = e;
        return tbl_say(why, whylen, e == EINVAL ? ETSMGR_EBADMAGIC : ETSMGR_ESYS, "%s: %s", path,
                       e == EINVAL ? "not a regular file" : strerror(e));
    }
    /* the header first: what a file is and how long it says it is are
     * known from its first 192 bytes, before any memory is spent on it */
    unsigned char hdr[IMG_HDR_SIZE];
    size_t hgot = 0;
    int e = img_read_fd(fd, hdr, sizeof hdr, &hgot);
    if (e) {
        close(fd);
        errno = e;
        return tbl_say(why, whylen, ETSMGR_ESYS, "reading %s: %s", path, strerror(e));
    }
    /* a header cut short is the whole file (the read met its end) */
    uint64_t flen = hgot < sizeof hdr ? hgot : (uint64_t)st.st_size;
    img_info hin;
    int r = img_parse_header(hdr, flen, &hin, why, whylen);
    if (r) {
        close(fd);
        return r;
    }
    img *im = calloc(1, sizeof *im);
    size_t cap = flen < SIZE_MAX ? (size_t)flen + 1 : 0; /* +1: notice a file that grows while read */
    unsigned char *buf = im && cap ? malloc(cap) : NULL;
    if (!buf) {
        free(im);
        close(fd);
        return tbl_say(why, whylen, ETSMGR_ENOMEM, "no memory to read %s (%llu bytes)", path,
                       (unsigned long long)flen);
    }
    memcpy(buf, hdr, hgot);
    size_t got = 0;
    e = img_read_fd(fd, buf + hgot, cap - hgot, &got);
    if (e) {
        free(buf);
        free(im);
        close(fd);
        errno = e;
        return tbl_say(why, whylen, ETSMGR_ESYS, "reading %s: %s", path, strerror(e));
    }
    got += hgot;
    close(fd);
    /* all of it again: the file may have changed since its header was read */
    r = img_parse(buf, got, &im->info, why, whylen);
    if (r) {
        free(buf);
        free(im);
        return r;
    }
    im->buf = buf;
    im->len = got;
    *out = im;
    return 0;
}

void img_free(img *im)
{
    if (!im) return;
    free(im->buf);
    free(im);
}

static const unsigned char *img_rec_next(const unsigned char *rec)
{
    return rec + IMG_REC_HDR + rec[0] + get32(rec + 4);
}

/* The image's entries that go into the index (request ids go to their
 * records). */
static uint64_t img_indexed_entries(const img *im)
{
    const unsigned char *rec = im->buf + IMG_HDR_SIZE, *end = rec + im->info.records_bytes;
    uint64_t n = 0;
    for (; rec < end; rec = img_rec_next(rec))
        n += !tbl_is_rid_shape(rec + IMG_REC_HDR, rec[0], rec[1], get32(rec + 4));
    return n;
}

void img_table_opts(const img *im, etsmgr_table_opts *o)
{
    memset(o, 0, sizeof *o);
    /* entries cost their bytes rounded to 8, an 8-byte header and about two
     * index slots each (an ordered table's B+tree, about 19 bytes an entry
     * in leaves 70 % full, 26 in half-full ones, rounded to 40): room for
     * all without growing or rehashing */
    uint64_t per = im->info.type == ETSMGR_ORDERED_SET ? 88u : 48u;
    uint64_t est = TBL_HDR_SIZE + im->info.records_bytes + im->info.entries * per + 65536u;
    if (im->info.max_bytes && est > im->info.max_bytes) est = im->info.max_bytes;
    /* but no bigger than the size whose first index is the one the entries
     * need: a table's first index has a slot for each 104 bytes of its
     * size, the room of the smallest entries, and for large values that
     * was many times the slots the entries had (a table of 972 1000-byte
     * values: 16,384, where its own index had 2,048): filled to its
     * max_bytes, the table did not fit it again (ETSMGR_EFULL).  The
     * table grows from there as the load fills it. */
    uint64_t cap = TBL_MIN_CAP, need = img_indexed_entries(im);
    while (cap * 3 < need * 4 && cap < (1ull << 40)) cap *= 2;
    uint64_t fit = TBL_HDR_SIZE + (cap * TBL_HINT_SLOT_BYTES & ~4095ull);
    if (est > fit) est = fit;
    o->size_hint = est;
    o->max_bytes = im->info.max_bytes;
    o->mode = im->info.mode;
    o->access = (etsmgr_access)im->info.access;
    o->type = (etsmgr_table_type)im->info.type;
}

/* Insert the record at rec (a request id goes to the records). */
static int img_put_rec(etsmgr_table *t, const unsigned char *rec)
{
    unsigned klen = rec[0], type = rec[1];
    uint32_t vlen = get32(rec + 4);
    const unsigned char *key = rec + IMG_REC_HDR, *val = key + klen;
    if (tbl_is_rid_shape(key, klen, type, vlen)) {
        uint64_t left = get64(val + 8);
        int64_t now = etsmgr_mono_ms();
        return tbl_once_put(t, key + TBL_RID_PREFIX_LEN, (int64_t)get64(val),
                            left < (uint64_t)(INT64_MAX / 4) ? now + (int64_t)left : INT64_MAX / 4);
    }
    etsmgr_value v = {.type = (etsmgr_type)type};
    if (type == ETSMGR_INT) {
        v.i = (int64_t)get64(val);
    } else {
        v.data = val;
        v.len = vlen;
    }
    return etsmgr_table_insert_new(t, key, klen, &v);
}

/* Records by key, memcmp order, a prefix first. */
static int img_rec_cmp(const void *a, const void *b)
{
    const unsigned char *x = *(const unsigned char *const *)a, *y = *(const unsigned char *const *)b;
    int c = memcmp(x + IMG_REC_HDR, y + IMG_REC_HDR, x[0] < y[0] ? x[0] : y[0]);
    return c ? c : (int)x[0] - (int)y[0];
}

/* An ordered table's records in key order (malloc'd; *n of them), or NULL
 * for memory.  In the file they come in the saved table's hash order;
 * inserted so, they leave the B+tree's leaves about 78 % full, while a
 * table filled in key order (a time, a sequence number) has them all full:
 * such a table, filled to its max_bytes, did not fit it again when loaded
 * (ETSMGR_EFULL), and etsmgrd's restore of its snapshot at boot failed.
 * In key order each insert lands at the tree's right end, where a split
 * leaves the left node full: the smallest tree the keys can have. */
static const unsigned char **img_by_key(const img *im, uint64_t *n)
{
    const unsigned char *rec = im->buf + IMG_HDR_SIZE, *end = rec + im->info.records_bytes;
    const unsigned char **v = malloc((im->info.entries ? im->info.entries : 1) * sizeof *v);
    if (!v) return NULL;
    uint64_t k = 0;
    for (; rec < end && k < im->info.entries; rec = img_rec_next(rec)) v[k++] = rec;
    qsort(v, k, sizeof *v, img_rec_cmp);
    *n = k;
    return v;
}

/* The place in the file of the record at at (for a message). */
static uint64_t img_rec_index(const img *im, const unsigned char *at)
{
    uint64_t n = 0;
    for (const unsigned char *rec = im->buf + IMG_HDR_SIZE; rec < at; rec = img_rec_next(rec)) n++;
    return n;
}

static int img_fill_failed(int r, uint64_t n, char *why, size_t whylen)
{
    if (r == ETSMGR_EEXIST)
        return tbl_say(why, whylen, ETSMGR_ECORRUPT, "corrupt: entry %llu repeats an earlier key",
                       (unsigned long long)n);
    return tbl_say(why, whylen, r, "inserting entry %llu: %s", (unsigned long long)n, etsmgr_strerror(r));
}

/* 1: no memory for the sort (the caller loads in the file's order, as
 * before: a load that fits without it must not fail for want of it). */
static int img_fill_by_key(etsmgr_table *t, const img *im, char *why, size_t whylen)
{
    uint64_t n = 0;
    const unsigned char **by_key = img_by_key(im, &n);
    if (!by_key) return 1;
    int r = 0;
    for (uint64_t i = 0; i < n && r == 0; i++)
        if ((r = img_put_rec(t, by_key[i])) != 0)
            r = img_fill_failed(r, img_rec_index(im, by_key[i]), why, whylen);
    free(by_key);
    return r;
}

int img_fill(etsmgr_table *t, const img *im, char *why, size_t whylen)
{
    int r = t->ordered ? img_fill_by_key(t, im, why, whylen) : 1;
    if (r <= 0) return r;
    const unsigned char *rec = im->buf + IMG_HDR_SIZE, *end = rec + im->info.records_bytes;
    for (uint64_t n = 0; rec < end; rec = img_rec_next(rec), n++)
        if ((r = img_put_rec(t, rec)) != 0) return img_fill_failed(r, n, why, whylen);
    return 0;
}

/* ------------------------------------------------------------ saving */

static uint64_t img_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Map the table's pages into this process before the lock is taken: a
 * fresh attachment (etsmgrd's, etsmgrctl's) has none mapped yet, and a
 * minor fault per 4 KiB page inside the locked copy would make the owner's
 * stall several times longer.  Only page tables change: no data is read
 * that matters, so no lock is needed.  Best effort (kernels before 5.14
 * lack MADV_POPULATE_READ). */
static void img_prefault(etsmgr_table *t, uint64_t want)
{
#ifdef MADV_POPULATE_READ
    uint64_t n = want < t->map_size ? want : t->map_size;
    (void)madvise(t->base, (size_t)n & ~(size_t)4095, MADV_POPULATE_READ);
#else
    (void)t;
    (void)want;
#endif
}

static void img_cp(int step)
{
    if (tbl_crashpoint) tbl_crashpoint("save", step);
}

/* Fault in an anonymous buffer before the lock is taken.  (Not in huge
 * pages: with the usual defrag=madvise, MADV_HUGEPAGE makes the faults
 * compact memory directly, which took seconds for a GiB here.) */
static void img_populate(void *p, size_t len)
{
#ifdef MADV_POPULATE_WRITE
    if (madvise(p, len, MADV_POPULATE_WRITE) == 0) return;
#endif
    for (size_t o = 0; o < len; o += 4096) ((volatile unsigned char *)p)[o] = 0;
}

/* Copy [0, heap_top) under the lock into *buf (an anonymous mapping of
 * *cap bytes, faulted in before the lock is taken; grown and tried again
 * when the table outgrew it meanwhile).  The fallback of img_copy's rounds. */
static int img_copy_locked(etsmgr_table *t, unsigned char **buf, size_t *cap, uint64_t *top)
{
    *buf = NULL;
    *cap = 0;
    int r = 0;
    for (int tries = 0;; tries++) {
        uint64_t want = __atomic_load_n(&t->h->heap_top, __ATOMIC_RELAXED);
        want += want / 8 + 65536u;
        want <<= tries < 4 ? 0 : tries - 3;
        if (want > (TBL_OFF_MASK << 3)) want = TBL_OFF_MASK << 3;
        want = (want + 4095u) & ~(uint64_t)4095u;
        if (want > *cap) {
            if (*buf) munmap(*buf, *cap);
            void *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) {
                *buf = NULL;
                *cap = 0;
                return errno == ENOMEM ? ETSMGR_ENOMEM : ETSMGR_ESYS;
            }
            img_populate(p, want);
            *buf = p;
            *cap = want;
        }
        img_prefault(t, want);
        r = tbl_op_begin(t, "save", false);
        if (r) break;
        uint64_t t0 = img_now_ns();
        uint64_t used = t->top;
        bool fits = used <= *cap;
        if (fits) memcpy(*buf, t->base, used);
        img_cp(13);
        uint64_t held = img_now_ns() - t0;
        if (held > img_lock_ns) img_lock_ns = held;
        if (fits) img_locked_bytes += used;
        tbl_op_end(t, 0);
        if (fits) {
            *top = used;
            return 0;
        }
        if (tries >= 40) {
            r = ETSMGR_ECORRUPT;
            break;
        }
    }
    munmap(*buf, *cap);
    *buf = NULL;
    return r;
}

/* ------------------------------------------------------------ the copy, without a long stall */

/* The save copies the table in rounds without the lock and fixes the copy
 * up at the end under the lock, so that it is the table at that instant.
 * What makes the fix-up small is a fact the lock-free readers already rely
 * on: every change makes its key's stripe word odd before its first write
 * a reader could see and even after its commit (table_int.h), so a stripe
 * word that reads the same, even, at two moments proves that no key of
 * that stripe (one in TBL_NSTRIPES, by hash) changed in between: not its
 * value, not its slot, not its entry's block, which can only be freed and
 * reused after the key was deleted or replaced.  Other writes into the
 * heap go to memory no index slot reaches (free blocks, fresh heap), and
 * entries never move (a rehash builds a new index over the same entries).
 *
 *  1. Under the lock, briefly: the stripe words (seen[]), the index's
 *     layout word and heap_top.  Then, without it, copy [0, heap_top).
 *  2. Rounds without the lock: for each stripe whose word moved since
 *     seen[], copy again the entries the live index shows for it, and take
 *     the word as read before that copy as its new seen[] (the slots of
 *     those keys go into the copy's index too; not if the index
 *     was rehashed meanwhile, or an entry lay out of reach: then the
 *     stripe stays "changed").  Until few stripes changed during a round.
 *  3. Under the lock (recovering a dead writer's change first): copy the
 *     header, the request-id region, and one pass over the index copies
 *     the slots (all of them when it was rehashed since step 1, else only
 *     those that are free or of a changed stripe) and the entries of every
 *     stripe whose word is not seen[] now.  The copy now holds the table as
 *     it is at this instant for every word the encoder reads: a consistent
 *     cut, taken while the lock is held, like the whole copy before.  When
 *     no stripe word moved since it was last looked at and there was no
 *     rehash, the index pass is skipped: every slot is as the copy has it.
 *
 * One kind of change moves no stripe word: an integer written in place
 * outside a group is a single store, its own commit point (tbl_set_one,
 * table_ops.c).  So the save keeps a list of where the integer values are
 * (from its walk of the copy after step 1, and every integer entry a round
 * copies; a key inserted later is in a changed stripe, so a round or step 3
 * copies it), and step 3 copies those words again, before anything else
 * (a stale place in the list may now be another entry's, copied whole
 * after it, or free space: either way harmless).
 *
 * The owner's stall is steps 1 and 3: the index, the integer values and
 * the entries of the stripes it changed during the last round, instead of
 * the whole table.
 * Nothing is written into the table and writers do nothing differently,
 * so a writer killed during a save is recovered as always (step 3 takes
 * the lock), and a saver killed anywhere leaves nothing behind.  When many
 * stripes changed during the last round (bulk writes to keys all over the
 * table) step 3 copies everything, as the lock-held copy always did. */
#define IMG_ROUNDS_MAX 4
#define IMG_ROUND_ENOUGH 16u              /* changed stripes that need no further round */
#define IMG_FINAL_MAX (TBL_NSTRIPES / 4u) /* above: the last step copies everything */
#define IMG_CHG_NO 0
#define IMG_CHG_YES 1
#define IMG_CHG_OUT 2 /* changed, and an entry was out of reach: copy it under the lock */

static inline uint64_t img_ld(const uint64_t *w) { return __atomic_load_n(w, __ATOMIC_ACQUIRE); }

/* Where integer values are (offsets of their words). */
typedef struct img_ints {
    uint64_t *off;
    size_t n, cap;
    bool lost; /* out of memory: step 3 copies everything */
} img_ints;

static void img_ints_add(img_ints *l, uint64_t off)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 1024;
        uint64_t *p = l->lost ? NULL : realloc(l->off, nc * sizeof *p);
        if (!p) {
            l->lost = true;
            return;
        }
        l->off = p;
        l->cap = nc;
    }
    l->off[l->n++] = off;
}

/* The integer entries of the copy made in step 1 (its index as it was at
 * step 1: idx_off, mask; a slot of a stripe that changed may be anything,
 * which at worst adds a harmless place). */
static void img_ints_scan(const unsigned char *buf, uint64_t top, uint64_t idx_off, uint64_t mask, img_ints *l)
{
    const uint64_t *idx = (const uint64_t *)(const void *)(buf + idx_off);
    for (uint64_t i = 0; i <= mask; i++) {
        if (i + 16 <= mask) {
            uint64_t ahead = (idx[i + 16] & TBL_OFF_MASK) << 3;
            if (ahead < top) __builtin_prefetch(buf + ahead);
        }
        uint64_t sl = idx[i], eo = (sl & TBL_OFF_MASK) << 3;
        if (tbl_unused(sl) || eo < TBL_HDR_SIZE || eo + 24 > top) continue;
        const struct tbl_ent *e = (const struct tbl_ent *)(const void *)(buf + eo);
        if (e->type == ETSMGR_INT && e->vlen == 8 && e->klen && eo + tbl_ent_size(e->klen, 8) <= top)
            img_ints_add(l, eo + tbl_ent_voff(e));
    }
}
static inline unsigned img_stripe(uint64_t slot) { return (unsigned)((slot >> 40) & (TBL_NSTRIPES - 1u)); }

/* Step 2, one round; how many stripes had changed since seen[]. */
static unsigned img_round(etsmgr_table *t, unsigned char *buf, uint64_t lim, uint64_t lay0, uint64_t *seen,
                          uint64_t *now, unsigned char *chg, img_ints *ints)
{
    struct tbl_hdr *h = t->h;
    unsigned n = 0;
    for (unsigned s = 0; s < TBL_NSTRIPES; s++) {
        now[s] = img_ld(&h->stripe[s]);
        chg[s] = now[s] != seen[s] ? IMG_CHG_YES : IMG_CHG_NO;
        n += chg[s];
    }
    uint64_t lay = img_ld(&h->layout_seq);
    if (n == 0 || (lay & 1u)) return n;
    uint64_t off = img_ld(&h->idx_off), mask = img_ld(&h->idx_mask);
    if (off < TBL_HDR_SIZE || (off & 7u) || mask > TBL_MAX_MASK || (mask & (mask + 1)) || off > lim ||
        (mask + 1) * 8 > lim - off)
        return n;
    const uint64_t *idx = (const uint64_t *)(const void *)(t->base + off);
    /* the copy's index is the one of step 1 while there was no rehash: the
     * changed stripes' slots go into it too (step 3 keeps the others) */
    uint64_t *bidx = lay == lay0 ? (uint64_t *)(void *)(buf + off) : NULL;
    for (uint64_t i = 0; i <= mask; i++) {
        uint64_t sl = __atomic_load_n(&idx[i], __ATOMIC_RELAXED);
        /* a free slot goes into the copy whatever its stripe: a key deleted
         * since step 1 must leave the copy's index too, or its slot points
         * at a block that may by now hold another key (copied through its
         * own slot: the image would have that key twice) */
        if (tbl_unused(sl)) {
            if (bidx) bidx[i] = sl;
            continue;
        }
        unsigned s = img_stripe(sl);
        if (chg[s] == IMG_CHG_NO) continue;
        if (bidx) bidx[i] = sl;
        /* read without the lock: anything may be half written, so every
         * size is checked against what is mapped and copied */
        uint64_t eo = (sl & TBL_OFF_MASK) << 3;
        struct tbl_ent e;
        if (eo >= TBL_HDR_SIZE && eo <= lim - 16) memcpy(&e, t->base + eo, sizeof e);
        uint64_t sz = eo >= TBL_HDR_SIZE && eo <= lim - 16 ? tbl_ent_size(e.klen, e.vlen) : UINT64_MAX;
        if (sz > lim - eo) {
            chg[s] = IMG_CHG_OUT;
            continue;
        }
        memcpy(buf + eo, t->base + eo, sz);
        if (e.type == ETSMGR_INT && e.vlen == 8) img_ints_add(ints, eo + tbl_ent_voff(&e));
    }
    /* a rehash meanwhile may have moved slots past the walk: trust nothing */
    if (img_ld(&h->layout_seq) != lay) return n;
    for (unsigned s = 0; s < TBL_NSTRIPES; s++)
        if (chg[s] == IMG_CHG_YES) seen[s] = now[s];
    return n;
}

/* Step 3 under the lock; false: copy everything instead.  The copy's
 * index (when there was no rehash since step 1) holds every slot of a
 * stripe unchanged since seen[] as it is now: step 1 copied it, or the
 * round that last took the stripe's word as seen[] did; the others are
 * copied here. */
static bool img_fixup(etsmgr_table *t, unsigned char *buf, const uint64_t *seen, unsigned char *chg, uint64_t lay0,
                      const img_ints *ints)
{
    struct tbl_hdr *h = t->h;
    unsigned n = 0;
    for (unsigned s = 0; s < TBL_NSTRIPES; s++) {
        chg[s] = h->stripe[s] != seen[s];
        n += chg[s];
    }
    /* more than that, and copying everything is as fast (a value is a
     * cache line read at random) */
    if (n > IMG_FINAL_MAX || ints->lost || ints->n > t->top / 256) return false;
    for (size_t i = 0; i < ints->n; i++) {
        if (i + 16 < ints->n && ints->off[i + 16] + 8 <= t->top) __builtin_prefetch(t->base + ints->off[i + 16]);
        uint64_t o = ints->off[i];
        if (o + 8 <= t->top) memcpy(buf + o, t->base + o, 8);
    }
    img_locked_bytes += 8 * ints->n;
    memcpy(buf, t->base, TBL_HDR_SIZE);
    img_locked_bytes += TBL_HDR_SIZE;
    bool same = h->layout_seq == lay0;
    /* no stripe changed and no rehash: every slot is as the copy has it
     * (slots change only with their key's stripe), and only the integers
     * may have moved; the common case of an owner updating counters */
    if (same && n == 0) goto once;
    uint64_t *bidx = (uint64_t *)(void *)(buf + ((uint64_t)((const char *)t->idx - t->base)));
    for (uint64_t i = 0; i <= t->mask; i++) {
        uint64_t sl = t->idx[i];
        bool mine = !tbl_unused(sl) && chg[img_stripe(sl)];
        if (mine) {
            uint64_t eo = (sl & TBL_OFF_MASK) << 3;
            struct tbl_ent hc; /* sized by the header checked, not a second load of it */
            struct tbl_ent *e = tbl_ent_hdr(t, eo, &hc);
            if (!e) return false; /* let the whole copy and the encoder judge it */
            uint64_t sz = tbl_ent_size(hc.klen, hc.vlen);
            memcpy(buf + eo, e, sz);
            img_locked_bytes += sz;
        }
        if (!same || mine || tbl_unused(sl)) bidx[i] = sl;
    }
    img_locked_bytes += (t->mask + 1) * 8;
once:;
    /* the offset loaded once: tbl_once_bytes checked the region at it */
    uint64_t oo = __atomic_load_n(&h->once_off, __ATOMIC_RELAXED);
    uint64_t ob = oo ? tbl_once_bytes(t, oo) : 0;
    if (ob) {
        memcpy(buf + oo, t->base + oo, ob);
        img_locked_bytes += ob;
    }
    return true;
}

static int img_copy(etsmgr_table *t, unsigned char **buf, size_t *cap, uint64_t *top)
{
    img_locked_bytes = img_rounds = 0;
    img_fell_back = false;
    *buf = NULL;
    *cap = 0;
    if (img_force_locked_copy) {
        img_fell_back = true;
        goto locked;
    }
    uint64_t want = __atomic_load_n(&t->h->heap_top, __ATOMIC_RELAXED);
    want += want / 8 + 65536u;
    if (want > (TBL_OFF_MASK << 3)) want = TBL_OFF_MASK << 3;
    want = (want + 4095u) & ~(uint64_t)4095u;
    img_ints ints = {0};
    uint64_t *seen = malloc(2 * TBL_NSTRIPES * sizeof *seen);
    unsigned char *chg = malloc(TBL_NSTRIPES);
    void *p = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (!seen || !chg || p == MAP_FAILED) {
        free(ints.off);
        free(seen);
        free(chg);
        if (p != MAP_FAILED) munmap(p, want);
        return p == MAP_FAILED && errno != ENOMEM ? ETSMGR_ESYS : ETSMGR_ENOMEM;
    }
    *buf = p;
    *cap = want;
    img_populate(p, want);
    img_prefault(t, want);
    /* step 1 */
    int r = tbl_op_begin(t, "save", false);
    if (r) goto out;
    uint64_t t0 = img_now_ns();
    uint64_t top0 = t->top, lim = t->limit < want ? t->limit : want, lay0 = t->h->layout_seq;
    uint64_t idx0 = (uint64_t)((const char *)t->idx - t->base), mask0 = t->mask;
    for (unsigned s = 0; s < TBL_NSTRIPES; s++) seen[s] = t->h->stripe[s];
    img_cp(10);
    img_lock_ns = img_now_ns() - t0;
    tbl_op_end(t, 0);
    if (top0 > lim) {
        img_fell_back = true;
        goto out;
    }
    memcpy(*buf, t->base, top0);
    img_ints_scan(*buf, top0, idx0, mask0, &ints);
    img_cp(14); /* between the copy and the rounds: tests change the table here */
    /* step 2 */
    while (img_rounds < IMG_ROUNDS_MAX) {
        img_rounds++;
        if (img_round(t, *buf, lim, lay0, seen, seen + TBL_NSTRIPES, chg, &ints) <= IMG_ROUND_ENOUGH) break;
    }
    img_cp(11);
    /* step 3 */
    if ((r = tbl_op_begin(t, "save", false)) != 0) goto out;
    t0 = img_now_ns();
    uint64_t top1 = t->top;
    bool ok = top1 <= want && img_fixup(t, *buf, seen, chg, lay0, &ints);
    if (!ok && top1 <= want) { /* everything, as the lock-held copy */
        memcpy(*buf, t->base, top1);
        img_locked_bytes += top1;
        ok = true;
    }
    img_cp(12);
    uint64_t held = img_now_ns() - t0;
    if (held > img_lock_ns) img_lock_ns = held;
    tbl_op_end(t, 0);
    if (ok)
        *top = top1;
    else /* the table outgrew the buffer meanwhile: the lock-held copy sizes it again */
        img_fell_back = true;
out:
    free(seen);
    free(chg);
    free(ints.off);
    if (!r && !img_fell_back) return 0;
    munmap(*buf, *cap);
    *buf = NULL;
    *cap = 0;
    if (r) return r;
locked:
    return img_copy_locked(t, buf, cap, top);
}

/* A buffered writer that checksums what passes. */
typedef struct img_out {
    int fd;
    unsigned char *buf;
    size_t n, cap;
    uint32_t crc;
    uint64_t bytes;
    uint64_t written, started; /* about: what was written, what writeback was started for */
} img_out;
#define IMG_WRITEBACK_STEP (8u << 20)

static int img_write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int img_flush(img_out *o)
{
    if (o->n == 0) return 0;
    if (img_write_all(o->fd, o->buf, o->n) < 0) return -1;
    o->written += o->n;
    o->n = 0;
    /* start the disk on what is written so far: it writes while we encode,
     * and the fsync at the end waits for the last few MiB only, not for a
     * GiB of dirty pages (which also throttled every writer on the machine) */
    if (o->written - o->started >= IMG_WRITEBACK_STEP) {
        (void)sync_file_range(o->fd, (off_t)o->started, (off_t)(o->written - o->started), SYNC_FILE_RANGE_WRITE);
        o->started = o->written;
    }
    if (tbl_crashpoint) tbl_crashpoint("save", 100);
    return 0;
}

static int img_put(img_out *o, const void *p, size_t n)
{
    o->crc = img_crc32c(o->crc, p, n);
    o->bytes += n;
    while (n) {
        size_t k = o->cap - o->n < n ? o->cap - o->n : n;
        memcpy(o->buf + o->n, p, k);
        o->n += k;
        p = (const char *)p + k;
        n -= k;
        if (o->n == o->cap && img_flush(o) < 0) return -1;
    }
    return 0;
}

struct img_rid_out {
    img_out *o;
    int64_t now;
    uint64_t n;
};

static int img_encode_rid(const uint8_t rid[ETSMGR_RID_LEN], int64_t value, int64_t keep, void *arg)
{
    struct img_rid_out *ro = arg;
    unsigned char rh[8] = {TBL_RID_KEY_LEN, ETSMGR_BYTES, 0, 0, 16, 0, 0, 0}, key[TBL_RID_KEY_LEN], val[16];
    memcpy(key, TBL_RID_PREFIX, TBL_RID_PREFIX_LEN);
    memcpy(key + TBL_RID_PREFIX_LEN, rid, ETSMGR_RID_LEN);
    put64(val, (uint64_t)value);
    put64(val + 8, (uint64_t)(keep - ro->now));
    if (img_put(ro->o, rh, sizeof rh) < 0 || img_put(ro->o, key, sizeof key) < 0 || img_put(ro->o, val, sizeof val) < 0)
        return ETSMGR_ESYS;
    ro->n++;
    return 0;
}

/* Encode every entry of the copy (a view over it) into o; *count records,
 * *rids of them request ids. */
static int img_encode_entries(const unsigned char *copy, uint64_t top, img_out *o, uint64_t *count,
                              uint64_t *rids)
{
    etsmgr_table v;
    memset(&v, 0, sizeof v);
    v.h = (struct tbl_hdr *)(void *)copy;
    v.base = (char *)(void *)copy;
    v.map_size = v.limit = top;
    int r = tbl_state(&v);
    if (r) return r;
    uint64_t n = 0;
    for (uint64_t i = 0; i <= v.mask; i++) {
        /* the entries are visited in the index's order, i.e. at random:
         * ask for the one 16 slots ahead now, so that the cache and TLB
         * misses overlap (this loop waited on them for most of a GiB save) */
        if (i + 16 <= v.mask) {
            uint64_t ahead = (v.idx[i + 16] & TBL_OFF_MASK) << 3;
            if (ahead < top) __builtin_prefetch(copy + ahead);
        }
        uint64_t s = v.idx[i];
        if (tbl_unused(s)) continue;
        struct tbl_ent *e = tbl_ent_at(&v, (s & TBL_OFF_MASK) << 3);
        if (!e) return ETSMGR_ECORRUPT;
        unsigned char rh[IMG_REC_HDR] = {e->klen, e->type, 0, 0};
        put32(rh + 4, e->vlen);
        const unsigned char *val = (const unsigned char *)e + tbl_ent_voff(e);
        unsigned char ival[8];
        if (e->type == ETSMGR_INT) {
            int64_t x;
            memcpy(&x, val, 8);
            put64(ival, (uint64_t)x);
            val = ival;
        }
        if (img_put(o, rh, sizeof rh) < 0 || img_put(o, tbl_ent_key(e), e->klen) < 0 ||
            img_put(o, val, e->vlen) < 0)
            return ETSMGR_ESYS;
        n++;
    }
    struct img_rid_out ro = {o, etsmgr_mono_ms(), 0};
    r = tbl_once_each(&v, ro.now, img_encode_rid, &ro);
    if (r) return r;
    *count = n + ro.n;
    *rids = ro.n;
    return 0;
}

static int img_sys_err(int e)
{
    errno = e;
    return e == ENOSPC || e == EDQUOT || e == EFBIG ? ETSMGR_EFULL : ETSMGR_ESYS;
}

int img_save(etsmgr_table *t, const char *path, img_info *saved, char *why, size_t whylen)
{
    img_in_place = false;
    if (!t || !path || !*path) return ETSMGR_EINVAL;
    if (t->in_group)
        return tbl_say(why, whylen, ETSMGR_EGROUP, "cannot save inside an atomic group (commit first)");
    img_lock_ns = 0;
    memset(img_phase, 0, sizeof img_phase);
    memset(img_phase_cpu, 0, sizeof img_phase_cpu);
    /* the temporary file: same directory as path, so rename is atomic */
    static _Atomic unsigned seq;
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    if (!*base) return tbl_say(why, whylen, ETSMGR_EINVAL, "%s names a directory, not a file", path);
    char dir[PATH_MAX], tmp[PATH_MAX];
    if (dlen >= sizeof dir) return tbl_say(why, whylen, ETSMGR_EINVAL, "path too long");
    if (slash) {
        memcpy(dir, path, dlen ? dlen : 1);
        dir[dlen ? dlen : 1] = 0;
    } else {
        strcpy(dir, ".");
    }
    if (snprintf(tmp, sizeof tmp, "%.*s%s.%s.tmp-%d-%u", (int)dlen, path, slash ? "/" : "", base,
                 (int)getpid(), seq++) >= (int)sizeof tmp - 12) /* - 12: room for another N */
        return tbl_say(why, whylen, ETSMGR_EINVAL, "path too long");

    struct stat st;
    if (fstat(t->fd, &st) < 0) {
        int e = errno;
        return tbl_say(why, whylen, img_sys_err(e), "fstat of the table: %s", strerror(e));
    }
    unsigned char *copy;
    size_t cap;
    uint64_t top = 0;
    uint64_t ph = img_now_ns(), pc = img_cpu_ns();
    int r = img_copy(t, &copy, &cap, &top);
    img_phase[IMG_PH_COPY] = img_now_ns() - ph;
    img_phase_cpu[IMG_PH_COPY] = img_cpu_ns() - pc;
    if (r) return tbl_say(why, whylen, r, "copying table %s: %s", t->name, etsmgr_strerror(r));
    img_info in;
    memset(&in, 0, sizeof in);
    const struct tbl_hdr *ch = (const struct tbl_hdr *)(void *)copy;
    snprintf(in.name, sizeof in.name, "%s", t->name);
    in.ctime_us = ch->ctime_us;
    in.saved_us = tbl_now_us();
    in.max_bytes = ch->max_bytes;
    in.bytes_total = ch->total_bytes;
    in.mode = st.st_mode & 0777u;
    in.uid = st.st_uid;
    /* fixed at creation and checked at attach, but shared memory may hold
     * anything since: the handle's view of the type, and an access mode out
     * of range read as the strictest, as etsmgr_table_info_get does */
    in.access = ch->access <= ETSMGR_PUBLIC ? ch->access : ETSMGR_PRIVATE;
    in.type = t->ordered ? ETSMGR_ORDERED_SET : ETSMGR_SET;
    /* etsmgrd wrote it when it orphaned the table (tbl_set_owner) */
    in.orphaned_us = ch->owner_pid == 0 && ch->orphaned_us <= (uint64_t)INT64_MAX ? (int64_t)ch->orphaned_us : 0;

    img_out o = {.fd = -1, .cap = 1u << 20};
    o.buf = malloc(o.cap);
    int fd = -1, e = 0;
    bool created = false; /* tmp is ours to remove: the names tried before were others' */
    if (!o.buf) {
        r = tbl_say(why, whylen, ETSMGR_ENOMEM, "out of memory");
        goto out;
    }
    /* a name taken: a save killed mid-way left it, by a process that had
     * this pid (a container's application gets the same small pid at
     * every start); not ours to remove (it may be another pid
     * namespace's save under way): the next N */
    for (int tries = 0; (fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 &&
                        errno == EEXIST && tries < 1000;
         tries++)
        snprintf(tmp, sizeof tmp, "%.*s%s.%s.tmp-%d-%u", (int)dlen, path, slash ? "/" : "", base, (int)getpid(),
                 seq++);
    if (fd < 0) {
        e = errno;
        r = tbl_say(why, whylen, img_sys_err(e), "cannot create %s: %s", tmp, strerror(e));
        goto out;
    }
    created = true;
    o.fd = fd;
    img_cp(0);
    unsigned char hdr[IMG_HDR_SIZE] = {0};
    if (img_write_all(fd, hdr, sizeof hdr) < 0) goto io_err;
    o.crc = 0;
    r = img_encode_entries(copy, top, &o, &in.entries, &in.rids);
    if (r == ETSMGR_ESYS) goto io_err;
    if (r) {
        r = tbl_say(why, whylen, r, "table %s fails validation while saved: %s", t->name,
                    etsmgr_strerror(r));
        goto out;
    }
    in.records_bytes = o.bytes;
    unsigned char trailer[IMG_TRAILER_SIZE];
    put32(trailer, o.crc);
    memcpy(trailer + 4, IMG_END_TAG, 4);
    if (img_flush(&o) < 0 || img_write_all(fd, trailer, sizeof trailer) < 0) goto io_err;
    img_cp(1);
    img_encode_header(hdr, &in);
    if (pwrite(fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr) {
        if (errno == 0) errno = EIO;
        goto io_err;
    }
    img_cp(2);
    img_phase[IMG_PH_WRITE] = img_now_ns() - ph - img_phase[IMG_PH_COPY];
    img_phase_cpu[IMG_PH_WRITE] = img_cpu_ns() - pc - img_phase_cpu[IMG_PH_COPY];
    ph = img_now_ns();
    pc = img_cpu_ns();
    if (fsync(fd) < 0) goto io_err;
    img_phase[IMG_PH_FSYNC] = img_now_ns() - ph;
    img_phase_cpu[IMG_PH_FSYNC] = img_cpu_ns() - pc;
    ph = img_now_ns();
    pc = img_cpu_ns();
    img_cp(3);
    if (close(fd) < 0) {
        fd = -1;
        goto io_err;
    }
    fd = -1;
    img_cp(4);
    if (rename(tmp, path) < 0) {
        e = errno;
        r = tbl_say(why, whylen, img_sys_err(e), "cannot rename %s to %s: %s", tmp, path, strerror(e));
        goto out;
    }
    tmp[0] = 0; /* the temporary file is the target now */
    img_cp(5);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int dr = dfd < 0 ? -1 : img_test_dir_fsync_errno ? (errno = img_test_dir_fsync_errno, -1) : fsync(dfd);
    if (dr < 0) {
        e = errno;
        if (dfd >= 0) close(dfd);
        /* past the commit point: the target is the new image and the old
         * one is gone, but a power cut may still undo the rename; the
         * caller must not say the file is unchanged (img_last_in_place) */
        img_in_place = true;
        if (saved) *saved = in;
        r = tbl_say(why, whylen, img_sys_err(e), "%s is written and in place, but %s its directory %s "
                    "failed (%s): a power cut may still bring back what %s was before", path,
                    dfd < 0 ? "the open to fsync" : "the fsync of", dir, strerror(e), path);
        goto out;
    }
    close(dfd);
    img_phase[IMG_PH_RENAME] = img_now_ns() - ph;
    img_phase_cpu[IMG_PH_RENAME] = img_cpu_ns() - pc;
    img_cp(6);
    img_in_place = true;
    if (saved) *saved = in;
    r = 0;
    goto out;
io_err:
    e = errno;
    r = tbl_say(why, whylen, img_sys_err(e), "writing %s: %s", tmp, strerror(e));
out:
    if (fd >= 0) close(fd);
    if (r && created && tmp[0]) unlink(tmp);
    free(o.buf);
    munmap(copy, cap);
    if (r) errno = e;
    return r;
}

int etsmgr_table_save(etsmgr_table *t, const char *path)
{
    return img_save(t, path, NULL, NULL, 0);
}
