/* SPDX-License-Identifier: Apache-2.0 */
/* table_image.h: a table as a file (docs/image-format.md), the inside of
 * etsmgr_table_save / etsmgr_table_load and of etsmgrd's snapshots.
 *
 * An image is a logical dump: a header with the table's options, then one
 * record per entry, then a checksum.  It does not copy the shared-memory
 * layout, so an image outlives a change of that layout (TBL_VERSION), and
 * loading it rebuilds a compact table with a fresh lock and an empty undo
 * log.
 *
 * Reading validates the whole file (sizes, both checksums, every record)
 * before anything is created from it, so a bad file never leaves a half
 * table behind, and reads the records only once the header has been
 * checked against the file's size, so a huge file that is no image costs
 * no memory; each kind of damage has its own code and words:
 *   ETSMGR_ETRUNCATED  shorter than its header says
 *   ETSMGR_EBADMAGIC   not an image at all
 *   ETSMGR_EVERSION    written by a newer etsmgr
 *   ETSMGR_ECORRUPT    a checksum or a field is wrong (the words say which) */
#ifndef ETSMGR_TABLE_IMAGE_H
#define ETSMGR_TABLE_IMAGE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etsmgr.h"

#define IMG_MAGIC "\x89" "ETSIMG\n"
#define IMG_VERSION 2u /* 2: the access mode, the type and the orphaned-since time */
#define IMG_HDR_SIZE 192u
#define IMG_TRAILER_SIZE 8u
#define IMG_REC_HDR 8u

typedef struct img_info {
    char name[ETSMGR_NAME_MAX + 1];
    uint64_t entries;    /* records in the image: the entries and the request ids */
    uint64_t rids;       /* of those, request-id records (set by img_save only) */
    uint64_t records_bytes;
    int64_t ctime_us;    /* the table's creation */
    int64_t saved_us;    /* when the image was taken */
    uint64_t max_bytes;  /* the table's option (0: unbounded) */
    uint64_t bytes_total; /* the table's size when saved: a size hint */
    uint32_t mode;       /* permission bits of the shm object */
    uint32_t uid;        /* owner of the shm object */
    uint32_t access;     /* etsmgr_access (version 1: ETSMGR_PROTECTED) */
    uint32_t type;       /* etsmgr_table_type (version 1: ETSMGR_SET) */
    int64_t orphaned_us; /* orphaned since (µs since the epoch); 0: owned, or not known */
} img_info;

/* A whole image file in memory, validated. */
typedef struct img {
    img_info info;
    unsigned char *buf;
    size_t len;
} img;

/* CRC-32C (Castagnoli), continuing from crc (0 to start). */
uint32_t img_crc32c(uint32_t crc, const void *data, size_t len);
/* The same without the CPU's crc32 instruction (tables; for the tests). */
uint32_t img_crc32c_portable(uint32_t crc, const void *data, size_t len);

/* Validate an image held in memory: header, sizes, both checksums, every
 * record, and that no key repeats (so that a loader refuses a repeat
 * before it creates or replaces a table).  0 with *info filled, or an
 * error with words in why (ETSMGR_ENOMEM: no memory for the key set). */
int img_parse(const void *data, size_t len, img_info *info, char *why, size_t whylen);
/* Tests: the most occupied slots one record of the last img_parse on this
 * thread stepped over in the repeated-key check (its cost, without a clock:
 * small unless the keys were made to collide and the hash let them). */
uint64_t img_last_repeat_max_probe(void);
/* Read and validate the file at path (img_parse).  ETSMGR_ESYS: errno. */
int img_read(const char *path, img **out, char *why, size_t whylen);
void img_free(img *im);

/* Insert every record of a validated image into t (normally empty).  A key
 * already in t is ETSMGR_ECORRUPT. */
int img_fill(etsmgr_table *t, const img *im, char *why, size_t whylen);
/* Options to create a table an image fits in without growing. */
void img_table_opts(const img *im, etsmgr_table_opts *o);

/* etsmgr_table_save with words: the steps are crash points "save" 0..N for
 * tbl_crashpoint.  *saved (may be NULL) receives what was written, also
 * when img_save fails after its file is in place (img_last_in_place). */
int img_save(etsmgr_table *t, const char *path, img_info *saved, char *why, size_t whylen);
/* Whether the last img_save on this thread put its file in place: always
 * when it returned 0; after a failure, only when what failed was the fsync
 * of the directory after the rename (or the open for it).  Then the target
 * is the new image and the previous one is gone, but a power cut may still
 * undo the rename: a caller must not say the file is unchanged. */
bool img_last_in_place(void);
/* Tests (test hook): not 0, the fsync of the directory after a save's
 * rename fails with this errno. */
extern int img_test_dir_fsync_errno;

/* How the last img_save on this thread copied the table: bytes copied
 * while it held the lock, lock-free rounds, whether it fell back to one
 * copy under the lock (the table outgrew the buffer meanwhile). */
void img_last_copy_stats(uint64_t *locked_bytes, uint64_t *rounds, bool *fell_back);
/* Tests: copy the whole table under the lock, as before the rounds. */
extern bool img_force_locked_copy;

/* The longest the last img_save on this thread held the table's lock, ns. */
uint64_t img_last_lock_ns(void);
/* Where the last img_save on this thread spent its time, ns (for
 * `make bench-save`): copying the table, encoding and writing the file,
 * fsync of the file, rename and fsync of the directory. */
enum { IMG_PH_COPY, IMG_PH_WRITE, IMG_PH_FSYNC, IMG_PH_RENAME, IMG_NPHASES };
uint64_t img_last_phase_ns(int phase);
/* The same in this thread's CPU time: the difference is waiting (for the
 * disk, for a CPU, for the lock). */
uint64_t img_last_phase_cpu_ns(int phase);
#endif
