/*
 * harness.h
 *	  What a fuzz target needs from the harness that stands in for the
 *	  backend (harness.c).
 *
 * A target defines fuzz_target(); the harness calls it once per input
 * inside PG_TRY, with CurrentMemoryContext a context that is reset after
 * the input, so an ereport(ERROR) is a clean rejection and nothing the
 * target pallocs there is reported as a leak.  Memory allocated in
 * TopMemoryContext (or a context under it) lives across inputs, as it
 * does in a backend.
 */
#ifndef STOCKS_STREAM_FUZZ_HARNESS_H
#define STOCKS_STREAM_FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

extern void fuzz_target(const uint8_t *data, size_t size);

/* The input as a palloc'd NUL-terminated string (NULs inside kept). */
extern char *fuzz_cstring(const uint8_t *data, size_t size);

/* Message of the last ereport(ERROR) caught, for debugging (FUZZ_VERBOSE=1 prints it). */
extern const char *fuzz_last_error(void);

#endif
