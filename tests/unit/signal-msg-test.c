/* signal-msg-test.c — signaling JSON messages (SPEC 7.1): exact text of
 * small encodings, round trips of every type, and strict decoding (size,
 * UTF-8, depth, required fields, JSON types, base64 sizes and canonical
 * form, peer ids). */
#include <glib.h>
#include <string.h>

#include "sync/wsp-signal-msg.h"

#define PROJECT "k3jrxaq2mzk3jrxaq2mzk3jrxa"
#define P1 "0123456789abcdef"
#define P2 "fedcba9876543210"
/* base64 of 32 zero bytes and of 64 zero bytes */
#define B32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define B64 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="

static void
decode_ok (const char *json, WspSignalMsg *m)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (wsp_signal_msg_decode (json, strlen (json), m, &error));
  g_assert_no_error (error);
}

static void
decode_fails (const char *json, gsize len, WspSignalError code)
{
  g_autoptr (GError) error = NULL;
  WspSignalMsg m;
  memset (&m, 0x5c, sizeof m);
  g_assert_false (wsp_signal_msg_decode (json, len, &m, &error));
  g_assert_error (error, WSP_SIGNAL_ERROR, (gint) code);
  g_assert_null (m.project_id);
  g_assert_null (m.peers);
  wsp_signal_msg_clear (&m);
}

static void
bad (const char *json)
{
  decode_fails (json, strlen (json), WSP_SIGNAL_ERROR_BAD_MESSAGE);
}

static char *
encode (const WspSignalMsg *m)
{
  g_autoptr (GError) error = NULL;
  char *text = wsp_signal_msg_encode (m, NULL, &error);
  g_assert_no_error (error);
  return text;
}

static WspPeer
peer (const char *hex)
{
  WspPeer p;
  g_assert_true (wsp_peer_from_hex (hex, strlen (hex), &p));
  return p;
}

static void
test_exact_text (void)
{
  WspSignalMsg m;
  WspPeer p2 = peer (P2);
  g_autofree char *peers = NULL, *err = NULL, *chal = NULL, *ice = NULL;

  wsp_signal_msg_init (&m, WSP_SIGNAL_PEERS);
  m.project_id = g_strdup (PROJECT);
  g_array_append_val (m.peers, p2);
  peers = encode (&m);
  g_assert_cmpstr (peers, ==, "{\"type\":\"peers\",\"project_id\":\"" PROJECT "\",\"peers\":[\"" P2 "\"]}");
  wsp_signal_msg_clear (&m);

  wsp_signal_msg_init (&m, WSP_SIGNAL_ERROR_MSG);
  m.code = g_strdup ("unknown_peer");
  m.message = g_strdup ("peer not connected");
  m.has_to_peer_id = TRUE;
  m.to_peer_id = p2;
  err = encode (&m);
  g_assert_cmpstr (err, ==, "{\"type\":\"error\",\"code\":\"unknown_peer\",\"message\":\"peer not connected\","
                            "\"to_peer_id\":\"" P2 "\"}");
  wsp_signal_msg_clear (&m);

  wsp_signal_msg_init (&m, WSP_SIGNAL_CHALLENGE);
  m.peer_id = peer (P1);
  m.project_id = g_strdup (PROJECT);
  chal = encode (&m);
  g_assert_cmpstr (chal, ==, "{\"type\":\"challenge\",\"nonce\":\"" B32 "\",\"peer_id\":\"" P1
                             "\",\"project_id\":\"" PROJECT "\"}");
  wsp_signal_msg_clear (&m);

  wsp_signal_msg_init (&m, WSP_SIGNAL_ICE_CANDIDATE);
  m.from_peer_id = peer (P1);
  m.to_peer_id = p2;
  m.candidate = g_strdup ("");
  ice = encode (&m);
  g_assert_cmpstr (ice, ==, "{\"type\":\"webrtc_ice_candidate\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2
                            "\",\"candidate\":\"\",\"sdp_mid\":null,\"sdp_mline_index\":0}");
  wsp_signal_msg_clear (&m);
}

/* Encodes m, decodes it, and returns the decoded copy in out. */
static void
round_trip (const WspSignalMsg *m, WspSignalMsg *out)
{
  g_autofree char *text = encode (m);
  decode_ok (text, out);
  g_assert_cmpint (out->type, ==, m->type);
}

static void
test_round_trips (void)
{
  WspSignalMsg m, o;
  WspPeer p1 = peer (P1), p2 = peer (P2);

  wsp_signal_msg_init (&m, WSP_SIGNAL_CHALLENGE);
  for (int i = 0; i < 32; i++)
    m.nonce[i] = (guint8) (i * 7 + 1);
  m.peer_id = p1;
  m.project_id = g_strdup (PROJECT);
  round_trip (&m, &o);
  g_assert_cmpmem (o.nonce, 32, m.nonce, 32);
  g_assert_cmpuint (o.peer_id, ==, p1);
  g_assert_cmpstr (o.project_id, ==, PROJECT);
  wsp_signal_msg_clear (&o);
  wsp_signal_msg_clear (&m);

  wsp_signal_msg_init (&m, WSP_SIGNAL_HELLO);
  m.from_peer_id = p2;
  m.project_id = g_strdup (PROJECT);
  for (int i = 0; i < 32; i++)
    m.pk[i] = (guint8) i, m.nonce[i] = (guint8) (255 - i), m.mac[i] = (guint8) (i ^ 0x55);
  for (int i = 0; i < 64; i++)
    m.sig[i] = (guint8) (i * 3);
  round_trip (&m, &o);
  g_assert_cmpuint (o.from_peer_id, ==, p2);
  g_assert_cmpstr (o.project_id, ==, PROJECT);
  g_assert_cmpmem (o.pk, 32, m.pk, 32);
  g_assert_cmpmem (o.nonce, 32, m.nonce, 32);
  g_assert_cmpmem (o.mac, 32, m.mac, 32);
  g_assert_cmpmem (o.sig, 64, m.sig, 64);
  wsp_signal_msg_clear (&o);
  wsp_signal_msg_clear (&m);

  for (int t = WSP_SIGNAL_WELCOME; t <= WSP_SIGNAL_PEERS; t += WSP_SIGNAL_PEERS - WSP_SIGNAL_WELCOME)
    {
      wsp_signal_msg_init (&m, (WspSignalType) t);
      memset (m.mac, 0xee, 32);
      if (t == WSP_SIGNAL_PEERS)
        m.project_id = g_strdup (PROJECT);
      g_array_append_val (m.peers, p1);
      g_array_append_val (m.peers, p2);
      round_trip (&m, &o);
      g_assert_cmpuint (o.peers->len, ==, 2);
      g_assert_cmpuint (g_array_index (o.peers, WspPeer, 0), ==, p1);
      g_assert_cmpuint (g_array_index (o.peers, WspPeer, 1), ==, p2);
      if (t == WSP_SIGNAL_WELCOME)
        g_assert_cmpmem (o.mac, 32, m.mac, 32);
      wsp_signal_msg_clear (&o);
      wsp_signal_msg_clear (&m);
    }
  /* An empty peers list. */
  wsp_signal_msg_init (&m, WSP_SIGNAL_WELCOME);
  round_trip (&m, &o);
  g_assert_cmpuint (o.peers->len, ==, 0);
  wsp_signal_msg_clear (&o);
  wsp_signal_msg_clear (&m);

  wsp_signal_msg_init (&m, WSP_SIGNAL_ERROR_MSG);
  m.code = g_strdup ("wrong_project");
  round_trip (&m, &o);
  g_assert_cmpstr (o.code, ==, "wrong_project");
  g_assert_cmpstr (o.message, ==, "");
  g_assert_false (o.has_to_peer_id);
  wsp_signal_msg_clear (&o);
  wsp_signal_msg_clear (&m);

  for (int t = WSP_SIGNAL_OFFER; t <= WSP_SIGNAL_ANSWER; t++)
    {
      wsp_signal_msg_init (&m, (WspSignalType) t);
      m.from_peer_id = p1;
      m.to_peer_id = p2;
      m.sdp = g_strdup ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\na=fingerprint:sha-256 AB:CD\r\n\"quoted\" ü\r\n");
      round_trip (&m, &o);
      g_assert_cmpuint (o.from_peer_id, ==, p1);
      g_assert_cmpuint (o.to_peer_id, ==, p2);
      g_assert_cmpstr (o.sdp, ==, m.sdp);
      wsp_signal_msg_clear (&o);
      wsp_signal_msg_clear (&m);
    }

  wsp_signal_msg_init (&m, WSP_SIGNAL_ICE_CANDIDATE);
  m.from_peer_id = p2;
  m.to_peer_id = p1;
  m.candidate = g_strdup ("candidate:1 1 UDP 2015363327 127.0.0.1 40001 typ host");
  m.sdp_mid = g_strdup ("0");
  m.sdp_mline_index = 65535;
  round_trip (&m, &o);
  g_assert_cmpstr (o.candidate, ==, m.candidate);
  g_assert_cmpstr (o.sdp_mid, ==, "0");
  g_assert_cmpuint (o.sdp_mline_index, ==, 65535);
  wsp_signal_msg_clear (&o);
  wsp_signal_msg_clear (&m);
}

static void
test_decode_lenient_where_allowed (void)
{
  WspSignalMsg m;

  /* Unknown keys ignored; whitespace; key order free. */
  decode_ok ("  {\"extra\":{\"deep\":[1,2,3]},\"peers\":[],\"mac\":\"" B32 "\",\"type\":\"welcome\"}\n", &m);
  g_assert_cmpint (m.type, ==, WSP_SIGNAL_WELCOME);
  wsp_signal_msg_clear (&m);
  /* null sdp_mid, empty candidate (end of gathering). */
  decode_ok ("{\"type\":\"webrtc_ice_candidate\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2
             "\",\"candidate\":\"\",\"sdp_mid\":null,\"sdp_mline_index\":3}", &m);
  g_assert_null (m.sdp_mid);
  g_assert_cmpstr (m.candidate, ==, "");
  g_assert_cmpuint (m.sdp_mline_index, ==, 3);
  wsp_signal_msg_clear (&m);
  /* An error code this side does not know still decodes. */
  decode_ok ("{\"type\":\"error\",\"code\":\"future_code\",\"message\":\"x\"}", &m);
  g_assert_cmpstr (m.code, ==, "future_code");
  g_assert_false (wsp_signal_error_from_string (m.code, NULL));
  wsp_signal_msg_clear (&m);
}

static void
test_decode_rejects (void)
{
  static const char *const cases[] = {
    "", "null", "[]", "\"hello\"", "{", "{}", "{\"type\":1}", "{\"type\":\"bogus\"}",
    "{\"type\":\"hello\"}",
    /* challenge: nonce wrong size, missing, peer id uppercase, project empty */
    "{\"type\":\"challenge\",\"nonce\":\"AAAA\",\"peer_id\":\"" P1 "\",\"project_id\":\"" PROJECT "\"}",
    "{\"type\":\"challenge\",\"peer_id\":\"" P1 "\",\"project_id\":\"" PROJECT "\"}",
    "{\"type\":\"challenge\",\"nonce\":\"" B32 "\",\"peer_id\":\"0123456789ABCDEF\",\"project_id\":\"" PROJECT "\"}",
    "{\"type\":\"challenge\",\"nonce\":\"" B32 "\",\"peer_id\":\"" P1 "\",\"project_id\":\"\"}",
    "{\"type\":\"challenge\",\"nonce\":\"" B32 "\",\"peer_id\":\"" P1 "\",\"project_id\":7}",
    /* hello: sig of 32 bytes, pk of 64, from_peer_id short, mac missing */
    "{\"type\":\"hello\",\"from_peer_id\":\"" P1 "\",\"project_id\":\"" PROJECT "\",\"pk\":\"" B32
      "\",\"nonce\":\"" B32 "\",\"mac\":\"" B32 "\",\"sig\":\"" B32 "\"}",
    "{\"type\":\"hello\",\"from_peer_id\":\"" P1 "\",\"project_id\":\"" PROJECT "\",\"pk\":\"" B64
      "\",\"nonce\":\"" B32 "\",\"mac\":\"" B32 "\",\"sig\":\"" B64 "\"}",
    "{\"type\":\"hello\",\"from_peer_id\":\"0123\",\"project_id\":\"" PROJECT "\",\"pk\":\"" B32
      "\",\"nonce\":\"" B32 "\",\"mac\":\"" B32 "\",\"sig\":\"" B64 "\"}",
    "{\"type\":\"hello\",\"from_peer_id\":\"" P1 "\",\"project_id\":\"" PROJECT "\",\"pk\":\"" B32
      "\",\"nonce\":\"" B32 "\",\"sig\":\"" B64 "\"}",
    /* non-canonical base64: no padding, non-zero pad bits, url alphabet, embedded space */
    "{\"type\":\"welcome\",\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"peers\":[]}",
    "{\"type\":\"welcome\",\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=\",\"peers\":[]}",
    "{\"type\":\"welcome\",\"mac\":\"_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\",\"peers\":[]}",
    "{\"type\":\"welcome\",\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA A=\",\"peers\":[]}",
    /* welcome/peers: peers missing, not an array, bad element */
    "{\"type\":\"welcome\",\"mac\":\"" B32 "\"}",
    "{\"type\":\"welcome\",\"mac\":\"" B32 "\",\"peers\":\"" P1 "\"}",
    "{\"type\":\"peers\",\"project_id\":\"" PROJECT "\",\"peers\":[\"" P1 "\",1]}",
    "{\"type\":\"peers\",\"project_id\":\"" PROJECT "\",\"peers\":[\"" P1 "x\"]}",
    "{\"type\":\"peers\",\"peers\":[]}",
    /* error: code missing/empty, message not a string, bad to_peer_id */
    "{\"type\":\"error\",\"message\":\"x\"}",
    "{\"type\":\"error\",\"code\":\"\",\"message\":\"x\"}",
    "{\"type\":\"error\",\"code\":\"auth_failed\",\"message\":null}",
    "{\"type\":\"error\",\"code\":\"auth_failed\"}",
    "{\"type\":\"error\",\"code\":\"unknown_peer\",\"message\":\"x\",\"to_peer_id\":null}",
    /* offer/answer: sdp missing, empty or not a string; to missing */
    "{\"type\":\"webrtc_offer\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2 "\"}",
    "{\"type\":\"webrtc_offer\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2 "\",\"sdp\":\"\"}",
    "{\"type\":\"webrtc_answer\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2 "\",\"sdp\":{}}",
    "{\"type\":\"webrtc_answer\",\"from_peer_id\":\"" P1 "\",\"sdp\":\"v=0\"}",
    /* ice: index float, negative, too big, string, missing; sdp_mid a number; candidate null */
    "{\"type\":\"webrtc_ice_candidate\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2
      "\",\"candidate\":\"\",\"sdp_mid\":\"0\",\"sdp_mline_index\":0.0}",
    "{\"type\":\"webrtc_ice_candidate\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2
      "\",\"candidate\":\"\",\"sdp_mid\":\"0\",\"sdp_mline_index\":-1}",
    "{\"type\":\"webrtc_ice_candidate\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2
      "\",\"candidate\":\"\",\"sdp_mid\":\"0\",\"sdp_mline_index\":65536}",
    "{\"type\":\"webrtc_ice_candidate\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2
      "\",\"candidate\":\"\",\"sdp_mid\":\"0\",\"sdp_mline_index\":\"0\"}",
    "{\"type\":\"webrtc_ice_candidate\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2
      "\",\"candidate\":\"\",\"sdp_mid\":\"0\"}",
    "{\"type\":\"webrtc_ice_candidate\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2
      "\",\"candidate\":\"\",\"sdp_mid\":0,\"sdp_mline_index\":0}",
    "{\"type\":\"webrtc_ice_candidate\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2
      "\",\"candidate\":null,\"sdp_mid\":\"0\",\"sdp_mline_index\":0}",
    /* escapes that decode to invalid UTF-8 (lone surrogates) */
    "{\"type\":\"error\",\"code\":\"x\",\"message\":\"a\\ude00b\"}",
    "{\"type\":\"webrtc_offer\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2 "\",\"sdp\":\"v=0\\ud800\"}",
    /* trailing garbage */
    "{\"type\":\"welcome\",\"mac\":\"" B32 "\",\"peers\":[]} x",
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      if (g_test_verbose ())
        g_test_message ("case %u: %s", i, cases[i]);
      bad (cases[i]);
    }
}

static void
test_decode_bytes (void)
{
  /* Bad UTF-8 (in a string and outside), a NUL byte, deep nesting, NULL. */
  static const char bad_utf8[] = "{\"type\":\"error\",\"code\":\"x\xff\",\"message\":\"\"}";
  static const char nul[] = "{\"type\":\"error\",\"code\":\"x\",\"message\":\"\"}\0";
  GString *deep = g_string_new ("{\"type\":\"welcome\",\"x\":");
  g_autofree char *deep_s = NULL;

  decode_fails (bad_utf8, sizeof bad_utf8 - 1, WSP_SIGNAL_ERROR_BAD_MESSAGE);
  decode_fails (nul, sizeof nul - 1, WSP_SIGNAL_ERROR_BAD_MESSAGE);
  for (int i = 0; i < 10000; i++)
    g_string_append_c (deep, '[');
  for (int i = 0; i < 10000; i++)
    g_string_append_c (deep, ']');
  g_string_append_c (deep, '}');
  deep_s = g_string_free (deep, FALSE);
  bad (deep_s);
  decode_fails (NULL, 0, WSP_SIGNAL_ERROR_BAD_MESSAGE);
}

static void
test_size_limit (void)
{
  /* An offer whose text is exactly 256 KiB decodes; one byte more is
   * too_large (checked before parsing). */
  static const char head[] = "{\"type\":\"webrtc_offer\",\"from_peer_id\":\"" P1 "\",\"to_peer_id\":\"" P2 "\",\"sdp\":\"";
  gsize fill = WSP_SIGNAL_MAX_MESSAGE - (sizeof head - 1) - 2;
  GString *s = g_string_new (head);
  g_autofree char *text = NULL;
  WspSignalMsg m;
  g_autoptr (GError) error = NULL;

  for (gsize i = 0; i < fill; i++)
    g_string_append_c (s, 'v');
  g_string_append (s, "\"}");
  g_assert_cmpuint (s->len, ==, WSP_SIGNAL_MAX_MESSAGE);
  decode_ok (s->str, &m);
  g_assert_cmpuint (strlen (m.sdp), ==, fill);
  /* Encoding the same message gives the same size, still accepted. */
  {
    gsize len = 0;
    g_autofree char *again = wsp_signal_msg_encode (&m, &len, &error);
    g_assert_no_error (error);
    g_assert_cmpuint (len, ==, WSP_SIGNAL_MAX_MESSAGE);
    g_assert_cmpuint (strlen (again), ==, len);
  }
  /* One more byte of sdp: the encoder refuses. */
  {
    char *longer = g_strconcat (m.sdp, "v", NULL);
    g_free (m.sdp);
    m.sdp = longer;
    g_assert_null (wsp_signal_msg_encode (&m, NULL, &error));
    g_assert_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_TOO_LARGE);
    g_clear_error (&error);
  }
  wsp_signal_msg_clear (&m);
  g_string_insert_c (s, 5, ' ');
  text = g_string_free (s, FALSE);
  decode_fails (text, strlen (text), WSP_SIGNAL_ERROR_TOO_LARGE);
}

static void
test_encode_rejects (void)
{
  WspSignalMsg m;
  g_autoptr (GError) error = NULL;

  wsp_signal_msg_init (&m, WSP_SIGNAL_HELLO);   /* project_id NULL */
  g_assert_null (wsp_signal_msg_encode (&m, NULL, &error));
  g_assert_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_BAD_MESSAGE);
  g_clear_error (&error);
  wsp_signal_msg_init (&m, WSP_SIGNAL_OFFER);
  m.sdp = g_strdup ("bad \xff utf-8");
  g_assert_null (wsp_signal_msg_encode (&m, NULL, &error));
  g_assert_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_BAD_MESSAGE);
  g_clear_error (&error);
  wsp_signal_msg_clear (&m);
}

static void
test_names (void)
{
  static const char *const codes[] = { "auth_failed", "wrong_project", "bad_message", "too_large", "unknown_peer" };
  for (guint i = 0; i < G_N_ELEMENTS (codes); i++)
    {
      WspSignalError e;
      g_assert_cmpstr (wsp_signal_error_to_string ((WspSignalError) i), ==, codes[i]);
      g_assert_true (wsp_signal_error_from_string (codes[i], &e));
      g_assert_cmpint (e, ==, i);
    }
  g_assert_false (wsp_signal_error_from_string ("shutdown", NULL));
  g_assert_cmpstr (wsp_signal_type_to_string (WSP_SIGNAL_ICE_CANDIDATE), ==, "webrtc_ice_candidate");
  g_assert_cmpstr (wsp_signal_type_to_string ((WspSignalType) 42), ==, "unknown");
  g_assert_cmpint (WSP_SIGNAL_CLOSE_AUTH, ==, 4001);
  g_assert_cmpint (WSP_SIGNAL_CLOSE_PROTOCOL, ==, 4002);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/signal-msg/encode/exact-text", test_exact_text);
  g_test_add_func ("/signal-msg/round-trip/all-types", test_round_trips);
  g_test_add_func ("/signal-msg/decode/unknown-keys-null-mid", test_decode_lenient_where_allowed);
  g_test_add_func ("/signal-msg/decode/rejects", test_decode_rejects);
  g_test_add_func ("/signal-msg/decode/bad-bytes", test_decode_bytes);
  g_test_add_func ("/signal-msg/size-limit", test_size_limit);
  g_test_add_func ("/signal-msg/encode/rejects", test_encode_rejects);
  g_test_add_func ("/signal-msg/names", test_names);
  return g_test_run ();
}
