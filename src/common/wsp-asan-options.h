/* wsp-asan-options.h — include once, in the file holding main(), in every
 * program that loads GLib, libsoup or GStreamer.
 *
 * Under ASan: full malloc stacks (Debian's libglib has no frame pointers),
 * so that tests/lsan.supp can name the libraries' own process-wide leaks
 * by their frames: GLib's deliberately leaked first quark table
 * (leak:_dl_init, made in library constructors and grown by GStreamer) and
 * libsoup 3.2's leaked accepted GSocket (leak:g_socket_accept).
 * ASAN_OPTIONS from the environment still wins key by key. Unused (and
 * harmless) without ASan. */
#pragma once

const char *__asan_default_options (void);
const char *
__asan_default_options (void)
{
  return "fast_unwind_on_malloc=0";
}
