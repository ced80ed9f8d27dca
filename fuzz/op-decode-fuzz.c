/* op-decode-fuzz.c — libFuzzer target for received op bodies (SPEC 7.3).
 *
 * Bodies come from any peer, so wsp_op_decode must be total: no crash, no
 * abort, no leak, bounded memory. On success the op goes through the merge
 * code and the state codec, which must round-trip exactly; anything else is
 * a bug and aborts so the fuzzer reports it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "crdt/wsp-op.h"
#include "crdt/wsp-task-state.h"

#define FUZZ_AUTHOR G_GUINT64_CONSTANT (0x0123456789abcdef)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  WspOp op;
  WspClock deps;
  WspStamp stamp;
  WspTaskView view;
  g_autoptr (WspTaskState) state = NULL;
  g_autoptr (WspTaskState) again = NULL;
  g_autoptr (GBytes) blob = NULL;
  g_autoptr (GBytes) blob2 = NULL;
  g_autoptr (GBytes) reencoded = NULL;
  WspOp op2;

  /* Stored state blobs are trusted less than they look (disk corruption):
   * the state decoder must survive any bytes too. */
  again = wsp_task_state_decode ("t", data, size, NULL);
  g_clear_pointer (&again, wsp_task_state_free);

  if (!wsp_op_decode (data, size, FUZZ_AUTHOR, &op))
    return 0;

  /* Whatever decoded must encode and decode to the same op (the data
   * only when it had a valid shape: an op without data encodes a stub). */
  reencoded = wsp_op_encode (&op);
  if (!wsp_op_decode (g_bytes_get_data (reencoded, NULL), g_bytes_get_size (reencoded), FUZZ_AUTHOR, &op2))
    abort ();
  if (op2.hlc != op.hlc || op2.n_deps != op.n_deps || strcmp (op2.task, op.task) != 0
      || (op.data_ok && !op2.data_ok))
    abort ();
  wsp_op_clear (&op2);

  wsp_clock_init (&deps);
  wsp_clock_merge (&deps, op.deps, op.n_deps);
  stamp = (WspStamp) { op.hlc, FUZZ_AUTHOR, 1 };
  state = wsp_task_state_new (op.task);
  wsp_task_state_apply (state, &stamp, &deps, &op);
  /* Apply a second time as a later op of the same author. */
  stamp.seq = 2;
  wsp_task_state_apply (state, &stamp, &deps, &op);
  wsp_task_state_view (state, &view);
  wsp_task_view_clear (&view);

  blob = wsp_task_state_encode (state);
  again = wsp_task_state_decode (op.task, g_bytes_get_data (blob, NULL), g_bytes_get_size (blob), NULL);
  if (again == NULL)
    abort ();
  blob2 = wsp_task_state_encode (again);
  if (!g_bytes_equal (blob, blob2))
    abort ();

  wsp_clock_clear (&deps);
  wsp_op_clear (&op);
  return 0;
}
