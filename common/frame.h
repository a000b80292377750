/* SPDX-License-Identifier: Apache-2.0 */
/* frame.h: the wire framing shared by every socket of the project: a 4-byte
 * big-endian length, then that many bytes of UTF-8 JSON (one object).
 * Frames are at most FRAME_MAX bytes of payload.  File descriptors travel as
 * SCM_RIGHTS ancillary data sent with the first byte of the frame they
 * belong to. */
#ifndef ETSMGR_FRAME_H
#define ETSMGR_FRAME_H
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "fdpass.h"

#define FRAME_MAX 65536u
#define FRAME_MAX_FDS FDPASS_FRAME_MAX /* fds accepted with one frame; more are closed */

/* Incremental decoder for event loops: feed bytes, take whole frames. */
typedef struct frame_reader {
    char *buf;
    size_t len, cap, off;
} frame_reader;
void frame_reader_init(frame_reader *r);
void frame_reader_free(frame_reader *r);
/* 0, or -1 when out of memory */
int frame_reader_feed(frame_reader *r, const void *data, size_t n);
/* 1: a frame (payload/len valid until the next call), 0: need more bytes,
 * -1: the length prefix exceeds FRAME_MAX (the stream cannot go on). */
int frame_reader_next(frame_reader *r, const char **payload, size_t *len);

/* The stream offset at which the frame holding the last byte fed so far
 * begins (for fdpass_ledger_add: fds belong to a frame only when they came
 * with its first byte).  consumed: the stream offset of the first byte still
 * in r (the bytes frame_reader_next has given out, counted by the caller).
 * *scan: the caller's cursor, 0 at first and kept between calls, so each
 * frame's header is read once.  Nothing fed yet: consumed. */
uint64_t frame_reader_tail_start(const frame_reader *r, uint64_t consumed, uint64_t *scan);

/* 1: the frame frame_reader_next would give next is whole in r, at
 * payload/len (valid until r is fed or read again); 0: not (yet). */
static inline int frame_reader_peek(const frame_reader *r, const char **payload, size_t *len)
{
    if (r->len - r->off < 4) return 0;
    const unsigned char *p = (const unsigned char *)r->buf + r->off;
    uint32_t n = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    if (n > FRAME_MAX || r->len - r->off - 4 < (size_t)n) return 0;
    *payload = r->buf + r->off + 4;
    *len = n;
    return 1;
}

/* Bytes fed and not yet given out by frame_reader_next (a whole frame may
 * be among them). */
static inline size_t frame_reader_pending(const frame_reader *r) { return r->len - r->off; }

/* Prefix + payload into one malloc'd buffer; NULL when len > FRAME_MAX. */
char *frame_encode(const char *payload, size_t len, size_t *outlen);

/* Blocking I/O for clients and CLIs (timeout_ms < 0: wait forever).
 * frame_write sends fds (nfds <= FRAME_MAX_FDS) with the frame; 0 or -1/errno.
 * frame_read returns 0 with a malloc'd NUL-terminated payload and any fds
 * received (up to maxfds; extra ones are closed), or -1 with errno:
 * ECONNRESET when the peer closed, ETIMEDOUT, EMSGSIZE for a frame over
 * FRAME_MAX. */
int frame_write(int fd, const char *payload, size_t len, const int *fds, int nfds);
int frame_read(int fd, char **payload, size_t *len, int *fds, int *nfds, int maxfds, int timeout_ms);
int frame_write_json(int fd, const cJSON *obj, const int *fds, int nfds);
/* like frame_read, but parses: -1/EBADMSG when the payload is not a JSON object */
int frame_read_json(int fd, cJSON **obj, int *fds, int *nfds, int maxfds, int timeout_ms);
#endif
