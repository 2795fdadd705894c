/* notify.h: tell a service manager (systemd Type=notify) that the mount is
 * live, without linking libsystemd: one datagram to $NOTIFY_SOCKET. */
#ifndef INGESTFS_NOTIFY_H
#define INGESTFS_NOTIFY_H

/* Send STATE ("READY=1", "STOPPING=1", "STATUS=...").  Returns 0, or
 * -errno; without $NOTIFY_SOCKET it does nothing and returns 0. */
int notify_service_manager(const char *state);

#endif
