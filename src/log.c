/* log.c: stderr in the foreground, syslog once daemonized. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "log.h"
#include "text.h"

static enum log_level current_level = LOG_LEVEL_INFO;
static bool to_syslog;

void log_set_level(enum log_level level)
{
	current_level = level;
}

void log_use_syslog(bool on)
{
	if (on && !to_syslog)
		openlog("ingestfs", LOG_PID, LOG_DAEMON);
	to_syslog = on;
}

int log_level_parse(const char *name, enum log_level *out)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(name, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const int syslog_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	static const char *const prefix[] = {"error: ", "warning: ", "", "debug: "};
	char raw[1024], line[1024];
	va_list ap;

	if (level > current_level)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	/* File names go into messages: a name with a newline must not forge
	 * a log line, nor an escape sequence reach a terminal. */
	text_escape(line, sizeof(line), raw, sizeof(raw));
	if (to_syslog)
		syslog(syslog_prio[level], "%s%s", prefix[level], line);
	else
		fprintf(stderr, "ingestfs: %s%s\n", prefix[level], line);
}
