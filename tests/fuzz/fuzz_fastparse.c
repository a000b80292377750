/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_fastparse: etscounterd's request fast path against cJSON.  For any
 * bytes, fp_parse either declines them (they go through cJSON) or reads
 * them exactly as cJSON and the handlers' getters do (fastparse_oracle.h);
 * a disagreement aborts with the input.  The seeds are the requests
 * etscounter and the bench send, so mutations start next to the accepted
 * shapes, where a disagreement would be. */
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
    fp_req f;
    if (!fp_parse((const char *)data, size, &f))
        return 0;
    const char *why = fp_oracle((const char *)data, size, &f);
    if (why) {
        fprintf(stderr, "fuzz: the fast path and cJSON disagree on %.*s: %s\n", (int)size, (const char *)data, why);
        abort();
    }
    return 0;
}
