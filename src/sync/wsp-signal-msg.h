/* wsp-signal-msg.h — the signaling messages of peer sync (SPEC 7.1): JSON
 * objects with a "type" key, exchanged over the WebSocket at
 * /api/v1/signal. Encode and strict decode only; the listener and client
 * state machines live elsewhere.
 *
 * Pure (json-glib), any thread. Binary values (pk, nonce, mac, sig) are
 * standard base64 with padding. Keys are written in the order SPEC 7.1
 * lists them, "type" first.
 */
#pragma once

#include <glib.h>
#include "common/wsp-common.h"
#include "crdt/wsp-chain.h"

G_BEGIN_DECLS

#define WSP_SIGNAL_MAX_MESSAGE (256 * 1024)   /* bytes of JSON text */
#define WSP_SIGNAL_CLOSE_AUTH     4001        /* failure before welcome, no hello in 10 s */
#define WSP_SIGNAL_CLOSE_PROTOCOL 4002        /* malformed/oversize after welcome */

/* The listener's error codes (SPEC 7.1). Decoding yields BAD_MESSAGE or
 * TOO_LARGE; before welcome the listener answers any failure with
 * AUTH_FAILED or WRONG_PROJECT instead (a session decision). */
#define WSP_SIGNAL_ERROR (wsp_signal_error_quark ())
GQuark wsp_signal_error_quark (void);

typedef enum {
  WSP_SIGNAL_ERROR_AUTH_FAILED,     /* "auth_failed" */
  WSP_SIGNAL_ERROR_WRONG_PROJECT,   /* "wrong_project" */
  WSP_SIGNAL_ERROR_BAD_MESSAGE,     /* "bad_message" */
  WSP_SIGNAL_ERROR_TOO_LARGE,       /* "too_large" */
  WSP_SIGNAL_ERROR_UNKNOWN_PEER,    /* "unknown_peer" */
} WspSignalError;

const char *wsp_signal_error_to_string (WspSignalError code);
gboolean    wsp_signal_error_from_string (const char *s, WspSignalError *out);

typedef enum {
  WSP_SIGNAL_CHALLENGE,        /* "challenge" */
  WSP_SIGNAL_HELLO,            /* "hello" */
  WSP_SIGNAL_WELCOME,          /* "welcome" */
  WSP_SIGNAL_ERROR_MSG,        /* "error" */
  WSP_SIGNAL_OFFER,            /* "webrtc_offer" */
  WSP_SIGNAL_ANSWER,           /* "webrtc_answer" */
  WSP_SIGNAL_ICE_CANDIDATE,    /* "webrtc_ice_candidate" */
  WSP_SIGNAL_PEERS,            /* "peers" */
} WspSignalType;

const char *wsp_signal_type_to_string (WspSignalType type);

/* One signaling message. Which fields are meaningful depends on type:
 *   challenge   nonce, peer_id, project_id
 *   hello       from_peer_id, project_id, pk, nonce, mac, sig
 *   welcome     mac, peers
 *   error       code, message, to_peer_id (optional: has_to_peer_id)
 *   offer/answer  from_peer_id, to_peer_id, sdp
 *   ice         from_peer_id, to_peer_id, candidate ("" ends gathering),
 *               sdp_mid (NULL for JSON null), sdp_mline_index
 *   peers       project_id, peers
 * Owns its strings and array; release with wsp_signal_msg_clear(). */
typedef struct {
  WspSignalType type;
  WspPeer   peer_id;            /* challenge: the listener */
  WspPeer   from_peer_id;
  WspPeer   to_peer_id;
  gboolean  has_to_peer_id;     /* error: to_peer_id present (unknown_peer) */
  char     *project_id;         /* non-empty UTF-8 */
  guint8    pk[WSP_PK_LEN];
  guint8    nonce[32];
  guint8    mac[32];
  guint8    sig[WSP_SIG_LEN];
  GArray   *peers;              /* WspPeer, in the order given; welcome/peers */
  char     *code;               /* error: any string (see WspSignalError) */
  char     *message;            /* error: human text */
  char     *sdp;                /* offer/answer */
  char     *candidate;          /* ice: "candidate:…" or "" */
  char     *sdp_mid;            /* ice: may be NULL */
  guint     sdp_mline_index;    /* ice: 0..65535 */
} WspSignalMsg;

/* Zeroes m and sets its type; peers gets an empty array for welcome/peers. */
void     wsp_signal_msg_init (WspSignalMsg *m, WspSignalType type);
void     wsp_signal_msg_clear (WspSignalMsg *m);   /* NULL ok; leaves zeroes */

/* Compact JSON text. Fails with WSP_SIGNAL_ERROR_BAD_MESSAGE when a required
 * string is NULL or not UTF-8, WSP_SIGNAL_ERROR_TOO_LARGE over
 * WSP_SIGNAL_MAX_MESSAGE. */
char    *wsp_signal_msg_encode (const WspSignalMsg *m, gsize *out_len, GError **error);

/* Strict decode of one text frame: at most WSP_SIGNAL_MAX_MESSAGE bytes
 * (else TOO_LARGE), UTF-8, nested at most 16 deep, a JSON object whose
 * "type" is known and whose required fields are present with the right JSON
 * types; peer ids are 16 lowercase hex chars; base64 fields are canonical
 * standard base64 of exactly 32 (pk, nonce, mac) or 64 (sig) bytes.
 * Unknown keys are ignored. Anything else is BAD_MESSAGE. On FALSE *out is
 * zeroed (nothing to free). */
gboolean wsp_signal_msg_decode (const char *data, gsize len, WspSignalMsg *out, GError **error);

G_END_DECLS
