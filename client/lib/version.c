/* SPDX-License-Identifier: Apache-2.0 */
/* version.c: etsmgr_version(), the version of the library actually loaded,
 * which an application compares with the ETSMGR_VERSION_* it was compiled
 * against.  The Makefile reads VERSION from those macros, so the number
 * lives in one place. */
#include "etsmgr.h"

#define ETSMGR_STR2(x) #x
#define ETSMGR_STR(x) ETSMGR_STR2(x)

const char *etsmgr_version(void)
{
    return ETSMGR_STR(ETSMGR_VERSION_MAJOR) "." ETSMGR_STR(ETSMGR_VERSION_MINOR) "." ETSMGR_STR(
        ETSMGR_VERSION_PATCH);
}
