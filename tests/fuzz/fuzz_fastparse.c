/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_fastparse: etscounterd's request fast path against cJSON.  For any
 * bytes, fp_parse either declines them (they go through cJSON) or reads
 * them exactly as cJSON and the handlers' getters do (fastparse_oracle.h);
 * a disagreement aborts with the input.  fastparse.c has two readers, the
 * straight-through one of the CLI's form and, behind it, the one of any
 * key order (fp_parse_general alone): each is held to cJSON, and the two
 * to each other (the same answer and the same fields), so that the second
 * is tested on the inputs the first takes too.  The seeds are the
 * requests etscounter and the bench send, so mutations start next to the
 * accepted shapes, where a disagreement would be. */
#include <stdio.h>
#include <stdlib.h>

#include "fastparse_oracle.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_init("fastparse-fuzz", (enum log_level)(LOG_LVL_ERROR - 1));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    fp_req f, g;
    int fast = fp_parse(p, size, &f), general = fp_parse_general(p, size, &g);
    const char *why = NULL;
    if (fast != general)
        why = fast ? "only fp_parse takes it" : "only fp_parse_general takes it";
    if (!why && fast)
        why = fp_same(&f, &g);
    if (!why && fast)
        why = fp_oracle(p, size, &f);
    if (why) {
        fprintf(stderr, "fuzz: fastparse disagrees on %.*s: %s\n", (int)size, p, why);
        abort();
    }
    return 0;
}
