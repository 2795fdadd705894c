#include "config.h"

#include <time.h>

#include "clock.h"

static int64_t (*override_fn)(void);

int64_t clock_now_ms(void)
{
	struct timespec ts;

	if (override_fn)
		return override_fn();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_s(void)
{
	return (int64_t)time(NULL);
}

int64_t clock_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void clock_override(int64_t (*fn)(void))
{
	override_fn = fn;
}
