/*
 * simulator.h
 *	  The built-in market simulator: seeded random walks that produce
 *	  Finnhub-shaped quotes and trades.
 */
#ifndef STOCKS_STREAM_SIMULATOR_H
#define STOCKS_STREAM_SIMULATOR_H

#include "lib/stringinfo.h"

typedef struct Simulator Simulator;

extern Simulator *ss_simulator_create(char **symbols, int nsymbols, int64 seed, int quote_every);
extern const char *ss_simulator_next(Simulator *sim, int64 now_ms, StringInfo out);

#endif
