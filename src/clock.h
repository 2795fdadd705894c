/* clock.h: the time source.  Everything that schedules (settle, backoff)
 * asks here, so tests can substitute their own clock. */
#ifndef INGESTFS_CLOCK_H
#define INGESTFS_CLOCK_H

#include <stdint.h>

/* Milliseconds on a monotonic clock. */
int64_t clock_now_ms(void);
/* Wall-clock seconds since the epoch, for messages meant for people. */
int64_t clock_wall_s(void);
/* Wall-clock milliseconds, for times kept across restarts (when an
 * upload ended, for retention). */
int64_t clock_wall_ms(void);
/* Tests only: replace the monotonic clock; NULL restores it. */
void clock_override(int64_t (*fn)(void));

#endif
