/*
 * s3_bucket.h
 *	  The rule for an S3 bucket name (s3_bucket.c).
 */
#ifndef SS_S3_BUCKET_H
#define SS_S3_BUCKET_H

extern bool ss_s3_bucket_valid(const char *name);
extern void ss_s3_bucket_check(const char *name);

#endif
