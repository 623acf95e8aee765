/*
 * notify.h - readiness notification to systemd (Type=notify units, packaging/), when
 * tpc-coordinator is built with libsystemd (TPC_HAVE_SYSTEMD); a no-op otherwise.
 * sd_notify() itself does nothing when NOTIFY_SOCKET is not set (not under systemd).
 */
#ifndef TPC_COORD_NOTIFY_H
#define TPC_COORD_NOTIFY_H

#ifdef TPC_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

/** @brief Tell systemd @p state ("READY=1", "RELOADING=1", "STOPPING=1"). */
static inline void coord_notify(const char *state)
{
	sd_notify(0, state);
}
#else
static inline void coord_notify(const char *state)
{
	(void)state;
}
#endif

#endif
