/* wsp-chain.h — identities, per-author hash chains, signed heads and the
 * project key schedule (SPEC 7.3, 7.4), on libsodium (Ed25519, SHA-256,
 * HMAC-SHA256; HKDF-SHA256 built on HMAC per RFC 5869). Pure, any thread
 * (call wsp_crypto_init() once first). */
#pragma once
#include <glib.h>
#include "common/wsp-common.h"

G_BEGIN_DECLS

#define WSP_HASH_LEN 32
#define WSP_SIG_LEN  64
#define WSP_PK_LEN   32
#define WSP_SEED_LEN 32

/* sodium_init(); returns FALSE if libsodium cannot start. Idempotent. */
gboolean wsp_crypto_init (void);

typedef struct {
  guint8  seed[WSP_SEED_LEN];
  guint8  pk[WSP_PK_LEN];
  guint8  sk[64];               /* libsodium's secret key (seed ‖ pk) */
  WspPeer peer;
  char    peer_hex[WSP_PEER_HEX_LEN + 1];
} WspIdentity;

void     wsp_identity_from_seed (WspIdentity *self, const guint8 seed[WSP_SEED_LEN]);
void     wsp_identity_generate (WspIdentity *self);
void     wsp_identity_sign (const WspIdentity *self, const guint8 *msg, gsize len, guint8 sig[WSP_SIG_LEN]);
gboolean wsp_verify (const guint8 pk[WSP_PK_LEN], const guint8 *msg, gsize len, const guint8 sig[WSP_SIG_LEN]);

/* h(0) = SHA-256("wsp-chain-v1" ‖raw‖ project id ASCII ‖raw‖ pk). */
void     wsp_chain_genesis (const char *project_id, const guint8 pk[WSP_PK_LEN], guint8 out[WSP_HASH_LEN]);
/* h(s) = SHA-256(h(s-1) ‖ body). out may alias prev. */
void     wsp_chain_next (const guint8 prev[WSP_HASH_LEN], const guint8 *body, gsize len, guint8 out[WSP_HASH_LEN]);
/* Signed-head text: "wsp-head-v1\n<peer hex>\n<seq decimal>\n<hex h(seq)>". */
char    *wsp_head_text (WspPeer peer, guint64 seq, const guint8 hash[WSP_HASH_LEN]);
void     wsp_head_sign (const WspIdentity *id, guint64 seq, const guint8 hash[WSP_HASH_LEN], guint8 sig[WSP_SIG_LEN]);
gboolean wsp_head_verify (const guint8 pk[WSP_PK_LEN], WspPeer peer, guint64 seq,
                          const guint8 hash[WSP_HASH_LEN], const guint8 sig[WSP_SIG_LEN]);

/* HKDF-SHA256, empty salt (RFC 5869), out_len <= 255*32. */
void     wsp_hkdf_sha256 (const guint8 *ikm, gsize ikm_len, const char *info, guint8 *out, gsize out_len);
void     wsp_hmac_sha256 (const guint8 key[32], const guint8 *msg, gsize len, guint8 out[32]);

G_END_DECLS
