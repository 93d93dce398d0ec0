/*
 * pg_compat.h
 *	  What differs between the PostgreSQL major versions stocks_stream builds
 *	  against (15, 16 and 18; docs/local-stack.md, "PostgreSQL versions"):
 *	  every PG_VERSION_NUM test of the extension lives here, and the code
 *	  calls the one spelling this header gives.
 *
 * Include it after postgres.h.  Each section names the PostgreSQL header
 * whose API it bridges and the version that changed it.
 */
#ifndef SS_PG_COMPAT_H
#define SS_PG_COMPAT_H

#include "common/base64.h"
#include "parser/parse_node.h"
#include "utils/datetime.h"
#include "utils/guc_tables.h"

/*
 * The varlena macros (VARDATA_ANY, VARSIZE_ANY_EXHDR, ...): 16 moved them
 * from postgres.h into varatt.h.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * Every GUC of the server and their number (utils/guc_tables.h): 16's
 * get_guc_variables() returns the count through its argument; 15's takes
 * none and GetNumConfigOptions() counts them.
 */
static inline struct config_generic **
ss_pg_compat_guc_variables(int *num_vars)
{
#if PG_VERSION_NUM >= 160000
	return get_guc_variables(num_vars);
#else
	*num_vars = GetNumConfigOptions();
	return get_guc_variables();
#endif
}

/*
 * DecodeDateTime() of the fields ParseDateTime() split (utils/datetime.h):
 * 16 added an argument for the text of a bad time zone, which the caller
 * here never reports (any non-zero result is an invalid date).
 */
static inline int
ss_pg_compat_decode_date_time(char **field, int *ftype, int nf, int *dtype, struct pg_tm *tm,
							  fsec_t *fsec, int *tzp)
{
#if PG_VERSION_NUM >= 160000
	DateTimeErrorExtra extra;

	return DecodeDateTime(field, ftype, nf, dtype, tm, fsec, tzp, &extra);
#else
	return DecodeDateTime(field, ftype, nf, dtype, tm, fsec, tzp);
#endif
}

/*
 * Require `perms` on the relation of a range-table entry a parse state
 * holds, as DoCopy does before CopyFrom (parser/parse_node.h): 16 moved
 * the permissions from RangeTblEntry into its RTEPermissionInfo.
 */
static inline void
ss_pg_compat_require_perms(ParseNamespaceItem *nsitem, AclMode perms)
{
#if PG_VERSION_NUM >= 160000
	nsitem->p_perminfo->requiredPerms = perms;
#else
	nsitem->p_rte->requiredPerms = perms;
#endif
}

/*
 * Base64 of raw bytes (common/base64.h): 18 declares pg_b64_encode()'s
 * source as const uint8 *, 15 and 16 as const char *.
 */
static inline int
ss_pg_compat_b64_encode(const uint8 *src, int len, char *dst, int dstlen)
{
#if PG_VERSION_NUM >= 180000
	return pg_b64_encode(src, len, dst, dstlen);
#else
	return pg_b64_encode((const char *) src, len, dst, dstlen);
#endif
}

#endif /* SS_PG_COMPAT_H */
