/*
 * unreachable.c
 *	  Backend functions that the src/ files a fuzz target compiles refer
 *	  to, but only from code no target calls: SQL-callable wrappers
 *	  (PG_FUNCTION_INFO_V1), the definition of the settings, the file
 *	  handling around a parser.  They exist so the real files link as they
 *	  are; each aborts with its name if it is ever called, which a fuzz run
 *	  reports as a crash to look at (the harness then needs a real stand-in).
 *
 * No PostgreSQL header is included: only the symbols matter here.
 */
#include <stdio.h>
#include <stdlib.h>

static void
unreachable(const char *name)
{
	fprintf(stderr, "fuzz harness: %s called, which no fuzz target should reach\n", name);
	abort();
}

#define UNREACHABLE(name)                                                                          \
	void name(void);                                                                               \
	void name(void)                                                                                \
	{                                                                                              \
		unreachable(#name);                                                                        \
	}

/* settings.c: ss_settings_define */
UNREACHABLE(DefineCustomBoolVariable)
UNREACHABLE(DefineCustomIntVariable)
UNREACHABLE(DefineCustomRealVariable)
UNREACHABLE(DefineCustomStringVariable)
UNREACHABLE(MarkGUCPrefixReserved)
/* settings.c: the deprecated stocks_stream.s3_timeout_ms, the timeout in use */
UNREACHABLE(format_elog_string)
UNREACHABLE(pre_format_elog_string)
UNREACHABLE(get_guc_variables)
UNREACHABLE(GetNumConfigOptions)
/* settings.c: stocks_stream.test_clock, refused to a non-superuser's backend */
UNREACHABLE(GUC_check_errcode)
UNREACHABLE(GetSessionUserId)
UNREACHABLE(GetSessionUserIsSuperuser)
char *GUC_check_errdetail_string;
char *GUC_check_errmsg_string;
_Bool IsUnderPostmaster;
int MyBackendType;

/* SQL-callable functions and their column lists */
UNREACHABLE(BlessTupleDesc)
UNREACHABLE(DirectFunctionCall1Coll)
UNREACHABLE(date_in)
UNREACHABLE(get_call_result_type)
UNREACHABLE(HeapTupleHeaderGetDatum)
UNREACHABLE(heap_form_tuple)
UNREACHABLE(makeString)
UNREACHABLE(pg_detoast_datum_packed)
UNREACHABLE(text_to_cstring)
UNREACHABLE(cstring_to_text)

/* secrets.c: load_secrets opens the file; the target reads a buffer */
UNREACHABLE(AllocateFile)
UNREACHABLE(FreeFile)
