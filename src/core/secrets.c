/*
 * secrets.c
 *	  Reads the credentials of stocks_stream from the file that the setting
 *	  stocks_stream.secrets_file names.
 *
 * A secret is never the value of a setting: members of pg_read_all_settings
 * (pg_monitor among them) may read any setting, even a superuser-only one.
 * The setting names a file instead, which must be readable by the server's
 * user only (like a server key, it is refused with group or world access).
 * Its lines are "name = value"; blank lines and lines starting with # are
 * skipped, and a value may be quoted with ' or ".  Known names:
 *
 *	s3_access_key, s3_secret_key	S3 credentials
 *	finnhub_api_key					the Finnhub token
 *	kafka.<property>				a librdkafka property holding a secret
 *									(sasl.password, ssl.key.password, ...)
 *
 * The file is read again whenever it changes (size, time or inode), so an
 * edit takes effect at the next request without a reload.  Nothing here
 * logs a value.
 */
#include "postgres.h"

#include <sys/stat.h>

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "core/secrets.h"
#include "core/settings.h"

typedef struct Secret
{
	char *name;
	char *value;
} Secret;

static List *secrets = NIL; /* in secrets_context */
static MemoryContext secrets_context = NULL;
static struct stat loaded_stat;
static char *loaded_path = NULL;

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		*--end = '\0';
	if (end - s >= 2 && (*s == '\'' || *s == '"') && end[-1] == *s)
	{
		end[-1] = '\0';
		s++;
	}
	return s;
}

static void
parse_line(char *line, int lineno, const char *path)
{
	char *eq;
	Secret *secret;

	line = trim(line);
	if (*line == '\0' || *line == '#')
		return;
	eq = strchr(line, '=');
	if (eq == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("stocks_stream.secrets_file \"%s\": line %d has no '='", path, lineno),
				 errhint("Write each secret as name = value.")));
	*eq = '\0';
	secret = palloc(sizeof(Secret));
	secret->name = pstrdup(trim(line));
	secret->value = pstrdup(trim(eq + 1));
	secrets = lappend(secrets, secret);
}

static bool
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
		   a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * Read the "name = value" lines of an open secrets file into `secrets`;
 * `path` only names it in errors.  Apart from load_secrets so the parsing
 * runs without a file: fuzz/secrets_fuzz.c hands it a buffer (fmemopen).
 */
void
ss_secrets_read(FILE *f, const char *path)
{
	char line[4096];
	int lineno = 0;

	secrets = NIL;
	while (fgets(line, sizeof(line), f) != NULL)
		parse_line(line, ++lineno, path);
}

/* (Re)read the file when the setting or the file changed. */
static void
load_secrets(void)
{
	const char *path = ss_settings_secrets_file;
	struct stat st;
	FILE *f;
	MemoryContext old;

	if (path[0] == '\0' || stat(path, &st) != 0)
	{
		if (path[0] != '\0' && errno != ENOENT)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("stocks_stream: could not read stocks_stream.secrets_file \"%s\": %m",
							path)));
		memset(&st, 0, sizeof(st));
	}
	if (loaded_path != NULL && strcmp(loaded_path, path) == 0 && same_file(&st, &loaded_stat))
		return;
	if (st.st_ino != 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						errmsg("stocks_stream.secrets_file \"%s\" has group or world access", path),
						errhint("Make it readable by the server's user only: chmod 600.")));

	if (secrets_context == NULL)
		secrets_context =
			AllocSetContextCreate(TopMemoryContext, "stocks_stream secrets", ALLOCSET_SMALL_SIZES);
	MemoryContextReset(secrets_context);
	secrets = NIL;
	loaded_path = NULL;
	old = MemoryContextSwitchTo(secrets_context);
	if (st.st_ino != 0)
	{
		if ((f = AllocateFile(path, "r")) == NULL)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("stocks_stream: could not open stocks_stream.secrets_file \"%s\": %m",
							path)));
		ss_secrets_read(f, path);
		FreeFile(f);
	}
	loaded_stat = st;
	loaded_path = pstrdup(path);
	MemoryContextSwitchTo(old);
}

/* The secret `name`, or "" when the file does not hold it. */
const char *
ss_secrets_get(const char *name)
{
	ListCell *lc;

	load_secrets();
	foreach (lc, secrets)
	{
		Secret *s = lfirst(lc);

		if (strcmp(s->name, name) == 0)
			return s->value;
	}
	return "";
}

/* Call cb with each secret whose name starts with prefix (prefix removed). */
void
ss_secrets_foreach(const char *prefix, SecretCallback cb, void *arg)
{
	size_t len = strlen(prefix);
	ListCell *lc;

	load_secrets();
	foreach (lc, secrets)
	{
		Secret *s = lfirst(lc);

		if (strncmp(s->name, prefix, len) == 0)
			cb(s->name + len, s->value, arg);
	}
}

static void
append_secret_property(const char *name, const char *value, void *buf)
{
	appendStringInfo((StringInfo) buf, "\n%s=%s", name, value);
}

/* Settings a Kafka client depends on, to notice when a SIGHUP changed them. */
char *
ss_secrets_kafka_fingerprint(void)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s\n%s", ss_settings_kafka_brokers, ss_settings_kafka_properties);
	ss_secrets_foreach("kafka.", append_secret_property, &buf);
	return buf.data;
}
