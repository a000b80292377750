/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_sup_config: etssup's configuration parser on any text.  A config
 * file is written by a person, not a peer, but it is parsed by a process
 * that then supervises everything, so it must refuse any text with
 * messages, never crash, and leak nothing on either path (LeakSanitizer
 * checks both: a refused config frees what it built, an accepted one is
 * freed by sup_config_free).  The messages go to /dev/null through stdio
 * so that their formatting (field paths built from the input) runs too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "sup.h"

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    sup_config cfg;
    memset(&cfg, 0, sizeof cfg);
    /* exe_dir: bare names resolve to /bin's programs, so argv checks pass */
    int n = sup_config_parse(text, "fuzz.json", "/bin", &cfg, devnull);
    if (n == 0) {
        if (cfg.nchildren < 0 || cfg.nchildren > SUP_MAX_CHILDREN)
            abort();
        for (int i = 0; i < cfg.nchildren; i++)
            if (!cfg.children[i].id || !cfg.children[i].argv || !cfg.children[i].argv[0] ||
                !cfg.children[i].exe)
                abort();
        sup_config_free(&cfg);
    } else if (n < 0) {
        abort();
    }
    free(text);
    return 0;
}
