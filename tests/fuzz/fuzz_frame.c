/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_frame.c: the incremental frame reader on arbitrary bytes, fed in
 * pieces whose sizes come from the input itself (so frames split at every
 * possible place), with each frame's payload sent through the request
 * parser, as a server does.  Checks: a frame never exceeds FRAME_MAX, every
 * payload lies inside what was fed, and after a -1 nothing more is read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1; /* 1..17 bytes per feed */
    data++;
    size--;
    frame_reader r;
    frame_reader_init(&r);
    size_t fed = 0, consumed = 0;
    int dead = 0;
    while (fed < size && !dead) {
        size_t n = size - fed < step ? size - fed : step;
        if (frame_reader_feed(&r, data + fed, n) < 0)
            break;
        fed += n;
        const char *p;
        size_t len;
        int k;
        while ((k = frame_reader_next(&r, &p, &len)) == 1) {
            if (len > FRAME_MAX)
                abort();
            consumed += 4 + len;
            if (consumed > fed)
                abort();
            /* the payload is the bytes of the stream at that place */
            if (len && memcmp(p, data + consumed - len, len) != 0)
                abort();
            proto_err code;
            char msg[128];
            cJSON *req = proto_parse_request(p, len, &code, msg, sizeof msg);
            cJSON *rep = req ? proto_reply_ok(req) : proto_reply_err(NULL, code, "%s", msg);
            char *s = cJSON_PrintUnformatted(rep);
            cJSON_free(s);
            cJSON_Delete(rep);
            cJSON_Delete(req);
        }
        if (k < 0)
            dead = 1;
    }
    frame_reader_free(&r);
    /* the encoder round-trips */
    size_t ol;
    char *enc = frame_encode((const char *)data, size > FRAME_MAX ? FRAME_MAX : size, &ol);
    if (enc) {
        frame_reader_init(&r);
        frame_reader_feed(&r, enc, ol);
        const char *p;
        size_t len;
        if (frame_reader_next(&r, &p, &len) != 1 || len != ol - 4 || memcmp(p, data, len) != 0)
            abort();
        frame_reader_free(&r);
        free(enc);
    }
    return 0;
}
