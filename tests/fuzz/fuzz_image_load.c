/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_image_load: the table-image reader (table_image.c) on hostile files.
 * An image comes from a disk, a copy between machines or etsmgrd's snapshot
 * directory; whatever its bytes, reading must end in a code and words, never
 * a crash, a huge allocation or a partial table.
 *
 * Input byte 0 picks how the rest is used:
 *   even  the rest is the whole file, as is (mostly stopped by the
 *         checksums, which is the point: they must be checked first);
 *   odd   the rest is the file, but both checksums are recomputed first, so
 *         the fuzzer reaches the record parser and the loader behind it.
 * A file that parses is loaded into a fresh table (img_fill), which must
 * then verify. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "table_image.h"
#include "table_int.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_limit_files();
    tbl_hash_seed_fixed = 0x5eed5eed5eed5eedull; /* the same index layouts when an input is replayed */
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int fds = fz_count_fds();
    int fix = data[0] & 1;
    size_t len = size - 1;
    unsigned char *b = malloc(len ? len : 1);
    if (!b)
        return 0;
    memcpy(b, data + 1, len);
    if (fix && len >= IMG_HDR_SIZE + IMG_TRAILER_SIZE) {
        put32(b + IMG_HDR_SIZE - 4, img_crc32c(0, b, IMG_HDR_SIZE - 4));
        put32(b + len - 8, img_crc32c(0, b + IMG_HDR_SIZE, len - IMG_HDR_SIZE - IMG_TRAILER_SIZE));
    }
    img_info info;
    char why[256];
    int r = img_parse(b, len, &info, why, sizeof why);
    if (r == 0) {
        img im = {.info = info, .buf = b, .len = len};
        etsmgr_table_opts o;
        img_table_opts(&im, &o);
        if (o.size_hint > (64u << 20)) /* a big (valid) claim: keep the run small */
            o.size_hint = 64u << 20;
        char shm[64];
        snprintf(shm, sizeof shm, "/fz%dimg.t", (int)getpid());
        etsmgr_table *t = NULL;
        if (tbl_create(shm, info.name, &o, &t) == 0) {
            tbl_unlink(shm);
            if (img_fill(t, &im, why, sizeof why) == 0 && etsmgr_table_verify(t, why, sizeof why) != 0) {
                fprintf(stderr, "fuzz: a loaded image fails verify: %s\n", why);
                abort();
            }
            etsmgr_table_close(t);
        }
    } else if (!why[0]) {
        fprintf(stderr, "fuzz: error %d without words\n", r);
        abort();
    }
    free(b);
    fz_check_fds(fds, "image load");
    return 0;
}
