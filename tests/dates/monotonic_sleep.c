/* Preloaded before libfaketime by `make test-dates` (tests/dates/__main__.py).
 *
 * The fake clock fakes the wall clock only (FAKETIME_DONT_FAKE_MONOTONIC=1): with the monotonic
 * clock faked too, every timed wait of a Python thread (Event.wait, Condition.wait, queue.get with a
 * timeout, so psycopg_pool's and our own) never returns, because CPython waits with sem_clockwait on
 * CLOCK_MONOTONIC, which libfaketime 0.9.10 does not translate: the deadline it computes from the
 * faked clock lies months away on the real one. With the monotonic clock real, those waits are
 * right, but libfaketime's clock_nanosleep mistranslates an absolute CLOCK_MONOTONIC deadline
 * (time.sleep fails with EINVAL). So monotonic sleeps go straight to the kernel here; everything
 * else passes on to libfaketime.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_nanosleep_fn)(clockid_t, int, const struct timespec *, struct timespec *);

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *request, struct timespec *remain) {
    static clock_nanosleep_fn next;
    if (clock == CLOCK_MONOTONIC || clock == CLOCK_BOOTTIME) {
        return syscall(SYS_clock_nanosleep, clock, flags, request, remain) == 0 ? 0 : errno;
    }
    if (!next) next = (clock_nanosleep_fn)dlsym(RTLD_NEXT, "clock_nanosleep");
    return next(clock, flags, request, remain);
}
