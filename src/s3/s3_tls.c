/*
 * s3_tls.c
 *	  Certificate verification of https:// S3 endpoints: the CA file the
 *	  client trusts (stocks_stream.s3_ca_file), and an explanation of a
 *	  failed check that names the check and the setting to fix.
 *
 * Verification is never turned off: the peer's certificate must chain to a
 * trusted CA and name the endpoint's host, and no setting changes that.
 * An endpoint behind a private CA is trusted by naming the CA's PEM file
 * in stocks_stream.s3_ca_file (empty: the system's trust store).  The file
 * is read again for each new connection, so a CA bundle replaced in place
 * is used from the next connection on; the system's store is cached by
 * libcurl as usual.
 */
#include "postgres.h"

#include <openssl/x509_vfy.h>

#include "core/settings.h"
#include "s3/s3_tls.h"

/* The TLS options of every S3 request. */
void
ss_s3_tls_set_options(CURL *handle)
{
	curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, 2L);
	if (ss_settings_s3_ca_file[0] != '\0')
	{
		curl_easy_setopt(handle, CURLOPT_CAINFO, ss_settings_s3_ca_file);
		curl_easy_setopt(handle, CURLOPT_CA_CACHE_TIMEOUT, 0L);
	}
}

static const char *
trusted_cas(void)
{
	return ss_settings_s3_ca_file[0] != '\0' ? ss_settings_s3_ca_file : "the system's trust store";
}

/* Which certificate check failed, from OpenSSL's verification result. */
static void
explain_peer_verification(CURL *handle, char *buf, size_t size)
{
	long result = X509_V_OK;

	curl_easy_getinfo(handle, CURLINFO_SSL_VERIFYRESULT, &result);
	switch (result)
	{
		case X509_V_OK:
		case X509_V_ERR_UNSPECIFIED:
		case X509_V_ERR_HOSTNAME_MISMATCH:
		case X509_V_ERR_IP_ADDRESS_MISMATCH:
			/*
			 * The chain was trusted and libcurl's own host name check failed
			 * (libcurl 7.88 then sets the result to 1, X509_V_ERR_UNSPECIFIED)
			 */
			snprintf(
				buf, size,
				"; hostname check failed: the server's certificate does not name the host of "
				"stocks_stream.s3_endpoint (hint: set stocks_stream.s3_endpoint to a host name "
				"the certificate holds, or give the server a certificate for that host)");
			break;
		case X509_V_ERR_CERT_HAS_EXPIRED:
		case X509_V_ERR_CERT_NOT_YET_VALID:
			snprintf(buf, size,
					 "; validity check failed: the server's certificate %s (hint: renew the S3 "
					 "server's certificate, or set stocks_stream.s3_endpoint to a server whose "
					 "certificate is valid)",
					 result == X509_V_ERR_CERT_HAS_EXPIRED ? "has expired" : "is not valid yet");
			break;
		default:
			snprintf(buf, size,
					 "; CA check failed: the server's certificate is not signed by a CA in %s "
					 "(hint: set stocks_stream.s3_ca_file to the PEM file of the CA that signed "
					 "it, then reload)",
					 trusted_cas());
			break;
	}
}

/*
 * After a request that failed with rc: when a TLS check failed, what to
 * append to its error (which check, and the setting to fix); "" otherwise.
 */
void
ss_s3_tls_explain(CURL *handle, CURLcode rc, char *buf, size_t size)
{
	buf[0] = '\0';
	if (rc == CURLE_PEER_FAILED_VERIFICATION)
		explain_peer_verification(handle, buf, size);
	else if (rc == CURLE_SSL_CACERT_BADFILE)
		snprintf(buf, size,
				 "; stocks_stream.s3_ca_file \"%s\" could not be read as PEM CA certificates "
				 "(hint: name a PEM file the server's user can read, or '' for the system's "
				 "trust store)",
				 ss_settings_s3_ca_file);
	else if (rc == CURLE_SSL_CONNECT_ERROR)
		snprintf(buf, size,
				 "; the TLS handshake failed (hint: check that stocks_stream.s3_endpoint names the "
				 "server's https:// port)");
}
