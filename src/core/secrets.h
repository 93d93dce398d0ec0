/*
 * secrets.h
 *	  Credentials, read from a file only the server can read.
 */
#ifndef STOCKS_STREAM_SECRETS_H
#define STOCKS_STREAM_SECRETS_H

typedef void (*SecretCallback)(const char *name, const char *value, void *arg);

extern const char *ss_secrets_get(const char *name);
extern void ss_secrets_foreach(const char *prefix, SecretCallback cb, void *arg);
extern void ss_secrets_read(FILE *f, const char *path);
extern char *ss_secrets_kafka_fingerprint(void);

#endif
