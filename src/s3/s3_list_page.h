/*
 * s3_list_page.h
 *	  One ListObjectsV2 page read, and the keys a request may name.
 */
#ifndef STOCKS_STREAM_S3_LIST_PAGE_H
#define STOCKS_STREAM_S3_LIST_PAGE_H

#include "nodes/pg_list.h"

extern bool ss_s3_list_page_key_acceptable(const char *key);
extern char *ss_s3_list_page_parse(const char *xml, List **keys, List **entries, List **folders,
								   int *refused);

#endif
