/* fdbudget.c: see fdbudget.h. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/resource.h>

#include "fdbudget.h"
#include "log.h"

#define USERS_MAX 256
/* With no limit to speak of, still keep a user from taking everything. */
#define BUDGET_MIN 64

struct holder {
	uid_t uid;
	unsigned held;
	bool warned; /* its refusal is logged; again only once it is well below */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned budget = ~0u, held;
static struct holder users[USERS_MAX];
static size_t nusers;
static bool short_of; /* the whole budget is spent, and the log said so */

unsigned long fdbudget_init(unsigned reserve)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;

		rl.rlim_cur = want;
		/* Some kernels cap at nr_open below an "unlimited" hard limit. */
		while (setrlimit(RLIMIT_NOFILE, &rl) < 0 && rl.rlim_cur > 1024)
			rl.rlim_cur /= 2;
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	pthread_mutex_lock(&lock);
	budget = rl.rlim_cur > (rlim_t)reserve + BUDGET_MIN ? (unsigned)(rl.rlim_cur - reserve)
							    : BUDGET_MIN;
	pthread_mutex_unlock(&lock);
	return (unsigned long)rl.rlim_cur;
}

/* The holder of UID, or (ADD) a new one; NULL when the table is full
 * (then only the whole budget limits that user). */
static struct holder *holder_of(uid_t uid, bool add)
{
	for (size_t i = 0; i < nusers; i++) {
		if (users[i].uid == uid)
			return &users[i];
	}
	if (!add || nusers == USERS_MAX)
		return NULL;
	users[nusers] = (struct holder){.uid = uid};
	return &users[nusers++];
}

static bool over_share(uid_t uid, const struct holder *h)
{
	return uid != 0 && h && h->held >= budget / 2;
}

/* One line when a user hits its share, one when all are spent; again
 * only after it has passed (well below: no line per open and close). */
static void refused(uid_t uid, struct holder *h)
{
	if (held >= budget) {
		if (!short_of)
			log_warn("open files in the mount are at their limit (%u held): new opens "
				 "get EMFILE until some close (raise LimitNOFILE or ulimit -n)",
				 held);
		short_of = true;
	} else if (h && !h->warned) {
		log_warn("user %u holds half of the files the mount may have open (%u): its new "
			 "opens get EMFILE until some close",
			 (unsigned)uid, h->held);
		h->warned = true;
	}
}

static void recovered(struct holder *h)
{
	if (short_of && held < budget * 9 / 10) {
		short_of = false;
		log_info("open files in the mount are below their limit again");
	}
	if (h && h->warned && h->held < budget / 4)
		h->warned = false;
}

int fdbudget_take(uid_t uid)
{
	struct holder *h;
	int rc = 0;

	pthread_mutex_lock(&lock);
	h = holder_of(uid, true);
	if (held >= budget || over_share(uid, h)) {
		refused(uid, h);
		rc = -EMFILE;
	} else {
		held++;
		if (h)
			h->held++;
	}
	/* A holder that holds nothing goes (refused ones too). */
	if (h && h->held == 0 && !h->warned)
		*h = users[--nusers];
	pthread_mutex_unlock(&lock);
	return rc;
}

void fdbudget_give(uid_t uid)
{
	struct holder *h;

	pthread_mutex_lock(&lock);
	h = holder_of(uid, false);
	if (held)
		held--;
	if (h && h->held)
		h->held--;
	recovered(h);
	if (h && h->held == 0 && !h->warned)
		*h = users[--nusers];
	pthread_mutex_unlock(&lock);
}
