/*
 * s3.c
 *	  S3 client: PUT object, GET object, create bucket, over libcurl.
 *
 * Requests are signed with AWS SigV4 by libcurl (CURLOPT_AWS_SIGV4); we add
 * the x-amz-content-sha256 header with the payload hash computed by
 * Postgres' own SHA-256, so the server verifies the body too.  A PUT of a
 * body to an https:// endpoint is sent as UNSIGNED-PAYLOAD with an
 * x-amz-checksum-crc32c header instead, as the AWS SDKs now do: TLS already
 * keeps the body from being changed on the way, the CRC (which the server
 * checks, refusing a mismatch) catches what goes wrong on either end, and
 * it costs a fraction of the hash (SHA-256 was 10-15% of the archive
 * worker's samples; bench/NOTEBOOK.md, issue 25).  Over plain http:// the
 * hash stays: a CRC is no defence against a body changed on the wire.  One easy
 * handle per process is kept for connection reuse; requests that travel
 * side by side are s3_async.c's and s3_fetch.c's, and the libcurl setup
 * common to all is http.c.  Everything runs on the backend's main thread:
 * libcurl's callbacks fire inside curl_easy_perform.  Settings are read at
 * each request, so a SIGHUP takes effect at once.  Error texts never
 * include credentials.
 */
#include "postgres.h"

#include "common/base64.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "core/http.h"
#include "core/pg_compat.h"
#include "core/secrets.h"
#include "core/settings.h"
#include "s3/s3.h"
#include "s3/s3_internal.h"
#include "s3/s3_list_page.h"
#include "s3/s3_tls.h"

static CURL *curl_handle = NULL;

/* Drop the kept connections (not those of requests in flight, s3_async.c). */
void
ss_s3_reset_connection(void)
{
	if (curl_handle != NULL)
		curl_easy_cleanup(curl_handle);
	curl_handle = NULL;
	ss_s3_async_reset_connections();
}

/*
 * Hex SHA-256 of a payload.  pg_cryptohash registers with the current
 * resource owner, which a background worker between transactions lacks;
 * a long-lived one of our own serves then.
 */
static void
sha256_hex(const char *data, size_t len, char *hex)
{
	static ResourceOwner hash_owner = NULL;
	ResourceOwner saved = CurrentResourceOwner;
	pg_cryptohash_ctx *ctx;
	uint8 digest[PG_SHA256_DIGEST_LENGTH];

	if (saved == NULL)
	{
		if (hash_owner == NULL)
			hash_owner = ResourceOwnerCreate(NULL, "stocks_stream S3 hashing");
		CurrentResourceOwner = hash_owner;
	}
	ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not compute SHA-256 of an S3 payload")));
	pg_cryptohash_free(ctx);
	CurrentResourceOwner = saved;
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		sprintf(hex + 2 * i, "%02x", digest[i]);
	hex[2 * PG_SHA256_DIGEST_LENGTH] = '\0';
}

/*
 * The x-amz-checksum-crc32c value of a payload: the CRC-32C (Castagnoli)
 * as 4 big-endian bytes, in base64.
 */
static void
crc32c_base64(const char *data, size_t len, char *out, int outlen)
{
	pg_crc32c crc;
	uint8 be[4];

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, len);
	FIN_CRC32C(crc);
	be[0] = (uint8) (crc >> 24);
	be[1] = (uint8) (crc >> 16);
	be[2] = (uint8) (crc >> 8);
	be[3] = (uint8) crc;
	if (ss_pg_compat_b64_encode(be, sizeof(be), out, outlen - 1) != 8)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
						errmsg("stocks_stream: could not encode the CRC-32C of an S3 payload")));
	out[8] = '\0';
}

/* Does the request go over TLS (an https:// URL)? */
static bool
url_is_tls(const char *url)
{
	return pg_strncasecmp(url, "https://", 8) == 0;
}

/*
 * The headers that vouch for a request's payload: over TLS a PUT's body is
 * UNSIGNED-PAYLOAD with its CRC-32C; otherwise its SHA-256.
 */
static struct curl_slist *
append_payload_headers(struct curl_slist *headers, const char *method, const char *url,
					   const char *data, size_t len)
{
	char hdr[160];

	if (strcmp(method, "PUT") == 0 && len > 0 && url_is_tls(url))
	{
		char crc[16];

		crc32c_base64(data, len, crc, sizeof(crc));
		headers = curl_slist_append(headers, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
		snprintf(hdr, sizeof(hdr), "x-amz-checksum-crc32c: %s", crc);
	}
	else
	{
		char hash[2 * PG_SHA256_DIGEST_LENGTH + 1];

		sha256_hex(data ? data : "", len, hash);
		snprintf(hdr, sizeof(hdr), "x-amz-content-sha256: %s", hash);
	}
	return curl_slist_append(headers, hdr);
}

/* Percent-encode an object key for the URL path; '/' is kept. */
static void
append_encoded_key(StringInfo url, const char *key)
{
	for (const unsigned char *p = (const unsigned char *) key; *p; p++)
	{
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || *p == '/')
			appendStringInfoChar(url, *p);
		else
			appendStringInfo(url, "%%%02X", *p);
	}
}

static char *
build_url(const char *bucket, const char *key, const char *query)
{
	StringInfoData url;
	const char *endpoint = ss_settings_s3_endpoint;
	const char *scheme_end = strstr(endpoint, "://");
	size_t len = strlen(endpoint);

	if (scheme_end == NULL)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("stocks_stream.s3_endpoint \"%s\" is not a URL", endpoint),
						errhint("Use a URL such as http://127.0.0.1:9000.")));
	while (len > 0 && endpoint[len - 1] == '/')
		len--;

	initStringInfo(&url);
	if (ss_settings_s3_path_style)
		appendStringInfo(&url, "%.*s/%s", (int) len, endpoint, bucket);
	else
	{
		int scheme_len = scheme_end - endpoint + 3;

		appendStringInfo(&url, "%.*s%s.%.*s", scheme_len, endpoint, bucket,
						 (int) (len - scheme_len), endpoint + scheme_len);
	}
	if (key != NULL)
	{
		if (!ss_s3_list_page_key_acceptable(key))
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("stocks_stream: S3 key \"%s\" cannot be requested", key),
							errdetail("A key must be valid UTF-8 of at most 1,024 bytes, with no "
									  "control character and no \".\" or \"..\" path segment."),
							errhint("Such a key could name another object or bucket once a "
									"proxy or client normalises the path.")));
		appendStringInfoChar(&url, '/');
		append_encoded_key(&url, key);
	}
	else if (!ss_settings_s3_path_style)
		appendStringInfoChar(&url, '/');
	if (query != NULL)
		appendStringInfo(&url, "?%s", query);
	return url.data;
}

static size_t
read_body_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	RequestBody *body = userdata;
	size_t n = Min(size * nitems, body->len - body->pos);

	memcpy(buffer, body->data + body->pos, n);
	body->pos += n;
	return n;
}

/*
 * Collect a response body, within its bound (no ereport here: a body over
 * it, or one no memory is left for, ends the transfer, and
 * describe_failure says why).
 */
size_t
ss_s3_write_body_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	ResponseState *st = userdata;
	size_t n = size * nmemb;
	size_t room = sizeof(st->error_body) - 1 - st->error_len;

	if (st->body != NULL &&
		!ss_http_append(st->body, ptr, n, st->max_body ? st->max_body : S3_MAX_BODY,
						&st->too_large))
	{
		st->no_memory = !st->too_large;
		return 0;
	}
	if (room > 0)
	{
		memcpy(st->error_body + st->error_len, ptr, Min(room, n));
		st->error_len += Min(room, n);
		st->error_body[st->error_len] = '\0';
	}
	return n;
}

static size_t
header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	ResponseState *st = userdata;
	size_t n = size * nitems;

	if (n > 5 && pg_strncasecmp(buffer, "etag:", 5) == 0)
	{
		const char *v = buffer + 5;
		size_t vlen = n - 5;

		while (vlen > 0 && (*v == ' ' || *v == '"'))
			v++, vlen--;
		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == '"'))
			vlen--;
		vlen = Min(vlen, sizeof(st->etag) - 1);
		memcpy(st->etag, v, vlen);
		st->etag[vlen] = '\0';
	}
	return n;
}

/*
 * Why a request failed: the S3 error <Code> of an XML error body, if any;
 * or the transport's error, with, for a failed TLS check, which check it
 * was and the setting to fix (s3_tls.c).
 */
static void
describe_failure(S3Result *res, const char *method, const char *bucket, const char *key,
				 CURLcode rc, const char *curl_error, const ResponseState *st, CURL *handle)
{
	const char *code = strstr(st->error_body, "<Code>");
	char codebuf[64] = "";
	char tls[400];

	if (code != NULL)
	{
		const char *end = strstr(code, "</Code>");

		if (end != NULL)
			snprintf(codebuf, sizeof(codebuf), "%.*s", (int) (end - code - 6), code + 6);
	}
	if (st->too_large || st->no_memory)
		snprintf(res->error, sizeof(res->error), "S3 %s %s/%s: the response is %s", method, bucket,
				 key ? key : "",
				 st->too_large ? "larger than stocks_stream.max_object_size allows"
							   : "larger than the memory to be had");
	else if (rc != CURLE_OK)
	{
		size_t room;

		snprintf(res->error, sizeof(res->error), "S3 %s %s/%s failed: %s", method, bucket,
				 key ? key : "", curl_error[0] ? curl_error : curl_easy_strerror(rc));
		/* a failed TLS check: which one and what to fix, kept whole however long the key */
		ss_s3_tls_explain(handle, rc, tls, sizeof(tls));
		room = sizeof(res->error) - strlen(tls) - 1;
		if (strlen(res->error) > room)
			res->error[room] = '\0';
		strlcat(res->error, tls, sizeof(res->error));
	}
	else
		snprintf(res->error, sizeof(res->error), "S3 %s %s/%s returned HTTP %ld%s%s", method,
				 bucket, key ? key : "", res->http_status, codebuf[0] ? " " : "", codebuf);
}

/*
 * Set up `handle` for a request; `c` must stay where it is until
 * ss_s3_finish_call, libcurl keeps pointers into it.
 */
void
ss_s3_prepare_call(S3Call *c, CURL *handle, const char *method, const char *bucket, const char *key,
				   const char *query, const char *data, size_t len, const char *content_type,
				   StringInfo response)
{
	char sigv4[128];
	char hdr[160];

	memset(c, 0, sizeof(*c));
	c->method = method;
	c->bucket = pstrdup(bucket);
	c->key = key ? pstrdup(key) : NULL;
	c->url = build_url(bucket, key, query);
	c->body.data = data;
	c->body.len = len;
	c->st.body = response;
	/* an object's body is bounded as the loaders bound it inflated */
	c->st.max_body = key != NULL ? ss_settings_max_object_bytes() : S3_MAX_BODY;

	snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", ss_settings_s3_region);
	c->headers = append_payload_headers(c->headers, method, c->url, data, len);
	if (content_type != NULL)
	{
		snprintf(hdr, sizeof(hdr), "Content-Type: %s", content_type);
		c->headers = curl_slist_append(c->headers, hdr);
	}

	/* libcurl copies the strings it is given, so sigv4 may go out of scope */
	ss_http_set_defaults(handle, c->curl_error, (long) ss_settings_s3_timeout_ms());
	ss_s3_tls_set_options(handle);
	curl_easy_setopt(handle, CURLOPT_URL, c->url);
	curl_easy_setopt(handle, CURLOPT_AWS_SIGV4, sigv4);
	curl_easy_setopt(handle, CURLOPT_USERNAME, ss_secrets_get("s3_access_key"));
	curl_easy_setopt(handle, CURLOPT_PASSWORD, ss_secrets_get("s3_secret_key"));
	curl_easy_setopt(handle, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, ss_s3_write_body_cb);
	curl_easy_setopt(handle, CURLOPT_WRITEDATA, &c->st);
	curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(handle, CURLOPT_HEADERDATA, &c->st);
	if (strcmp(method, "PUT") == 0)
	{
		curl_easy_setopt(handle, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(handle, CURLOPT_READFUNCTION, read_body_cb);
		curl_easy_setopt(handle, CURLOPT_READDATA, &c->body);
		curl_easy_setopt(handle, CURLOPT_INFILESIZE_LARGE, (curl_off_t) len);
	}
	else if (strcmp(method, "GET") != 0)
		curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, method);
}

/* The outcome of a finished (rc) call on `handle`; frees what it holds. */
S3Result
ss_s3_finish_call(S3Call *c, CURL *handle, CURLcode rc)
{
	S3Result res = {0};

	if (rc == CURLE_OK)
		curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &res.http_status);
	res.ok = (rc == CURLE_OK && res.http_status >= 200 && res.http_status < 300);
	strlcpy(res.etag, c->st.etag, sizeof(res.etag));
	if (!res.ok)
		describe_failure(&res, c->method, c->bucket, c->key, rc, c->curl_error, &c->st, handle);
	curl_slist_free_all(c->headers);
	pfree(c->url);
	pfree(c->bucket);
	if (c->key)
		pfree(c->key);
	return res;
}

static S3Result
s3_request(const char *method, const char *bucket, const char *key, const char *query,
		   const char *data, size_t len, const char *content_type, StringInfo response)
{
	S3Call call;
	S3Result res;

	ss_http_ready_handle(&curl_handle);
	ss_s3_prepare_call(&call, curl_handle, method, bucket, key, query, data, len, content_type,
					   response);
	res = ss_s3_finish_call(&call, curl_handle, curl_easy_perform(curl_handle));
	/* a broken connection is not worth keeping */
	if (!res.ok)
		ss_s3_reset_connection();
	/* a transfer ended for a cancel or a timeout: raise it */
	CHECK_FOR_INTERRUPTS();
	return res;
}

S3Result
ss_s3_get_object(const char *bucket, const char *key, StringInfo body)
{
	return s3_request("GET", bucket, key, NULL, NULL, 0, NULL, body);
}

S3Result
ss_s3_create_bucket(const char *bucket)
{
	S3Result res = s3_request("PUT", bucket, NULL, NULL, NULL, 0, NULL, NULL);

	/* a bucket we already own is what we wanted */
	if (!res.ok && res.http_status == 409 && strstr(res.error, "BucketAlreadyOwnedByYou") != NULL)
	{
		res.ok = true;
		res.error[0] = '\0';
	}
	return res;
}

/* Percent-encode a query value the way SigV4 canonicalises it. */
static void
append_query_value(StringInfo q, const char *value)
{
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
	{
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~')
			appendStringInfoChar(q, *p);
		else
			appendStringInfo(q, "%%%02X", *p);
	}
}

static void
append_query_param(StringInfo q, const char *name, const char *value)
{
	if (value == NULL)
		return;
	appendStringInfo(q, "%s%s=", q->len > 0 ? "&" : "", name);
	append_query_value(q, value);
}

/*
 * The query of one ListObjectsV2 page.  Parameters are written in sorted
 * order: libcurl 7.88 signs the query string as given.
 */
char *
ss_s3_list_query(const char *prefix, const char *delimiter, const char *start_after,
				 const char *token)
{
	StringInfoData query;

	initStringInfo(&query);
	append_query_param(&query, "continuation-token", token);
	append_query_param(&query, "delimiter", delimiter);
	append_query_param(&query, "list-type", "2");
	append_query_param(&query, "max-keys", CppAsString2(S3_LIST_PAGE_KEYS));
	append_query_param(&query, "prefix", prefix);
	append_query_param(&query, "start-after", start_after);
	return query.data;
}

/*
 * List what is under a prefix (ListObjectsV2, following continuation
 * tokens): the keys, and with a delimiter the "folders" (common prefixes)
 * too; with start_after only the keys after it.
 */
static S3Result
list_pages(const char *bucket, const char *prefix, const char *delimiter, const char *start_after,
		   int max_keys, List **keys, List **entries, List **folders)
{
	char *token = NULL;
	S3Result res = {0};
	StringInfoData body;
	int pages = 0;
	int refused = 0;

	*keys = NIL;
	if (entries != NULL)
		*entries = NIL;
	if (folders != NULL)
		*folders = NIL;
	initStringInfo(&body);
	do
	{
		char *query = ss_s3_list_query(prefix, delimiter, start_after, token);
		char *next;

		CHECK_FOR_INTERRUPTS();
		if (++pages > ss_settings_s3_max_list_pages)
			ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							errmsg("stocks_stream: the listing of s3://%s/%s goes on past %d pages",
								   bucket, prefix ? prefix : "", ss_settings_s3_max_list_pages),
							errhint("Raise stocks_stream.s3_max_list_pages if the bucket really "
									"holds that much, or list a narrower prefix.")));
		resetStringInfo(&body);
		res = s3_request("GET", bucket, NULL, query, NULL, 0, NULL, &body);
		pfree(query);
		if (!res.ok)
			break;
		next = ss_s3_list_page_parse(body.data, keys, entries, folders, &refused);
		if (next != NULL && token != NULL && strcmp(next, token) == 0)
			ereport(
				ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg(
					 "stocks_stream: the S3 server repeated the continuation token of the listing "
					 "of s3://%s/%s",
					 bucket, prefix ? prefix : ""),
				 errhint("The server is not following ListObjectsV2: the listing would "
						 "never end.")));
		token = next;
	} while (token != NULL && (max_keys <= 0 || list_length(*keys) < max_keys));
	pfree(body.data);
	if (refused > 0)
		ereport(WARNING, (errmsg("stocks_stream: %d keys listed under s3://%s/%s were left out",
								 refused, bucket, prefix ? prefix : ""),
						  errdetail("They are not valid UTF-8, hold a control character or a "
									"\".\" or \"..\" path segment, or are too long."),
						  errhint("No request can name such a key safely; rename the objects.")));
	return res;
}

S3Result
ss_s3_list(const char *bucket, const char *prefix, const char *delimiter, const char *start_after,
		   List **keys, List **folders)
{
	return list_pages(bucket, prefix, delimiter, start_after, 0, keys, NULL, folders);
}

/*
 * ss_s3_list() with each key's ETag and size (S3ListEntry items); with
 * max_keys > 0 it stops after the page that reaches max_keys keys (pages
 * hold 1,000): the next call goes on after the last key.
 */
S3Result
ss_s3_list_entries(const char *bucket, const char *prefix, const char *delimiter,
				   const char *start_after, int max_keys, List **entries, List **folders)
{
	List *keys;

	return list_pages(bucket, prefix, delimiter, start_after, max_keys, &keys, entries, folders);
}

S3Result
ss_s3_list_objects(const char *bucket, const char *prefix, List **keys)
{
	return ss_s3_list(bucket, prefix, NULL, NULL, keys, NULL);
}
