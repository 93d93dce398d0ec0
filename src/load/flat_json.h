/*
 * flat_json.h
 *	  A strict JSON parser for the one-level objects bronze lines are: it
 *	  hands back the values of the keys the caller asks for and checks the
 *	  rest of the text without building anything.
 */
#ifndef STOCKS_STREAM_FLAT_JSON_H
#define STOCKS_STREAM_FLAT_JSON_H

#include "lib/stringinfo.h"

typedef enum FlatJsonType
{
	FLAT_JSON_NULL,
	FLAT_JSON_BOOL,
	FLAT_JSON_NUMBER,
	FLAT_JSON_STRING,
	FLAT_JSON_ARRAY,
	FLAT_JSON_OBJECT
} FlatJsonType;

/*
 * A value of a wanted key, or an element of a wanted array.  A string is
 * decoded (escapes resolved) and NUL-terminated; `length` counts its bytes,
 * so a "\u0000" inside shows as strlen() < length.
 */
typedef struct FlatJsonValue
{
	FlatJsonType type;
	double number;		/* FLAT_JSON_NUMBER, as strtod would read it */
	const char *string; /* FLAT_JSON_STRING */
	size_t length;
	int first_item; /* FLAT_JSON_ARRAY: its elements, in FlatJson.items */
	int nitems;
} FlatJsonValue;

typedef enum FlatJsonResult
{
	FLAT_JSON_OK,
	FLAT_JSON_INVALID,	 /* not JSON (RFC 8259, nested at most FLAT_JSON_MAX_DEPTH deep) */
	FLAT_JSON_NOT_OBJECT /* JSON, but not an object */
} FlatJsonResult;

#define FLAT_JSON_MAX_DEPTH 32

/* Which of the caller's fields a key is, or -1. */
typedef int (*FlatJsonFieldOf)(const char *key, size_t len);

/* Reusable parser state: buffers kept from one line to the next. */
typedef struct FlatJson
{
	StringInfoData strings; /* decoded strings of the current line */
	FlatJsonValue *items;	/* elements of wanted arrays */
	int nitems;
	int maxitems;
} FlatJson;

extern void ss_flat_json_init(FlatJson *p);

/*
 * Parse text[0..len) as one JSON object.  For each key field_of() knows,
 * values[field] gets its value and present[field] is set (the last wins
 * when a key repeats); both arrays have the caller's field count and are
 * cleared by the caller.  Values point into `p` until its next parse.
 */
extern FlatJsonResult ss_flat_json_parse(FlatJson *p, const char *text, size_t len,
										 FlatJsonFieldOf field_of, FlatJsonValue *values,
										 bool *present);

#endif
