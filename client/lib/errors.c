/* SPDX-License-Identifier: Apache-2.0 */
/* errors.c: words for every etsmgr_err code, written for the person who
 * reads them in a log: what went wrong and, where it helps, what to do. */
#include "etsmgr.h"

const char *etsmgr_strerror(int err)
{
    switch ((etsmgr_err)err) {
    case ETSMGR_OK: return "success";
    case ETSMGR_ENOTFOUND: return "no such entry (or no such table)";
    case ETSMGR_EEXIST: return "already exists";
    case ETSMGR_EFULL: return "table full: it reached its max_bytes, or the system is out of shared memory (/dev/shm)";
    case ETSMGR_EINVAL: return "invalid argument (key must be 1..255 bytes, a value at most 64 KiB)";
    case ETSMGR_ETYPE: return "the value is not an integer";
    case ETSMGR_ESYS: return "a system call failed (see errno)";
    case ETSMGR_EBADMAGIC: return "not an etsmgr table (wrong magic number)";
    case ETSMGR_EVERSION: return "table has another layout version than this library";
    case ETSMGR_ETRUNCATED: return "table object is shorter than its header says (truncated)";
    case ETSMGR_ECORRUPT: return "table is corrupted (a header field or an entry fails validation)";
    case ETSMGR_ERANGE: return "buffer too small for the value";
    case ETSMGR_EGROUP: return "atomic group misused (not begun, already begun, or too many changes)";
    case ETSMGR_ENOMEM: return "out of memory";
    case ETSMGR_ENOTCONN: return "etsmgrd is not reachable (is it running? check the runtime dir and instance)";
    case ETSMGR_ETIMEDOUT: return "timed out waiting for etsmgrd";
    case ETSMGR_EPROTO: return "etsmgrd sent a reply this library cannot read (protocol error)";
    case ETSMGR_EOWNED: return "the table is owned by another living process";
    case ETSMGR_EREFUSED: return "etsmgrd refused the request";
    case ETSMGR_ELOCKED: return "the table's lock is held by another process that does not let go (stopped or stuck?)";
    case ETSMGR_EEXPIRED: return "the request's deadline passed before it was applied: it was not applied";
    case ETSMGR_ERIDFULL: return "too many request ids are still remembered (each until its sender's retry time): "
                                 "not applied, try again later";
    case ETSMGR_EPERM: return "not permitted: a write on a table opened for reading, or the table's access mode (private, protected) refuses this";
    case ETSMGR_EDEADWRITER: return "a writer died in the middle of a change and nobody rolled it back (is etsmgrd running? a handle that may write can do it too)";
    case ETSMGR_ENAME: return "invalid table name (use 1 to 64 of A-Z a-z 0-9 _ . -)";
    }
    return "unknown etsmgr error";
}
