/* SPDX-License-Identifier: Apache-2.0 */
/* test_busypoll.c: etscounterd's adaptive polling (--poll-us) opens its
 * window in the very turn that served a request, and never without one.
 * That the window closes again, and costs no CPU when idle, is tested on
 * the running daemon (etscounter: test_poll_us_sleeps_when_idle); whether
 * the spin itself happens there depends on the machine's load, so the
 * opening is asserted here, on a loop of the test's own, turn by turn. */
#include <check.h>
#include <uv.h>

#include "etscounterd/counterd.h"

static void serve_one(uv_timer_t *t)
{
    (*(unsigned long *)t->data)++; /* what ecd_on_frame does per request */
}

/* one turn of loop in which a request is served (a timer stands for it) */
static void turn_serving(uv_loop_t *loop, uv_timer_t *tm)
{
    ck_assert_int_eq(uv_timer_start(tm, serve_one, 0, 0), 0);
    uv_run(loop, UV_RUN_ONCE);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

/* every handle closed (busypoll's too) and the loop with them */
static void loop_end(uv_loop_t *loop)
{
    uv_walk(loop, close_walk, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

START_TEST(test_busypoll_opens_after_a_request)
{
    uv_loop_t loop;
    uv_timer_t tm;
    unsigned long served = 0;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(uv_timer_init(&loop, &tm), 0);
    tm.data = &served;
    ck_assert_int_eq(ecd_busypoll_start(&loop, &served, 1000000), 0); /* a 1 s window */
    uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_msg(!ecd_busypoll_polling(), "polling before any request was served");
    turn_serving(&loop, &tm);
    ck_assert_uint_eq(served, 1);
    ck_assert_msg(ecd_busypoll_polling(), "no polling window after a turn that served a request");
    loop_end(&loop);
}
END_TEST

START_TEST(test_busypoll_off_never_polls)
{
    uv_loop_t loop;
    uv_timer_t tm;
    unsigned long served = 0;
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    ck_assert_int_eq(uv_timer_init(&loop, &tm), 0);
    tm.data = &served;
    ck_assert_int_eq(ecd_busypoll_start(&loop, &served, 0), 0); /* --poll-us 0 */
    turn_serving(&loop, &tm);
    ck_assert_uint_eq(served, 1);
    ck_assert_msg(!ecd_busypoll_polling(), "--poll-us 0 polls");
    loop_end(&loop);
}
END_TEST

Suite *busypoll_suite(void)
{
    Suite *s = suite_create("busypoll");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_busypoll_opens_after_a_request);
    tcase_add_test(tc, test_busypoll_off_never_polls);
    suite_add_tcase(s, tc);
    return s;
}
