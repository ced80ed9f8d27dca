/* wsp-common.c — the shared vocabulary of every module: the error domain,
 * peer ids, base32/hex/base64url, id generation, RFC 3339 times, date
 * validation and the two JSON primitives (strings and numbers) whose exact
 * output the spec fixes.
 *
 * Invariants: every function is pure except the id generators (libsodium
 * randombytes, thread-safe once sodium_init() ran — wsp_crypto_init()).
 * Nothing here allocates on failure paths it does not report, and every
 * output is byte-for-byte deterministic: peers and scripts compare it.
 */
#include "common/wsp-common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sodium.h>

G_DEFINE_QUARK (wsp-error-quark, wsp_error)

/* ---- peer ids ---------------------------------------------------------- */

static const char hex_digits[] = "0123456789abcdef";

void
wsp_peer_to_hex (WspPeer peer, char buf[WSP_PEER_HEX_LEN + 1])
{
  for (int i = WSP_PEER_HEX_LEN - 1; i >= 0; i--)
    {
      buf[i] = hex_digits[peer & 0xf];
      peer >>= 4;
    }
  buf[WSP_PEER_HEX_LEN] = '\0';
}

gboolean
wsp_peer_from_hex (const char *s, gsize len, WspPeer *out)
{
  WspPeer v = 0;

  /* Strict on purpose: a peer id has exactly one spelling, so that two
   * replicas never disagree on whether two ids are the same peer. */
  if (s == NULL || len != WSP_PEER_HEX_LEN)
    return FALSE;
  for (gsize i = 0; i < len; i++)
    {
      char c = s[i];
      guint d;
      if (c >= '0' && c <= '9')
        d = (guint) (c - '0');
      else if (c >= 'a' && c <= 'f')
        d = (guint) (c - 'a' + 10);
      else
        return FALSE;
      v = (v << 4) | d;
    }
  if (out != NULL)
    *out = v;
  return TRUE;
}

WspPeer
wsp_peer_from_pk (const guint8 pk[32])
{
  guint8 h[crypto_hash_sha256_BYTES];
  WspPeer v = 0;

  crypto_hash_sha256 (h, pk, 32);
  for (int i = 0; i < 8; i++)
    v = (v << 8) | h[i];
  return v;
}

/* ---- encodings --------------------------------------------------------- */

static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

char *
wsp_base32_encode (const guint8 *data, gsize len)
{
  gsize out_len = (len * 8 + 4) / 5;
  char *out = g_malloc (out_len + 1);
  gsize o = 0;
  guint64 acc = 0;
  guint bits = 0;

  for (gsize i = 0; i < len; i++)
    {
      acc = (acc << 8) | data[i];
      bits += 8;
      while (bits >= 5)
        {
          bits -= 5;
          out[o++] = base32_alphabet[(acc >> bits) & 0x1f];
        }
    }
  if (bits > 0)
    out[o++] = base32_alphabet[(acc << (5 - bits)) & 0x1f];
  g_assert (o == out_len);
  out[o] = '\0';
  return out;
}

char *
wsp_hex_encode (const guint8 *data, gsize len)
{
  char *out = g_malloc (len * 2 + 1);

  for (gsize i = 0; i < len; i++)
    {
      out[2 * i] = hex_digits[data[i] >> 4];
      out[2 * i + 1] = hex_digits[data[i] & 0xf];
    }
  out[len * 2] = '\0';
  return out;
}

static const char b64url_alphabet[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *
wsp_base64url_encode (const guint8 *data, gsize len)
{
  GString *out = g_string_sized_new (len / 3 * 4 + 4);
  gsize i = 0;

  for (; i + 3 <= len; i += 3)
    {
      guint32 v = ((guint32) data[i] << 16) | ((guint32) data[i + 1] << 8) | data[i + 2];
      g_string_append_c (out, b64url_alphabet[(v >> 18) & 63]);
      g_string_append_c (out, b64url_alphabet[(v >> 12) & 63]);
      g_string_append_c (out, b64url_alphabet[(v >> 6) & 63]);
      g_string_append_c (out, b64url_alphabet[v & 63]);
    }
  if (len - i == 1)
    {
      guint32 v = (guint32) data[i] << 16;
      g_string_append_c (out, b64url_alphabet[(v >> 18) & 63]);
      g_string_append_c (out, b64url_alphabet[(v >> 12) & 63]);
    }
  else if (len - i == 2)
    {
      guint32 v = ((guint32) data[i] << 16) | ((guint32) data[i + 1] << 8);
      g_string_append_c (out, b64url_alphabet[(v >> 18) & 63]);
      g_string_append_c (out, b64url_alphabet[(v >> 12) & 63]);
      g_string_append_c (out, b64url_alphabet[(v >> 6) & 63]);
    }
  return g_string_free (out, FALSE);
}

static int
b64url_value (char c)
{
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

guint8 *
wsp_base64url_decode (const char *text, gsize *out_len, GError **error)
{
  gsize len = text != NULL ? strlen (text) : 0;
  g_autofree guint8 *out = NULL;
  gsize o = 0;
  guint32 acc = 0;
  guint bits = 0;

  /* Unpadded only; tolerate trailing '=' since some encoders add them. */
  while (len > 0 && text[len - 1] == '=')
    len--;
  if (len % 4 == 1)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "invalid base64url: bad length");
      return NULL;
    }
  out = g_malloc (len * 3 / 4 + 1);
  for (gsize i = 0; i < len; i++)
    {
      int v = b64url_value (text[i]);
      if (v < 0)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID,
                       "invalid base64url: unexpected character at %" G_GSIZE_FORMAT, i);
          return NULL;
        }
      acc = (acc << 6) | (guint32) v;
      bits += 6;
      if (bits >= 8)
        {
          bits -= 8;
          out[o++] = (guint8) (acc >> bits);
        }
    }
  /* Leftover bits must be zero, otherwise two texts decode to one value. */
  if ((acc & ((1u << bits) - 1)) != 0)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "invalid base64url: non-zero padding bits");
      return NULL;
    }
  if (out_len != NULL)
    *out_len = o;
  return g_steal_pointer (&out);
}

/* ---- ids --------------------------------------------------------------- */

char *
wsp_task_id_new (const char *prefix)
{
  guint8 rnd[7];
  g_autofree char *b32 = NULL;

  /* 56 random bits; the first 10 base32 chars carry 50 of them. */
  randombytes_buf (rnd, sizeof rnd);
  b32 = wsp_base32_encode (rnd, sizeof rnd);
  b32[10] = '\0';
  return g_strdup_printf ("%s-%s", prefix != NULL ? prefix : "ws", b32);
}

gboolean
wsp_task_prefix_is_valid (const char *prefix)
{
  gsize len;

  if (prefix == NULL || !(prefix[0] >= 'a' && prefix[0] <= 'z'))
    return FALSE;
  len = strlen (prefix);
  if (len > 16)
    return FALSE;
  for (gsize i = 1; i < len; i++)
    {
      char c = prefix[i];
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
        return FALSE;
    }
  return TRUE;
}

char *
wsp_project_id_new (void)
{
  guint8 rnd[16];

  randombytes_buf (rnd, sizeof rnd);
  return wsp_base32_encode (rnd, sizeof rnd);
}

/* ---- time -------------------------------------------------------------- */

/* 9999-12-31T23:59:59.999Z in Unix ms. */
#define WSP_MAX_TIME_MS G_GUINT64_CONSTANT (253402300799999)

/* Days since 1970-01-01 to civil date (Howard Hinnant's algorithm): no libc
 * time zone state, no year 2038 limits, and fast enough for list rendering. */
static void
civil_from_days (gint64 z, gint64 *y, guint *m, guint *d)
{
  z += 719468;
  gint64 era = (z >= 0 ? z : z - 146096) / 146097;
  guint doe = (guint) (z - era * 146097);
  guint yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  gint64 yy = (gint64) yoe + era * 400;
  guint doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  guint mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = yy + (*m <= 2);
}

void
wsp_format_time_ms (guint64 unix_ms, char buf[25])
{
  gint64 y;
  guint mo, d;
  guint64 days, rem;

  if (unix_ms > WSP_MAX_TIME_MS)
    unix_ms = WSP_MAX_TIME_MS;
  days = unix_ms / 86400000;
  rem = unix_ms % 86400000;
  civil_from_days ((gint64) days, &y, &mo, &d);
  g_snprintf (buf, 25, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ",
              (int) y, mo, d,
              (guint) (rem / 3600000), (guint) (rem / 60000 % 60),
              (guint) (rem / 1000 % 60), (guint) (rem % 1000));
}

static gboolean
is_leap (guint y)
{
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

gboolean
wsp_date_is_valid (const char *s, gsize len)
{
  static const guint8 mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
  guint y = 0, m = 0, d = 0;

  if (s == NULL || len != 10 || s[4] != '-' || s[7] != '-')
    return FALSE;
  for (int i = 0; i < 10; i++)
    {
      if (i == 4 || i == 7)
        continue;
      if (s[i] < '0' || s[i] > '9')
        return FALSE;
    }
  y = (guint) ((s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0'));
  m = (guint) ((s[5] - '0') * 10 + (s[6] - '0'));
  d = (guint) ((s[8] - '0') * 10 + (s[9] - '0'));
  /* Year 0 is not a Gregorian year (1 BC precedes AD 1). */
  if (y == 0 || m < 1 || m > 12 || d < 1)
    return FALSE;
  return d <= (guint) mdays[m - 1] + (m == 2 && is_leap (y) ? 1 : 0);
}

/* ---- JSON output ------------------------------------------------------- */

static void
append_escaped_valid (GString *out, const char *s, gsize len)
{
  gsize run = 0;

  /* Copy runs of bytes that need no escaping in one append. */
  for (gsize i = 0; i < len; i++)
    {
      guchar c = (guchar) s[i];
      if (c >= 0x20 && c != '"' && c != '\\')
        continue;
      g_string_append_len (out, s + run, (gssize) (i - run));
      if (c == '"')
        g_string_append (out, "\\\"");
      else if (c == '\\')
        g_string_append (out, "\\\\");
      else
        g_string_append_printf (out, "\\u%04x", c);
      run = i + 1;
    }
  g_string_append_len (out, s + run, (gssize) (len - run));
}

void
wsp_json_append_string (GString *out, const char *s, gssize len)
{
  gsize n;

  if (s == NULL)
    s = "";
  n = len < 0 ? strlen (s) : (gsize) len;
  g_string_append_c (out, '"');
  while (n > 0)
    {
      const char *end = NULL;
      gsize ok;

      g_utf8_validate_len (s, n, &end);
      ok = (gsize) (end - s);
      append_escaped_valid (out, s, ok);
      s += ok;
      n -= ok;
      if (n > 0)
        {
          /* GLib's validator stops at NUL, which is valid UTF-8 but must be
           * escaped in JSON; anything else is one replacement per invalid
           * byte: simple and deterministic. */
          if (*s == '\0')
            g_string_append (out, "\\u0000");
          else
            g_string_append (out, "\xef\xbf\xbd");
          s++;
          n--;
        }
    }
  g_string_append_c (out, '"');
}

void
wsp_json_append_double (GString *out, double v)
{
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  static const char *const formats[] = { "%.15g", "%.16g", "%.17g" };

  if (!isfinite (v))
    v = 0;
  /* Integers print without a fraction ("3", not "3.0"); -0 prints "0". */
  if (v == 0)
    {
      g_string_append_c (out, '0');
      return;
    }
  if (v == trunc (v) && fabs (v) < 9007199254740992.0)
    {
      g_string_append_printf (out, "%" G_GINT64_FORMAT, (gint64) v);
      return;
    }
  for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
    {
      g_ascii_formatd (buf, sizeof buf, formats[i], v);
      if (i == G_N_ELEMENTS (formats) - 1 || g_ascii_strtod (buf, NULL) == v)
        break;
    }
  g_string_append (out, buf);
}

/* ---- text -------------------------------------------------------------- */

gboolean
wsp_utf8_is_valid (const char *str, gsize len)
{
  const guchar *s = (const guchar *) str;
  gsize i = 0;

  while (i < len)
    {
      guchar c = s[i];
      guint need;
      guint32 cp;

      if (c < 0x80)
        {
          i++;
          continue;
        }
      if (c >= 0xc2 && c <= 0xdf)
        need = 1, cp = c & 0x1f;
      else if (c >= 0xe0 && c <= 0xef)
        need = 2, cp = c & 0x0f;
      else if (c >= 0xf0 && c <= 0xf4)
        need = 3, cp = c & 0x07;
      else
        return FALSE;
      if (len - i - 1 < need)
        return FALSE;
      for (guint k = 1; k <= need; k++)
        {
          guchar cc = s[i + k];
          if ((cc & 0xc0) != 0x80)
            return FALSE;
          cp = (cp << 6) | (cc & 0x3f);
        }
      /* Overlong 3- and 4-byte forms, surrogates, and past U+10FFFF. */
      if ((need == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
          || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        return FALSE;
      i += need + 1;
    }
  return TRUE;
}
