/*
 * tier_order.h
 *	  A silver day's rows in (symbol, time) order, as the export writes them.
 */
#ifndef STOCKS_STREAM_TIER_ORDER_H
#define STOCKS_STREAM_TIER_ORDER_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "utils/date.h"

#include "lake/silver_object.h"

/*
 * Called with each row in turn, in a memory context reset every few rows;
 * the tuple is valid until it returns.
 */
typedef void (*TierOrderRowFn)(void *arg, TupleDesc desc, HeapTuple tuple);

extern void ss_tier_order_read(SilverTable t, DateADT day, TierOrderRowFn fn, void *arg);

#endif
