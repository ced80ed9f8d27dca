/* wsp-wire.h — the channel messages of peer sync (SPEC 7.2, 7.3) as
 * MessagePack maps with a type key `t`, and the `z` (zstd) wrapper.
 *
 * Pure codec: no I/O, no state, any thread. The session layer decides what
 * to do with a decoded message; this layer decides only whether the bytes
 * are a well-formed message and which spec error code answers them.
 *
 * Encoding (deterministic, shortest MessagePack forms, msgpack-c):
 *   - every message map starts with `t`, then the fields in the order of the
 *     SPEC 7.2 table:  hello: t v peer project pk nonce clock
 *                      auth: t mac sig      req/ack: t clock
 *                      ops: t runs clock    ping/pong: t n
 *                      err: t code msg      z: t d
 *   - a run is the map peer pk from ops sig (in that order, SPEC 7.3);
 *   - a clock is a map of 16-hex str → uint, sorted by peer;
 *   - ids, project ids, codes and text are str; pk, nonce, mac, sig, d and
 *     op bodies are bin.
 *   e.g. {"t":"ping","n":1} = 82 a1 74 a4 70 69 6e 67 a1 6e 01.
 */
#pragma once

#include <glib.h>
#include "common/wsp-common.h"
#include "crdt/wsp-chain.h"
#include "crdt/wsp-clock.h"
#include "store/wsp-store.h"

G_BEGIN_DECLS

#define WSP_WIRE_MAX_MESSAGE   65536   /* bytes: a message, and a z's content */
#define WSP_WIRE_MAX_RUN       WSP_RUN_MAX_BYTES   /* bytes: a run's own shortest encoding */
#define WSP_WIRE_VERSION       1       /* hello.v */
#define WSP_WIRE_NONCE_LEN     32
#define WSP_WIRE_MAC_LEN       32

/* The SPEC 7.2 error codes; wsp_wire_error_to_string() gives the code sent
 * in an `err` message. Decoding produces BAD_MESSAGE, TOO_LARGE, VERSION,
 * BAD_HELLO, NOT_AUTHENTICATED and BAD_RUN; the session produces the rest. */
#define WSP_WIRE_ERROR (wsp_wire_error_quark ())
GQuark wsp_wire_error_quark (void);

typedef enum {
  WSP_WIRE_ERROR_BAD_MESSAGE,        /* "bad_message" */
  WSP_WIRE_ERROR_TOO_LARGE,          /* "too_large" */
  WSP_WIRE_ERROR_VERSION,            /* "version" */
  WSP_WIRE_ERROR_WRONG_PROJECT,      /* "wrong_project" */
  WSP_WIRE_ERROR_BAD_HELLO,          /* "bad_hello" */
  WSP_WIRE_ERROR_AUTH_FAILED,        /* "auth_failed" */
  WSP_WIRE_ERROR_NOT_AUTHENTICATED,  /* "not_authenticated" */
  WSP_WIRE_ERROR_BAD_RUN,            /* "bad_run" */
  WSP_WIRE_ERROR_SHUTDOWN,           /* "shutdown" */
  WSP_WIRE_ERROR_INTERNAL,           /* "internal" */
} WspWireError;

const char *wsp_wire_error_to_string (WspWireError code);
/* Returns FALSE for a code this replica does not know (peers may send any). */
gboolean    wsp_wire_error_from_string (const char *s, WspWireError *out);

typedef enum {
  WSP_MSG_UNKNOWN = 0,   /* decoded after authentication with an unknown `t`:
                          * the receiver ignores it; never encodable */
  WSP_MSG_HELLO,
  WSP_MSG_AUTH,
  WSP_MSG_REQ,
  WSP_MSG_OPS,
  WSP_MSG_ACK,
  WSP_MSG_PING,
  WSP_MSG_PONG,
  WSP_MSG_ERR,
} WspMsgType;

const char *wsp_msg_type_to_string (WspMsgType type);   /* the `t` value, "unknown" */

/* A channel message. The member of the union named after `type` is valid
 * (req and ack, ping and pong share a layout). Owns everything it points to;
 * release with wsp_msg_clear(). Zero-initialise (or wsp_msg_init) first. */
typedef struct {
  WspMsgType type;
  union {
    struct {
      guint64  v;                         /* protocol version, 1 */
      WspPeer  peer;                      /* = id(pk), checked by decode */
      char    *project;                   /* project id, UTF-8 */
      guint8   pk[WSP_PK_LEN];
      guint8   nonce[WSP_WIRE_NONCE_LEN];
      WspClock clock;                     /* applied clock of the sender */
    } hello;
    struct {
      guint8 mac[WSP_WIRE_MAC_LEN];       /* HMAC-SHA256(K_auth, T), 7.4 */
      guint8 sig[WSP_SIG_LEN];            /* Ed25519(T) */
    } auth;
    struct { WspClock clock; } req;       /* resend from this clock */
    struct { WspClock clock; } ack;       /* what the sender has applied */
    struct {
      GPtrArray *runs;                    /* WspRun*, owned (free func set) */
      WspClock   clock;                   /* may be empty */
    } ops;
    struct { guint64 n; } ping;
    struct { guint64 n; } pong;
    struct {
      char *code;                         /* any string; see WspWireError */
      char *msg;                          /* human text, "" when absent */
    } err;
  };
} WspMsg;

void     wsp_msg_init (WspMsg *m, WspMsgType type);   /* zeroes; ops gets an empty runs array */
void     wsp_msg_clear (WspMsg *m);                   /* frees; leaves WSP_MSG_UNKNOWN; NULL ok */

/* Encodes m. With compress, ops/req/ack/ping/pong are wrapped in
 * {"t":"z","d":<zstd frame>} when that is smaller (never hello/auth/err).
 * Fails (returns NULL) with WSP_WIRE_ERROR_TOO_LARGE when the plain encoding
 * exceeds WSP_WIRE_MAX_MESSAGE, WSP_WIRE_ERROR_BAD_RUN when a run would be
 * refused by a receiver (from 0, no ops, pk not matching peer, over
 * WSP_WIRE_MAX_RUN), WSP_WIRE_ERROR_INTERNAL for an unencodable message
 * (WSP_MSG_UNKNOWN, NULL strings, invalid UTF-8). Memory use is bounded by
 * the message limit whatever the input. */
GBytes  *wsp_msg_encode (const WspMsg *m, gboolean compress, GError **error);

/* Decodes one channel message. authenticated says whether this side has
 * verified the other's `auth`. On FALSE the error (WSP_WIRE_ERROR) carries
 * the code to send back in `err`, and *out is zeroed (nothing to free):
 *   TOO_LARGE          over WSP_WIRE_MAX_MESSAGE, or a z declaring content
 *                      over it (checked before decompressing)
 *   BAD_MESSAGE        not one well-formed map, missing/mistyped field,
 *                      invalid UTF-8, unknown `t` before authentication,
 *                      z that nests, wraps hello/auth/err, or lacks a
 *                      declared content size
 *   VERSION            hello with v != 1 (checked before its other fields)
 *   BAD_HELLO          hello whose peer is not id(pk)
 *   NOT_AUTHENTICATED  anything but hello/auth/err before authentication
 *                      (z included: it is not decompressed then)
 *   BAD_RUN            a run that is malformed, has from 0 or no ops, whose
 *                      pk does not hash to peer, or whose own shortest
 *                      encoding exceeds WSP_WIRE_MAX_RUN
 * An unknown `t` after authentication returns TRUE with out->type =
 * WSP_MSG_UNKNOWN (to be ignored). Unknown keys are ignored everywhere.
 * Clock entries of 0 are dropped; entries must be below 2^63. */
gboolean wsp_msg_decode (const guint8 *data, gsize len, gboolean authenticated,
                         WspMsg *out, GError **error);

/* A run's size: wsp_run_encoded_size() and wsp_run_encoded_size_add(),
 * declared in store/wsp-store.h (included above) next to WspRun. */

G_END_DECLS
