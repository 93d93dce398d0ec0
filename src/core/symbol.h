/*
 * symbol.h
 *	  What a market symbol is, for every part of stocks_stream: the SQL API
 *	  that takes a source's symbols, the simulator, the bronze loader and
 *	  the keys of the old Python pipeline.
 */
#ifndef STOCKS_STREAM_SYMBOL_H
#define STOCKS_STREAM_SYMBOL_H

/* 1 to SYMBOL_MAX_LEN of SYMBOL_CHARS, the first a letter or digit */
#define SYMBOL_MAX_LEN	   32
#define SYMBOL_FIRST_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
#define SYMBOL_CHARS	   SYMBOL_FIRST_CHARS ".:^_/-"

/* the rule in words, for messages and hints */
#define SYMBOL_RULE                                                                                \
	"1 to 32 upper-case letters, digits and . : ^ _ / -, starting with a letter or digit"

extern bool ss_symbol_valid(const char *s, size_t len);

#endif
