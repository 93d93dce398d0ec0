/*
 * s3_list_page.h
 *	  One ListObjectsV2 page read, and the keys a request may name.
 */
#ifndef STOCKS_STREAM_S3_LIST_PAGE_H
#define STOCKS_STREAM_S3_LIST_PAGE_H

#include "nodes/pg_list.h"

extern bool s3_key_acceptable(const char *key);
extern char *s3_parse_list_page(const char *xml, List **keys, List **entries, List **folders,
								int *refused);

#endif
