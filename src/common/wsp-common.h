/* wsp-common.h — small shared vocabulary: the error domain, peer ids,
 * base32/hex/base64url helpers and id generation.
 *
 * Pure functions, no I/O, safe on any thread.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define WSP_VERSION "0.1.0"

/* ---- errors ------------------------------------------------------------ */

#define WSP_ERROR (wsp_error_quark ())
GQuark wsp_error_quark (void);

typedef enum {
  WSP_ERROR_FAILED,        /* anything else; message says what */
  WSP_ERROR_INVALID,       /* bad input (HTTP 400); message names the field */
  WSP_ERROR_NOT_FOUND,     /* unknown task (404) */
  WSP_ERROR_GONE,          /* deleted task (410) */
  WSP_ERROR_CONFLICT,      /* e.g. dependency cycle (409) */
  WSP_ERROR_TOO_LARGE,     /* one op body cannot fit a run (413) */
  WSP_ERROR_BUSY,          /* a bounded queue is full (503 + Retry-After) */
  WSP_ERROR_CLOSED,        /* the component is shutting down (503) */
  WSP_ERROR_CORRUPT,       /* stored data or a peer message does not decode */
  WSP_ERROR_CONFIG,        /* bad configuration value; message names the key */
} WspErrorCode;

/* ---- peer ids ---------------------------------------------------------- */

/* A peer id is the first 8 bytes of SHA-256(pk) shown as 16 lowercase hex
 * chars. Internally it is the big-endian value of those bytes, so numeric
 * order equals the string order the spec uses. */
typedef guint64 WspPeer;

#define WSP_PEER_HEX_LEN 16

/* Writes 16 hex chars and a NUL into buf (at least 17 bytes). */
void     wsp_peer_to_hex (WspPeer peer, char buf[WSP_PEER_HEX_LEN + 1]);
/* Strict: exactly 16 lowercase hex chars (len given, no NUL needed). */
gboolean wsp_peer_from_hex (const char *s, gsize len, WspPeer *out);
/* Peer id from an Ed25519 public key (32 bytes). */
WspPeer  wsp_peer_from_pk (const guint8 pk[32]);

/* ---- encodings --------------------------------------------------------- */

/* RFC 4648 base32, lowercase, no padding. Returns a newly allocated string. */
char    *wsp_base32_encode (const guint8 *data, gsize len);
/* Lowercase hex. Returns a newly allocated string. */
char    *wsp_hex_encode (const guint8 *data, gsize len);
/* Unpadded base64url (RFC 4648 section 5). */
char    *wsp_base64url_encode (const guint8 *data, gsize len);
guint8  *wsp_base64url_decode (const char *text, gsize *out_len, GError **error);

/* ---- ids --------------------------------------------------------------- */

/* "<prefix>-<10 base32 chars>" from 50 random bits (libsodium randombytes). */
char    *wsp_task_id_new (const char *prefix);
/* Prefix rule of the spec: [a-z][a-z0-9]{0,15}. */
gboolean wsp_task_prefix_is_valid (const char *prefix);
/* 16 random bytes as 26 base32 chars. */
char    *wsp_project_id_new (void);

/* ---- time -------------------------------------------------------------- */

/* RFC 3339 UTC with milliseconds from Unix ms; clamps past year 9999 to
 * 9999-12-31T23:59:59.999Z. buf must hold 25 bytes. */
void     wsp_format_time_ms (guint64 unix_ms, char buf[25]);
/* Valid calendar date YYYY-MM-DD (exactly 10 chars). */
gboolean wsp_date_is_valid (const char *s, gsize len);

/* ---- text -------------------------------------------------------------- */

/* Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
 * Unlike g_utf8_validate_len() it accepts U+0000, which is valid UTF-8. */
gboolean wsp_utf8_is_valid (const char *s, gsize len);

/* ---- JSON output ------------------------------------------------------- */

/* Appends s (len bytes, or -1 for NUL-terminated) as a JSON string literal
 * with quotes. '"' and '\\' are backslash-escaped, every control char below
 * 0x20 (NUL included) is written as \u00XX, and each byte that is not part
 * of valid UTF-8 becomes U+FFFD. NULL appends "". */
void     wsp_json_append_string (GString *out, const char *s, gssize len);
/* Appends a double in shortest round-trip form (the first of %.15g, %.16g,
 * %.17g that reads back exactly, in the C locale); integers below 2^53
 * print without a fraction ("3"), -0 prints "0", non-finite values "0". */
void     wsp_json_append_double (GString *out, double v);

G_END_DECLS
